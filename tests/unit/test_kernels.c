/* The CPU kernels: each backward against central differences of its
 * forward, forwards against plain double-precision references, gradients
 * that accumulate, the optimiser step, and results that repeat bit for bit;
 * and the scalar head through the whole CPU backend, its gradients against
 * central differences of the backend's forward.
 *
 * Gradient checks take the scalar L = sum(dout * out) for a random dout, so
 * that the backward's output is dL/dinput, and compare it with
 * (L(x + h) - L(x - h)) / 2h, the forward in fp32 and L summed in double.
 * Each check prints the largest relative error it saw to stderr. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/cpu_kernels.h"
#include "tests/unit/suites.h"

/* Tiny shapes, small enough to perturb every input one at a time; the
 * vocabulary is odd and the rows (B * T) repeat tokens. */
enum { B = 2, T = 5, C = 8, H = 2, V = 11, N = B * T, OC = 12 };

/* Step of the central differences: large enough that fp32 rounding of the
 * forward is small beside the change it measures, small enough that the
 * O(h^2) truncation error is too. */
#define FD_STEP 1e-2

/* Relative error with a floor in the denominator, so that values near 0
 * are compared absolutely. The gradients here are of order 0.1 to 1, and
 * the fp32 forward leaves about 1e-5 of noise in a central difference:
 * their floor is 1e-2. */
#define GRAD_FLOOR 1e-2
#define GRAD_TOL 1e-2
#define VALUE_FLOOR 1e-3
#define VALUE_TOL 1e-4

static double rel_err(double a, double b, double at_least) { return fabs(a - b) / (fmax(fabs(a), fabs(b)) + at_least); }

/* xorshift64*: the same numbers on every machine. */
static float urand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  uint64_t r = *s * 0x2545F4914F6CDD1DULL;
  return (float)((double)(r >> 40) / (double)(1 << 24)) * 2.0f - 1.0f; /* [-1, 1) */
}

static float *rand_floats(size_t n, uint64_t *s, float scale) {
  float *x = malloc(n * sizeof *x);
  ck_assert_ptr_nonnull(x);
  for (size_t i = 0; i < n; i++) x[i] = scale * urand(s);
  return x;
}

static float *zero_floats(size_t n) {
  float *x = calloc(n, sizeof *x);
  ck_assert_ptr_nonnull(x);
  return x;
}

static float *copy_floats(const float *x, size_t n) {
  float *y = malloc(n * sizeof *y);
  ck_assert_ptr_nonnull(y);
  memcpy(y, x, n * sizeof *y);
  return y;
}

static double dot_double(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

static double max_rel_err(const float *got, const double *want, size_t n) {
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, rel_err(got[i], want[i], VALUE_FLOOR));
  return worst;
}

static void report(const char *kernel, const char *what, double err) {
  fprintf(stderr, "kernels: %-18s %-8s max rel err %.2e\n", kernel, what, err);
}

/* The largest relative error between the analytic gradient G of X and
 * central differences of LOSS, perturbing X's values one at a time: all n
 * of them, or only every STRIDE-th. */
typedef double (*loss_fn)(void *ctx);

static double grad_check(loss_fn loss, void *ctx, float *x, const float *g, size_t n, size_t stride) {
  double worst = 0.0;
  for (size_t i = 0; i < n; i += stride) {
    float x0 = x[i];
    float xp = (float)(x0 + FD_STEP), xm = (float)(x0 - FD_STEP);
    x[i] = xp;
    double lp = loss(ctx);
    x[i] = xm;
    double lm = loss(ctx);
    x[i] = x0;
    /* The step actually taken, after rounding to float. */
    double numeric = (lp - lm) / ((double)xp - (double)xm);
    worst = fmax(worst, rel_err(g[i], numeric, GRAD_FLOOR));
  }
  return worst;
}

static void expect_grad_every(const char *kernel, const char *what, loss_fn loss, void *ctx, float *x, const float *g,
                              size_t n, size_t stride) {
  double err = grad_check(loss, ctx, x, g, n, stride);
  report(kernel, what, err);
  ck_assert_msg(err < GRAD_TOL, "%s: d%s max rel err %g", kernel, what, err);
}

static void expect_grad(const char *kernel, const char *what, loss_fn loss, void *ctx, float *x, const float *g,
                        size_t n) {
  expect_grad_every(kernel, what, loss, ctx, x, g, n, 1);
}

/* ------------------------------------------------------------------------
 * Gradient checks */

struct encoder_case {
  int32_t tokens[N];
  float *wte, *wpe, *dout, *out;
};

static double encoder_loss(void *p) {
  struct encoder_case *k = p;
  encoder_forward(k->out, k->tokens, k->wte, k->wpe, B, T, C);
  return dot_double(k->dout, k->out, (size_t)N * C);
}

START_TEST(encoder_gradient) {
  uint64_t s = 1;
  struct encoder_case k;
  for (int n = 0; n < N; n++) k.tokens[n] = (int32_t)(n * 7 % V);
  k.tokens[7] = k.tokens[2]; /* a repeated token sums both rows' gradients */
  k.wte = rand_floats((size_t)V * C, &s, 1.0f);
  k.wpe = rand_floats((size_t)T * C, &s, 1.0f);
  k.dout = rand_floats((size_t)N * C, &s, 1.0f);
  k.out = zero_floats((size_t)N * C);
  float *dwte = zero_floats((size_t)V * C), *dwpe = zero_floats((size_t)T * C);
  encoder_backward(dwte, dwpe, k.dout, k.tokens, B, T, C);
  expect_grad("encoder", "wte", encoder_loss, &k, k.wte, dwte, (size_t)V * C);
  expect_grad("encoder", "wpe", encoder_loss, &k, k.wpe, dwpe, (size_t)T * C);
  free(k.wte), free(k.wpe), free(k.dout), free(k.out), free(dwte), free(dwpe);
}
END_TEST

struct layernorm_case {
  float *inp, *w, *b, *dout, *out, *mean, *rstd;
};

static double layernorm_loss(void *p) {
  struct layernorm_case *k = p;
  layernorm_forward(k->out, k->mean, k->rstd, k->inp, k->w, k->b, N, C);
  return dot_double(k->dout, k->out, (size_t)N * C);
}

START_TEST(layernorm_gradient) {
  uint64_t s = 2;
  struct layernorm_case k;
  k.inp = rand_floats((size_t)N * C, &s, 2.0f);
  k.w = rand_floats(C, &s, 1.0f);
  k.b = rand_floats(C, &s, 1.0f);
  k.dout = rand_floats((size_t)N * C, &s, 1.0f);
  k.out = zero_floats((size_t)N * C);
  k.mean = zero_floats(N);
  k.rstd = zero_floats(N);
  float *dinp = zero_floats((size_t)N * C), *dw = zero_floats(C), *db = zero_floats(C);
  layernorm_loss(&k);
  layernorm_backward(dinp, dw, db, k.dout, k.inp, k.w, k.mean, k.rstd, N, C);
  expect_grad("layernorm", "inp", layernorm_loss, &k, k.inp, dinp, (size_t)N * C);
  expect_grad("layernorm", "w", layernorm_loss, &k, k.w, dw, C);
  expect_grad("layernorm", "b", layernorm_loss, &k, k.b, db, C);
  free(k.inp), free(k.w), free(k.b), free(k.dout), free(k.out), free(k.mean), free(k.rstd);
  free(dinp), free(dw), free(db);
}
END_TEST

struct matmul_case {
  float *inp, *w, *bias, *dout, *out;
};

static double matmul_loss(void *p) {
  struct matmul_case *k = p;
  matmul_forward(k->out, k->inp, k->w, k->bias, N, C, OC);
  return dot_double(k->dout, k->out, (size_t)N * OC);
}

START_TEST(matmul_gradient) {
  uint64_t s = 3;
  struct matmul_case k;
  k.inp = rand_floats((size_t)N * C, &s, 1.0f);
  k.w = rand_floats((size_t)OC * C, &s, 1.0f);
  k.bias = rand_floats(OC, &s, 1.0f);
  k.dout = rand_floats((size_t)N * OC, &s, 1.0f);
  k.out = zero_floats((size_t)N * OC);
  float *dinp = zero_floats((size_t)N * C), *dw = zero_floats((size_t)OC * C), *dbias = zero_floats(OC);
  matmul_backward(dinp, dw, dbias, k.dout, k.inp, k.w, N, C, OC);
  expect_grad("matmul", "inp", matmul_loss, &k, k.inp, dinp, (size_t)N * C);
  expect_grad("matmul", "w", matmul_loss, &k, k.w, dw, (size_t)OC * C);
  expect_grad("matmul", "bias", matmul_loss, &k, k.bias, dbias, OC);

  /* Without a bias: the same input and weight gradients. */
  float *dinp2 = zero_floats((size_t)N * C), *dw2 = zero_floats((size_t)OC * C);
  matmul_backward(dinp2, dw2, NULL, k.dout, k.inp, k.w, N, C, OC);
  ck_assert_mem_eq(dinp2, dinp, (size_t)N * C * sizeof *dinp);
  ck_assert_mem_eq(dw2, dw, (size_t)OC * C * sizeof *dw);
  free(k.inp), free(k.w), free(k.bias), free(k.dout), free(k.out), free(dinp), free(dw), free(dbias);
  free(dinp2), free(dw2);
}
END_TEST

/* Attention is also checked on sequences longer than the kernel's blocks
 * of query rows (64), over several blocks and a ragged last one. */
enum { LONG_T = 2 * 64 + 7 };

struct attention_case {
  int nb, nt;
  float *qkv, *dout, *out, *att;
};

static double attention_loss(void *p) {
  struct attention_case *k = p;
  attention_forward(k->out, k->att, k->qkv, k->nb, k->nt, C, H);
  return dot_double(k->dout, k->out, (size_t)k->nb * k->nt * C);
}

static void attention_gradient_on(int nb, int nt, size_t stride, const char *name, uint64_t seed) {
  struct attention_case k = {.nb = nb, .nt = nt};
  size_t rows = (size_t)nb * nt, atts = (size_t)nb * H * nt * nt;
  /* Scores of a few units, so the softmax is neither flat nor one-hot. */
  k.qkv = rand_floats(rows * 3 * C, &seed, 1.5f);
  k.dout = rand_floats(rows * C, &seed, 1.0f);
  k.out = zero_floats(rows * C);
  k.att = zero_floats(atts);
  float *dqkv = zero_floats(rows * 3 * C), *datt = rand_floats(atts, &seed, 1.0f); /* scratch: any contents */
  attention_loss(&k);
  attention_backward(dqkv, datt, k.dout, k.qkv, k.att, nb, nt, C, H);
  expect_grad_every(name, "qkv", attention_loss, &k, k.qkv, dqkv, rows * 3 * C, stride);
  free(k.qkv), free(k.dout), free(k.out), free(k.att), free(dqkv), free(datt);
}

START_TEST(attention_gradient) { attention_gradient_on(B, T, 1, "attention", 4); }
END_TEST

/* Every 7th input (7 and 3C = 24 are coprime: every column, every row). */
START_TEST(attention_long_gradient) { attention_gradient_on(1, LONG_T, 7, "attention T=135", 8); }
END_TEST

enum { ELEMS = 64 };

struct pointwise_case {
  float *a, *b, *dout, *out;
};

static double gelu_loss(void *p) {
  struct pointwise_case *k = p;
  gelu_forward(k->out, k->a, ELEMS);
  return dot_double(k->dout, k->out, ELEMS);
}

START_TEST(gelu_gradient) {
  uint64_t s = 5;
  struct pointwise_case k = {.a = rand_floats(ELEMS, &s, 4.0f)};
  k.dout = rand_floats(ELEMS, &s, 1.0f);
  k.out = zero_floats(ELEMS);
  float *da = zero_floats(ELEMS);
  gelu_backward(da, k.a, k.dout, ELEMS);
  expect_grad("gelu", "inp", gelu_loss, &k, k.a, da, ELEMS);
  free(k.a), free(k.dout), free(k.out), free(da);
}
END_TEST

static double residual_loss(void *p) {
  struct pointwise_case *k = p;
  residual_forward(k->out, k->a, k->b, ELEMS);
  return dot_double(k->dout, k->out, ELEMS);
}

START_TEST(residual_gradient) {
  uint64_t s = 6;
  struct pointwise_case k = {.a = rand_floats(ELEMS, &s, 1.0f)};
  k.b = rand_floats(ELEMS, &s, 1.0f);
  k.dout = rand_floats(ELEMS, &s, 1.0f);
  k.out = zero_floats(ELEMS);
  float *da = zero_floats(ELEMS), *db = zero_floats(ELEMS);
  residual_backward(da, db, k.dout, ELEMS);
  expect_grad("residual", "a", residual_loss, &k, k.a, da, ELEMS);
  expect_grad("residual", "b", residual_loss, &k, k.b, db, ELEMS);
  free(k.a), free(k.b), free(k.dout), free(k.out), free(da), free(db);
}
END_TEST

struct logprob_case {
  int32_t targets[N];
  float *x, *wte, *dlogp, *logp, *lse, *logits;
};

static double logprob_loss(void *p) {
  struct logprob_case *k = p;
  logprob_forward(k->logp, k->lse, k->logits, k->x, k->wte, k->targets, N, C, V);
  return dot_double(k->dlogp, k->logp, N);
}

static void logprob_case_init(struct logprob_case *k, uint64_t *s) {
  for (int n = 0; n < N; n++) k->targets[n] = (int32_t)((n * 5 + 3) % V);
  k->targets[1] = -1; /* ignored positions */
  k->targets[6] = -100;
  k->x = rand_floats((size_t)N * C, s, 1.0f);
  k->wte = rand_floats((size_t)V * C, s, 1.0f);
  k->dlogp = rand_floats(N, s, 1.0f);
  k->logp = zero_floats(N);
  k->lse = zero_floats(N);
  k->logits = zero_floats((size_t)N * V);
}

static void logprob_case_free(struct logprob_case *k) {
  free(k->x), free(k->wte), free(k->dlogp), free(k->logp), free(k->lse), free(k->logits);
}

START_TEST(logprob_gradient) {
  uint64_t s = 7;
  struct logprob_case k;
  logprob_case_init(&k, &s);
  float *dx = zero_floats((size_t)N * C), *dwte = zero_floats((size_t)V * C);
  logprob_loss(&k);
  logprob_backward(dx, dwte, k.logits, k.lse, k.dlogp, k.x, k.wte, k.targets, N, C, V);
  expect_grad("logprob", "x", logprob_loss, &k, k.x, dx, (size_t)N * C);
  expect_grad("logprob", "wte", logprob_loss, &k, k.wte, dwte, (size_t)V * C);
  logprob_case_free(&k);
  free(dx), free(dwte);
}
END_TEST

struct scalar_head_case {
  float *x, *w, *b, *dvalues, *values;
};

static double scalar_head_loss(void *p) {
  struct scalar_head_case *k = p;
  scalar_head_forward(k->values, k->x, k->w, k->b, N, C);
  return dot_double(k->dvalues, k->values, N);
}

START_TEST(scalar_head_gradient) {
  uint64_t s = 8;
  struct scalar_head_case k;
  k.x = rand_floats((size_t)N * C, &s, 1.0f);
  k.w = rand_floats(C, &s, 1.0f);
  k.b = rand_floats(1, &s, 1.0f);
  k.dvalues = rand_floats(N, &s, 1.0f);
  k.values = zero_floats(N);
  float *dx = zero_floats((size_t)N * C), *dw = zero_floats(C), *db = zero_floats(1);
  scalar_head_backward(dx, dw, db, k.dvalues, k.x, k.w, N, C);
  expect_grad("scalar_head", "x", scalar_head_loss, &k, k.x, dx, (size_t)N * C);
  expect_grad("scalar_head", "w", scalar_head_loss, &k, k.w, dw, C);
  expect_grad("scalar_head", "b", scalar_head_loss, &k, k.b, db, 1);
  free(k.x), free(k.w), free(k.b), free(k.dvalues), free(k.values), free(dx), free(dw), free(db);
}
END_TEST

/* ------------------------------------------------------------------------
 * The scalar head through the backend: loss = sum over positions of
 * c_t value_t, the backend's gradient of every parameter (a sample of
 * them: every third) against central differences of its forward. */

enum { HB = 2, HT = 5 };

static const struct gpt_config head_model = {
    .vocab = V, .context = HT, .layers = 1, .heads = H, .width = C, .head = 1};

struct backend_case {
  struct backend *be;
  float *params, *coef, *values;
  int32_t tokens[HB * HT], targets[HB * HT];
};

static double backend_value_loss(void *p) {
  struct backend_case *k = p;
  k->be->ops->write_params(k->be, k->params);
  k->be->ops->forward(k->be, k->tokens, NULL, HB, HT, NULL, k->values);
  return dot_double(k->coef, k->values, HB * HT);
}

static void backend_case_init(struct backend_case *k, uint64_t seed) {
  char err[256] = "";
  struct backend_spec spec = {.cfg = head_model, .max_batch = HB, .max_seq = HT, .train = true};
  k->be = cpu_backend_create(&spec, err, sizeof err);
  ck_assert_msg(k->be != NULL, "%s", err);
  /* weights of a few tenths: the head's value moves with every parameter */
  k->params = rand_floats(k->be->n_params, &seed, 0.5f);
  k->coef = rand_floats(HB * HT, &seed, 1.0f);
  k->values = zero_floats(HB * HT);
  for (int n = 0; n < HB * HT; n++) {
    k->tokens[n] = (int32_t)((n * 7 + 2) % V);
    k->targets[n] = n % 4 == 3 ? -1 : (int32_t)((n * 5 + 1) % V);
  }
  k->be->ops->write_params(k->be, k->params);
}

static void backend_case_free(struct backend_case *k) {
  backend_destroy(k->be);
  free(k->params), free(k->coef), free(k->values);
}

START_TEST(scalar_head_backend_gradient) {
  struct backend_case k;
  backend_case_init(&k, 61);
  size_t n = k.be->n_params;
  float *grads = zero_floats(n);
  k.be->ops->zero_grad(k.be);
  k.be->ops->forward(k.be, k.tokens, NULL, HB, HT, NULL, k.values);
  k.be->ops->backward(k.be, NULL, k.coef);
  k.be->ops->read_grads(k.be, grads);

  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(&head_model, offsets);
  /* the LM head has no part in it: wte's gradient is the embedding's alone */
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t size = gpt_tensor_size(&head_model, (enum gpt_tensor)t);
    size_t stride = t == GPT_HEADW || t == GPT_HEADB || t == GPT_LNFW || t == GPT_LNFB ? 1 : 3;
    expect_grad_every("scalar head (backend)", gpt_tensor_name((enum gpt_tensor)t), backend_value_loss, &k,
                      k.params + offsets[t], grads + offsets[t], size, stride);
  }
  free(grads);
  backend_case_free(&k);
}
END_TEST

/* Values do not depend on whether the LM head runs, and the two outputs'
 * gradients add. */
START_TEST(scalar_head_beside_the_lm_head) {
  struct backend_case k;
  backend_case_init(&k, 62);
  size_t n = k.be->n_params;
  float logp[HB * HT], with_lm[HB * HT], dlogp[HB * HT];
  k.be->ops->forward(k.be, k.tokens, NULL, HB, HT, NULL, k.values);
  k.be->ops->forward(k.be, k.tokens, k.targets, HB, HT, logp, with_lm);
  ck_assert_mem_eq(k.values, with_lm, sizeof with_lm);
  for (int i = 0; i < HB * HT; i++) dlogp[i] = k.targets[i] < 0 ? 0.0f : -0.1f;

  float *both = zero_floats(n), *lm = zero_floats(n), *head = zero_floats(n);
  k.be->ops->zero_grad(k.be);
  k.be->ops->forward(k.be, k.tokens, k.targets, HB, HT, logp, k.values);
  k.be->ops->backward(k.be, dlogp, k.coef);
  k.be->ops->read_grads(k.be, both);
  k.be->ops->zero_grad(k.be);
  k.be->ops->forward(k.be, k.tokens, k.targets, HB, HT, logp, k.values);
  k.be->ops->backward(k.be, dlogp, NULL);
  k.be->ops->read_grads(k.be, lm);
  k.be->ops->zero_grad(k.be);
  k.be->ops->forward(k.be, k.tokens, NULL, HB, HT, NULL, k.values);
  k.be->ops->backward(k.be, NULL, k.coef);
  k.be->ops->read_grads(k.be, head);
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, rel_err(both[i], (double)lm[i] + head[i], GRAD_FLOOR));
  report("scalar head", "sum", worst);
  ck_assert_double_lt(worst, VALUE_TOL);

  /* without a head, values are left alone and dvalues is ignored */
  struct gpt_config plain = head_model;
  plain.head = 0;
  char err[256] = "";
  struct backend_spec spec = {.cfg = plain, .max_batch = HB, .max_seq = HT, .train = true};
  struct backend *b = cpu_backend_create(&spec, err, sizeof err);
  ck_assert_msg(b != NULL, "%s", err);
  ck_assert_uint_eq(b->n_params, n - C - 1);
  b->ops->write_params(b, k.params);
  float untouched[HB * HT];
  for (int i = 0; i < HB * HT; i++) untouched[i] = 42.0f;
  b->ops->zero_grad(b);
  b->ops->forward(b, k.tokens, k.targets, HB, HT, logp, untouched);
  for (int i = 0; i < HB * HT; i++) ck_assert_float_eq(untouched[i], 42.0f);
  b->ops->backward(b, dlogp, k.coef);
  b->ops->read_grads(b, head);
  ck_assert_mem_eq(head, lm, (n - C - 1) * sizeof *lm);
  backend_destroy(b);
  free(both), free(lm), free(head);
  backend_case_free(&k);
}
END_TEST

/* ------------------------------------------------------------------------
 * Forwards against double-precision references */

START_TEST(encoder_values) {
  uint64_t s = 11;
  int32_t tokens[N];
  for (int n = 0; n < N; n++) tokens[n] = (int32_t)(n * 3 % V);
  float *wte = rand_floats((size_t)V * C, &s, 1.0f), *wpe = rand_floats((size_t)T * C, &s, 1.0f);
  float *out = zero_floats((size_t)N * C);
  encoder_forward(out, tokens, wte, wpe, B, T, C);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++)
        ck_assert_float_eq(out[((size_t)b * T + t) * C + c], wte[tokens[b * T + t] * C + c] + wpe[t * C + c]);
  free(wte), free(wpe), free(out);
}
END_TEST

START_TEST(layernorm_values) {
  uint64_t s = 12;
  float *inp = rand_floats((size_t)N * C, &s, 3.0f), *w = rand_floats(C, &s, 1.0f), *b = rand_floats(C, &s, 1.0f);
  for (int c = 0; c < C; c++) inp[c] = 5.0f + 0.001f * (float)c; /* a row of nearly equal values */
  float *out = zero_floats((size_t)N * C), *mean = zero_floats(N), *rstd = zero_floats(N);
  layernorm_forward(out, mean, rstd, inp, w, b, N, C);
  double want[N * C], want_mean[N], want_rstd[N];
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double m = 0.0, var = 0.0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= C; /* biased, as torch.nn.LayerNorm */
    double r = 1.0 / sqrt(var + 1e-5);
    want_mean[n] = m;
    want_rstd[n] = r;
    for (int c = 0; c < C; c++) want[n * C + c] = (x[c] - m) * r * w[c] + b[c];
  }
  double err = fmax(max_rel_err(out, want, (size_t)N * C),
                    fmax(max_rel_err(mean, want_mean, N), max_rel_err(rstd, want_rstd, N)));
  report("layernorm", "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  free(inp), free(w), free(b), free(out), free(mean), free(rstd);
}
END_TEST

START_TEST(matmul_values) {
  uint64_t s = 13;
  float *inp = rand_floats((size_t)N * C, &s, 1.0f), *w = rand_floats((size_t)OC * C, &s, 1.0f);
  float *bias = rand_floats(OC, &s, 1.0f);
  float *out = rand_floats((size_t)N * OC, &s, 1.0f), *out_nb = rand_floats((size_t)N * OC, &s, 1.0f);
  matmul_forward(out, inp, w, bias, N, C, OC);
  matmul_forward(out_nb, inp, w, NULL, N, C, OC); /* overwrites, whatever was there */
  double want[N * OC], want_nb[N * OC];
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double y = 0.0;
      for (int c = 0; c < C; c++) y += (double)inp[n * C + c] * w[o * C + c]; /* y = x W^T */
      want_nb[n * OC + o] = y;
      want[n * OC + o] = y + bias[o];
    }
  double err = fmax(max_rel_err(out, want, (size_t)N * OC), max_rel_err(out_nb, want_nb, (size_t)N * OC));
  report("matmul", "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  free(inp), free(w), free(bias), free(out), free(out_nb);
}
END_TEST

static void attention_values_on(int nb, int nt, const char *name, uint64_t seed) {
  int hs = C / H;
  size_t rows = (size_t)nb * nt, atts = (size_t)nb * H * nt * nt;
  float *qkv = rand_floats(rows * 3 * C, &seed, 2.0f);
  /* Whatever att held before must not leak through the mask. */
  float *out = zero_floats(rows * C), *att = rand_floats(atts, &seed, 1.0f);
  attention_forward(out, att, qkv, nb, nt, C, H);
  double *want_att = malloc(atts * sizeof *want_att), *want_out = malloc(rows * C * sizeof *want_out);
  ck_assert(want_att && want_out);
  for (int b = 0; b < nb; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < nt; t++) {
        double *a = want_att + (((size_t)b * H + h) * nt + t) * nt, sum = 0.0;
        const float *q = qkv + ((size_t)b * nt + t) * 3 * C + h * hs;
        for (int t2 = 0; t2 < nt; t2++) {
          const float *k = qkv + ((size_t)b * nt + t2) * 3 * C + C + h * hs;
          double score = 0.0;
          for (int i = 0; i < hs; i++) score += (double)q[i] * k[i];
          a[t2] = t2 <= t ? exp(score / sqrt(hs)) : 0.0;
          sum += a[t2];
        }
        for (int t2 = 0; t2 < nt; t2++) a[t2] /= sum;
        for (int i = 0; i < hs; i++) {
          double o = 0.0;
          for (int t2 = 0; t2 < nt; t2++) o += a[t2] * qkv[((size_t)b * nt + t2) * 3 * C + 2 * C + h * hs + i];
          want_out[((size_t)b * nt + t) * C + h * hs + i] = o;
        }
      }
  double err = fmax(max_rel_err(att, want_att, atts), max_rel_err(out, want_out, rows * C));
  report(name, "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  for (int bh = 0; bh < nb * H; bh++)
    for (int t = 0; t < nt; t++) {
      const float *a = att + ((size_t)bh * nt + t) * nt;
      double sum = 0.0;
      for (int t2 = 0; t2 < nt; t2++) {
        if (t2 > t) ck_assert_msg(a[t2] == 0.0f, "att[%d][%d][%d] = %g above the diagonal", bh, t, t2, a[t2]);
        sum += a[t2];
      }
      ck_assert_double_eq_tol(sum, 1.0, 1e-6);
    }
  free(qkv), free(out), free(att), free(want_att), free(want_out);
}

START_TEST(attention_values) {
  attention_values_on(B, T, "attention", 14);
  attention_values_on(2, LONG_T, "attention T=135", 15);
}
END_TEST

START_TEST(scalar_head_values) {
  uint64_t s = 17;
  float *x = rand_floats((size_t)N * C, &s, 2.0f), *w = rand_floats(C, &s, 1.0f), *b = rand_floats(1, &s, 1.0f);
  float *values = rand_floats(N, &s, 1.0f); /* overwritten */
  scalar_head_forward(values, x, w, b, N, C);
  double want[N];
  for (int n = 0; n < N; n++) want[n] = dot_double(x + (size_t)n * C, w, C) + b[0];
  double err = max_rel_err(values, want, N);
  report("scalar_head", "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  free(x), free(w), free(b), free(values);
}
END_TEST

START_TEST(gelu_values) {
  uint64_t s = 15;
  float *x = rand_floats(ELEMS, &s, 5.0f), *out = zero_floats(ELEMS);
  gelu_forward(out, x, ELEMS);
  double want[ELEMS];
  for (int i = 0; i < ELEMS; i++) {
    double xi = x[i];
    want[i] = 0.5 * xi * (1.0 + tanh(sqrt(2.0 / M_PI) * (xi + 0.044715 * xi * xi * xi)));
  }
  double err = max_rel_err(out, want, ELEMS);
  report("gelu", "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  free(x), free(out);
}
END_TEST

START_TEST(logprob_values) {
  uint64_t s = 16;
  struct logprob_case k;
  logprob_case_init(&k, &s);
  for (int c = 0; c < C; c++) k.x[C + c] *= 20.0f; /* large logits: the log-sum-exp must not overflow */
  logprob_forward(k.logp, k.lse, k.logits, k.x, k.wte, k.targets, N, C, V);
  double want_logits[N * V], want_lse[N], want_logp[N];
  for (int n = 0; n < N; n++) {
    double maxv = -INFINITY, sum = 0.0;
    for (int v = 0; v < V; v++) {
      want_logits[n * V + v] = dot_double(k.x + n * C, k.wte + v * C, C);
      maxv = fmax(maxv, want_logits[n * V + v]);
    }
    for (int v = 0; v < V; v++) sum += exp(want_logits[n * V + v] - maxv);
    want_lse[n] = maxv + log(sum);
    want_logp[n] = k.targets[n] < 0 ? 0.0 : want_logits[n * V + k.targets[n]] - want_lse[n];
  }
  double err = fmax(max_rel_err(k.logits, want_logits, (size_t)N * V),
                    fmax(max_rel_err(k.lse, want_lse, N), max_rel_err(k.logp, want_logp, N)));
  report("logprob", "forward", err);
  ck_assert_double_lt(err, VALUE_TOL);
  ck_assert_float_eq(k.logp[1], 0.0f);
  ck_assert_float_eq(k.logp[6], 0.0f);
  for (int n = 0; n < N; n++) ck_assert_float_le(k.logp[n], 0.0f);
  logprob_case_free(&k);
}
END_TEST

START_TEST(logprob_ignored_targets) {
  uint64_t s = 17;
  struct logprob_case k;
  logprob_case_init(&k, &s);
  for (int n = 0; n < N; n++) k.dlogp[n] = 1.0f; /* a gradient offered even where the target is ignored */
  float *dx = zero_floats((size_t)N * C), *dwte = zero_floats((size_t)V * C);
  logprob_forward(k.logp, k.lse, k.logits, k.x, k.wte, k.targets, N, C, V);
  logprob_backward(dx, dwte, k.logits, k.lse, k.dlogp, k.x, k.wte, k.targets, N, C, V);
  for (int c = 0; c < C; c++) {
    ck_assert_float_eq(dx[1 * C + c], 0.0f);
    ck_assert_float_eq(dx[6 * C + c], 0.0f);
  }
  for (int v = 0; v < V; v++) {
    ck_assert_float_eq(k.logits[1 * V + v], 0.0f);
    ck_assert_float_eq(k.logits[6 * V + v], 0.0f);
  }
  /* A counted row's dlogits sum to 0: dlogp (1 - sum of softmax). */
  double row = 0.0;
  for (int v = 0; v < V; v++) row += k.logits[V * 2 + v];
  ck_assert_double_eq_tol(row, 0.0, 1e-6);

  /* With every target ignored, nothing reaches dx or dwte. */
  for (int n = 0; n < N; n++) k.targets[n] = -1;
  memset(dx, 0, (size_t)N * C * sizeof *dx);
  memset(dwte, 0, (size_t)V * C * sizeof *dwte);
  logprob_forward(k.logp, k.lse, k.logits, k.x, k.wte, k.targets, N, C, V);
  for (int n = 0; n < N; n++) ck_assert_float_eq(k.logp[n], 0.0f);
  logprob_backward(dx, dwte, k.logits, k.lse, k.dlogp, k.x, k.wte, k.targets, N, C, V);
  for (int i = 0; i < N * C; i++) ck_assert_float_eq(dx[i], 0.0f);
  for (int i = 0; i < V * C; i++) ck_assert_float_eq(dwte[i], 0.0f);
  logprob_case_free(&k);
  free(dx), free(dwte);
}
END_TEST

/* ------------------------------------------------------------------------
 * Backwards add into their gradients */

/* After a second identical backward, each gradient is twice the first. */
static void expect_doubled(const char *what, const float *once, const float *twice, size_t n) {
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabsf(twice[i] - 2.0f * once[i]) <= 1e-5f * (fabsf(once[i]) + 1e-3f),
                  "%s[%zu]: %g after two backwards, %g after one", what, i, twice[i], once[i]);
}

START_TEST(backward_accumulates) {
  /* Room for the largest gradient here, dqkv [N, 3C]. */
  enum { BIG = N * 3 * C };
  const size_t big = BIG * sizeof(float);
  uint64_t s = 21;
  float *inp = rand_floats(BIG, &s, 1.0f), *w = rand_floats((size_t)OC * C, &s, 1.0f);
  float *dout = rand_floats(BIG, &s, 1.0f), *ws = rand_floats(C, &s, 1.0f);
  float *g1 = zero_floats(BIG), *g2 = zero_floats(BIG), *g3 = zero_floats(BIG);
  float *o1 = zero_floats(BIG), *o2 = zero_floats(BIG), *o3 = zero_floats(BIG);
  float *mean = zero_floats(N), *rstd = zero_floats(N), *scratch = zero_floats((size_t)B * H * T * T);
  float *act = zero_floats(BIG), *att = zero_floats((size_t)B * H * T * T);
  int32_t tokens[N];
  for (int n = 0; n < N; n++) tokens[n] = (int32_t)(n % 4); /* repeats */

  /* Gradients cleared, one backward kept in o1..o3, then a second. */
#define TWICE(call)                                                                                                  \
  do {                                                                                                               \
    memset(g1, 0, big), memset(g2, 0, big), memset(g3, 0, big);                                                      \
    call;                                                                                                            \
    memcpy(o1, g1, big), memcpy(o2, g2, big), memcpy(o3, g3, big);                                                   \
    call;                                                                                                            \
  } while (0)

  TWICE(encoder_backward(g1, g2, dout, tokens, B, T, C));
  expect_doubled("encoder dwte", o1, g1, (size_t)V * C);
  expect_doubled("encoder dwpe", o2, g2, (size_t)T * C);

  layernorm_forward(act, mean, rstd, inp, ws, ws, N, C);
  TWICE(layernorm_backward(g1, g2, g3, dout, inp, ws, mean, rstd, N, C));
  expect_doubled("layernorm dinp", o1, g1, (size_t)N * C);
  expect_doubled("layernorm dw", o2, g2, C);
  expect_doubled("layernorm db", o3, g3, C);

  TWICE(matmul_backward(g1, g2, g3, dout, inp, w, N, C, OC));
  expect_doubled("matmul dinp", o1, g1, (size_t)N * C);
  expect_doubled("matmul dw", o2, g2, (size_t)OC * C);
  expect_doubled("matmul dbias", o3, g3, OC);

  attention_forward(act, att, inp, B, T, C, H);
  TWICE(attention_backward(g1, scratch, dout, inp, att, B, T, C, H));
  expect_doubled("attention dqkv", o1, g1, (size_t)N * 3 * C);

  TWICE(gelu_backward(g1, inp, dout, BIG));
  expect_doubled("gelu dinp", o1, g1, BIG);

  TWICE(residual_backward(g1, g2, dout, BIG));
  expect_doubled("residual da", o1, g1, BIG);
  expect_doubled("residual db", o2, g2, BIG);

  TWICE(scalar_head_backward(g1, g2, g3, dout, inp, ws, N, C));
  expect_doubled("scalar_head dx", o1, g1, (size_t)N * C);
  expect_doubled("scalar_head dw", o2, g2, C);
  expect_doubled("scalar_head db", o3, g3, 1);
#undef TWICE

  /* The logprob backward consumes its logits: a forward before each. */
  struct logprob_case k;
  logprob_case_init(&k, &s);
  float *dx = zero_floats((size_t)N * C), *dwte = zero_floats((size_t)V * C);
  logprob_forward(k.logp, k.lse, k.logits, k.x, k.wte, k.targets, N, C, V);
  logprob_backward(dx, dwte, k.logits, k.lse, k.dlogp, k.x, k.wte, k.targets, N, C, V);
  float *dx1 = copy_floats(dx, (size_t)N * C), *dwte1 = copy_floats(dwte, (size_t)V * C);
  logprob_forward(k.logp, k.lse, k.logits, k.x, k.wte, k.targets, N, C, V);
  logprob_backward(dx, dwte, k.logits, k.lse, k.dlogp, k.x, k.wte, k.targets, N, C, V);
  expect_doubled("logprob dx", dx1, dx, (size_t)N * C);
  expect_doubled("logprob dwte", dwte1, dwte, (size_t)V * C);
  logprob_case_free(&k);
  free(dx), free(dwte), free(dx1), free(dwte1);

  free(inp), free(w), free(dout), free(ws), free(g1), free(g2), free(g3), free(o1), free(o2), free(o3);
  free(mean), free(rstd), free(scratch), free(act), free(att);
}
END_TEST

/* ------------------------------------------------------------------------
 * The optimiser */

START_TEST(adamw_by_hand) {
  /* g = 2 * 0.5 = 1. Step 1: m = 0.1, v = 0.001, mhat = vhat = 1,
   * p = 1 - 0.1 (1 / (1 + 1e-8) + 0.1 * 1) = 0.89.
   * Step 2: m = 0.19, v = 0.001999, mhat = 0.19 / 0.19 = 1,
   * vhat = 0.001999 / 0.001999 = 1, p = 0.89 - 0.1 (1 + 0.1 * 0.89) = 0.7811.
   * A negative gradient mirrors the step but not the decay. */
  float p[2] = {1.0f, 1.0f}, g[2] = {2.0f, -2.0f}, m[2] = {0}, v[2] = {0};
  adamw_update(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, 1);
  ck_assert_float_eq_tol(m[0], 0.1f, 1e-7f);
  ck_assert_float_eq_tol(v[0], 0.001f, 1e-7f); /* 1 - 0.999f is 0.00099998... */
  ck_assert_float_eq_tol(m[1], -0.1f, 1e-7f);
  ck_assert_float_eq_tol(p[0], 0.89f, 1e-6f);
  ck_assert_float_eq_tol(p[1], 1.0f - 0.1f * (-1.0f + 0.1f), 1e-6f); /* 1.09 */
  adamw_update(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, 2);
  ck_assert_float_eq_tol(m[0], 0.19f, 1e-7f);
  ck_assert_float_eq_tol(v[0], 0.001999f, 1e-7f);
  ck_assert_float_eq_tol(p[0], 0.7811f, 1e-6f);
  ck_assert_float_eq_tol(p[1], 1.09f - 0.1f * (-1.0f + 0.1f * 1.09f), 1e-6f); /* 1.1891 */
}
END_TEST

START_TEST(adamw_against_double) {
  enum { P = 1000, STEPS = 5 };
  uint64_t s = 31;
  float *p = rand_floats(P, &s, 1.0f), *m = zero_floats(P), *v = zero_floats(P);
  double want_p[P], want_m[P] = {0}, want_v[P] = {0};
  for (int i = 0; i < P; i++) want_p[i] = p[i];
  /* The reference takes the hyperparameters as the kernel gets them, in float. */
  const float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.25f;
  for (int t = 1; t <= STEPS; t++) {
    float *g = rand_floats(P, &s, 3.0f);
    adamw_update(p, g, m, v, P, lr, b1, b2, eps, wd, scale, t);
    for (int i = 0; i < P; i++) {
      double gi = (double)g[i] * scale;
      want_m[i] = b1 * want_m[i] + (1.0 - b1) * gi;
      want_v[i] = b2 * want_v[i] + (1.0 - b2) * gi * gi;
      double mhat = want_m[i] / (1.0 - pow(b1, t)), vhat = want_v[i] / (1.0 - pow(b2, t));
      want_p[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * want_p[i]);
    }
    free(g);
  }
  double err = max_rel_err(p, want_p, P);
  report("adamw", "params", err);
  ck_assert_double_lt(err, VALUE_TOL);
  err = fmax(max_rel_err(m, want_m, P), max_rel_err(v, want_v, P));
  report("adamw", "moments", err);
  ck_assert_double_lt(err, VALUE_TOL);
  free(p), free(m), free(v);
}
END_TEST

START_TEST(sum_squares_values) {
  ck_assert_double_eq(sum_squares(NULL, 0), 0.0);
  float one = -3.0f;
  ck_assert_double_eq(sum_squares(&one, 1), 9.0);
  /* 1^2 + ... + n^2 = n (n + 1) (2n + 1) / 6, exact in double; n is not a
   * multiple of any block size. */
  enum { M = 100003 };
  float *x = malloc(M * sizeof *x);
  ck_assert_ptr_nonnull(x);
  for (int n = 1; n <= 300; n++) {
    for (int i = 0; i < n; i++) x[i] = (float)(i + 1);
    ck_assert_double_eq(sum_squares(x, (size_t)n), (double)n * (n + 1) * (2 * n + 1) / 6);
  }
  uint64_t s = 41;
  for (int i = 0; i < M; i++) x[i] = urand(&s) * 1e3f;
  long double want = 0.0L;
  for (int i = 0; i < M; i++) want += (long double)x[i] * x[i];
  double got = sum_squares(x, M);
  double err = fabs(got - (double)want) / (double)want;
  report("sum_squares", "value", err);
  ck_assert_double_lt(err, 1e-13);
  ck_assert_double_eq(sum_squares(x, M), got); /* bit for bit, again */
  free(x);
}
END_TEST

/* ------------------------------------------------------------------------
 * Determinism: a forward and backward through every kernel, twice, on
 * shapes large enough to split between threads. */

enum { DB = 3, DT = 70, DC = 48, DH = 4, DV = 67, DN = DB * DT };

/* Every output of every kernel, in one buffer; the same inputs each call. */
static float *run_everything(size_t *count) {
  size_t sizes[] = {
      (size_t)DN * DC,           /* encoded */
      (size_t)DV * DC,           /* dwte */
      (size_t)DT * DC,           /* dwpe */
      (size_t)DN * DC, DN, DN,   /* layernorm out, mean, rstd */
      (size_t)DN * DC, DC, DC,   /* dinp, dw, db */
      (size_t)DN * 3 * DC,       /* qkv = matmul */
      (size_t)DN * DC, (size_t)3 * DC * DC, 3 * DC, /* matmul dinp, dw, dbias */
      (size_t)DN * DC,           /* attention out */
      (size_t)DB * DH * DT * DT, /* att */
      (size_t)DN * 3 * DC,       /* dqkv */
      (size_t)DN * 3 * DC,       /* gelu out */
      (size_t)DN * 3 * DC,       /* gelu dinp */
      (size_t)DN * DC,           /* residual out */
      (size_t)DN * DC,           /* residual db */
      DN, DN, (size_t)DN * DV,   /* logp, lse, dlogits */
      (size_t)DN * DC,           /* logprob dx */
      (size_t)3 * DC * DC, (size_t)3 * DC * DC, (size_t)3 * DC * DC, /* adamw params, m, v */
      1,                         /* sum of squares (as float) */
  };
  size_t total = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += sizes[i];
  float *all = zero_floats(total);
  float *at[sizeof sizes / sizeof *sizes];
  float *next = all;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) at[i] = next, next += sizes[i];

  uint64_t s = 51;
  int32_t tokens[DN], targets[DN];
  for (int n = 0; n < DN; n++) {
    tokens[n] = (int32_t)((n * 13) % DV);
    targets[n] = n % 9 == 0 ? -1 : (int32_t)((n * 29 + 1) % DV);
  }
  float *wte = rand_floats((size_t)DV * DC, &s, 1.0f), *wpe = rand_floats((size_t)DT * DC, &s, 1.0f);
  float *lnw = rand_floats(DC, &s, 1.0f), *lnb = rand_floats(DC, &s, 1.0f);
  float *qkvw = rand_floats((size_t)3 * DC * DC, &s, 0.3f), *qkvb = rand_floats(3 * DC, &s, 0.3f);
  float *dbig = rand_floats((size_t)DN * 3 * DC, &s, 1.0f), *dlogp = rand_floats(DN, &s, 1.0f);
  float *datt = zero_floats((size_t)DB * DH * DT * DT);

  encoder_forward(at[0], tokens, wte, wpe, DB, DT, DC);
  encoder_backward(at[1], at[2], dbig, tokens, DB, DT, DC);
  layernorm_forward(at[3], at[4], at[5], at[0], lnw, lnb, DN, DC);
  layernorm_backward(at[6], at[7], at[8], dbig, at[0], lnw, at[4], at[5], DN, DC);
  matmul_forward(at[9], at[3], qkvw, qkvb, DN, DC, 3 * DC);
  matmul_backward(at[10], at[11], at[12], dbig, at[3], qkvw, DN, DC, 3 * DC);
  attention_forward(at[13], at[14], at[9], DB, DT, DC, DH);
  attention_backward(at[15], datt, dbig, at[9], at[14], DB, DT, DC, DH);
  gelu_forward(at[16], at[9], (size_t)DN * 3 * DC);
  gelu_backward(at[17], at[9], dbig, (size_t)DN * 3 * DC);
  residual_forward(at[18], at[13], at[0], (size_t)DN * DC);
  residual_backward(at[19], at[19], dbig, (size_t)DN * DC);
  logprob_forward(at[20], at[21], at[22], at[18], wte, targets, DN, DC, DV);
  logprob_backward(at[23], at[1], at[22], at[21], dlogp, at[18], wte, targets, DN, DC, DV);
  memcpy(at[24], qkvw, (size_t)3 * DC * DC * sizeof *qkvw);
  for (int t = 1; t <= 3; t++)
    adamw_update(at[24], at[11], at[25], at[26], (size_t)3 * DC * DC, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
  at[27][0] = (float)sum_squares(at[11], (size_t)3 * DC * DC);

  free(wte), free(wpe), free(lnw), free(lnb), free(qkvw), free(qkvb), free(dbig), free(dlogp), free(datt);
  *count = total;
  return all;
}

START_TEST(deterministic) {
  size_t n1, n2;
  float *first = run_everything(&n1), *second = run_everything(&n2);
  ck_assert_uint_eq(n1, n2);
  for (size_t i = 0; i < n1; i++) ck_assert_msg(!isnan(first[i]), "output %zu is NaN", i);
  ck_assert_mem_eq(first, second, n1 * sizeof *first);
  free(first), free(second);
}
END_TEST

Suite *kernels_suite(void) {
  Suite *s = suite_create("kernels");
  TCase *tc = tcase_create("gradients");
  tcase_add_test(tc, encoder_gradient);
  tcase_add_test(tc, layernorm_gradient);
  tcase_add_test(tc, matmul_gradient);
  tcase_add_test(tc, attention_gradient);
  tcase_add_test(tc, attention_long_gradient);
  tcase_add_test(tc, gelu_gradient);
  tcase_add_test(tc, residual_gradient);
  tcase_add_test(tc, logprob_gradient);
  tcase_add_test(tc, scalar_head_gradient);
  tcase_add_test(tc, scalar_head_backend_gradient);
  tcase_add_test(tc, scalar_head_beside_the_lm_head);
  suite_add_tcase(s, tc);
  tc = tcase_create("forward");
  tcase_add_test(tc, encoder_values);
  tcase_add_test(tc, layernorm_values);
  tcase_add_test(tc, matmul_values);
  tcase_add_test(tc, attention_values);
  tcase_add_test(tc, gelu_values);
  tcase_add_test(tc, logprob_values);
  tcase_add_test(tc, logprob_ignored_targets);
  tcase_add_test(tc, scalar_head_values);
  suite_add_tcase(s, tc);
  tc = tcase_create("accumulate");
  tcase_add_test(tc, backward_accumulates);
  suite_add_tcase(s, tc);
  tc = tcase_create("optimiser");
  tcase_add_test(tc, adamw_by_hand);
  tcase_add_test(tc, adamw_against_double);
  tcase_add_test(tc, sum_squares_values);
  suite_add_tcase(s, tc);
  tc = tcase_create("determinism");
  tcase_add_test(tc, deterministic);
  suite_add_tcase(s, tc);
  return s;
}
