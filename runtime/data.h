/* Data loading for next-token stages (pretrain, midtrain) and SFT: files
 * are read, checked, tokenized, split into training and held-out parts,
 * laid out as sequences of context + 1 tokens, and served in batches in a
 * shuffled order that is a pure function of the seed and a few integers of
 * state, so that a resumed stage continues the same trajectory.
 *
 * corpus: every file the glob matches (sorted by name) is one document; it
 *   must be UTF-8 (an error names the file and the byte offset). Documents
 *   with fewer than min_chars characters (code points; empty files always)
 *   or more than max_length tokens are dropped and counted. The stream is
 *   <|eos|> D1 <|eos|> D2 ... <|eos|> Dn <|eos|>: <|eos|> separates the
 *   documents and also opens and closes the stream, so each document is
 *   predicted from a boundary, the context a sampler starts from. With
 *   packing (the default) the stream is cut into windows of T + 1 tokens
 *   that share their edge token, so every token after the first is a target
 *   once; without it, each document is windowed on its own. The last window
 *   is padded rather than dropped, so a stream shorter than the context
 *   still trains.
 * demonstrations: every line of the JSONL files is one example, either
 *   {"prompt", "response"} or {"messages": [{"role", "content"}...]} (TRL's
 *   layouts; with format = auto, a line with "messages" is a chat), laid
 *   out by the chat template (tokenizer.h). Examples over max_length tokens
 *   are dropped; longer than T + 1 tokens they are cut to their start, and
 *   counted. Without packing, each example is one sequence, padded; with
 *   packing, consecutive examples are put into one sequence while the
 *   whole of the next still fits (an example never straddles two
 *   sequences, so a response is never cut from its prompt), then padded.
 *
 * A batch row is inputs = sequence[0 .. T-1], targets = sequence[1 .. T];
 * the weight of a target is 1 when the loss counts it (corpus: every real
 * token; demonstrations: the template's mask of the TARGET token, the
 * response and its <|eos|>, or every token with loss_all), else 0 with the
 * target -1. Padding is <|pad|> with target -1.
 *
 * Held out: round(val_split x documents) of them (at least one when there
 * are two or more and val_split > 0, never all), the ones with the lowest
 * hash of (split_seed, content): the split does not depend on file order
 * or on files added later, and identical documents fall on the same side.
 *
 * Order: each epoch visits every training sequence once, in a permutation
 * drawn from (seed, source, epoch). In a mix, row k of the run is taken
 * from source i with probability share_i, by a draw from (seed, k); each
 * source keeps its own position and epochs. The state is 1 + 2 x sources
 * integers: draws, then each source's epoch and position. */
#ifndef TRAINPIPE_DATA_H
#define TRAINPIPE_DATA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tokenizer.h"

enum data_kind { DATA_CORPUS, DATA_DEMONSTRATIONS };

/* How demonstration lines are read: by their fields, or one layout forced. */
enum demo_format { FORMAT_AUTO, FORMAT_PROMPT_RESPONSE, FORMAT_MESSAGES };

/* The format called NAME ("auto", "prompt_response", "messages"). */
bool demo_format_find(const char *name, enum demo_format *out, char *err, size_t err_size);

/* One data set, with its effective keys (defaults applied by the caller). */
struct data_source {
  const char *name;     /* the data set's name, for messages */
  enum data_kind kind;
  const char *pattern;  /* a file or glob, already resolved against the pipeline's folder */
  double share;         /* its share in a mix (normalised over the sources); unused alone */
  double val_split;     /* [0, 0.5]: share of documents or examples held out */
  size_t min_chars;     /* corpus: drop documents with fewer characters */
  size_t max_length;    /* drop documents or examples with more tokens; 0: no limit */
  enum demo_format format;
};

struct data_options {
  const struct tokenizer *tok;
  enum chat_template template;
  int context;          /* T: tokens per row of a batch */
  uint64_t seed;        /* the stage's seed: shuffling and mixing */
  uint64_t split_seed;  /* which examples are held out; keep it the same across stages
                           so that what one stage held out no other trains on */
  bool packing;         /* the stage's `packing` */
  bool loss_all;        /* sft `loss = all`: every token counts, not only responses */
};

/* What a source held, for logs and for turning epochs into steps. */
struct data_stats {
  size_t files;            /* files read */
  size_t kept;             /* documents or examples kept, training and held out */
  size_t dropped_short;    /* under min_chars, or empty */
  size_t dropped_long;     /* over max_length */
  size_t truncated;        /* cut to T + 1 tokens, start kept */
  size_t truncated_blank;  /* of those, ones left with no counted token */
  size_t val_kept;         /* held out, of kept */
  size_t train_sequences, val_sequences;
  size_t train_tokens, val_tokens; /* in those sequences, padding not counted */
  size_t train_counted;    /* targets counted in one training epoch */
};

/* A batch for the backend: B rows of T. */
struct data_batch {
  int B, T;
  int32_t *tokens;   /* [B*T] */
  int32_t *targets;  /* [B*T]: the next token; -1 where nothing is learned */
  float *weights;    /* [B*T]: 1 where the target counts, else 0 */
  int *source;       /* [B]: the source each row came from; -1 for a padding row */
  size_t counted;    /* weights that are 1: gradient accumulation divides by the sum */
  int rows;          /* rows holding a sequence; the rest are all padding */
};

void data_batch_init(struct data_batch *b, int B, int T);
void data_batch_free(struct data_batch *b);

struct data_loader;

/* Reads the N sources (N > 1: a mix) for OPT. NULL with the reason in ERR:
 * no file matches, a file is unreadable or not UTF-8 (path and byte
 * offset), a JSONL line is not an example (path:line and why), nothing is
 * left to train on, a template or option is not supported. */
struct data_loader *data_open(const struct data_source *sources, size_t n, const struct data_options *opt,
                              char *err, size_t err_size);
void data_close(struct data_loader *d);

size_t data_source_count(const struct data_loader *d);
void data_source_stats(const struct data_loader *d, size_t source, struct data_stats *out);

/* Fills every row of B with the next training sequences, the epochs going
 * round as often as needed. B->T must be the loader's context. */
void data_next(struct data_loader *d, struct data_batch *b);

/* Epochs done by the first source, with the current one's fraction. */
double data_epochs(const struct data_loader *d);

/* Held-out sequences: every source's, in order, never shuffled. */
size_t data_val_sequences(const struct data_loader *d);

/* Fills B with held-out sequences FIRST, FIRST + 1, ...; rows past the end
 * are padding. Returns the rows filled with a sequence. */
int data_val_batch(const struct data_loader *d, size_t first, struct data_batch *b);

/* The position in the data: DATA_STATE_SIZE(n sources) integers. */
#define DATA_STATE_SIZE(n) (1 + 2 * (n))
size_t data_state_size(const struct data_loader *d);
void data_state_get(const struct data_loader *d, int64_t *state);

/* Resumes at STATE (SIZE integers from data_state_get); false with the
 * reason in ERR when it does not fit this data (other sources, a position
 * past the end), and the position is then unchanged. */
bool data_state_set(struct data_loader *d, const int64_t *state, size_t size, char *err, size_t err_size);

/* The same state as JSON, for a checkpoint's resume object:
 * {"draws": N, "sources": [{"epoch": E, "position": P}, ...]}. */
json_t *data_state_to_json(const struct data_loader *d);
bool data_state_from_json(struct data_loader *d, const json_t *state, char *err, size_t err_size);

#endif
