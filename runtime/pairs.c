#include "runtime/pairs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"

struct pair_source {
  struct pair_source_spec spec;
  size_t val_next;     /* held out: the next example */
  struct batch kl;     /* feedback: the mismatched rows */
  int kl_capacity;     /* rows allocated in kl */
  int32_t *scratch_ids; /* a mismatched sequence being put together */
  uint8_t *scratch_mask;
};

/* Sequence S into row R of B, which is T wide; returns the row's length. */
static int row_length(const struct sequence *s, bool whole) { return whole ? s->len : s->len - 1; }

static void fill_row(struct batch *b, int r, const int32_t *ids, const uint8_t *mask, int len, bool whole, int pad) {
  int T = b->T, n = whole ? len : len - 1;
  int32_t *tok = b->tokens + (size_t)r * T, *tgt = b->targets + (size_t)r * T;
  float *w = b->weights + (size_t)r * T;
  double counted = 0;
  for (int k = 0; k < T; k++) {
    if (k >= n) {
      tok[k] = pad, tgt[k] = -1, w[k] = 0;
      continue;
    }
    tok[k] = ids[k];
    if (whole) {
      tgt[k] = -1, w[k] = 0;
      counted += mask[k];
    } else {
      bool counts = mask[k + 1] != 0;
      tgt[k] = counts ? ids[k + 1] : -1;
      w[k] = counts ? 1.0f : 0.0f;
      counted += counts;
    }
  }
  b->rows[r] = (struct batch_row){.last = n - 1, .counted = counted, .ref = NAN};
  b->counted += whole ? 0 : (size_t)counted;
}

static const struct example *example_at(const struct example_set *set, bool val, size_t i) {
  return val ? examples_val(set, i) : examples_train(set, i);
}

/* E's prompt followed by its partner's completion (a training example,
 * for held-out ones too), cut to CONTEXT + 1 tokens. */
static int mismatched(const struct example_set *set, const struct example *e, int context, int32_t *ids,
                      uint8_t *mask) {
  const struct example *p = examples_train(set, e->partner);
  int n = 0;
  for (int k = 0; k < e->chosen.prompt_len && n <= context; k++, n++) ids[n] = e->chosen.ids[k], mask[n] = 0;
  for (int k = p->chosen.prompt_len; k < p->chosen.len && n <= context; k++, n++)
    ids[n] = p->chosen.ids[k], mask[n] = p->chosen.mask[k];
  return n;
}

/* The length mismatched() gives E, without putting it together. */
static int mismatched_length(const struct example_set *set, const struct example *e, int context) {
  const struct example *p = examples_train(set, e->partner);
  int n = e->chosen.prompt_len + p->chosen.len - p->chosen.prompt_len;
  return n < context + 1 ? n : context + 1;
}

/* Fills B with the examples IDX [N] (rows by LAYOUT). */
static void fill_batch(struct pair_source *s, struct batch *b, const size_t *idx, int n) {
  const struct pair_source_spec *sp = &s->spec;
  bool pairs = sp->layout == PAIRS_PREFERENCES;
  int T = 1;
  for (int i = 0; i < n; i++) {
    const struct example *e = example_at(sp->set, sp->val, idx[i]);
    int a = row_length(&e->chosen, sp->whole);
    if (a > T) T = a;
    if (pairs && row_length(&e->rejected, sp->whole) > T) T = row_length(&e->rejected, sp->whole);
  }
  b->T = T;
  b->B = pairs ? 2 * n : n;
  b->counted = 0;
  b->kl = NULL;
  for (int i = 0; i < n; i++) {
    const struct example *e = example_at(sp->set, sp->val, idx[i]);
    int r = pairs ? 2 * i : i;
    fill_row(b, r, e->chosen.ids, e->chosen.mask, e->chosen.len, sp->whole, sp->pad);
    b->rows[r].margin = e->margin;
    b->rows[r].desirable = e->desirable;
    if (sp->ref) b->rows[r].ref = sp->ref->chosen[idx[i]];
    if (pairs) {
      fill_row(b, r + 1, e->rejected.ids, e->rejected.mask, e->rejected.len, sp->whole, sp->pad);
      if (sp->ref) b->rows[r + 1].ref = sp->ref->rejected[idx[i]];
    }
  }
  if (sp->layout != PAIRS_FEEDBACK) return;
  /* KTO's reference point: each prompt with another example's completion */
  struct batch *kl = &s->kl;
  if (n > s->kl_capacity) {
    size_t cells = (size_t)n * sp->context;
    kl->tokens = xrealloc(kl->tokens, cells * sizeof *kl->tokens);
    kl->targets = xrealloc(kl->targets, cells * sizeof *kl->targets);
    kl->weights = xrealloc(kl->weights, cells * sizeof *kl->weights);
    kl->rows = xrealloc(kl->rows, (size_t)n * sizeof *kl->rows);
    s->kl_capacity = n;
  }
  kl->T = 1;
  for (int i = 0; i < n; i++) {
    int len = mismatched_length(sp->set, example_at(sp->set, sp->val, idx[i]), sp->context);
    if (len - 1 > kl->T) kl->T = len - 1;
  }
  kl->B = n;
  kl->counted = 0;
  kl->kl = NULL;
  for (int i = 0; i < n; i++) {
    const struct example *e = example_at(sp->set, sp->val, idx[i]);
    int len = mismatched(sp->set, e, sp->context, s->scratch_ids, s->scratch_mask);
    fill_row(kl, i, s->scratch_ids, s->scratch_mask, len, false, sp->pad);
    if (sp->ref) kl->rows[i].ref = sp->ref->kl[idx[i]];
  }
  b->kl = kl;
}

static int examples_per_batch(const struct pair_source *s, int max_rows) {
  return s->spec.layout == PAIRS_PREFERENCES ? max_rows / 2 : max_rows;
}

static bool train_next(void *ctx, struct batch *b, int max_b, char *err, size_t err_size) {
  struct pair_source *s = ctx;
  int n = examples_per_batch(s, max_b);
  if (n < 1) {
    snprintf(err, err_size, "a micro-batch of %d rows cannot hold a preference pair", max_b);
    return false;
  }
  size_t idx[n];
  for (int i = 0; i < n; i++) idx[i] = examples_next(s->spec.set);
  fill_batch(s, b, idx, n);
  return true;
}

static bool val_next(void *ctx, struct batch *b, int max_b, char *err, size_t err_size) {
  (void)err, (void)err_size;
  struct pair_source *s = ctx;
  size_t total = examples_val_count(s->spec.set);
  int n = examples_per_batch(s, max_b);
  if ((size_t)n > total - s->val_next) n = (int)(total - s->val_next);
  if (n <= 0) {
    b->B = 0;
    b->counted = 0;
    return true;
  }
  size_t idx[n];
  for (int i = 0; i < n; i++) idx[i] = s->val_next + (size_t)i;
  s->val_next += (size_t)n;
  fill_batch(s, b, idx, n);
  return true;
}

static json_t *train_save(void *ctx) { return examples_state(((struct pair_source *)ctx)->spec.set); }

static bool train_restore(void *ctx, json_t *state, char *err, size_t err_size) {
  return examples_restore(((struct pair_source *)ctx)->spec.set, state, err, err_size);
}

static void train_rewind(void *ctx) { (void)ctx; }

static json_t *val_save(void *ctx) { return json_integer((json_int_t)((struct pair_source *)ctx)->val_next); }

static bool val_restore(void *ctx, json_t *state, char *err, size_t err_size) {
  (void)err, (void)err_size;
  ((struct pair_source *)ctx)->val_next = (size_t)json_integer_value(state);
  return true;
}

static void val_rewind(void *ctx) { ((struct pair_source *)ctx)->val_next = 0; }

bool pair_source_open(const struct pair_source_spec *spec, struct batch_source *out, char *err, size_t err_size) {
  (void)err, (void)err_size;
  *out = (struct batch_source){0};
  if (spec->val && examples_val_count(spec->set) == 0) return true; /* nothing held out */
  struct pair_source *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, err_size, "out of memory");
    return false;
  }
  s->spec = *spec;
  s->scratch_ids = xmalloc(((size_t)spec->context + 2) * sizeof *s->scratch_ids);
  s->scratch_mask = xmalloc((size_t)spec->context + 2);
  if (spec->val)
    *out = (struct batch_source){.ctx = s, .next = val_next, .save = val_save, .restore = val_restore,
                                 .rewind = val_rewind};
  else
    *out = (struct batch_source){.ctx = s, .next = train_next, .save = train_save, .restore = train_restore,
                                 .rewind = train_rewind};
  return true;
}

void pair_source_close(struct batch_source *src) {
  struct pair_source *s = src->ctx;
  if (s) {
    free(s->kl.tokens);
    free(s->kl.targets);
    free(s->kl.weights);
    free(s->kl.rows);
    free(s->scratch_ids);
    free(s->scratch_mask);
    free(s);
  }
  *src = (struct batch_source){0};
}

void row_sums(const struct batch *b, const float *logp, double *sums) {
  for (int r = 0; r < b->B; r++) {
    const float *lp = logp + (size_t)r * b->T, *w = b->weights + (size_t)r * b->T;
    double sum = 0;
    for (int t = 0; t < b->T; t++) sum += w[t] != 0 ? (double)lp[t] : 0.0;
    sums[r] = sum;
  }
}

/* The reference's log-prob sums of the rows of B, into OUT at the
 * examples' indices. */
static void reference_pass(struct backend *ref, struct batch *b, float *logp, double *sums) {
  ref->ops->forward(ref, b->tokens, b->targets, b->B, b->T, logp, NULL);
  row_sums(b, logp, sums);
}

void reference_sums_compute(struct backend *ref, struct example_set *set, bool val, enum pair_layout layout, int pad,
                            int context, struct reference_sums *out) {
  size_t n = val ? examples_val_count(set) : examples_train_count(set);
  *out = (struct reference_sums){.n = n};
  out->chosen = xmalloc((n ? n : 1) * sizeof *out->chosen);
  if (layout == PAIRS_PREFERENCES) out->rejected = xmalloc((n ? n : 1) * sizeof *out->rejected);
  else out->kl = xmalloc((n ? n : 1) * sizeof *out->kl);
  struct pair_source s = {.spec = {.set = set, .val = val, .layout = layout, .pad = pad, .context = context}};
  s.scratch_ids = xmalloc(((size_t)context + 2) * sizeof *s.scratch_ids);
  s.scratch_mask = xmalloc((size_t)context + 2);
  int rows = ref->spec.max_batch, per = layout == PAIRS_PREFERENCES ? rows / 2 : rows;
  if (per < 1) per = 1;
  size_t cells = (size_t)rows * ref->spec.max_seq;
  struct batch b = {.tokens = xmalloc(cells * sizeof(int32_t)), .targets = xmalloc(cells * sizeof(int32_t)),
                    .weights = xmalloc(cells * sizeof(float)), .rows = xmalloc((size_t)rows * sizeof(struct batch_row))};
  float *logp = xmalloc(cells * sizeof *logp);
  double *sums = xmalloc((size_t)rows * sizeof *sums);
  for (size_t first = 0; first < n; first += (size_t)per) {
    int k = n - first < (size_t)per ? (int)(n - first) : per;
    size_t idx[k];
    for (int i = 0; i < k; i++) idx[i] = first + (size_t)i;
    fill_batch(&s, &b, idx, k);
    reference_pass(ref, &b, logp, sums);
    for (int i = 0; i < k; i++) {
      out->chosen[first + (size_t)i] = sums[layout == PAIRS_PREFERENCES ? 2 * i : i];
      if (layout == PAIRS_PREFERENCES) out->rejected[first + (size_t)i] = sums[2 * i + 1];
    }
    if (layout == PAIRS_FEEDBACK) {
      reference_pass(ref, &s.kl, logp, sums);
      for (int i = 0; i < k; i++) out->kl[first + (size_t)i] = sums[i];
    }
  }
  free(b.tokens);
  free(b.targets);
  free(b.weights);
  free(b.rows);
  free(logp);
  free(sums);
  free(s.kl.tokens);
  free(s.kl.targets);
  free(s.kl.weights);
  free(s.kl.rows);
  free(s.scratch_ids);
  free(s.scratch_mask);
}

void reference_sums_free(struct reference_sums *r) {
  free(r->chosen);
  free(r->rejected);
  free(r->kl);
  *r = (struct reference_sums){0};
}
