/* Example data for the post-training stages: preference pairs
 * (reward_model, dpo, ipo, simpo, orpo), feedback examples (kto) and RL
 * prompts (ppo, grpo, online_dpo), read from JSONL files, laid out by the
 * chat template, split into training and held-out parts, and visited in
 * a shuffled order that is a pure function of the seed and two integers of
 * state (so a resumed stage continues the same trajectory).
 *
 * preferences: {"prompt", "chosen", "rejected"} strings, an optional
 *   number "margin"; each pair gives two sequences, prompt + chosen and
 *   prompt + rejected, by template_pair (their mask: the response and its
 *   end-of-turn token).
 * feedback: {"prompt", "completion", "label"}, label a boolean; one
 *   sequence, prompt + completion.
 * prompts: {"prompt", ...}; the prompt rendered as a user turn ready for
 *   generation (template_render with generate), and the whole line kept
 *   for verifiers (`against` names one of its fields).
 *
 * Every file the glob matches is read, sorted by name, line by line; blank
 * lines are skipped; any other line that is not such an object is an
 * error naming path:line and the field. A sequence longer than CONTEXT + 1
 * tokens (a prompt longer than CONTEXT for prompts) or than max_length is
 * dropped and counted, never cut: a cut response would teach a wrong
 * preference. Held out: as data.h's, round(val_split x examples) with the
 * lowest hash of (split_seed, content), at least one when there are two or
 * more and val_split > 0. */
#ifndef TRAINPIPE_EXAMPLES_H
#define TRAINPIPE_EXAMPLES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tokenizer.h"

enum example_kind { EXAMPLES_PREFERENCES, EXAMPLES_FEEDBACK, EXAMPLES_PROMPTS };

struct example_source {
  const char *name;    /* the data set, for messages */
  const char *pattern; /* a file or glob, resolved */
  double val_split;
  size_t max_length;   /* 0: no limit */
};

struct example_options {
  enum example_kind kind;
  const struct tokenizer *tok;
  enum chat_template template;
  int context;         /* T: the longest input sequence a batch row holds */
  uint64_t seed;       /* shuffling */
  uint64_t split_seed; /* which examples are held out */
};

/* A token sequence with its loss mask (1 on response tokens). */
struct sequence {
  int32_t *ids;
  uint8_t *mask;
  int len;
  int prompt_len;      /* tokens before the response */
};

struct example {
  struct sequence chosen;    /* preferences: prompt + chosen; feedback: prompt + completion */
  struct sequence rejected;  /* preferences only */
  struct sequence prompt;    /* prompts: the rendered prompt, ready for generation */
  double margin;             /* preferences: the "margin" field, 0 when absent */
  bool desirable;            /* feedback: the label */
  json_t *line;              /* prompts: the data line (borrowed from the set) */
  size_t partner;            /* feedback: another training example (the next in file order, wrapping),
                              * whose completion makes this prompt's mismatched pair for KTO's z0 */
};

struct example_stats {
  size_t files, kept, val_kept, dropped_long;
};

struct example_set;

/* NULL with the reason in ERR (no file matches, unreadable file, a bad
 * line, nothing left to train on). */
struct example_set *examples_open(const struct example_source *sources, size_t n, const struct example_options *opt,
                                  char *err, size_t err_size);
void examples_close(struct example_set *s);

void examples_stats(const struct example_set *s, struct example_stats *out);
size_t examples_train_count(const struct example_set *s);
size_t examples_val_count(const struct example_set *s);
const struct example *examples_train(const struct example_set *s, size_t i);
const struct example *examples_val(const struct example_set *s, size_t i);

/* The index of the next training example: every epoch visits each once,
 * in a permutation drawn from (seed, epoch). */
size_t examples_next(struct example_set *s);

/* Epochs done, with the current one's fraction. */
double examples_epochs(const struct example_set *s);

/* The position as JSON ({"epoch": E, "position": P}) and back; false with
 * the reason when it does not fit this data. */
json_t *examples_state(const struct example_set *s);
bool examples_restore(struct example_set *s, const json_t *state, char *err, size_t err_size);

#endif
