#include "runtime/preference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/objectives/objectives.h"
#include "runtime/pairs.h"

static const char *const kind_names[] = {
    [PREF_REWARD_MODEL] = "reward_model", [PREF_DPO] = "dpo", [PREF_IPO] = "ipo",
    [PREF_KTO] = "kto", [PREF_SIMPO] = "simpo", [PREF_ORPO] = "orpo",
};

bool preference_kind_find(const char *name, enum preference_kind *out) {
  for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
    if (strcmp(kind_names[i], name) == 0) {
      *out = (enum preference_kind)i;
      return true;
    }
  return false;
}

bool preference_uses_head(enum preference_kind kind) { return kind == PREF_REWARD_MODEL; }

bool preference_uses_reference(enum preference_kind kind) {
  return kind == PREF_DPO || kind == PREF_IPO || kind == PREF_KTO;
}

static double number(json_t *settings, const char *key, double fallback) {
  json_t *v = json_object_get(json_object_get(settings, key), "value");
  return json_is_number(v) ? json_number_value(v) : fallback;
}

/* Pairs or examples of B: the first normaliser; ORPO's second is the
 * chosen tokens, for its NLL term. */
static void units(void *ctx, const struct batch *b, double u[2]) {
  const struct preference_objective *p = ctx;
  if (p->kind == PREF_KTO) {
    u[0] = b->B;
    return;
  }
  u[0] = b->B / 2;
  if (p->kind == PREF_ORPO)
    for (int r = 0; r < b->B; r += 2) u[1] += b->rows[r].counted;
}

/* KTO: the reference point of B from its mismatched rows, under the
 * current policy, without gradient. */
static void prepare(void *ctx, struct backend *be, const struct batch *b) {
  struct preference_objective *p = ctx;
  if (p->kind != PREF_KTO || !b->kl) return;
  const struct batch *kl = b->kl;
  be->ops->forward(be, kl->tokens, kl->targets, kl->B, kl->T, p->kl_logp, NULL);
  double *policy = p->a, *ref = p->b;
  row_sums(kl, p->kl_logp, policy);
  for (int r = 0; r < kl->B; r++) ref[r] = kl->rows[r].ref;
  p->z0 = kto_reference_point(policy, ref, (size_t)kl->B);
}

/* Spreads the gradient D [rows] of each row's sum over its counted tokens. */
static void spread(const struct batch *b, const double *d, float *dlogp) {
  for (int r = 0; r < b->B; r++) {
    const float *w = b->weights + (size_t)r * b->T;
    float *out = dlogp + (size_t)r * b->T;
    for (int t = 0; t < b->T; t++) out[t] = w[t] != 0 ? (float)d[r] : 0.0f;
  }
}

static double reward_model_loss(struct preference_objective *p, const struct batch *b, const float *values,
                                double norm, float *dvalues, struct objective_stats *st) {
  int n = b->B / 2;
  double *rc = p->a, *rr = p->b, *margin = p->c;
  for (int i = 0; i < n; i++) {
    rc[i] = values[(size_t)(2 * i) * b->T + b->rows[2 * i].last];
    rr[i] = values[(size_t)(2 * i + 1) * b->T + b->rows[2 * i + 1].last];
    margin[i] = b->rows[2 * i].margin;
  }
  double loss = bradley_terry_loss(rc, rr, p->use_margin ? margin : NULL, (size_t)n, norm, p->d_a, p->d_b, st);
  memset(dvalues, 0, (size_t)b->B * b->T * sizeof *dvalues);
  for (int i = 0; i < n; i++) {
    dvalues[(size_t)(2 * i) * b->T + b->rows[2 * i].last] = (float)p->d_a[i];
    dvalues[(size_t)(2 * i + 1) * b->T + b->rows[2 * i + 1].last] = (float)p->d_b[i];
  }
  return loss;
}

static double kto_share(struct preference_objective *p, const struct batch *b, const float *logp, double norm,
                        float *dlogp, struct objective_stats *st) {
  row_sums(b, logp, p->sums);
  for (int r = 0; r < b->B; r++) p->ref[r] = b->rows[r].ref, p->flags[r] = b->rows[r].desirable;
  double loss = kto_loss(p->sums, p->ref, p->flags, (size_t)b->B, p->z0, p->beta, p->desirable_weight,
                         p->undesirable_weight, norm, p->d_a, st);
  spread(b, p->d_a, dlogp);
  return loss;
}

static double pair_share(struct preference_objective *p, const struct batch *b, const float *logp,
                         const double norm[2], float *dlogp, struct objective_stats *st) {
  int n = b->B / 2;
  row_sums(b, logp, p->sums);
  double *c = p->a, *r = p->b, *ref_c = p->c, *ref_r = p->e, *lc = p->lens, *lr = p->lens + n;
  for (int i = 0; i < n; i++) {
    c[i] = p->sums[2 * i], r[i] = p->sums[2 * i + 1];
    ref_c[i] = b->rows[2 * i].ref, ref_r[i] = b->rows[2 * i + 1].ref;
    lc[i] = fmax(1, b->rows[2 * i].counted), lr[i] = fmax(1, b->rows[2 * i + 1].counted);
  }
  struct pair_logps in = {.chosen = c, .rejected = r, .ref_chosen = ref_c, .ref_rejected = ref_r,
                          .chosen_len = lc, .rejected_len = lr};
  double *dc = p->d_a, *dr = p->d_b, loss = 0;
  switch (p->kind) {
  case PREF_DPO: loss = dpo_loss(&in, (size_t)n, p->beta, p->label_smoothing, norm[0], dc, dr, st); break;
  case PREF_IPO: loss = ipo_loss(&in, (size_t)n, p->beta, norm[0], dc, dr, st); break;
  case PREF_SIMPO: loss = simpo_loss(&in, (size_t)n, p->beta, p->gamma, norm[0], dc, dr, st); break;
  case PREF_ORPO: loss = orpo_loss(&in, (size_t)n, p->lambda, norm[1], norm[0], dc, dr, st); break;
  default: break;
  }
  /* back to rows: chosen rows take dc, rejected rows dr */
  for (int i = n - 1; i >= 0; i--) p->sums[2 * i] = dc[i], p->sums[2 * i + 1] = dr[i];
  spread(b, p->sums, dlogp);
  return loss;
}

static double loss(void *ctx, const struct batch *b, const float *logp, const float *values, const double norm[2],
                   float *dlogp, float *dvalues, struct objective_stats *st) {
  struct preference_objective *p = ctx;
  switch (p->kind) {
  case PREF_REWARD_MODEL: return reward_model_loss(p, b, values, norm[0], dvalues, st);
  case PREF_KTO: return kto_share(p, b, logp, norm[0], dlogp, st);
  default: return pair_share(p, b, logp, norm, dlogp, st);
  }
}

static void put(json_t *out, const char *name, double value) {
  if (isfinite(value)) json_object_set_new(out, name, json_real(value));
}

static void metrics(void *ctx, const struct objective_stats *st, json_t *out) {
  const struct preference_objective *p = ctx;
  if (st->pairs <= 0) return;
  double n = st->pairs;
  /* KTO's examples are unpaired: its means are over the desirable and
   * the undesirable ones, and its margin the difference of those means */
  double nc = p->kind == PREF_KTO ? st->desirable : n, nr = p->kind == PREF_KTO ? n - st->desirable : n;
  put(out, "accuracy", st->correct / n);
  put(out, "margin", p->kind == PREF_KTO ? st->chosen / nc - st->rejected / nr : st->margin / n);
  put(out, "chosen_reward", st->chosen / nc);
  put(out, "rejected_reward", st->rejected / nr);
  if (preference_uses_reference(p->kind)) {
    put(out, "chosen_logratio", st->chosen / nc / p->beta);
    put(out, "rejected_logratio", st->rejected / nr / p->beta);
  }
  if (p->kind == PREF_ORPO && st->tokens > 0) put(out, "nll", st->nll / st->tokens);
}

void preference_objective_init(struct preference_objective *p, enum preference_kind kind, json_t *settings,
                               int max_rows, int context, struct stage_objective *out) {
  *p = (struct preference_objective){
      .kind = kind,
      .beta = number(settings, "beta", kind == PREF_SIMPO ? 2.5 : 0.1),
      .label_smoothing = number(settings, "label_smoothing", 0),
      .gamma = number(settings, "gamma", 1.375),
      .lambda = number(settings, "lambda", 0.1),
      .desirable_weight = number(settings, "desirable_weight", 1),
      .undesirable_weight = number(settings, "undesirable_weight", 1),
      .use_margin = json_is_true(json_object_get(json_object_get(settings, "margin"), "value")),
      .max_rows = max_rows,
  };
  size_t n = (size_t)(max_rows > 0 ? max_rows : 1);
  double **arrays[] = {&p->sums, &p->ref, &p->d_a, &p->d_b, &p->a, &p->b, &p->c, &p->e};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) *arrays[i] = xmalloc(n * sizeof(double));
  p->lens = xmalloc(2 * n * sizeof *p->lens);
  p->flags = xmalloc(n * sizeof *p->flags);
  if (kind == PREF_KTO) p->kl_logp = xmalloc(n * (size_t)context * sizeof *p->kl_logp);
  *out = (struct stage_objective){.ctx = p, .logp = !preference_uses_head(kind), .values = preference_uses_head(kind),
                                  .units = units, .prepare = prepare, .loss = loss, .metrics = metrics};
}

void preference_objective_free(struct preference_objective *p) {
  free(p->sums);
  free(p->ref);
  free(p->d_a);
  free(p->d_b);
  free(p->a);
  free(p->b);
  free(p->c);
  free(p->e);
  free(p->lens);
  free(p->flags);
  free(p->kl_logp);
}
