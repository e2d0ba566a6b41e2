/* The host side of training: the two next-token objectives (values, their
 * gradients against finite differences, prompt positions untouched,
 * normalisation by counted tokens) and the learning-rate schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

Suite *train_suite(void) {
  Suite *s = suite_create("train");
  TCase *t = tcase_create("objectives");
  tcase_add_test(t, next_token);
  tcase_add_test(t, masked_next_token);
  tcase_add_test(t, normalised_by_step_tokens);
  tcase_add_test(t, schedule_shape);
  suite_add_tcase(s, t);
  return s;
}
