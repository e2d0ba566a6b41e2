/* The host side of training: the two next-token objectives (values, their
 * gradients against finite differences, prompt positions untouched,
 * normalisation by counted tokens) and the learning-rate schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/objectives/objectives.h"
#include "runtime/schedule.h"
#include "tests/unit/suites.h"

/* Central differences of an objective's loss against its dlogp. */
static double max_fd_error(double (*loss)(const float *logp, const void *arg, size_t n, double norm, float *dlogp),
                           const void *arg, float *logp, size_t n, double norm) {
  float *dlogp = malloc(n * sizeof *dlogp), *scratch = malloc(n * sizeof *scratch);
  loss(logp, arg, n, norm, dlogp);
  double worst = 0, h = 1e-2;
  for (size_t i = 0; i < n; i++) {
    float keep = logp[i];
    logp[i] = keep + (float)h;
    double up = loss(logp, arg, n, norm, scratch);
    logp[i] = keep - (float)h;
    double down = loss(logp, arg, n, norm, scratch);
    logp[i] = keep;
    double fd = (up - down) / (2 * h), err = fabs(fd - dlogp[i]) / fmax(1e-6, fabs(fd) + fabs(dlogp[i]));
    if (err > worst && fabs(fd - dlogp[i]) > 1e-7) worst = err;
  }
  free(dlogp);
  free(scratch);
  return worst;
}

static double next_token_adapter(const float *logp, const void *arg, size_t n, double norm, float *dlogp) {
  return next_token_loss(logp, arg, n, norm, dlogp);
}

static double masked_adapter(const float *logp, const void *arg, size_t n, double norm, float *dlogp) {
  return masked_next_token_loss(logp, arg, n, norm, dlogp);
}

START_TEST(next_token) {
  float logp[6] = {-1.0f, -2.0f, -0.5f, 0.0f, -3.0f, -0.25f};
  int32_t targets[6] = {5, 7, 1, -1, 2, 9}; /* position 3 is padding */
  float dlogp[6];
  double loss = next_token_loss(logp, targets, 6, 5.0, dlogp);
  ck_assert_double_eq_tol(loss, (1.0 + 2.0 + 0.5 + 3.0 + 0.25) / 5.0, 1e-12);
  ck_assert_float_eq(dlogp[3], 0.0f);
  ck_assert_float_eq_tol(dlogp[0], -0.2f, 1e-7);
  double err = max_fd_error(next_token_adapter, targets, logp, 6, 5.0);
  fprintf(stderr, "next_token: max relative error against finite differences %.2e\n", err);
  ck_assert_double_lt(err, 1e-3);
}
END_TEST

START_TEST(masked_next_token) {
  /* a prompt of three positions, then a response of three, the end-of-turn
   * token included */
  float logp[6] = {-4.0f, -3.0f, -2.0f, -1.0f, -0.5f, -0.125f};
  float weights[6] = {0, 0, 0, 1, 1, 1};
  float dlogp[6];
  double loss = masked_next_token_loss(logp, weights, 6, 3.0, dlogp);
  ck_assert_double_eq_tol(loss, (1.0 + 0.5 + 0.125) / 3.0, 1e-12);
  for (int i = 0; i < 3; i++) ck_assert(dlogp[i] == 0.0f); /* exactly zero on the prompt */
  for (int i = 3; i < 6; i++) ck_assert_float_eq_tol(dlogp[i], -1.0f / 3, 1e-7);
  double err = max_fd_error(masked_adapter, weights, logp, 6, 3.0);
  fprintf(stderr, "masked_next_token: max relative error against finite differences %.2e\n", err);
  ck_assert_double_lt(err, 1e-3);
}
END_TEST

/* Two micro-batches normalised by the step's counted tokens give the loss
 * and gradient of one batch holding both. */
START_TEST(normalised_by_step_tokens) {
  float a[3] = {-1, -2, -3}, b[2] = {-4, -5}, both[5] = {-1, -2, -3, -4, -5};
  int32_t ta[3] = {1, 1, 1}, tb[2] = {1, 1}, tboth[5] = {1, 1, 1, 1, 1};
  float da[3], db[2], dboth[5];
  double parts = next_token_loss(a, ta, 3, 5, da) + next_token_loss(b, tb, 2, 5, db);
  double whole = next_token_loss(both, tboth, 5, 5, dboth);
  ck_assert_double_eq_tol(parts, whole, 1e-12);
  ck_assert_float_eq(da[0], dboth[0]);
  ck_assert_float_eq(db[1], dboth[4]);
}
END_TEST

START_TEST(schedule_shape) {
  struct schedule s = {.kind = SCHEDULE_COSINE, .peak = 1e-3, .min_lr = 1e-4, .warmup = 10, .total = 110};
  ck_assert_double_eq_tol(schedule_lr(&s, 0), 1e-4, 1e-15);     /* (0 + 1) / 10 of the peak */
  ck_assert_double_eq_tol(schedule_lr(&s, 9), 1e-3, 1e-15);     /* the peak at the end of warmup */
  ck_assert_double_eq_tol(schedule_lr(&s, 10), 1e-3, 1e-15);    /* decay starts at the peak */
  ck_assert_double_eq_tol(schedule_lr(&s, 109), 1e-4, 1e-15);   /* and ends at min_lr */
  ck_assert_double_eq_tol(schedule_lr(&s, 59), 5.5e-4 + 4.5e-4 * cos(M_PI * 49 / 99), 1e-12);
  s.kind = SCHEDULE_LINEAR;
  ck_assert_double_eq_tol(schedule_lr(&s, 10 + 99 / 3), 1e-4 + 9e-4 * (1 - 33.0 / 99), 1e-12);
  s.kind = SCHEDULE_CONSTANT;
  ck_assert_double_eq_tol(schedule_lr(&s, 100), 1e-3, 1e-15);
  ck_assert_double_eq(clip_factor(0.5, 1.0), 1.0);
  ck_assert_double_eq(clip_factor(4.0, 1.0), 0.25);
  ck_assert_double_eq(clip_factor(4.0, 0.0), 1.0); /* 0: no clipping */
}
END_TEST

static const struct gpt_config small = {.vocab = 37, .context = 12, .layers = 2, .heads = 2, .width = 16};

static struct backend *small_backend(int batch) {
  char err[256];
  struct backend *b = cpu_backend_create(
      &(struct backend_spec){.cfg = small, .max_batch = batch, .max_seq = small.context, .train = true}, err, sizeof err);
  ck_assert_msg(b != NULL, "%s", err);
  float *p = malloc(b->n_params * sizeof *p);
  gpt_init(&small, p, 7);
  b->ops->write_params(b, p);
  free(p);
  return b;
}

static void fill(int32_t *tokens, int32_t *targets, float *weights, int B, int T) {
  for (int i = 0; i < B * T; i++) {
    tokens[i] = (i * 7 + 3) % small.vocab;
    targets[i] = (i * 5 + 1) % small.vocab;
    weights[i] = (i % T) >= T / 2; /* the second half of each row is the response */
  }
}

/* Gradient accumulation over 4 micro-batches of one sequence, each
 * normalised by the step's counted tokens, equals one batch of 4. */
START_TEST(accumulation_equals_one_batch) {
  enum { B = 4, T = 12 };
  int32_t tokens[B * T], targets[B * T];
  float weights[B * T], logp[B * T], dlogp[B * T];
  fill(tokens, targets, weights, B, T);
  double counted = 0;
  for (int i = 0; i < B * T; i++) counted += weights[i];

  struct backend *whole = small_backend(B), *parts = small_backend(1);
  whole->ops->zero_grad(whole);
  whole->ops->forward(whole, tokens, targets, B, T, logp, NULL);
  double loss_whole = masked_next_token_loss(logp, weights, B * T, counted, dlogp);
  whole->ops->backward(whole, dlogp, NULL);

  parts->ops->zero_grad(parts);
  double loss_parts = 0;
  for (int m = 0; m < B; m++) {
    parts->ops->forward(parts, tokens + m * T, targets + m * T, 1, T, logp, NULL);
    loss_parts += masked_next_token_loss(logp, weights + m * T, T, counted, dlogp);
    parts->ops->backward(parts, dlogp, NULL);
  }
  ck_assert_double_eq_tol(loss_whole, loss_parts, 1e-6 * fabs(loss_whole));
  size_t n = whole->n_params;
  float *ga = malloc(n * sizeof *ga), *gb = malloc(n * sizeof *gb);
  whole->ops->read_grads(whole, ga);
  parts->ops->read_grads(parts, gb);
  /* the two sum the same terms in a different order: differences are
   * rounding, measured against the largest gradient */
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    diff = fmax(diff, fabs((double)ga[i] - gb[i]));
    scale = fmax(scale, fabs((double)ga[i]));
  }
  fprintf(stderr, "accumulation: max difference of the gradients %.2e of the largest (%.2e)\n", diff / scale, scale);
  ck_assert_double_gt(scale, 0);
  ck_assert_double_lt(diff / scale, 1e-5);
  free(ga);
  free(gb);
  backend_destroy(whole);
  backend_destroy(parts);
}
END_TEST

/* SFT: what the prompt positions would predict changes nothing, because
 * their weight is 0: the gradients are the same bits. */
START_TEST(prompt_positions_contribute_nothing) {
  enum { B = 2, T = 12 };
  int32_t tokens[B * T], targets[B * T], other[B * T];
  float weights[B * T], logp[B * T], dlogp[B * T];
  fill(tokens, targets, weights, B, T);
  for (int i = 0; i < B * T; i++) other[i] = weights[i] != 0 ? targets[i] : (targets[i] + 11) % small.vocab;
  double counted = 0;
  for (int i = 0; i < B * T; i++) counted += weights[i];
  struct backend *b = small_backend(B);
  size_t n = b->n_params;
  float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
  const int32_t *runs[2] = {targets, other};
  float *grads[2] = {g1, g2};
  for (int r = 0; r < 2; r++) {
    b->ops->zero_grad(b);
    b->ops->forward(b, tokens, runs[r], B, T, logp, NULL);
    masked_next_token_loss(logp, weights, B * T, counted, dlogp);
    b->ops->backward(b, dlogp, NULL);
    b->ops->read_grads(b, grads[r]);
  }
  ck_assert(memcmp(g1, g2, n * sizeof *g1) == 0);
  free(g1);
  free(g2);
  backend_destroy(b);
}
END_TEST

/* A backend that does not train computes the logits a few rows at a time;
 * the log-probabilities agree with those of a training backend, which
 * keeps them all, to rounding (sgemm blocks a smaller product otherwise). */
START_TEST(inference_in_row_chunks) {
  enum { B = 9, T = 12 }; /* 108 rows: more than one chunk */
  int32_t tokens[B * T], targets[B * T];
  float weights[B * T], a[B * T], b2[B * T];
  fill(tokens, targets, weights, B, T);
  targets[5] = -1;
  char err[256];
  struct backend *train = small_backend(B);
  struct backend *infer = cpu_backend_create(
      &(struct backend_spec){.cfg = small, .max_batch = B, .max_seq = T, .train = false}, err, sizeof err);
  ck_assert_msg(infer != NULL, "%s", err);
  float *p = malloc(train->n_params * sizeof *p);
  train->ops->read_params(train, p);
  infer->ops->write_params(infer, p);
  free(p);
  train->ops->forward(train, tokens, targets, B, T, a, NULL);
  infer->ops->forward(infer, tokens, targets, B, T, b2, NULL);
  double worst = 0;
  for (int i = 0; i < B * T; i++) worst = fmax(worst, fabs((double)a[i] - b2[i]) / fmax(1e-6, fabs((double)a[i])));
  ck_assert_double_lt(worst, 1e-6);
  ck_assert(b2[5] == 0.0f);
  backend_destroy(train);
  backend_destroy(infer);
}
END_TEST

Suite *train_suite(void) {
  Suite *s = suite_create("train");
  TCase *t = tcase_create("objectives");
  tcase_add_test(t, next_token);
  tcase_add_test(t, masked_next_token);
  tcase_add_test(t, normalised_by_step_tokens);
  tcase_add_test(t, schedule_shape);
  suite_add_tcase(s, t);
  TCase *m = tcase_create("model");
  tcase_add_test(m, accumulation_equals_one_batch);
  tcase_add_test(m, prompt_positions_contribute_nothing);
  tcase_add_test(m, inference_in_row_chunks);
  suite_add_tcase(s, m);
  return s;
}
