/* What the readers of data sets share: data.c (corpora, demonstrations)
 * and examples.c (preferences, feedback, prompts). The files a pattern
 * matches, sorted by name; a JSONL file read line by line, errors naming
 * path:line; the content hash of token ids; the checks of their options;
 * and every random choice, each a pure function of (seed, stream, index),
 * so that the held-out split and the shuffles do not depend on which
 * reader makes them, on file order, or on where a run resumed. */
#ifndef TRAINPIPE_DATA_FILES_H
#define TRAINPIPE_DATA_FILES_H

#include <glob.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokenizer;

/* --- files ----------------------------------------------------------------- */

/* The regular files a glob matches (folders and the like left out). */
struct file_list {
  char **paths; /* N of them, sorted by name */
  size_t n;
  glob_t matched;
};

/* The files PATTERN matches, at least one; false with the reason, which
 * names the data set SET_NAME, and nothing to free. */
bool file_list_match(struct file_list *files, const char *set_name, const char *pattern, char *err,
                     size_t err_size);
void file_list_free(struct file_list *files);

/* Reads one line of a JSONL file: LINE[0 .. N), not blank, with the blanks
 * at its end trimmed (not those at its start). NULL when it is read, else
 * why not, which may be written into WHY. */
typedef const char *jsonl_line_reader(void *ctx, const char *line, size_t n, char *why, size_t why_size);

/* Every line of PATH but blank ones, given to READ in order; false at the
 * first it refuses, with "PATH:LINE: why" in ERR, or when PATH cannot be
 * read. */
bool jsonl_read_lines(const char *path, jsonl_line_reader *read, void *ctx, char *err, size_t err_size);

/* --- options ----------------------------------------------------------------- */

/* False with the reason when there is no source, no tokenizer or a
 * context below 1. */
bool check_reader_options(size_t n_sources, const struct tokenizer *tok, int context, char *err, size_t err_size);

/* False with the reason, naming the data set, when VAL_SPLIT is not in
 * [0, 1). */
bool check_val_split(const char *set_name, double val_split, char *err, size_t err_size);

/* --- content and randomness ------------------------------------------------ */

/* The hash of token ids (FNV-1a over them as 32-bit words): start from
 * TOKEN_HASH_START, then add one range after another. */
#define TOKEN_HASH_START 1469598103934665603ull
uint64_t token_hash_add(uint64_t hash, const int32_t *ids, size_t n);
static inline uint64_t token_hash(const int32_t *ids, size_t n) { return token_hash_add(TOKEN_HASH_START, ids, n); }

/* Independent streams of random numbers, one per use; source i of a
 * reader shuffles with STREAM_SHUFFLE + i. */
enum random_stream { STREAM_MIX, STREAM_SPLIT, STREAM_SHUFFLE };

/* Value INDEX of stream STREAM of SEED: any of them can be recomputed
 * alone. */
uint64_t stream_value(uint64_t seed, uint64_t stream, uint64_t index);

/* Which of N documents or examples, whose contents hash to HASHES[i], are
 * held out: HELD[i]. round(val_split x N) of them, at least one of two or
 * more when val_split > 0, never all; the ones with the lowest
 * stream_value(split_seed, STREAM_SPLIT, hash), the earlier on a tie.
 * Returns how many. */
size_t held_out_choose(const uint64_t *hashes, size_t n, double val_split, uint64_t split_seed, bool *held);

/* A visit of N items epoch after epoch, each epoch in a permutation drawn
 * from (seed, STREAM_SHUFFLE + source, epoch). All zero: the start of
 * epoch 0. */
struct epoch_order {
  int64_t epoch, position; /* the next item is perm[position] of this epoch */
  size_t *perm;            /* the order of epoch perm_epoch; NULL: none computed */
  int64_t perm_epoch;
};

/* The next item, the epochs going round as often as needed; N must be the
 * same at every call. */
size_t epoch_order_next(struct epoch_order *o, size_t n, uint64_t seed, uint64_t source);

/* Epochs done, with the current one's fraction. */
double epoch_order_epochs(const struct epoch_order *o, size_t n);

void epoch_order_free(struct epoch_order *o);

#endif
