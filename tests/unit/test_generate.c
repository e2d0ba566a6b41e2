/* Generation: the KV cache's logits against next_logits recomputed on the
 * whole sequence, generation against a plain loop over next_logits, the
 * draw's cuts (temperature, top k, top p) and its seeds, stop tokens, and
 * a policy that samples between a forward and its backward.
 *
 * The model is tiny with random weights of a few tenths, so that its
 * logits spread over several units and the likeliest token is rarely a
 * near tie. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/generate.h"
#include "runtime/rng.h"
#include "runtime/sample.h"
#include "tests/unit/suites.h"

enum { V = 29, CONTEXT = 32, ROWS = 3 };

static const struct gpt_config tiny = {.vocab = V, .context = CONTEXT, .layers = 2, .heads = 2, .width = 16};

/* Relative error of the logits of one position: against the largest
 * logit's size, since single logits may be near 0. */
#define LOGIT_TOL 1e-5

static float *random_params(const struct gpt_config *cfg, uint64_t seed) {
  size_t n = gpt_param_count(cfg);
  float *p = malloc(n * sizeof *p);
  ck_assert_ptr_nonnull(p);
  struct rng r = rng_seed(seed);
  for (size_t i = 0; i < n; i++) p[i] = (float)(0.6 * rng_uniform(&r) - 0.3);
  return p;
}

static struct backend *make_backend(const struct gpt_config *cfg, bool train, int gen_rows, uint64_t seed) {
  char err[256] = "";
  struct backend_spec spec = {
      .cfg = *cfg, .max_batch = 2, .max_seq = cfg->context, .threads = 0, .train = train, .gen_rows = gen_rows};
  struct backend *b = cpu_backend_create(&spec, err, sizeof err);
  ck_assert_msg(b != NULL, "%s", err);
  float *p = random_params(cfg, seed);
  b->ops->write_params(b, p);
  free(p);
  return b;
}

/* Token i of row ROW's made-up text. */
static int32_t text_token(int row, int i) { return (int32_t)((row * 11 + i * 7 + i * i) % V); }

static double logits_error(const float *got, const float *want) {
  double scale = 0, worst = 0;
  for (int v = 0; v < V; v++) scale = fmax(scale, fabs(want[v]));
  for (int v = 0; v < V; v++) worst = fmax(worst, fabs((double)got[v] - want[v]));
  return worst / fmax(scale, 1e-6);
}

static int32_t argmax(const float *logits) {
  int32_t best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

/* --- the KV cache ------------------------------------------------------------ */

/* Rows of 1, 5 and 9 prompt tokens, then decode steps of every row (in a
 * shuffled order) and of one row alone; each time, every row's logits
 * against next_logits on its whole sequence so far. */
static void cache_matches_recomputation(bool train) {
  struct backend *b = make_backend(&tiny, train, ROWS, 1);
  int32_t seq[ROWS][CONTEXT];
  int len[ROWS] = {1, 5, 9};
  float logits[ROWS * V], want[V];
  double worst = 0;
  for (int r = 0; r < ROWS; r++) {
    for (int i = 0; i < len[r]; i++) seq[r][i] = text_token(r, i);
    b->ops->gen_prefill(b, r, seq[r], len[r], logits);
    b->ops->next_logits(b, seq[r], 1, len[r], want);
    /* a prefill runs the forward's kernels on the forward's shapes */
    ck_assert_msg(memcmp(logits, want, sizeof want) == 0, "row %d: the prefill differs from next_logits", r);
  }
  int orders[][ROWS] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}, {0, 2, 1}};
  for (int step = 0; step < 7; step++) {
    int n = step == 3 ? 1 : ROWS; /* one step decodes row 2 alone */
    int rows[ROWS];
    int32_t tokens[ROWS];
    for (int i = 0; i < n; i++) {
      rows[i] = n == 1 ? 2 : orders[step % 5][i];
      tokens[i] = text_token(rows[i] + 5, len[rows[i]]);
      seq[rows[i]][len[rows[i]]++] = tokens[i];
    }
    b->ops->gen_decode(b, rows, tokens, n, logits);
    for (int i = 0; i < n; i++) {
      b->ops->next_logits(b, seq[rows[i]], 1, len[rows[i]], want);
      double err = logits_error(logits + (size_t)i * V, want);
      worst = fmax(worst, err);
      ck_assert_msg(err < LOGIT_TOL, "step %d, row %d (%d tokens): relative error %g", step, rows[i], len[rows[i]],
                    err);
    }
  }
  fprintf(stderr, "generate: KV cache against next_logits (%s backend), max rel err %.2e\n",
          train ? "training" : "inference", worst);
  backend_destroy(b);
}

START_TEST(cache_matches_next_logits) { cache_matches_recomputation(false); }
END_TEST

START_TEST(cache_matches_next_logits_training_backend) { cache_matches_recomputation(true); }
END_TEST

/* A row can fill the cache to its last position, and a new prefill empties it. */
START_TEST(cache_fills_and_refills) {
  struct backend *b = make_backend(&tiny, false, 1, 2);
  int32_t seq[CONTEXT];
  float logits[V], want[V];
  seq[0] = 3;
  b->ops->gen_prefill(b, 0, seq, 1, logits);
  for (int n = 1; n < CONTEXT; n++) {
    seq[n] = argmax(logits);
    b->ops->gen_decode(b, &(int){0}, &seq[n], 1, logits);
  }
  b->ops->next_logits(b, seq, 1, CONTEXT, want);
  ck_assert_double_lt(logits_error(logits, want), LOGIT_TOL);
  b->ops->gen_prefill(b, 0, seq + 10, 4, logits);
  b->ops->next_logits(b, seq + 10, 1, 4, want);
  ck_assert(memcmp(logits, want, sizeof want) == 0);
  backend_destroy(b);
}
END_TEST

/* --- generate ---------------------------------------------------------------- */

struct batch {
  int32_t prompts[ROWS][8];
  int32_t out[ROWS][CONTEXT];
  struct completion rows[ROWS];
};

/* Prompts of 2, 7 and 4 tokens. */
static void batch_init(struct batch *bt) {
  static const int lens[ROWS] = {2, 7, 4};
  memset(bt, 0, sizeof *bt);
  for (int r = 0; r < ROWS; r++) {
    for (int i = 0; i < lens[r]; i++) bt->prompts[r][i] = text_token(r + 1, i);
    bt->rows[r] = (struct completion){.prompt = bt->prompts[r], .prompt_len = lens[r], .tokens = bt->out[r]};
  }
}

static void generate_ok(struct backend *b, struct completion *rows, int n, const struct generate_options *opt) {
  char err[256] = "";
  ck_assert_msg(generate(b, rows, n, opt, err, sizeof err), "%s", err);
}

static void assert_same_completion(const struct completion *a, const struct completion *b, const char *what) {
  ck_assert_msg(a->len == b->len && a->stopped == b->stopped, "%s: %d%s tokens against %d%s", what, a->len,
                a->stopped ? " (stopped)" : "", b->len, b->stopped ? " (stopped)" : "");
  ck_assert_msg(memcmp(a->tokens, b->tokens, (size_t)a->len * sizeof *a->tokens) == 0, "%s: other tokens", what);
}

static const struct generate_options greedy = {.temperature = 0, .top_p = 1, .max_new_tokens = 12, .stop = -1};

START_TEST(greedy_equals_next_logits_loop) {
  struct backend *b = make_backend(&tiny, false, ROWS, 3);
  struct batch bt;
  batch_init(&bt);
  generate_ok(b, bt.rows, ROWS, &greedy);
  for (int r = 0; r < ROWS; r++) {
    const struct completion *c = &bt.rows[r];
    ck_assert_int_eq(c->len, greedy.max_new_tokens);
    ck_assert(!c->stopped);
    int32_t seq[CONTEXT];
    int n = c->prompt_len;
    memcpy(seq, c->prompt, (size_t)n * sizeof *seq);
    for (int i = 0; i < greedy.max_new_tokens; i++) {
      float logits[V];
      b->ops->next_logits(b, seq, 1, n, logits);
      seq[n++] = argmax(logits);
      ck_assert_msg(c->tokens[i] == seq[n - 1], "row %d, token %d: %d, the loop %d", r, i, c->tokens[i], seq[n - 1]);
    }
  }
  backend_destroy(b);
}
END_TEST

START_TEST(seeds) {
  struct backend *b = make_backend(&tiny, false, ROWS, 4);
  struct generate_options opt = {.temperature = 1.0, .top_p = 1, .max_new_tokens = 16, .stop = -1, .seed = 99};
  struct batch first, again, other;
  batch_init(&first);
  batch_init(&again);
  batch_init(&other);
  generate_ok(b, first.rows, ROWS, &opt);
  generate_ok(b, again.rows, ROWS, &opt);
  for (int r = 0; r < ROWS; r++) assert_same_completion(&first.rows[r], &again.rows[r], "the same seed");
  opt.seed = 100;
  generate_ok(b, other.rows, ROWS, &opt);
  bool differs = false;
  for (int r = 0; r < ROWS; r++)
    differs |= memcmp(first.out[r], other.out[r], sizeof first.out[r]) != 0;
  ck_assert_msg(differs, "another seed drew the same tokens");

  /* row 1 alone, as the stream first_row + 1 of the batch */
  opt.seed = 99;
  struct batch alone;
  batch_init(&alone);
  opt.first_row = 1;
  generate_ok(b, &alone.rows[1], 1, &opt);
  assert_same_completion(&alone.rows[1], &first.rows[1], "row 1 alone");
  /* rows 1 and 2 together, in a batch of two */
  batch_init(&alone);
  generate_ok(b, &alone.rows[1], 2, &opt);
  assert_same_completion(&alone.rows[1], &first.rows[1], "row 1 in a batch of two");
  assert_same_completion(&alone.rows[2], &first.rows[2], "row 2 in a batch of two");
  backend_destroy(b);
}
END_TEST

START_TEST(cuts_that_leave_the_likeliest) {
  struct backend *b = make_backend(&tiny, false, ROWS, 5);
  struct batch want, got;
  batch_init(&want);
  generate_ok(b, want.rows, ROWS, &greedy);
  struct generate_options opt = greedy;
  opt.temperature = 1.5;
  opt.seed = 7;
  opt.top_k = 1;
  batch_init(&got);
  generate_ok(b, got.rows, ROWS, &opt);
  for (int r = 0; r < ROWS; r++) assert_same_completion(&got.rows[r], &want.rows[r], "top_k 1");
  opt.top_k = 0;
  opt.top_p = 1e-6;
  batch_init(&got);
  generate_ok(b, got.rows, ROWS, &opt);
  for (int r = 0; r < ROWS; r++) assert_same_completion(&got.rows[r], &want.rows[r], "top_p 1e-6");
  backend_destroy(b);
}
END_TEST

START_TEST(stop_token_ends_a_row) {
  struct backend *b = make_backend(&tiny, false, ROWS, 6);
  struct batch free_run, stopped;
  batch_init(&free_run);
  generate_ok(b, free_run.rows, ROWS, &greedy);
  /* the stop token: row 1's third token, unless it came earlier */
  struct generate_options opt = greedy;
  opt.stop = free_run.out[1][2];
  batch_init(&stopped);
  generate_ok(b, stopped.rows, ROWS, &opt);
  for (int r = 0; r < ROWS; r++) {
    const struct completion *c = &stopped.rows[r];
    int first = -1;
    for (int i = 0; i < greedy.max_new_tokens && first < 0; i++)
      if (free_run.out[r][i] == opt.stop) first = i;
    if (first < 0) {
      assert_same_completion(c, &free_run.rows[r], "a row without the stop token");
      continue;
    }
    ck_assert_int_eq(c->len, first + 1);
    ck_assert(c->stopped);
    ck_assert_int_eq(c->tokens[c->len - 1], opt.stop);
    ck_assert(memcmp(c->tokens, free_run.out[r], (size_t)c->len * sizeof *c->tokens) == 0);
  }
  ck_assert(stopped.rows[1].stopped && stopped.rows[1].len <= 3);
  backend_destroy(b);
}
END_TEST

START_TEST(refuses_what_does_not_fit) {
  struct backend *b = make_backend(&tiny, false, 2, 7);
  struct batch bt;
  batch_init(&bt);
  char err[256] = "";
  ck_assert(!generate(b, bt.rows, 3, &greedy, err, sizeof err));
  ck_assert_msg(strstr(err, "the backend generates 2") != NULL, "%s", err);
  struct generate_options opt = greedy;
  opt.max_new_tokens = 27; /* room for the first prompt's 2 tokens, not for the second's 7 */
  ck_assert(!generate(b, bt.rows, 2, &opt, err, sizeof err));
  ck_assert_msg(strstr(err, "prompt 1: 7 tokens and 27 new ones do not fit 32") != NULL, "%s", err);
  bt.prompts[0][1] = V;
  ck_assert(!generate(b, bt.rows, 1, &greedy, err, sizeof err));
  ck_assert_msg(strstr(err, "outside the vocabulary") != NULL, "%s", err);
  bt.prompts[0][1] = 0;
  /* nothing to generate is not an error */
  opt.max_new_tokens = 0;
  ck_assert(generate(b, bt.rows, 2, &opt, err, sizeof err));
  ck_assert_int_eq(bt.rows[0].len, 0);
  backend_destroy(b);
}
END_TEST

/* --- the draw ------------------------------------------------------------------ */

/* Tokens 0..4 with probabilities 0.05, 0.4, 0.3, 0.2, 0.05 at temperature
 * 1; DRAWS draws, counted by token. */
static void count_draws(const struct generate_options *opt, int counts[5], int draws) {
  static const double p[5] = {0.05, 0.4, 0.3, 0.2, 0.05};
  struct rng r = rng_seed(opt->seed);
  memset(counts, 0, 5 * sizeof *counts);
  for (int i = 0; i < draws; i++) {
    float logits[5];
    for (int v = 0; v < 5; v++) logits[v] = (float)log(p[v]);
    int32_t t = generate_pick(logits, 5, opt, &r);
    ck_assert(t >= 0 && t < 5);
    counts[t]++;
  }
}

START_TEST(pick_cuts) {
  struct generate_options opt = {.temperature = 1, .top_p = 1, .seed = 5};
  int counts[5];
  enum { DRAWS = 4000 };
  count_draws(&opt, counts, DRAWS);
  for (int v = 0; v < 5; v++) ck_assert_int_gt(counts[v], 0);
  ck_assert_int_gt(counts[1], counts[2]);

  opt.top_k = 3; /* tokens 1, 2, 3 */
  count_draws(&opt, counts, DRAWS);
  ck_assert(counts[0] == 0 && counts[4] == 0 && counts[1] > 0 && counts[2] > 0 && counts[3] > 0);
  /* 0.4 / 0.9 of the draws for token 1 */
  ck_assert_double_eq_tol((double)counts[1] / DRAWS, 0.4 / 0.9, 0.03);

  opt.top_k = 0;
  opt.top_p = 0.35; /* token 1 alone reaches it */
  count_draws(&opt, counts, DRAWS);
  ck_assert_int_eq(counts[1], DRAWS);
  opt.top_p = 0.5; /* tokens 1 and 2 */
  count_draws(&opt, counts, DRAWS);
  ck_assert(counts[1] + counts[2] == DRAWS && counts[2] > 0);
  ck_assert_double_eq_tol((double)counts[1] / DRAWS, 0.4 / 0.7, 0.03);
  opt.top_p = 0.85; /* 1, 2, 3 reach 0.9 */
  count_draws(&opt, counts, DRAWS);
  ck_assert(counts[0] == 0 && counts[4] == 0 && counts[3] > 0);
  /* top_p of what top_k leaves: of tokens 1 and 2 (0.7), token 1 is 57% */
  opt.top_k = 2;
  opt.top_p = 0.6;
  count_draws(&opt, counts, DRAWS);
  ck_assert(counts[1] + counts[2] == DRAWS && counts[2] > 0);
  opt.top_p = 0.55;
  count_draws(&opt, counts, DRAWS);
  ck_assert_int_eq(counts[1], DRAWS);

  /* temperature 0 takes the likeliest and draws nothing */
  opt = (struct generate_options){.temperature = 0, .top_p = 1, .seed = 5};
  struct rng r = rng_seed(1), untouched = r;
  float logits[5] = {0.1f, 2.0f, 3.0f, 3.0f, -1.0f};
  ck_assert_int_eq(generate_pick(logits, 5, &opt, &r), 2);
  ck_assert(r.state == untouched.state);
}
END_TEST

/* --- a policy sampling between its forward and its backward ------------------- */

START_TEST(generation_leaves_training_alone) {
  struct gpt_config cfg = tiny;
  cfg.head = 1;
  struct backend *b = make_backend(&cfg, true, 2, 8);
  enum { B = 2, T = 10 };
  int32_t tokens[B * T], targets[B * T];
  float logp[B * T], values[B * T], dlogp[B * T], dvalues[B * T];
  for (int i = 0; i < B * T; i++) {
    tokens[i] = text_token(i / T, i % T);
    targets[i] = i % T == T - 1 ? -1 : text_token(i / T, i % T + 1);
    dlogp[i] = targets[i] < 0 ? 0.0f : -1.0f / (B * (T - 1));
    dvalues[i] = 0.1f * (float)(i % 3) - 0.1f;
  }
  size_t n = b->n_params;
  float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
  float logp2[B * T], values2[B * T];

  b->ops->zero_grad(b);
  b->ops->forward(b, tokens, targets, B, T, logp, values);
  b->ops->backward(b, dlogp, dvalues);
  b->ops->read_grads(b, g1);

  b->ops->zero_grad(b);
  b->ops->forward(b, tokens, targets, B, T, logp2, values2);
  struct batch bt;
  batch_init(&bt);
  struct generate_options opt = {.temperature = 1, .top_p = 0.9, .max_new_tokens = 20, .stop = -1, .seed = 3};
  generate_ok(b, bt.rows, 2, &opt);
  b->ops->backward(b, dlogp, dvalues);
  b->ops->read_grads(b, g2);

  ck_assert(memcmp(logp, logp2, sizeof logp) == 0);
  ck_assert(memcmp(values, values2, sizeof values) == 0);
  ck_assert_msg(memcmp(g1, g2, n * sizeof *g1) == 0, "generation changed the gradients");
  free(g1);
  free(g2);
  backend_destroy(b);
}
END_TEST

/* --- sample ---------------------------------------------------------------------- */

/* At temperature 0, sample's text is the greedy loop's over next_logits. */
START_TEST(sample_is_greedy_at_temperature_0) {
  char err[256] = "";
  struct tokenizer *tok = tokenizer_create("bytes", err, sizeof err);
  ck_assert_msg(tok != NULL, "%s", err);
  struct gpt_config cfg = tiny;
  cfg.vocab = tokenizer_vocab(tok);
  cfg.context = 24;
  struct backend *b = make_backend(&cfg, false, 1, 9);
  const char *prompt = "river";
  struct sample_options so = {.temperature = 0, .top_p = 1, .max_tokens = 12};
  char *text = NULL;
  size_t text_len = 0;
  FILE *out = open_memstream(&text, &text_len);
  ck_assert(sample_text(b, tok, TEMPLATE_TURNS, prompt, &so, out, err, sizeof err));
  fclose(out);

  int32_t seq[32];
  int n = 0, V_ = cfg.vocab;
  int32_t eos = tokenizer_special(tok, SPECIAL_EOS);
  seq[n++] = eos;
  for (const char *c = prompt; *c; c++) seq[n++] = (unsigned char)*c;
  char want[256] = "";
  size_t at = 0;
  float *logits = malloc((size_t)V_ * sizeof *logits);
  for (int i = 0; i < so.max_tokens && n < cfg.context; i++) {
    b->ops->next_logits(b, seq, 1, n, logits);
    int32_t best = 0;
    for (int v = 1; v < V_; v++)
      if (logits[v] > logits[best]) best = v;
    if (best == eos) break;
    seq[n++] = best;
    at += tokenizer_decode(tok, &best, 1, want + at, sizeof want - at);
  }
  ck_assert_uint_gt(at, 0);
  ck_assert_uint_eq(text_len, at + 1);
  ck_assert(memcmp(text, want, at) == 0 && text[at] == '\n');
  free(logits);
  free(text);
  backend_destroy(b);
  tokenizer_free(tok);
}
END_TEST

Suite *generate_suite(void) {
  Suite *s = suite_create("generate");
  TCase *tc = tcase_create("cache");
  tcase_add_test(tc, cache_matches_next_logits);
  tcase_add_test(tc, cache_matches_next_logits_training_backend);
  tcase_add_test(tc, cache_fills_and_refills);
  suite_add_tcase(s, tc);
  tc = tcase_create("generate");
  tcase_add_test(tc, greedy_equals_next_logits_loop);
  tcase_add_test(tc, seeds);
  tcase_add_test(tc, cuts_that_leave_the_likeliest);
  tcase_add_test(tc, stop_token_ends_a_row);
  tcase_add_test(tc, refuses_what_does_not_fit);
  tcase_add_test(tc, pick_cuts);
  tcase_add_test(tc, generation_leaves_training_alone);
  tcase_add_test(tc, sample_is_greedy_at_temperature_0);
  suite_add_tcase(s, tc);
  return s;
}
