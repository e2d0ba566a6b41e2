/* The preference and RL objectives of runtime/objectives: every returned
 * gradient against central finite differences of the returned loss (double
 * inputs: h 1e-5, relative error under 1e-6; float inputs: h 1e-4 on the
 * float, the step measured after rounding and the loss computed in double,
 * so only the truncation error is left: relative error under 1e-5), on
 * random inputs from fixed seeds; values worked out by hand; micro-batches
 * normalised by the step's NORM adding up to the whole batch; statistics
 * added, not overwritten; padding positions neither read nor given a
 * gradient. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/objectives/objectives.h"
#include "tests/unit/suites.h"

/* xorshift64*: the same numbers on every platform */
static double urand(uint64_t *s, double lo, double hi) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  uint64_t x = *s * 0x2545F4914F6CDD1DULL;
  return lo + (hi - lo) * (double)(x >> 11) / 9007199254740992.0;
}

/* |fd - g| relative to the larger of the two (floor 1e-6, as test_train.c) */
static double rel_err(double fd, double g) { return fabs(fd - g) / fmax(1e-6, fmax(fabs(fd), fabs(g))); }

/* Central differences of LOSS (which reads CTX, writes its gradients to
 * scratch) against G for every element of the double input X. */
static double fd_double(double (*loss)(void *ctx), void *ctx, double *x, const double *g, size_t n) {
  double worst = 0, h = 1e-5;
  for (size_t i = 0; i < n; i++) {
    double keep = x[i], up = keep + h, down = keep - h;
    x[i] = up;
    double lu = loss(ctx);
    x[i] = down;
    double ld = loss(ctx);
    x[i] = keep;
    worst = fmax(worst, rel_err((lu - ld) / (up - down), g[i]));
  }
  return worst;
}

/* The same for a float input: the step is what the float can hold.
 * Padding holds NaN: skipped (its gradient is checked to be 0 apart). */
static double fd_float(double (*loss)(void *ctx), void *ctx, float *x, const float *g, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    float keep = x[i], up = keep + 1e-4f, down = keep - 1e-4f;
    if (isnan(keep)) continue;
    x[i] = up;
    double lu = loss(ctx);
    x[i] = down;
    double ld = loss(ctx);
    x[i] = keep;
    worst = fmax(worst, rel_err((lu - ld) / ((double)up - down), g[i]));
  }
  return worst;
}

#define STATS_FIELDS(X) \
  X(pairs) X(correct) X(margin) X(chosen) X(rejected) X(sequences) X(tokens) X(kl) X(clipped) X(value_loss) X(nll)

/* Every field of A equals B's, to TOL relative (absolute below 1). */
static void stats_eq(const struct objective_stats *a, const struct objective_stats *b, double tol) {
#define STATS_EQ(f) \
  ck_assert_msg(fabs(a->f - b->f) <= tol * fmax(1, fabs(b->f)), "stats " #f ": %.17g != %.17g", a->f, b->f);
  STATS_FIELDS(STATS_EQ)
#undef STATS_EQ
}

/* ---- pair objectives (Bradley-Terry, DPO, IPO, SimPO, ORPO) ---- */

enum { NP = 12 };

struct pairs {
  size_t n;
  double c[NP], r[NP], ref_c[NP], ref_r[NP], lc[NP], lr[NP];
  double beta, param, norm, pair_norm; /* param: label smoothing, gamma or lambda; pair_norm: ORPO's */
  double dc[NP], dr[NP];               /* scratch gradients for the finite differences */
};

/* One objective on pairs [FROM, FROM + N) of P. */
typedef double pair_fn(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                       struct objective_stats *st);

static struct pair_logps view(const struct pairs *p, size_t from) {
  return (struct pair_logps){p->c + from, p->r + from, p->ref_c + from, p->ref_r + from, p->lc + from, p->lr + from};
}

static double bt_pairs(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                       struct objective_stats *st) {
  /* the rewards in c and r, the margins in ref_c */
  return bradley_terry_loss(p->c + from, p->r + from, p->ref_c + from, n, p->norm, dc, dr, st);
}

static double dpo_pairs(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                        struct objective_stats *st) {
  struct pair_logps in = view(p, from);
  return dpo_loss(&in, n, p->beta, p->param, p->norm, dc, dr, st);
}

static double ipo_pairs(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                        struct objective_stats *st) {
  struct pair_logps in = view(p, from);
  return ipo_loss(&in, n, p->beta, p->norm, dc, dr, st);
}

static double simpo_pairs(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                          struct objective_stats *st) {
  struct pair_logps in = view(p, from);
  in.ref_chosen = in.ref_rejected = NULL;
  return simpo_loss(&in, n, p->beta, p->param, p->norm, dc, dr, st);
}

static double orpo_pairs(const struct pairs *p, size_t from, size_t n, double *dc, double *dr,
                         struct objective_stats *st) {
  struct pair_logps in = view(p, from);
  in.ref_chosen = in.ref_rejected = NULL;
  return orpo_loss(&in, n, p->param, p->norm, p->pair_norm, dc, dr, st);
}

/* Random pairs: counted tokens 1..16, averaged log-probs in [-2.5, -0.05],
 * the reference within 0.4 per token of the policy. */
static void random_pairs(struct pairs *p, size_t n, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->n = n;
  for (size_t i = 0; i < n; i++) {
    p->lc[i] = floor(urand(&seed, 1, 17));
    p->lr[i] = floor(urand(&seed, 1, 17));
    p->c[i] = p->lc[i] * urand(&seed, -2.5, -0.05);
    p->r[i] = p->lr[i] * urand(&seed, -2.5, -0.05);
    p->ref_c[i] = p->c[i] + p->lc[i] * urand(&seed, -0.4, 0.4);
    p->ref_r[i] = p->r[i] + p->lr[i] * urand(&seed, -0.4, 0.4);
  }
}

struct pair_ctx {
  pair_fn *f;
  struct pairs *p;
};

static double pair_loss(void *ctx) {
  struct pair_ctx *c = ctx;
  return c->f(c->p, 0, c->p->n, c->p->dc, c->p->dr, NULL);
}

/* Finite differences against both gradients. */
static double pair_fd(pair_fn *f, struct pairs *p) {
  double dc[NP], dr[NP];
  f(p, 0, p->n, dc, dr, NULL);
  struct pair_ctx ctx = {f, p};
  return fmax(fd_double(pair_loss, &ctx, p->c, dc, p->n), fd_double(pair_loss, &ctx, p->r, dr, p->n));
}

/* Two micro-batches normalised by the step's NORM: the shares add up to
 * the whole batch's loss, the gradients are the same, and the statistics
 * of the two added into one struct are the whole batch's. */
static void pair_accumulation(pair_fn *f, const struct pairs *p) {
  double dc[NP], dr[NP], pc[NP], pr[NP];
  struct objective_stats whole = {0}, parts = {0};
  size_t k = p->n / 3;
  double w = f(p, 0, p->n, dc, dr, &whole);
  double s = f(p, 0, k, pc, pr, &parts) + f(p, k, p->n - k, pc + k, pr + k, &parts);
  ck_assert_double_eq_tol(s, w, 1e-12 * fmax(1, fabs(w)));
  for (size_t i = 0; i < p->n; i++) {
    ck_assert(pc[i] == dc[i]);
    ck_assert(pr[i] == dr[i]);
  }
  stats_eq(&parts, &whole, 1e-12);
  ck_assert_double_eq(whole.pairs, (double)p->n);
}

/* Gradients are overwritten: garbage in the outputs does not leak. */
static void pair_overwrites(pair_fn *f, const struct pairs *p) {
  double a[NP], b[NP], c[NP], d[NP];
  for (size_t i = 0; i < NP; i++) a[i] = b[i] = 1e30;
  f(p, 0, p->n, a, b, NULL);
  f(p, 0, p->n, c, d, NULL);
  ck_assert(memcmp(a, c, p->n * sizeof *a) == 0 && memcmp(b, d, p->n * sizeof *b) == 0);
}

static void pair_checks(const char *name, pair_fn *f, struct pairs *p) {
  double err = pair_fd(f, p);
  fprintf(stderr, "%s: max relative error against finite differences %.2e\n", name, err);
  ck_assert_double_lt(err, 1e-6);
  pair_accumulation(f, p);
  pair_overwrites(f, p);
}

START_TEST(bradley_terry) {
  /* differences 1, -1 and a tie */
  struct pairs p = {.n = 3, .c = {2, 0.5, 1}, .r = {1, 1.5, 1}, .norm = 4};
  struct objective_stats st = {0};
  double dc[3], dr[3];
  double loss = bt_pairs(&p, 0, 3, dc, dr, &st);
  ck_assert_double_eq_tol(loss, (log1p(exp(-1)) + log1p(exp(1)) + log(2)) / 4, 1e-15);
  ck_assert_double_eq_tol(dc[0], -1 / (1 + exp(1)) / 4, 1e-15); /* -sigmoid(-1) / norm */
  ck_assert_double_eq_tol(dr[1], 1 / (1 + exp(-1)) / 4, 1e-15);
  ck_assert_double_eq_tol(dc[2], -0.5 / 4, 1e-15);
  ck_assert_double_eq(st.pairs, 3);
  ck_assert_double_eq(st.correct, 1); /* the tie is not correct */
  ck_assert_double_eq(st.margin, 0);  /* 1 - 1 + 0 */
  ck_assert_double_eq(st.chosen, 3.5);
  ck_assert_double_eq(st.rejected, 3.5);
  /* a margin moves the loss, not the statistics */
  p.ref_c[0] = 0.5;
  double loss_m = bt_pairs(&p, 0, 3, dc, dr, &st);
  ck_assert_double_eq_tol(loss_m, (log1p(exp(-0.5)) + log1p(exp(1)) + log(2)) / 4, 1e-15);
  ck_assert_double_eq(st.pairs, 6); /* added */
  ck_assert_double_eq(st.correct, 2);
  ck_assert_double_eq(st.chosen, 7);
  /* without margins (NULL) */
  double r_c[2] = {0, 3}, r_r[2] = {0, -2};
  ck_assert_double_eq_tol(bradley_terry_loss(r_c, r_r, NULL, 2, 2, dc, dr, NULL), (log(2) + log1p(exp(-5))) / 2, 1e-15);

  uint64_t seed = 11;
  struct pairs q = {.n = NP, .norm = 20};
  for (size_t i = 0; i < NP; i++) {
    q.c[i] = urand(&seed, -3, 3);
    q.r[i] = urand(&seed, -3, 3);
    q.ref_c[i] = urand(&seed, -1, 1);
  }
  pair_checks("bradley_terry", bt_pairs, &q);
}
END_TEST

START_TEST(dpo) {
  struct pairs p;
  random_pairs(&p, NP, 1);
  /* policy = reference: log 2 per pair, d = -+ beta (1 - 2 ls) / 2 / norm */
  memcpy(p.c, p.ref_c, sizeof p.c);
  memcpy(p.r, p.ref_r, sizeof p.r);
  double dc[NP], dr[NP];
  for (int k = 0; k < 2; k++) {
    double ls = k ? 0.1 : 0;
    struct objective_stats st = {0};
    struct pair_logps in = view(&p, 0);
    double loss = dpo_loss(&in, 4, 0.1, ls, 8, dc, dr, &st);
    ck_assert_double_eq_tol(loss, 4 * log(2) / 8, 1e-15);
    for (int i = 0; i < 4; i++) {
      ck_assert_double_eq_tol(dc[i], -0.1 * (1 - 2 * ls) / 2 / 8, 1e-16);
      ck_assert_double_eq_tol(dr[i], 0.1 * (1 - 2 * ls) / 2 / 8, 1e-16);
    }
    ck_assert_double_eq(st.correct, 0); /* equal rewards: ties */
    ck_assert_double_eq(st.margin, 0);
  }
  /* one pair by hand: beta 0.5, chosen log-ratio 1, rejected -1, h = 1 */
  struct pair_logps one = {(double[]){-3}, (double[]){-6}, (double[]){-4},
                           (double[]){-5}, (double[]){3},  (double[]){4}};
  struct objective_stats st = {0};
  double loss = dpo_loss(&one, 1, 0.5, 0.2, 2, dc, dr, &st);
  ck_assert_double_eq_tol(loss, (0.8 * log1p(exp(-1)) + 0.2 * log1p(exp(1))) / 2, 1e-15);
  double g = (-0.8 / (1 + exp(1)) + 0.2 / (1 + exp(-1))) / 2;
  ck_assert_double_eq_tol(dc[0], 0.5 * g, 1e-15);
  ck_assert_double_eq_tol(dr[0], -0.5 * g, 1e-15);
  ck_assert_double_eq(st.chosen, 0.5);
  ck_assert_double_eq(st.rejected, -0.5);
  ck_assert_double_eq(st.margin, 1);
  ck_assert_double_eq(st.correct, 1);

  random_pairs(&p, NP, 2);
  p.beta = 0.1, p.param = 0, p.norm = 16;
  pair_checks("dpo", dpo_pairs, &p);
  p.param = 0.15;
  pair_checks("dpo (label smoothing 0.15)", dpo_pairs, &p);
}
END_TEST

START_TEST(ipo) {
  struct pairs p;
  random_pairs(&p, NP, 3);
  memcpy(p.c, p.ref_c, sizeof p.c);
  memcpy(p.r, p.ref_r, sizeof p.r);
  double dc[NP], dr[NP];
  struct pair_logps in = view(&p, 0);
  /* zero log-ratios: (1 / (2 beta))^2 per pair, d = -1 / (beta lc norm) */
  double loss = ipo_loss(&in, 3, 0.25, 6, dc, dr, NULL);
  ck_assert_double_eq_tol(loss, 3 * 4.0 / 6, 1e-14);
  for (int i = 0; i < 3; i++) {
    ck_assert_double_eq_tol(dc[i], -1 / (0.25 * p.lc[i] * 6), 1e-15);
    ck_assert_double_eq_tol(dr[i], 1 / (0.25 * p.lr[i] * 6), 1e-15);
  }
  /* averaged log-ratios 0.5 and -0.25 (over 2 and 4 tokens), beta 1 */
  struct pair_logps one = {(double[]){-3}, (double[]){-6}, (double[]){-4},
                           (double[]){-5}, (double[]){2},  (double[]){4}};
  struct objective_stats st = {0};
  loss = ipo_loss(&one, 1, 1, 1, dc, dr, &st);
  ck_assert_double_eq_tol(loss, 0.25 * 0.25, 1e-15); /* (0.75 - 0.5)^2 */
  ck_assert_double_eq_tol(dc[0], 0.5 / 2, 1e-15);
  ck_assert_double_eq_tol(dr[0], -0.5 / 4, 1e-15);
  ck_assert_double_eq(st.chosen, 0.5);
  ck_assert_double_eq(st.rejected, -0.25);
  ck_assert_double_eq(st.margin, 0.75);

  random_pairs(&p, NP, 4);
  p.beta = 0.1, p.norm = 24;
  pair_checks("ipo", ipo_pairs, &p);
}
END_TEST

START_TEST(simpo) {
  /* equal averages (-1 over 2 and over 5 tokens): -log sigmoid(-gamma) */
  struct pair_logps in = {(double[]){-2}, (double[]){-5}, NULL, NULL, (double[]){2}, (double[]){5}};
  double dc[NP], dr[NP];
  struct objective_stats st = {0};
  double loss = simpo_loss(&in, 1, 2.0, 0.5, 3, dc, dr, &st);
  ck_assert_double_eq_tol(loss, log1p(exp(0.5)) / 3, 1e-15);
  double s = 1 / (1 + exp(-0.5)); /* sigmoid(gamma) */
  ck_assert_double_eq_tol(dc[0], -s * 2.0 / 2 / 3, 1e-15);
  ck_assert_double_eq_tol(dr[0], s * 2.0 / 5 / 3, 1e-15);
  ck_assert_double_eq(st.chosen, -2);
  ck_assert_double_eq(st.rejected, -2);
  ck_assert_double_eq(st.correct, 0);

  struct pairs p;
  random_pairs(&p, NP, 5);
  p.beta = 2.0, p.param = 0.8, p.norm = 30;
  pair_checks("simpo", simpo_pairs, &p);
}
END_TEST

START_TEST(orpo) {
  /* equal averages: log_odds 0, the odds term lambda log 2 per pair */
  struct pair_logps in = {(double[]){-1, -6}, (double[]){-2, -3}, NULL, NULL, (double[]){2, 3}, (double[]){4, 1.5}};
  double dc[2], dr[2];
  struct objective_stats st = {0};
  double loss = orpo_loss(&in, 2, 0.1, 5, 2, dc, dr, &st);
  ck_assert_double_eq_tol(loss, 7.0 / 5 + 0.1 * 2 * log(2) / 2, 1e-15);
  /* d/dc: -1/TOKEN_NORM - lambda/2 / (1 - e^a) / lc / PAIR_NORM */
  ck_assert_double_eq_tol(dc[0], -1.0 / 5 - 0.05 / (1 - exp(-0.5)) / 2 / 2, 1e-15);
  ck_assert_double_eq_tol(dr[0], 0.05 / (1 - exp(-0.5)) / 4 / 2, 1e-15);
  ck_assert_double_eq_tol(dc[1], -1.0 / 5 - 0.05 / (1 - exp(-2)) / 3 / 2, 1e-15);
  ck_assert_double_eq(st.nll, 7);
  ck_assert_double_eq(st.pairs, 2);
  ck_assert_double_eq_tol(st.chosen, 0.1 * (-0.5 - 2), 1e-15);
  ck_assert_double_eq_tol(st.rejected, 0.1 * (-0.5 - 2), 1e-15);
  /* log(1 - e^a) where a is near 0 (p near 1) and very negative */
  struct pair_logps edge = {(double[]){-1e-12}, (double[]){-80}, NULL, NULL, (double[]){1}, (double[]){1}};
  loss = orpo_loss(&edge, 1, 1, 1, 1, dc, dr, NULL);
  ck_assert(isfinite(loss) && isfinite(dc[0]) && isfinite(dr[0]));
  /* log_odds = -1e-12 - log(1e-12) + 80 - log1p(-e^-80) ~ 107.63: log sigmoid ~ 0 */
  ck_assert_double_eq_tol(loss, 1e-12 + log1p(exp(-(-1e-12 - log(1e-12) + 80))), 1e-15);

  struct pairs p;
  random_pairs(&p, NP, 6);
  p.param = 0.1, p.norm = 0;
  for (size_t i = 0; i < NP; i++) p.norm += p.lc[i];
  p.pair_norm = NP;
  pair_checks("orpo", orpo_pairs, &p);
  p.param = 2;
  pair_checks("orpo (lambda 2)", orpo_pairs, &p);
}
END_TEST

/* ---- KTO ---- */

struct kto_ctx {
  size_t n;
  double logp[NP], ref[NP], z0, beta, wd, wu, norm, d[NP];
  bool desirable[NP];
};

static double kto_eval(struct kto_ctx *k, size_t from, size_t n, double *d, struct objective_stats *st) {
  return kto_loss(k->logp + from, k->ref + from, k->desirable + from, n, k->z0, k->beta, k->wd, k->wu, k->norm, d, st);
}

static double kto_fd_loss(void *ctx) {
  struct kto_ctx *k = ctx;
  return kto_eval(k, 0, k->n, k->d, NULL);
}

START_TEST(kto) {
  double pk[3] = {-10, -12, -8}, rk[3] = {-11, -11, -11};
  ck_assert_double_eq(kto_reference_point(pk, rk, 3), 1); /* (1 - 1 + 3) / 3 */
  double pk2[2] = {-12, -11}, rk2[2] = {-11, -11};
  ck_assert_double_eq(kto_reference_point(pk2, rk2, 2), 0); /* clamped at 0 */
  ck_assert_double_eq(kto_reference_point(NULL, NULL, 0), 0);

  /* r = z0: the loss w/2, the gradient -+ w beta / 4 / norm */
  struct kto_ctx k = {.n = 2,
                      .logp = {-4, -7},
                      .ref = {-5, -8},
                      .desirable = {true, false},
                      .z0 = 1,
                      .beta = 0.1,
                      .wd = 1,
                      .wu = 1.5,
                      .norm = 4};
  double d[NP];
  struct objective_stats st = {0};
  ck_assert_double_eq_tol(kto_eval(&k, 0, 2, d, &st), (0.5 + 0.75) / 4, 1e-15);
  ck_assert_double_eq_tol(d[0], -0.1 / 4 / 4, 1e-16);
  ck_assert_double_eq_tol(d[1], 1.5 * 0.1 / 4 / 4, 1e-16);
  ck_assert_double_eq(st.pairs, 2);
  ck_assert_double_eq(st.correct, 0); /* r = z0 is neither above nor below */
  ck_assert_double_eq_tol(st.chosen, 0.1, 1e-16);
  ck_assert_double_eq_tol(st.rejected, 0.1, 1e-16);
  /* desirable above z0 and undesirable below it are correct */
  k.ref[0] = -6, k.ref[1] = -7.5;
  kto_eval(&k, 0, 2, d, &st);
  ck_assert_double_eq(st.pairs, 4);
  ck_assert_double_eq(st.correct, 2);
  ck_assert_double_eq_tol(st.chosen, 0.1 + 0.2, 1e-15);
  ck_assert_double_eq_tol(st.rejected, 0.1 + 0.05, 1e-15);
  ck_assert_double_eq(st.margin, 0); /* not KTO's */

  uint64_t seed = 7;
  k = (struct kto_ctx){.n = NP, .beta = 0.5, .wd = 1, .wu = 1.33, .norm = 2 * NP};
  for (size_t i = 0; i < NP; i++) {
    k.logp[i] = urand(&seed, -40, -5);
    k.ref[i] = k.logp[i] + urand(&seed, -4, 4);
    k.desirable[i] = urand(&seed, 0, 1) < 0.5;
  }
  k.desirable[0] = true, k.desirable[1] = false;
  double pol[4], ref[4];
  for (int i = 0; i < 4; i++) pol[i] = urand(&seed, -30, -10), ref[i] = pol[i] - urand(&seed, -1, 2);
  k.z0 = kto_reference_point(pol, ref, 4);
  ck_assert_double_gt(k.z0, 0);
  kto_eval(&k, 0, NP, d, NULL);
  double err = fd_double(kto_fd_loss, &k, k.logp, d, NP);
  fprintf(stderr, "kto: max relative error against finite differences %.2e\n", err);
  ck_assert_double_lt(err, 1e-6);
  /* micro-batches */
  double dp[NP];
  struct objective_stats whole = {0}, parts = {0};
  double w = kto_eval(&k, 0, NP, d, &whole);
  double s = kto_eval(&k, 0, 5, dp, &parts) + kto_eval(&k, 5, NP - 5, dp + 5, &parts);
  ck_assert_double_eq_tol(s, w, 1e-14);
  ck_assert(memcmp(d, dp, sizeof d) == 0);
  stats_eq(&parts, &whole, 1e-12);
}
END_TEST

/* ---- GRPO ---- */

START_TEST(grpo_advantages_by_hand) {
  double r[12] = {1, 0, 0, 1, 0.3, 0.3, 0.3, 0.3, 2, 4, 6, 8}, a[12];
  ck_assert_uint_eq(grpo_advantages(r, 3, 4, a), 1);
  /* mean 0.5, unbiased std sqrt(1/3) */
  double v = 0.5 / (sqrt(1.0 / 3) + 1e-4);
  ck_assert_double_eq_tol(v, 0.86587542976, 1e-10);
  ck_assert_double_eq_tol(a[0], v, 1e-15);
  ck_assert_double_eq_tol(a[1], -v, 1e-15);
  ck_assert_double_eq_tol(a[2], -v, 1e-15);
  ck_assert_double_eq_tol(a[3], v, 1e-15);
  for (int i = 4; i < 8; i++) ck_assert(a[i] == 0); /* constant: exactly 0 */
  /* mean 5, unbiased std sqrt(20/3) */
  double s = sqrt(20.0 / 3) + 1e-4;
  ck_assert_double_eq_tol(a[8], -3 / s, 1e-15);
  ck_assert_double_eq_tol(a[10], 1 / s, 1e-15);
  /* groups of one are constant */
  ck_assert_uint_eq(grpo_advantages(r, 3, 1, a), 3);
  ck_assert(a[0] == 0 && a[1] == 0 && a[2] == 0);
}
END_TEST

enum { RB = 4, RT = 8, RN = RB * RT };

struct rl {
  int B, T;
  float logp[RN], old[RN], ref[RN], mask[RN], values[RN], old_values[RN], returns[RN], adv[RN];
  double seq_adv[RB], norm;
  struct grpo_options g;
  struct ppo_options p;
  float d1[RN], d2[RN]; /* scratch gradients */
};

static double grpo_eval(struct rl *c, int b0, int nb, float *dlogp, struct objective_stats *st) {
  size_t o = (size_t)b0 * c->T;
  return grpo_loss(c->logp + o, c->old + o, c->ref + o, c->mask + o, c->seq_adv + b0, nb, c->T, &c->g, c->norm, dlogp,
                   st);
}

static double grpo_fd_loss(void *ctx) {
  struct rl *c = ctx;
  return grpo_eval(c, 0, c->B, c->d1, NULL);
}

START_TEST(grpo_by_hand) {
  /* ratio 1 and logp = ref: the loss is -A per token, the gradient -A
   * (d ratio / d logp = ratio = 1), normalised as each mode says */
  struct rl c = {.B = 2, .T = 4, .g = {.epsilon = 0.2, .beta = 0.04}};
  float mask[8] = {1, 1, 1, 0, 1, 1, 0, 0};
  memcpy(c.mask, mask, sizeof mask);
  for (int i = 0; i < 8; i++) c.logp[i] = c.old[i] = c.ref[i] = -0.25f * (float)(i + 1);
  c.logp[3] = c.old[3] = c.ref[3] = NAN; /* padding is not read */
  c.seq_adv[0] = 1, c.seq_adv[1] = -0.5;
  float d[8];
  for (int i = 0; i < 8; i++) d[i] = 99; /* overwritten, padding included */
  struct objective_stats st = {0};
  c.g.normalize = GRPO_PER_SEQUENCE, c.norm = 2; /* (-1 + 0.5) / 2 */
  ck_assert_double_eq_tol(grpo_eval(&c, 0, 2, d, &st), -0.25, 1e-15);
  ck_assert_float_eq_tol(d[0], -1.0f / 3 / 2, 1e-8);
  ck_assert_float_eq_tol(d[4], 0.5f / 2 / 2, 1e-8);
  for (int i = 0; i < 8; i++)
    if (mask[i] == 0) ck_assert(d[i] == 0);
  ck_assert_double_eq(st.sequences, 2);
  ck_assert_double_eq(st.tokens, 5);
  ck_assert_double_eq(st.kl, 0);
  ck_assert_double_eq(st.clipped, 0);
  c.g.normalize = GRPO_PER_TOKEN, c.norm = 5; /* (-3 + 1) / 5 */
  ck_assert_double_eq_tol(grpo_eval(&c, 0, 2, d, &st), -0.4, 1e-15);
  ck_assert_float_eq_tol(d[1], -0.2f, 1e-8);
  ck_assert_float_eq_tol(d[5], 0.1f, 1e-8);
  c.g.normalize = GRPO_FIXED, c.g.max_new_tokens = 4, c.norm = 2; /* -2 / (2 x 4) */
  ck_assert_double_eq_tol(grpo_eval(&c, 0, 2, d, &st), -0.25, 1e-15);
  ck_assert_float_eq_tol(d[2], -1.0f / 8, 1e-8);
  ck_assert_float_eq_tol(d[5], 0.5f / 8, 1e-8);
  ck_assert_double_eq(st.sequences, 6); /* added over the three calls */
  ck_assert_double_eq(st.tokens, 15);

  /* one token each: ratio e^0.5 and e^-0.5 (outside [0.8, 1.2]) with
   * A = +-1, no KL: the clipped branch is taken where the ratio left the
   * window on the advantage's side, and gives no gradient */
  struct rl e = {.B = 4, .T = 1, .g = {.epsilon = 0.2, .normalize = GRPO_PER_TOKEN}, .norm = 1};
  float lp[4] = {-1, -1, -1, -1}, old[4] = {-1.5f, -1.5f, -0.5f, -0.5f};
  double A[4] = {1, -1, -1, 1};
  for (int i = 0; i < 4; i++) e.logp[i] = lp[i], e.old[i] = old[i], e.ref[i] = lp[i], e.mask[i] = 1;
  memcpy(e.seq_adv, A, sizeof A);
  double up = exp((double)lp[0] - old[0]), down = exp((double)lp[2] - old[2]);
  memset(&st, 0, sizeof st);
  double loss = grpo_eval(&e, 0, 4, d, &st);
  ck_assert_double_eq_tol(loss, -1.2 + up + 0.8 - down, 1e-7);
  ck_assert(d[0] == 0);                             /* high, A > 0: clipped */
  ck_assert_float_eq_tol(d[1], (float)up, 1e-6);    /* high, A < 0: -ratio A */
  ck_assert(d[2] == 0);                             /* low, A < 0: clipped */
  ck_assert_float_eq_tol(d[3], (float)-down, 1e-6); /* low, A > 0 */
  ck_assert_double_eq(st.clipped, 2);

  /* the KL term alone: ref - logp = 0.3, k3 = e^0.3 - 1.3, d = 1 - e^0.3 */
  struct rl k = {.B = 1, .T = 1, .g = {.epsilon = 0.2, .beta = 0.5, .normalize = GRPO_PER_TOKEN}, .norm = 1};
  k.logp[0] = k.old[0] = -1, k.ref[0] = -0.7f, k.mask[0] = 1;
  double x = (double)k.ref[0] - k.logp[0];
  memset(&st, 0, sizeof st);
  ck_assert_double_eq_tol(grpo_eval(&k, 0, 1, d, &st), 0.5 * (exp(x) - x - 1), 1e-15);
  ck_assert_float_eq_tol(d[0], (float)(0.5 * (1 - exp(x))), 1e-8);
  ck_assert_double_eq_tol(st.kl, -x, 1e-15);
}
END_TEST

/* B x T with the first 1 + b positions of row b a prompt (mask 0) and the
 * last b a padding (mask 0); NaN where the mask is 0. Ratios e^off with
 * off in [-0.6, 0.6], kept 0.03 away from the clip window's edges. */
static void random_rollout(struct rl *c, uint64_t seed, double eps) {
  for (int b = 0; b < c->B; b++) {
    c->seq_adv[b] = urand(&seed, -1.5, 1.5);
    for (int t = 0; t < c->T; t++) {
      int i = b * c->T + t;
      c->mask[i] = t > b && t < c->T - b;
      double off;
      do off = urand(&seed, -0.6, 0.6);
      while (fabs(exp(off) - (1 + eps)) < 0.03 || fabs(exp(off) - (1 - eps)) < 0.03);
      c->logp[i] = (float)urand(&seed, -4, -0.1);
      c->old[i] = (float)(c->logp[i] - off);
      c->ref[i] = (float)(c->logp[i] + urand(&seed, -0.5, 0.5));
      c->adv[i] = (float)urand(&seed, -2, 2);
      c->old_values[i] = (float)urand(&seed, -1, 1);
      c->returns[i] = (float)urand(&seed, -1.5, 1.5);
      double v, vc, clip = c->p.clip_value;
      do { /* away from the value window's edges and from a tie of the two branches */
        v = c->old_values[i] + urand(&seed, -0.5, 0.5);
        vc = fmin(fmax(v, c->old_values[i] - clip), c->old_values[i] + clip);
      } while (fabs(fabs(v - c->old_values[i]) - clip) < 0.03 ||
               (vc != v && fabs(fabs(v - c->returns[i]) - fabs(vc - c->returns[i])) < 0.03));
      c->values[i] = (float)v;
      if (c->mask[i] == 0)
        c->logp[i] = c->old[i] = c->ref[i] = c->adv[i] = c->values[i] = c->old_values[i] = c->returns[i] = NAN;
    }
  }
  c->seq_adv[0] = 1.25, c->seq_adv[1] = -0.75; /* both signs */
}

START_TEST(grpo_gradients) {
  const enum grpo_normalize modes[3] = {GRPO_PER_SEQUENCE, GRPO_PER_TOKEN, GRPO_FIXED};
  const char *names[3] = {"grpo", "grpo (bnpo)", "grpo (dr_grpo)"};
  for (int m = 0; m < 3; m++) {
    struct rl c = {.B = RB, .T = RT, .g = {.epsilon = 0.2, .beta = 0.04, .normalize = modes[m], .max_new_tokens = RT}};
    random_rollout(&c, 100 + (uint64_t)m, 0.2);
    double tokens = 0;
    for (int i = 0; i < RN; i++) tokens += c.mask[i];
    c.norm = modes[m] == GRPO_PER_TOKEN ? tokens : RB;
    float d[RN];
    struct objective_stats st = {0};
    grpo_eval(&c, 0, RB, d, &st);
    /* the cases the draw covers: clipped tokens, and unclipped ones outside the window */
    int outside = 0;
    for (int i = 0; i < RN; i++) {
      if (c.mask[i] == 0) {
        ck_assert(d[i] == 0);
        continue;
      }
      double ratio = exp((double)c.logp[i] - c.old[i]);
      outside += ratio < 0.8 || ratio > 1.2;
    }
    ck_assert_double_gt(st.clipped, 0);
    ck_assert_double_gt(outside, st.clipped);
    double err = fd_float(grpo_fd_loss, &c, c.logp, d, RN);
    fprintf(stderr, "%s: max relative error against finite differences %.2e (%g of %g tokens clipped)\n", names[m], err,
            st.clipped, st.tokens);
    ck_assert_double_lt(err, 1e-5);
    /* micro-batches of 1 and 3 rows */
    float dp[RN];
    struct objective_stats whole = {0}, parts = {0};
    double w = grpo_eval(&c, 0, RB, d, &whole);
    double s = grpo_eval(&c, 0, 1, dp, &parts) + grpo_eval(&c, 1, RB - 1, dp + RT, &parts);
    ck_assert_double_eq_tol(s, w, 1e-12);
    ck_assert(memcmp(d, dp, sizeof d) == 0);
    stats_eq(&parts, &whole, 1e-12);
    ck_assert_double_eq(whole.sequences, RB);
    ck_assert_double_eq(whole.tokens, tokens);
  }
}
END_TEST

/* ---- PPO ---- */

START_TEST(ppo_rewards_by_hand) {
  float old[8] = {NAN, -1, -2, -0.5f, NAN, -1, -3, NAN}, ref[8] = {NAN, -1.5f, -1, -0.5f, NAN, -2, -2, NAN};
  float mask[8] = {0, 1, 1, 1, 0, 1, 1, 0}, r[8];
  double score[2] = {2, -1};
  for (int i = 0; i < 8; i++) r[i] = 99;
  ppo_rewards(old, ref, mask, score, 2, 4, 0.05, r);
  float want[8] = {0, -0.025f, 0.05f, 2, 0, -0.05f, 0.05f - 1, 0};
  for (int i = 0; i < 8; i++) ck_assert_float_eq_tol(r[i], want[i], 1e-7);
}
END_TEST

START_TEST(ppo_gae_by_hand) {
  /* one row: a prompt token, three response tokens, a padding token whose
   * value must not be read as V past the last token */
  float rewards[5] = {0, 0, 0, 1, 0}, values[5] = {7, 0.5f, 0.25f, 0.75f, 9}, mask[5] = {0, 1, 1, 1, 0};
  float adv[5], ret[5];
  ppo_gae(rewards, values, mask, 1, 5, 1.0, 0.95, adv, ret);
  /* by hand, gamma 1, lambda 0.95:
   * t=3: delta = 1 + 0 - 0.75 = 0.25, A = 0.25
   * t=2: delta = 0 + 0.75 - 0.25 = 0.5, A = 0.5 + 0.95 x 0.25 = 0.7375
   * t=1: delta = 0 + 0.25 - 0.5 = -0.25, A = -0.25 + 0.95 x 0.7375 = 0.450625
   * returns A + V: 0.950625, 0.9875, 1 */
  ck_assert_float_eq_tol(ret[1], 0.950625f, 1e-7);
  ck_assert_float_eq_tol(ret[2], 0.9875f, 1e-7);
  ck_assert_float_eq_tol(ret[3], 1.0f, 1e-7);
  ck_assert(ret[0] == 0 && ret[4] == 0 && adv[0] == 0 && adv[4] == 0);
  /* whitened: mean 0.479375, unbiased variance 0.12006796875 / 2 =
   * 0.060033984375; (A - mean) / sqrt(var + 1e-8) */
  double sd = sqrt(0.060033984375 + 1e-8);
  ck_assert_double_eq_tol(adv[1], (0.450625 - 0.479375) / sd, 1e-6);
  ck_assert_double_eq_tol(adv[2], (0.7375 - 0.479375) / sd, 1e-6);
  ck_assert_double_eq_tol(adv[3], (0.25 - 0.479375) / sd, 1e-6);
  ck_assert_double_eq_tol(adv[1], -0.11733814790694416, 1e-6);
  ck_assert_double_eq_tol(adv[2], 1.0534925018601706, 1e-6);
  ck_assert_double_eq_tol(adv[3], -0.9361543539532269, 1e-6);
  /* a single counted token (where TRL's masked_var raises): variance 0,
   * the whitened advantage 0; the return is still r - V */
  float one_mask[5] = {0, 0, 1, 0, 0};
  ppo_gae(rewards, values, one_mask, 1, 5, 1.0, 0.95, adv, ret);
  ck_assert(adv[2] == 0);
  ck_assert_float_eq_tol(ret[2], 0.0f, 1e-7); /* A = 0 - 0.25, return A + V = 0 */

  /* several rows: gamma = lambda = 1 makes the returns the sums of the
   * rewards to come, whatever the values; the whitened advantages have
   * masked mean 0 and unbiased variance 1 */
  struct rl c = {.B = RB, .T = RT, .p = {.clip_value = 0.2}};
  random_rollout(&c, 42, 0.2);
  float rw[RN];
  double score[RB] = {1, -2, 0.5, 3};
  ppo_rewards(c.old, c.ref, c.mask, score, RB, RT, 0.1, rw);
  ppo_gae(rw, c.values, c.mask, RB, RT, 1.0, 1.0, c.adv, c.returns);
  double n = 0, mean = 0, ss = 0;
  for (int b = 0; b < RB; b++) {
    double to_come = 0;
    for (int t = RT - 1; t >= 0; t--) {
      int i = b * RT + t;
      if (c.mask[i] == 0) {
        ck_assert(c.adv[i] == 0 && c.returns[i] == 0);
        continue;
      }
      to_come += rw[i];
      ck_assert_double_eq_tol(c.returns[i], to_come, 1e-5);
      n += 1, mean += c.adv[i];
    }
  }
  mean /= n;
  for (int i = 0; i < RN; i++)
    if (c.mask[i] != 0) ss += (c.adv[i] - mean) * (c.adv[i] - mean);
  ck_assert_double_eq_tol(mean, 0, 1e-6);
  ck_assert_double_eq_tol(ss / (n - 1), 1, 1e-5);
}
END_TEST

static double ppo_eval(struct rl *c, int b0, int nb, float *dlogp, float *dvalues, struct objective_stats *st) {
  size_t o = (size_t)b0 * c->T;
  return ppo_loss(c->logp + o, c->old + o, c->adv + o, c->values + o, c->old_values + o, c->returns + o, c->mask + o,
                  nb, c->T, &c->p, c->norm, dlogp, dvalues, st);
}

static double ppo_fd_loss(void *ctx) {
  struct rl *c = ctx;
  return ppo_eval(c, 0, c->B, c->d1, c->d2, NULL);
}

START_TEST(ppo_loss_by_hand) {
  /* ratio 1 and v = R: -A per token; value clipping as TRL */
  struct rl c = {.B = 1, .T = 4, .p = {.clip = 0.2, .clip_value = 0.2, .vf_coef = 0.1}, .norm = 3};
  float lp[4] = {-1, -2, -0.5f, NAN}, adv[4] = {0.5f, -1, 2, NAN}, v[4] = {0.25f, 0.5f, 0.5f, NAN},
        vo[4] = {0, 0, 0, NAN}, R[4] = {0.25f, 0, 1, NAN}, mask[4] = {1, 1, 1, 0};
  for (int i = 0; i < 4; i++)
    c.logp[i] = c.old[i] = lp[i], c.adv[i] = adv[i], c.values[i] = v[i], c.old_values[i] = vo[i], c.returns[i] = R[i],
    c.mask[i] = mask[i];
  /* token 0: v = R (vf 0; clipped 0.2, (0.2 - 0.25)^2 = 0.0025 is larger:
   * vf = 0.00125, no gradient since v is outside the window [-0.2, 0.2]);
   * token 1: v = 0.5, R = 0: 0.25 against (0.2)^2: vf 0.125, d = v - R;
   * token 2: v = 0.5, R = 1: 0.25 against (0.8)^2 = 0.64: vf 0.32, d = 0 */
  float dl[4] = {99, 99, 99, 99}, dv[4] = {99, 99, 99, 99}; /* overwritten, padding included */
  struct objective_stats st = {0};
  double loss = ppo_eval(&c, 0, 1, dl, dv, &st);
  ck_assert_double_eq_tol(loss, (-0.5 + 1 - 2 + 0.1 * (0.00125 + 0.125 + 0.32)) / 3, 1e-8);
  ck_assert_float_eq_tol(dl[0], -0.5f / 3, 1e-8);
  ck_assert_float_eq_tol(dl[1], 1.0f / 3, 1e-8);
  ck_assert(dv[0] == 0 && dv[2] == 0 && dl[3] == 0 && dv[3] == 0);
  ck_assert_float_eq_tol(dv[1], 0.1f * 0.5f / 3, 1e-8);
  ck_assert_double_eq(st.tokens, 3);
  ck_assert_double_eq(st.clipped, 0);
  ck_assert_double_eq_tol(st.value_loss, 0.00125 + 0.125 + 0.32, 1e-8);
  /* ratio e^0.5 with A > 0 and A < 0: clipped (pg = -1.2 A, no gradient)
   * for the first, -A ratio for the second */
  c.old[0] = -1.5f, c.old[1] = -2.5f;
  c.adv[1] = -1;
  double up = exp(0.5);
  memset(&st, 0, sizeof st);
  loss = ppo_eval(&c, 0, 1, dl, dv, &st);
  ck_assert_double_eq_tol(loss, (-0.5 * 1.2 + up - 2 + 0.1 * (0.00125 + 0.125 + 0.32)) / 3, 1e-7);
  ck_assert(dl[0] == 0);
  ck_assert_float_eq_tol(dl[1], (float)(up / 3), 1e-7);
  ck_assert_double_eq(st.clipped, 1);
}
END_TEST

START_TEST(ppo_gradients) {
  struct rl c = {.B = RB, .T = RT, .p = {.clip = 0.2, .clip_value = 0.2, .vf_coef = 0.1}};
  random_rollout(&c, 77, 0.2);
  double tokens = 0;
  for (int i = 0; i < RN; i++) tokens += c.mask[i];
  c.norm = tokens;
  float dl[RN], dv[RN];
  struct objective_stats st = {0};
  ppo_eval(&c, 0, RB, dl, dv, &st);
  int value_clipped = 0, value_outside = 0;
  for (int i = 0; i < RN; i++) {
    if (c.mask[i] == 0) {
      ck_assert(dl[i] == 0 && dv[i] == 0);
      continue;
    }
    value_clipped += dv[i] == 0;
    value_outside += fabs((double)c.values[i] - c.old_values[i]) > 0.2;
  }
  ck_assert_double_gt(st.clipped, 0);
  ck_assert_int_gt(value_clipped, 0);
  ck_assert_int_gt(value_outside, value_clipped);
  double el = fd_float(ppo_fd_loss, &c, c.logp, dl, RN), ev = fd_float(ppo_fd_loss, &c, c.values, dv, RN);
  fprintf(stderr,
          "ppo: max relative error against finite differences %.2e (logp), %.2e (values); %g of %g tokens clipped, "
          "%d values\n",
          el, ev, st.clipped, st.tokens, value_clipped);
  ck_assert_double_lt(el, 1e-5);
  ck_assert_double_lt(ev, 1e-5);
  float pl[RN], pv[RN];
  struct objective_stats whole = {0}, parts = {0};
  double w = ppo_eval(&c, 0, RB, dl, dv, &whole);
  double s = ppo_eval(&c, 0, 2, pl, pv, &parts) + ppo_eval(&c, 2, RB - 2, pl + 2 * RT, pv + 2 * RT, &parts);
  ck_assert_double_eq_tol(s, w, 1e-12);
  ck_assert(memcmp(dl, pl, sizeof dl) == 0 && memcmp(dv, pv, sizeof dv) == 0);
  stats_eq(&parts, &whole, 1e-12);
  ck_assert_double_eq(whole.tokens, tokens);
}
END_TEST

Suite *objectives_suite(void) {
  Suite *s = suite_create("objectives");
  TCase *p = tcase_create("preference");
  tcase_add_test(p, bradley_terry);
  tcase_add_test(p, dpo);
  tcase_add_test(p, ipo);
  tcase_add_test(p, simpo);
  tcase_add_test(p, orpo);
  tcase_add_test(p, kto);
  suite_add_tcase(s, p);
  TCase *r = tcase_create("rl");
  tcase_add_test(r, grpo_advantages_by_hand);
  tcase_add_test(r, grpo_by_hand);
  tcase_add_test(r, grpo_gradients);
  tcase_add_test(r, ppo_rewards_by_hand);
  tcase_add_test(r, ppo_gae_by_hand);
  tcase_add_test(r, ppo_loss_by_hand);
  tcase_add_test(r, ppo_gradients);
  suite_add_tcase(s, r);
  return s;
}
