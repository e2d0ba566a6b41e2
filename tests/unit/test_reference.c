/* The CPU backend against PyTorch: per-token log-probabilities, the mean
 * next-token loss and its gradient for every parameter tensor, on fixed
 * weights and inputs, compared with float64 values computed by
 * tests/reference/gpt_reference.py and committed in gpt_values.h (no Python
 * is needed here).
 *
 * Tolerances: |got - want| <= max(ABS, REL |want|), with
 *   log-probabilities and the loss: REL 1e-5, ABS 1e-6;
 *   gradient elements, norms and the global norm: REL 1e-4, ABS 1e-6;
 *   a tensor's gradient sum: ABS 1e-6 plus REL 1e-4 times the sum of the
 *   absolute values. A sum whose terms cancel (the embeddings' sums are 0 in
 *   exact arithmetic, since every path from them passes a LayerNorm) cannot
 *   be held to a fraction of itself, only to the sum of the tolerances of
 *   its terms.
 * PyTorch's own float32 run meets these with room to spare (its errors are
 * recorded in the header and printed beside the backend's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/gpt.h"
#include "tests/reference/gpt_values.h"
#include "tests/unit/suites.h"

#define LOGP_REL 1e-5
#define LOGP_ABS 1e-6
#define GRAD_REL 1e-4
#define GRAD_ABS 1e-6

/* The largest errors seen in one kind of value. max_rel is over the values
 * at least ABS / REL in size (where the relative bound is the one that
 * applies); worst is the largest error as a fraction of its tolerance. */
struct errors {
  const char *what;
  double rel_tol, abs_tol;
  double max_rel, max_abs, worst;
  int failures;
};

static struct errors errors_for(const char *what, double rel_tol, double abs_tol) {
  return (struct errors){.what = what, .rel_tol = rel_tol, .abs_tol = abs_tol};
}

static void compare_with(struct errors *e, const char *case_name, const char *where, long index, double got,
                         double want, double tol) {
  double err = fabs(got - want);
  if (fabs(want) >= e->abs_tol / e->rel_tol && err / fabs(want) > e->max_rel) e->max_rel = err / fabs(want);
  if (err > e->max_abs) e->max_abs = err;
  if (err / tol > e->worst) e->worst = err / tol;
  if (!(err <= tol)) { /* NaN fails too */
    if (e->failures < 10) {
      char at[32] = "";
      if (index >= 0) snprintf(at, sizeof at, "[%ld]", index);
      fprintf(stderr, "reference %s: %s %s%s = %.9g, want %.9g (error %.3g, tolerance %.3g)\n", case_name, e->what,
              where, at, got, want, err, tol);
    }
    e->failures++;
  }
}

static void compare(struct errors *e, const char *case_name, const char *where, long index, double got, double want) {
  compare_with(e, case_name, where, index, got, want, fmax(e->abs_tol, e->rel_tol * fabs(want)));
}

/* w[i] = (float)(0.05 sin(0.37 i + 0.11)), plus 1 for the LayerNorm weights. */
static void formula_weights(const struct gpt_config *cfg, float *w) {
  size_t n = gpt_param_count(cfg), offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(cfg, offsets);
  for (size_t i = 0; i < n; i++) w[i] = (float)(0.05 * sin(0.37 * (double)i + 0.11));
  static const enum gpt_tensor ln[] = {GPT_LN1W, GPT_LN2W, GPT_LNFW};
  for (size_t k = 0; k < sizeof ln / sizeof ln[0]; k++) {
    size_t at = offsets[ln[k]], size = gpt_tensor_size(cfg, ln[k]);
    for (size_t i = at; i < at + size; i++) w[i] = (float)(1.0 + 0.05 * sin(0.37 * (double)i + 0.11));
  }
}

static struct gpt_config config_of(const struct gpt_ref_case *c) {
  return (struct gpt_config){.vocab = c->cfg.vocab,
                             .context = c->cfg.context,
                             .layers = c->cfg.layers,
                             .heads = c->cfg.heads,
                             .width = c->cfg.width};
}

static struct backend *create(const struct gpt_ref_case *c, bool train) {
  struct backend_spec spec = {
      .cfg = config_of(c), .max_batch = c->batch, .max_seq = c->cfg.context, .threads = 0, .train = train};
  char err[256] = "";
  struct backend *b = cpu_backend_create(&spec, err, sizeof err);
  ck_assert_msg(b != NULL, "reference %s: cpu_backend_create: %s", c->name, err);
  ck_assert_uint_eq(b->n_params, gpt_param_count(&spec.cfg));
  return b;
}

/* Checks LOGP against the reference: ignored targets give exactly 0. */
static void check_logp(struct errors *e, const struct gpt_ref_case *c, const float *logp) {
  for (int i = 0; i < c->batch * c->seq; i++) {
    if (c->targets[i] < 0)
      ck_assert_msg(logp[i] == 0.0f, "reference %s: logp[%d] = %g for an ignored target", c->name, i, logp[i]);
    else
      compare(e, c->name, "logp", i, logp[i], c->logp[i]);
  }
}

/* Checks every tensor's recorded gradient elements, and its norm, sum and
 * sum of absolute values, against SCALE times the reference. */
static void check_grads(struct errors *elems, struct errors *totals, const struct gpt_ref_case *c,
                        const float *grads, double scale) {
  struct gpt_config cfg = config_of(c);
  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(&cfg, offsets);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    if (gpt_tensor_size(&cfg, (enum gpt_tensor)t) == 0) continue; /* the scalar head: these models have none */
    const struct gpt_ref_tensor *ref = &c->tensors[t];
    ck_assert_str_eq(ref->name, gpt_tensor_name((enum gpt_tensor)t));
    const float *g = grads + offsets[t];
    size_t n = gpt_tensor_size(&cfg, (enum gpt_tensor)t);
    double sq = 0, sum = 0, abs_sum = 0;
    for (size_t i = 0; i < n; i++) {
      sq += (double)g[i] * g[i];
      sum += g[i];
      abs_sum += fabs(g[i]);
    }
    char what[48];
    snprintf(what, sizeof what, "%s norm", ref->name);
    compare(totals, c->name, what, -1, sqrt(sq), scale * ref->norm);
    snprintf(what, sizeof what, "%s sum of |g|", ref->name);
    compare(totals, c->name, what, -1, abs_sum, scale * ref->abs_sum);
    snprintf(what, sizeof what, "%s sum", ref->name);
    compare_with(totals, c->name, what, -1, sum, scale * ref->sum,
                 totals->abs_tol + totals->rel_tol * scale * ref->abs_sum);
    for (int k = 0; k < GPT_REF_SAMPLES; k++) {
      ck_assert_uint_lt((size_t)ref->index[k], n);
      compare(elems, c->name, ref->name, ref->index[k], g[ref->index[k]], scale * ref->grad[k]);
    }
  }
}

static void report(const struct gpt_ref_case *c, const char *pass, const struct errors *e, double torch_f32) {
  char torch[48] = "";
  if (!isnan(torch_f32)) snprintf(torch, sizeof torch, " (PyTorch fp32 %.2e)", torch_f32);
  fprintf(stderr, "reference %s%s: %-6s max rel %.2e%s, max abs %.2e, worst %.3f of tolerance\n", c->name, pass,
          e->what, e->max_rel, torch, e->max_abs, e->worst);
}

static void assert_passed(const struct gpt_ref_case *c, const struct errors *e) {
  ck_assert_msg(e->failures == 0, "reference %s: %d %s values out of tolerance (worst %.3g of it)", c->name,
                e->failures, e->what, e->worst);
}

START_TEST(matches_pytorch) {
  const struct gpt_ref_case *c = &gpt_ref_cases[_i];
  struct gpt_config cfg = config_of(c);
  ck_assert_ptr_null(gpt_config_problem(&cfg));
  size_t n = gpt_param_count(&cfg), bt = (size_t)c->batch * (size_t)c->seq;
  float *params = malloc(n * sizeof *params), *back = malloc(n * sizeof *back);
  float *grads = malloc(n * sizeof *grads), *logp = malloc(bt * sizeof *logp), *dlogp = malloc(bt * sizeof *dlogp);
  ck_assert(params && back && grads && logp && dlogp);
  formula_weights(&cfg, params);

  struct backend *b = create(c, true);
  b->ops->write_params(b, params);
  b->ops->read_params(b, back);
  ck_assert_int_eq(memcmp(params, back, n * sizeof *params), 0);
  b->ops->zero_grad(b);

  /* forward: log-probabilities and the loss */
  struct errors logp_err = errors_for("logp", LOGP_REL, LOGP_ABS);
  b->ops->forward(b, c->tokens, c->targets, c->batch, c->seq, logp, NULL);
  check_logp(&logp_err, c, logp);
  double loss = 0;
  int counted = 0;
  for (size_t i = 0; i < bt; i++) {
    if (c->targets[i] < 0) continue;
    loss -= logp[i];
    counted++;
  }
  ck_assert_int_eq(counted, c->counted);
  loss /= counted;
  compare(&logp_err, c->name, "loss", -1, loss, c->loss);

  /* backward of the mean loss */
  for (size_t i = 0; i < bt; i++) dlogp[i] = c->targets[i] >= 0 ? (float)(-1.0 / counted) : 0.0f;
  b->ops->backward(b, dlogp, NULL);
  b->ops->read_grads(b, grads);
  struct errors grad_err = errors_for("grads", GRAD_REL, GRAD_ABS);
  struct errors total_err = errors_for("totals", GRAD_REL, GRAD_ABS);
  check_grads(&grad_err, &total_err, c, grads, 1.0);
  compare(&total_err, c->name, "grad_norm", -1, b->ops->grad_norm(b, 1.0), c->grad_norm);
  compare(&total_err, c->name, "grad_norm(scale 0.5)", -1, b->ops->grad_norm(b, 0.5), 0.5 * c->grad_norm);

  report(c, "", &logp_err, c->f32_logp_rel);
  report(c, "", &grad_err, c->f32_grad_rel);
  report(c, "", &total_err, NAN);
  assert_passed(c, &logp_err);
  assert_passed(c, &grad_err);
  assert_passed(c, &total_err);

  /* A second pass adds into the gradients, and a forward gives the same
   * log-probabilities every time. */
  float *again = malloc(bt * sizeof *again);
  ck_assert_ptr_nonnull(again);
  b->ops->forward(b, c->tokens, c->targets, c->batch, c->seq, again, NULL);
  ck_assert_int_eq(memcmp(logp, again, bt * sizeof *logp), 0);
  b->ops->backward(b, dlogp, NULL);
  b->ops->read_grads(b, grads);
  struct errors twice_err = errors_for("grads x2", GRAD_REL, GRAD_ABS);
  struct errors twice_total = errors_for("totals x2", GRAD_REL, GRAD_ABS);
  check_grads(&twice_err, &twice_total, c, grads, 2.0);
  assert_passed(c, &twice_err);
  assert_passed(c, &twice_total);

  /* zero_grad clears them */
  b->ops->zero_grad(b);
  b->ops->read_grads(b, grads);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(grads[i] == 0.0f, "reference %s: grads[%zu] = %g after zero_grad", c->name, i, grads[i]);
  backend_destroy(b);

  /* A backend that does not train gives the same log-probabilities. */
  struct backend *eval = create(c, false);
  eval->ops->write_params(eval, params);
  struct errors eval_err = errors_for("logp", LOGP_REL, LOGP_ABS);
  eval->ops->forward(eval, c->tokens, c->targets, c->batch, c->seq, again, NULL);
  check_logp(&eval_err, c, again);
  report(c, " (no training)", &eval_err, c->f32_logp_rel);
  assert_passed(c, &eval_err);
  backend_destroy(eval);

  free(again);
  free(params);
  free(back);
  free(grads);
  free(logp);
  free(dlogp);
}
END_TEST

Suite *reference_suite(void) {
  Suite *s = suite_create("reference");
  TCase *t = tcase_create("pytorch");
  tcase_set_timeout(t, 60);
  tcase_add_loop_test(t, matches_pytorch, 0, GPT_REF_CASES);
  suite_add_tcase(s, t);
  return s;
}
