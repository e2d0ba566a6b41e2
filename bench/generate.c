/* generate: the C side of bench/generate, compiled by that script against a
 * build's libtrainpipe.a. One mode, printing `key value` lines:
 *
 *   generate run THREADS V CTX L H C BATCH PROMPT NEW REPS
 *       a model of that shape on trainpipe's CPU backend (no training),
 *       BATCH random prompts of PROMPT tokens, NEW tokens generated after
 *       each, greedily (temperature 0: the same work whatever the seed),
 *       two ways:
 *         kv         runtime/generate.c: each prompt prefilled once into the
 *                    KV cache, then one decode step per token for all rows
 *                    together;
 *         recompute  next_logits on every row's whole sequence for every
 *                    new token, as sampling did before the KV cache.
 *       An untimed warm-up faults the memory in (a whole run of kv; one
 *       next_logits on the longest sequences for recompute, whose whole
 *       run can take a minute); then REPS rounds, each timing one run of
 *       kv and one of recompute, so that a burst of other work on the
 *       machine falls on both alike. The best and the median of each way,
 *       in seconds and in generated tokens per second (BATCH x NEW tokens
 *       a run), and whether both ways chose the same tokens.
 *
 * THREADS goes to the backend (omp_set_num_threads) and to OpenBLAS
 * (openblas_set_num_threads); the script also sets OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "generate"
#include "bench_model.h"
#include "runtime/generate.h"

struct job {
  struct backend *be;
  int batch, prompt, new_tokens;
  int32_t *prompts; /* [batch, prompt] */
  int32_t *out;     /* [batch, new_tokens] */
};

static void run_kv(struct job *j) {
  struct completion *rows = alloc((size_t)j->batch * sizeof *rows);
  for (int i = 0; i < j->batch; i++)
    rows[i] = (struct completion){.prompt = j->prompts + (size_t)i * j->prompt,
                                  .prompt_len = j->prompt,
                                  .tokens = j->out + (size_t)i * j->new_tokens};
  struct generate_options opt = {.temperature = 0, .top_p = 1, .max_new_tokens = j->new_tokens, .stop = -1};
  char err[256];
  if (!generate(j->be, rows, j->batch, &opt, err, sizeof err)) die(err);
  free(rows);
}

static int32_t argmax(const float *logits, int V) {
  int32_t best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

static void run_recompute(struct job *j) {
  int V = j->be->spec.cfg.vocab, T = j->prompt + j->new_tokens;
  int32_t *seq = alloc((size_t)j->batch * T * sizeof *seq), *packed = alloc((size_t)j->batch * T * sizeof *packed);
  float *logits = alloc((size_t)j->batch * V * sizeof *logits);
  for (int i = 0; i < j->batch; i++)
    memcpy(seq + (size_t)i * T, j->prompts + (size_t)i * j->prompt, (size_t)j->prompt * sizeof *seq);
  for (int k = 0; k < j->new_tokens; k++) {
    int len = j->prompt + k;
    for (int i = 0; i < j->batch; i++)
      memcpy(packed + (size_t)i * len, seq + (size_t)i * T, (size_t)len * sizeof *seq);
    j->be->ops->next_logits(j->be, packed, j->batch, len, logits);
    for (int i = 0; i < j->batch; i++) {
      int32_t t = argmax(logits + (size_t)i * V, V);
      seq[(size_t)i * T + len] = t;
      j->out[(size_t)i * j->new_tokens + k] = t;
    }
  }
  free(seq);
  free(packed);
  free(logits);
}

/* next_logits once on every row at the full length: every activation the
 * recomputation uses is touched. */
static void warm_recompute(struct job *j) {
  int T = j->prompt + j->new_tokens;
  int32_t *tokens = calloc((size_t)j->batch * T, sizeof *tokens);
  float *logits = alloc((size_t)j->batch * j->be->spec.cfg.vocab * sizeof *logits);
  if (!tokens) die("out of memory");
  j->be->ops->next_logits(j->be, tokens, j->batch, T, logits);
  free(tokens);
  free(logits);
}

static double timed(void (*run)(struct job *), struct job *j) {
  double t0 = now();
  run(j);
  return now() - t0;
}

static void report(const char *name, const double *t, int reps, const struct job *j) {
  double tokens = (double)j->batch * j->new_tokens;
  printf("%s_best_s %.6f\n", name, minimum(t, reps));
  printf("%s_median_s %.6f\n", name, median(t, reps));
  printf("%s_tokens_per_s %.3f\n", name, tokens / median(t, reps));
}

static int mode_run(int argc, char **argv) {
  if (argc != 10) die("usage: generate run THREADS V CTX L H C BATCH PROMPT NEW REPS");
  int threads = arg_int(argv[0]);
  struct gpt_config cfg = arg_model(argv + 1);
  int batch = arg_int(argv[6]), prompt = arg_int(argv[7]), new_tokens = arg_int(argv[8]), reps = arg_int(argv[9]);
  if (batch < 1 || prompt < 1 || new_tokens < 1 || reps < 1) die("BATCH, PROMPT, NEW and REPS must be at least 1");
  if (prompt + new_tokens > cfg.context) die("PROMPT + NEW exceeds the context");
  set_threads(threads);
  struct backend_spec spec = {.cfg = cfg, .max_batch = batch, .max_seq = prompt + new_tokens, .threads = threads,
                              .train = false, .gen_rows = batch};
  struct backend *be = bench_backend(&spec);

  struct job j = {.be = be, .batch = batch, .prompt = prompt, .new_tokens = new_tokens};
  j.prompts = alloc((size_t)batch * prompt * sizeof *j.prompts);
  struct rng r = rng_seed(2);
  for (int i = 0; i < batch * prompt; i++) j.prompts[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
  size_t outs = (size_t)batch * new_tokens;
  int32_t *kv = alloc(outs * sizeof *kv), *recompute = alloc(outs * sizeof *recompute);

  printf("params %zu\n", be->n_params);
  double *t_kv = alloc((size_t)reps * sizeof *t_kv), *t_re = alloc((size_t)reps * sizeof *t_re);
  j.out = kv;
  run_kv(&j);
  warm_recompute(&j);
  for (int round = 0; round < reps; round++) {
    j.out = kv;
    t_kv[round] = timed(run_kv, &j);
    j.out = recompute;
    t_re[round] = timed(run_recompute, &j);
  }
  report("kv", t_kv, reps, &j);
  report("recompute", t_re, reps, &j);
  free(t_kv);
  free(t_re);
  int same = 0;
  for (int i = 0; i < batch; i++)
    same += memcmp(kv + (size_t)i * new_tokens, recompute + (size_t)i * new_tokens,
                   (size_t)new_tokens * sizeof *kv) == 0;
  printf("rows_with_same_tokens %d of %d\n", same, batch);
  free(kv);
  free(recompute);
  free(j.prompts);
  backend_destroy(be);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "run") == 0) return mode_run(argc - 2, argv + 2);
  fprintf(stderr, "usage: generate run THREADS V CTX L H C BATCH PROMPT NEW REPS\n");
  return 2;
}
