/* Generation: completions of a batch of prompts sampled from a model
 * through its backend's KV cache (backend.h, gen_prefill and gen_decode):
 * each prompt is run once, then one token per step for every row still
 * going, until the end-of-turn token or max_new_tokens. Logits are scaled
 * by the temperature and cut to the top k and to the nucleus of mass top_p
 * before the draw; temperature 0 takes the likeliest token.
 *
 * Deterministic for a seed: row i draws from its own generator, seeded
 * from (seed, first_row + i), so a completion does not depend on how many
 * rows are generated together nor on the thread count. */
#ifndef TRAINPIPE_GENERATE_H
#define TRAINPIPE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/backend.h"

struct generate_options {
  double temperature;  /* 0: the likeliest token */
  int top_k;           /* 0: every token */
  double top_p;        /* 1: every token */
  int max_new_tokens;
  int32_t stop;        /* the token that ends a completion (kept as its last token); -1: none */
  uint64_t seed;
  uint64_t first_row;  /* the seed stream of the first row */
};

/* One prompt and what was generated after it. */
struct completion {
  const int32_t *prompt;
  int prompt_len;      /* >= 1; prompt_len + max_new_tokens <= the backend's max_seq */
  int32_t *tokens;     /* out: max_new_tokens slots; the caller allocates */
  int len;             /* out: tokens generated, the stop token included */
  bool stopped;        /* out: ended with the stop token, not by running out of tokens */
};

/* Completes N prompts (N <= the backend's gen_rows). False with a reason
 * in ERR when a prompt does not fit. */
bool generate(struct backend *model, struct completion *rows, int n, const struct generate_options *opt, char *err,
              size_t err_size);

/* The next token from LOGITS [V] (overwritten) under OPT, drawn with R's
 * state (rng.h); exposed for tests. */
struct rng;
int32_t generate_pick(float *logits, int V, const struct generate_options *opt, struct rng *r);

#endif
