/* The objectives of runtime/objectives/objectives.h against TRL itself: the
 * loss, its gradient and the statistics on fixed inputs, compared with
 * float64 values that tests/reference/objectives_reference.py computed with
 * TRL's own functions (or, where TRL computes inline in a training loop, its
 * lines transcribed) and committed in objective_values.h (no Python is
 * needed here). Each case is one batch whose NORM is its size, which makes
 * the contract's sum / NORM TRL's mean; each is run again split in two
 * micro-batches with the same NORM, whose losses and statistics must add up
 * to the same values.
 *
 * Tolerances, |got - want| <= tol:
 *   double-input objectives (DPO, IPO, SimPO, ORPO, KTO, Bradley-Terry, the
 *   GRPO advantages): REL_DOUBLE |want|, plus ABS_DOUBLE for values that are
 *   exactly 0. Both sides are float64 arithmetic on the same inputs; only
 *   the order of operations differs.
 *   float-input functions (grpo_loss, the PPO functions): their inputs and
 *   gradient outputs are float, so the C side may compute in float32 (unit
 *   roundoff 6e-8; a log-ratio of log-probs near -3 is already off by 2e-7
 *   in it, and exp carries that into the ratio). A loss, which adds terms of
 *   both signs, is held to REL_FLOAT times the same sum of |terms| (the
 *   header's loss_scale); an element of an output array to REL_FLOAT times
 *   max(|want|, FLOOR_FLOAT x the array's largest |value|), since an element
 *   that is a difference of larger terms (whitened advantages, a gradient
 *   where the KL and policy terms nearly cancel) can only be as exact as
 *   those terms. Positions off the mask must be exactly 0.
 *   Counts (pairs, correct, sequences, tokens, clipped) must be exact.
 * Gradient buffers are filled with junk first: every gradient output is
 * overwritten. Statistics start at zero and are added to. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/objectives/objectives.h"
#include "tests/reference/objective_values.h"
#include "tests/unit/suites.h"

#define REL_DOUBLE 1e-9
#define ABS_DOUBLE 1e-14
#define REL_FLOAT 1e-5
#define FLOOR_FLOAT 1e-2

#define JUNK 1e30

/* The largest errors of one case: max_rel over the nonzero expected values,
 * worst as a fraction of the tolerance. */
struct errors {
  const char *name;
  double max_rel, worst;
  int compared, failures;
};

static void compare(struct errors *e, const char *what, long index, double got, double want, double tol) {
  double err = fabs(got - want);
  e->compared++;
  if (want != 0 && err / fabs(want) > e->max_rel) e->max_rel = err / fabs(want);
  if (tol > 0 && err / tol > e->worst) e->worst = err / tol;
  if (!(err <= tol)) { /* NaN fails too */
    if (e->failures < 12) {
      char at[32] = "";
      if (index >= 0) snprintf(at, sizeof at, "[%ld]", index);
      fprintf(stderr, "objective_reference %s: %s%s = %.17g, TRL %.17g (error %.3g, tolerance %.3g)\n", e->name, what,
              at, got, want, err, tol);
    }
    e->failures++;
  }
}

static void compare_double(struct errors *e, const char *what, long index, double got, double want) {
  compare(e, what, index, got, want, fmax(REL_DOUBLE * fabs(want), ABS_DOUBLE));
}

static void compare_count(struct errors *e, const char *what, double got, double want) {
  compare(e, what, -1, got, want, 0.0);
}

static void compare_doubles(struct errors *e, const char *what, const double *got, const double *want, size_t n) {
  for (size_t i = 0; i < n; i++) compare_double(e, what, (long)i, got[i], want[i]);
}

/* A float output array against the reference; MASK (may be NULL) marks the
 * positions that must be exactly 0. */
static void compare_floats(struct errors *e, const char *what, const float *got, const double *want,
                           const double *mask, size_t n) {
  double big = 0;
  for (size_t i = 0; i < n; i++) big = fmax(big, fabs(want[i]));
  for (size_t i = 0; i < n; i++) {
    if (mask && mask[i] == 0)
      compare(e, what, (long)i, got[i], 0.0, 0.0);
    else
      compare(e, what, (long)i, got[i], want[i], REL_FLOAT * fmax(fabs(want[i]), FLOOR_FLOAT * big));
  }
}

static void report_and_assert(const struct errors *e) {
  fprintf(stderr, "objective_reference %-40s %3d values, max rel %.2e, worst %.3f of tolerance\n", e->name,
          e->compared, e->max_rel, e->worst);
  ck_assert_msg(e->failures == 0, "objective_reference %s: %d of %d values out of tolerance (worst %.3g of it)",
                e->name, e->failures, e->compared, e->worst);
}

static void fill(double *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = JUNK;
}

static void fill_float(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = (float)JUNK;
}

/* The header's float inputs, written as doubles, back to float (exactly). */
static float *to_float(const double *x, size_t n) {
  float *f = malloc(n * sizeof *f);
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < n; i++) {
    f[i] = (float)x[i];
    ck_assert_msg((double)f[i] == x[i], "objective_values.h: %.17g is not a float", x[i]);
  }
  return f;
}

/* ---- DPO, IPO, SimPO, ORPO ---------------------------------------------- */

static double run_pairs(const struct objref_pair_case *c, size_t from, size_t n, double *dc, double *dr,
                        struct objective_stats *st) {
  bool uses_ref = c->objective == OBJREF_DPO || c->objective == OBJREF_IPO;
  struct pair_logps in = {
      .chosen = objref_pair_chosen + from,
      .rejected = objref_pair_rejected + from,
      .ref_chosen = uses_ref ? objref_pair_ref_chosen + from : NULL, /* the contract: may be NULL */
      .ref_rejected = uses_ref ? objref_pair_ref_rejected + from : NULL,
      .chosen_len = objref_pair_chosen_len + from,
      .rejected_len = objref_pair_rejected_len + from,
  };
  switch (c->objective) {
  case OBJREF_DPO: return dpo_loss(&in, n, c->beta, c->label_smoothing, c->norm, dc, dr, st);
  case OBJREF_IPO: return ipo_loss(&in, n, c->beta, c->norm, dc, dr, st);
  case OBJREF_SIMPO: return simpo_loss(&in, n, c->beta, c->gamma, c->norm, dc, dr, st);
  case OBJREF_ORPO: return orpo_loss(&in, n, c->beta, c->token_norm, c->norm, dc, dr, st);
  }
  ck_abort_msg("objective_reference: unknown objective %d", (int)c->objective);
  return NAN;
}

static void check_pair_stats(struct errors *e, const struct objref_pair_case *c, const struct objective_stats *st) {
  compare_count(e, "stats.pairs", st->pairs, c->pairs);
  compare_count(e, "stats.correct", st->correct, c->correct);
  compare_double(e, "stats.margin", -1, st->margin, c->margin);
  compare_double(e, "stats.chosen", -1, st->chosen, c->chosen);
  compare_double(e, "stats.rejected", -1, st->rejected, c->rejected);
  if (c->objective == OBJREF_ORPO) compare_double(e, "stats.nll", -1, st->nll, c->nll);
}

START_TEST(pairs_match_trl) {
  const struct objref_pair_case *c = &objref_pair_cases[_i];
  struct errors e = {.name = c->name};
  double dc[OBJREF_PAIRS], dr[OBJREF_PAIRS];

  /* the whole batch */
  struct objective_stats st = {0};
  fill(dc, OBJREF_PAIRS);
  fill(dr, OBJREF_PAIRS);
  double loss = run_pairs(c, 0, OBJREF_PAIRS, dc, dr, &st);
  compare_double(&e, "loss", -1, loss, c->loss);
  compare_doubles(&e, "d_chosen", dc, c->d_chosen, OBJREF_PAIRS);
  compare_doubles(&e, "d_rejected", dr, c->d_rejected, OBJREF_PAIRS);
  check_pair_stats(&e, c, &st);

  /* two micro-batches of the same step */
  struct objective_stats acc = {0};
  fill(dc, OBJREF_PAIRS);
  fill(dr, OBJREF_PAIRS);
  size_t k = 2;
  double split = run_pairs(c, 0, k, dc, dr, &acc);
  split += run_pairs(c, k, OBJREF_PAIRS - k, dc + k, dr + k, &acc);
  compare_double(&e, "loss (2 micro-batches)", -1, split, c->loss);
  compare_doubles(&e, "d_chosen (2 micro-batches)", dc, c->d_chosen, OBJREF_PAIRS);
  compare_doubles(&e, "d_rejected (2 micro-batches)", dr, c->d_rejected, OBJREF_PAIRS);
  check_pair_stats(&e, c, &acc);
  report_and_assert(&e);
}
END_TEST

/* ---- Bradley-Terry ------------------------------------------------------- */

START_TEST(bradley_terry_matches_trl) {
  const struct objref_bt_case *c = &objref_bt_cases[_i];
  struct errors e = {.name = c->name};
  const double *margin = c->with_margin ? objref_bt_margin : NULL;
  double dc[OBJREF_BT], dr[OBJREF_BT];

  struct objective_stats st = {0};
  fill(dc, OBJREF_BT);
  fill(dr, OBJREF_BT);
  double loss = bradley_terry_loss(objref_bt_chosen, objref_bt_rejected, margin, OBJREF_BT, c->norm, dc, dr, &st);
  compare_double(&e, "loss", -1, loss, c->loss);
  compare_doubles(&e, "d_chosen", dc, c->d_chosen, OBJREF_BT);
  compare_doubles(&e, "d_rejected", dr, c->d_rejected, OBJREF_BT);

  struct objective_stats acc = {0};
  double dc2[OBJREF_BT], dr2[OBJREF_BT];
  fill(dc2, OBJREF_BT);
  fill(dr2, OBJREF_BT);
  size_t k = 4;
  double split = bradley_terry_loss(objref_bt_chosen, objref_bt_rejected, margin, k, c->norm, dc2, dr2, &acc);
  split += bradley_terry_loss(objref_bt_chosen + k, objref_bt_rejected + k, margin ? margin + k : NULL, OBJREF_BT - k,
                              c->norm, dc2 + k, dr2 + k, &acc);
  compare_double(&e, "loss (2 micro-batches)", -1, split, c->loss);
  compare_doubles(&e, "d_chosen (2 micro-batches)", dc2, c->d_chosen, OBJREF_BT);
  compare_doubles(&e, "d_rejected (2 micro-batches)", dr2, c->d_rejected, OBJREF_BT);

  const struct objective_stats *sts[2] = {&st, &acc};
  for (int i = 0; i < 2; i++) {
    compare_count(&e, "stats.pairs", sts[i]->pairs, c->pairs);
    compare_count(&e, "stats.correct", sts[i]->correct, c->correct);
    compare_double(&e, "stats.margin", -1, sts[i]->margin, c->margin);
    compare_double(&e, "stats.chosen", -1, sts[i]->chosen, c->chosen);
    compare_double(&e, "stats.rejected", -1, sts[i]->rejected, c->rejected);
  }
  report_and_assert(&e);
}
END_TEST

/* ---- KTO ----------------------------------------------------------------- */

START_TEST(kto_matches_trl) {
  const struct objref_kto_case *c = &objref_kto_cases[_i];
  struct errors e = {.name = c->name};
  compare_double(&e, "z0", -1, kto_reference_point(objref_kto_kl_policy, objref_kto_kl_ref[c->kl_set], OBJREF_KTO),
                 c->z0);

  double d[OBJREF_KTO];
  struct objective_stats st = {0};
  fill(d, OBJREF_KTO);
  double loss = kto_loss(objref_kto_logp, objref_kto_ref_logp, objref_kto_desirable, OBJREF_KTO, c->z0, c->beta,
                         c->desirable_weight, c->undesirable_weight, c->norm, d, &st);
  compare_double(&e, "loss", -1, loss, c->loss);
  compare_doubles(&e, "d_logp", d, c->d_logp, OBJREF_KTO);

  struct objective_stats acc = {0};
  fill(d, OBJREF_KTO);
  size_t k = 3;
  double split = kto_loss(objref_kto_logp, objref_kto_ref_logp, objref_kto_desirable, k, c->z0, c->beta,
                          c->desirable_weight, c->undesirable_weight, c->norm, d, &acc);
  split += kto_loss(objref_kto_logp + k, objref_kto_ref_logp + k, objref_kto_desirable + k, OBJREF_KTO - k, c->z0,
                    c->beta, c->desirable_weight, c->undesirable_weight, c->norm, d + k, &acc);
  compare_double(&e, "loss (2 micro-batches)", -1, split, c->loss);
  compare_doubles(&e, "d_logp (2 micro-batches)", d, c->d_logp, OBJREF_KTO);

  const struct objective_stats *sts[2] = {&st, &acc};
  for (int i = 0; i < 2; i++) {
    compare_count(&e, "stats.pairs", sts[i]->pairs, c->pairs);
    compare_double(&e, "stats.chosen", -1, sts[i]->chosen, c->chosen);
    compare_double(&e, "stats.rejected", -1, sts[i]->rejected, c->rejected);
    compare_count(&e, "stats.correct (contract)", sts[i]->correct, c->correct);
  }
  report_and_assert(&e);
}
END_TEST

/* ---- GRPO ---------------------------------------------------------------- */

START_TEST(grpo_advantages_match_trl) {
  struct errors e = {.name = "grpo advantages (scale_rewards group)"};
  double adv[OBJREF_GRPO_B];
  fill(adv, OBJREF_GRPO_B);
  size_t zero = grpo_advantages(objref_grpo_rewards, OBJREF_GRPO_GROUPS, OBJREF_GRPO_GROUP, adv);
  compare_doubles(&e, "advantages", adv, objref_grpo_advantages, OBJREF_GRPO_B);
  compare_count(&e, "groups with equal rewards", (double)zero, OBJREF_GRPO_ZERO_STD_GROUPS);
  report_and_assert(&e);
}
END_TEST

START_TEST(grpo_loss_matches_trl) {
  const struct objref_grpo_case *c = &objref_grpo_cases[_i];
  struct errors e = {.name = c->name};
  enum { B = OBJREF_GRPO_B, T = OBJREF_GRPO_T, BT = OBJREF_GRPO_B * OBJREF_GRPO_T };
  float *logp = to_float(objref_grpo_logp, BT), *old = to_float(objref_grpo_old_logp, BT);
  float *ref = to_float(objref_grpo_ref_logp, BT), *mask = to_float(objref_grpo_mask, BT);
  float dlogp[BT];
  struct grpo_options opt = {
      .epsilon = c->epsilon, .beta = c->beta, .normalize = c->normalize, .max_new_tokens = c->max_new_tokens};

  /* The contract's kl statistic, sum of logp - ref_logp, held to float
   * accuracy of its terms. */
  double kl_terms = 0;
  for (int i = 0; i < BT; i++) kl_terms += objref_grpo_mask[i] * fabs(objref_grpo_logp[i] - objref_grpo_ref_logp[i]);

  struct objective_stats st = {0};
  fill_float(dlogp, BT);
  double loss = grpo_loss(logp, old, ref, mask, objref_grpo_advantages, B, T, &opt, c->norm, dlogp, &st);
  compare(&e, "loss", -1, loss, c->loss, REL_FLOAT * c->loss_scale);
  compare_floats(&e, "dlogp", dlogp, c->dlogp, objref_grpo_mask, BT);

  /* rows [0, k) and [k, B) as two micro-batches */
  struct objective_stats acc = {0};
  fill_float(dlogp, BT);
  int k = 5;
  double split = grpo_loss(logp, old, ref, mask, objref_grpo_advantages, k, T, &opt, c->norm, dlogp, &acc);
  split += grpo_loss(logp + k * T, old + k * T, ref + k * T, mask + k * T, objref_grpo_advantages + k, B - k, T, &opt,
                     c->norm, dlogp + k * T, &acc);
  compare(&e, "loss (2 micro-batches)", -1, split, c->loss, REL_FLOAT * c->loss_scale);
  compare_floats(&e, "dlogp (2 micro-batches)", dlogp, c->dlogp, objref_grpo_mask, BT);

  const struct objective_stats *sts[2] = {&st, &acc};
  for (int i = 0; i < 2; i++) {
    compare_count(&e, "stats.sequences", sts[i]->sequences, c->sequences);
    compare_count(&e, "stats.tokens", sts[i]->tokens, c->tokens);
    compare_count(&e, "stats.clipped", sts[i]->clipped, c->clipped);
    compare(&e, "stats.kl (contract)", -1, sts[i]->kl, c->kl, REL_FLOAT * kl_terms);
  }
  report_and_assert(&e);
  free(logp);
  free(old);
  free(ref);
  free(mask);
}
END_TEST

/* ---- PPO ----------------------------------------------------------------- */

enum { PPO_B = OBJREF_PPO_B, PPO_T = OBJREF_PPO_T, PPO_BT = OBJREF_PPO_B * OBJREF_PPO_T };

START_TEST(ppo_rewards_and_gae_match_trl) {
  struct errors e = {.name = "ppo rewards, gae"};
  float *old = to_float(objref_ppo_old_logp, PPO_BT), *ref = to_float(objref_ppo_ref_logp, PPO_BT);
  float *values = to_float(objref_ppo_values, PPO_BT), *mask = to_float(objref_ppo_mask, PPO_BT);
  float rewards[PPO_BT], adv[PPO_BT], ret[PPO_BT];

  fill_float(rewards, PPO_BT);
  ppo_rewards(old, ref, mask, objref_ppo_score, PPO_B, PPO_T, OBJREF_PPO_KL_COEF, rewards);
  compare_floats(&e, "rewards", rewards, objref_ppo_rewards, objref_ppo_mask, PPO_BT);

  /* The GAE is given the float rounding of the reference rewards, as the
   * reference was. */
  for (int i = 0; i < PPO_BT; i++) rewards[i] = (float)objref_ppo_rewards[i];
  fill_float(adv, PPO_BT);
  fill_float(ret, PPO_BT);
  ppo_gae(rewards, values, mask, PPO_B, PPO_T, OBJREF_PPO_GAMMA, OBJREF_PPO_LAMBDA, adv, ret);
  compare_floats(&e, "advantages", adv, objref_ppo_advantages, objref_ppo_mask, PPO_BT);
  compare_floats(&e, "returns", ret, objref_ppo_returns, objref_ppo_mask, PPO_BT);
  report_and_assert(&e);
  free(old);
  free(ref);
  free(values);
  free(mask);
}
END_TEST

START_TEST(ppo_loss_matches_trl) {
  struct errors e = {.name = "ppo loss"};
  float *logp = to_float(objref_ppo_logp, PPO_BT), *old = to_float(objref_ppo_old_logp, PPO_BT);
  float *vpred = to_float(objref_ppo_vpred, PPO_BT), *values = to_float(objref_ppo_values, PPO_BT);
  float *mask = to_float(objref_ppo_mask, PPO_BT);
  float adv[PPO_BT], ret[PPO_BT], dlogp[PPO_BT], dvalues[PPO_BT];
  for (int i = 0; i < PPO_BT; i++) {
    adv[i] = (float)objref_ppo_advantages[i];
    ret[i] = (float)objref_ppo_returns[i];
  }
  struct ppo_options opt = {
      .clip = OBJREF_PPO_CLIP, .clip_value = OBJREF_PPO_CLIP_VALUE, .vf_coef = OBJREF_PPO_VF_COEF};

  struct objective_stats st = {0};
  fill_float(dlogp, PPO_BT);
  fill_float(dvalues, PPO_BT);
  double loss =
      ppo_loss(logp, old, adv, vpred, values, ret, mask, PPO_B, PPO_T, &opt, OBJREF_PPO_NORM, dlogp, dvalues, &st);
  compare(&e, "loss", -1, loss, OBJREF_PPO_LOSS, REL_FLOAT * OBJREF_PPO_LOSS_SCALE);
  compare_floats(&e, "dlogp", dlogp, objref_ppo_dlogp, objref_ppo_mask, PPO_BT);
  compare_floats(&e, "dvalues", dvalues, objref_ppo_dvalues, objref_ppo_mask, PPO_BT);

  /* rows [0, 2) and [2, B) as two micro-batches */
  struct objective_stats acc = {0};
  fill_float(dlogp, PPO_BT);
  fill_float(dvalues, PPO_BT);
  int k = 2, o = k * PPO_T;
  double split =
      ppo_loss(logp, old, adv, vpred, values, ret, mask, k, PPO_T, &opt, OBJREF_PPO_NORM, dlogp, dvalues, &acc);
  split += ppo_loss(logp + o, old + o, adv + o, vpred + o, values + o, ret + o, mask + o, PPO_B - k, PPO_T, &opt,
                    OBJREF_PPO_NORM, dlogp + o, dvalues + o, &acc);
  compare(&e, "loss (2 micro-batches)", -1, split, OBJREF_PPO_LOSS, REL_FLOAT * OBJREF_PPO_LOSS_SCALE);
  compare_floats(&e, "dlogp (2 micro-batches)", dlogp, objref_ppo_dlogp, objref_ppo_mask, PPO_BT);
  compare_floats(&e, "dvalues (2 micro-batches)", dvalues, objref_ppo_dvalues, objref_ppo_mask, PPO_BT);

  const struct objective_stats *sts[2] = {&st, &acc};
  for (int i = 0; i < 2; i++) {
    compare_count(&e, "stats.tokens", sts[i]->tokens, OBJREF_PPO_TOKENS);
    compare_count(&e, "stats.clipped", sts[i]->clipped, OBJREF_PPO_CLIPPED);
    compare(&e, "stats.value_loss", -1, sts[i]->value_loss, OBJREF_PPO_VALUE_LOSS,
            REL_FLOAT * OBJREF_PPO_VALUE_LOSS);
  }
  report_and_assert(&e);
  free(logp);
  free(old);
  free(vpred);
  free(values);
  free(mask);
}
END_TEST

Suite *objective_reference_suite(void) {
  Suite *s = suite_create("objective_reference");
  TCase *t = tcase_create("trl");
  tcase_add_loop_test(t, pairs_match_trl, 0, (int)OBJREF_PAIR_CASES);
  tcase_add_loop_test(t, bradley_terry_matches_trl, 0, (int)OBJREF_BT_CASES);
  tcase_add_loop_test(t, kto_matches_trl, 0, (int)OBJREF_KTO_CASES);
  tcase_add_test(t, grpo_advantages_match_trl);
  tcase_add_loop_test(t, grpo_loss_matches_trl, 0, (int)OBJREF_GRPO_CASES);
  tcase_add_test(t, ppo_rewards_and_gae_match_trl);
  tcase_add_test(t, ppo_loss_matches_trl);
  suite_add_tcase(s, t);
  return s;
}
