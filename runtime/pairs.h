/* Batches of preference pairs and feedback examples (runtime/examples.h)
 * for the train loop (train.h), and the frozen reference's log-probs of
 * them, computed once for the whole data set.
 *
 * A row holds one sequence: with SHIFTED rows, inputs are its tokens but
 * the last and targets the tokens after them (-1 where the mask is 0), as
 * for SFT; with WHOLE rows (a scalar head reads the sequence), inputs are
 * every token and there are no targets. Pairs are rows 2i (chosen) and
 * 2i + 1 (rejected). A batch is as long as its longest row; shorter rows
 * are padded with <|pad|>, target -1, weight 0. */
#ifndef TRAINPIPE_PAIRS_H
#define TRAINPIPE_PAIRS_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/backend.h"
#include "runtime/examples.h"
#include "runtime/train.h"

enum pair_layout {
  PAIRS_PREFERENCES, /* two rows per example */
  PAIRS_FEEDBACK,    /* one row per example, and KTO's mismatched rows in batch->kl */
};

/* The reference's log-prob sums of every sequence of a part of the data
 * (train or held out), by example index. */
struct reference_sums {
  double *chosen, *rejected, *kl; /* kl: feedback, of the mismatched pair (prompt i, partner's completion) */
  size_t n;
};

struct pair_source_spec {
  struct example_set *set;
  bool val;                /* held-out examples in order, once; else the training ones, shuffled, forever */
  enum pair_layout layout;
  bool whole;              /* WHOLE rows, for a scalar head */
  const struct reference_sums *ref; /* NULL: no reference */
  int pad;                 /* the <|pad|> token */
  int context;             /* the longest row; KTO's mismatched rows are cut to it */
};

bool pair_source_open(const struct pair_source_spec *spec, struct batch_source *out, char *err, size_t err_size);
void pair_source_close(struct batch_source *src);

/* The reference's sums over the train (VAL false) or held-out examples
 * of SET, through REFERENCE (a backend that does not train, rows of up to
 * its max_batch). */
void reference_sums_compute(struct backend *reference, struct example_set *set, bool val, enum pair_layout layout,
                            int pad, int context, struct reference_sums *out);
void reference_sums_free(struct reference_sums *r);

/* The sum of LOGP over the counted tokens of each row of B, into SUMS [B]. */
void row_sums(const struct batch *b, const float *logp, double *sums);

#endif
