/* Generation over the backend's KV cache (see generate.h).
 *
 * Row i of a call uses row i of the cache. Every row is prefilled with its
 * prompt and draws its first token from the prefill's logits; then each
 * step appends the last token of every row still going, in one gen_decode
 * call, and each of those rows draws its next token. A row stops at the
 * stop token or at max_new_tokens, and is no longer decoded: its last
 * token never needs logits.
 *
 * The draw, from logits l over the vocabulary: l / temperature, the top k
 * kept (with any that tie with the k-th), then the nucleus: the likeliest
 * tokens, in order, until their probability reaches top_p of what is left
 * (with any that tie with the last one taken); then one uniform number u
 * in [0, 1) picks the token whose cumulative probability, in token order,
 * first passes u. At temperature 0 nothing is drawn: the first likeliest
 * token is taken. A top_k of 0 or V and more, and a top_p outside (0, 1),
 * cut nothing. */
#include "runtime/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/rng.h"

/* splitmix64's output function without its increment: a bijection of the
 * 64-bit integers with 0 kept at 0, so that row 0 of a seed draws from
 * rng_seed(seed) itself. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The generator of row ROW under SEED: a function of the two alone, and
 * streams of different rows far apart. */
static struct rng row_rng(uint64_t seed, uint64_t row) { return rng_seed(seed ^ mix64(row)); }

static int32_t argmax(const float *logits, int V) {
  int32_t best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

static int by_descending(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* The k-th largest of the N values X (1 <= k <= N), by quickselect on a
 * copy. */
static double kth_largest(const double *x, int N, int k) {
  double *a = xmalloc((size_t)N * sizeof *a);
  memcpy(a, x, (size_t)N * sizeof *a);
  int lo = 0, hi = N - 1, want = k - 1;
  while (lo < hi) {
    double pivot = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        double t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else break;
  }
  double kth = a[want];
  free(a);
  return kth;
}

/* The smallest probability that the nucleus of mass TOP_P of the weights
 * W [V] (not normalised, TOTAL their sum) keeps. */
static double nucleus_floor(const double *w, int V, double total, double top_p) {
  int n = 0;
  for (int v = 0; v < V; v++) n += w[v] > 0;
  double *sorted = xmalloc((size_t)n * sizeof *sorted);
  n = 0;
  for (int v = 0; v < V; v++)
    if (w[v] > 0) sorted[n++] = w[v];
  qsort(sorted, (size_t)n, sizeof *sorted, by_descending);
  double mass = 0, floor = sorted[n - 1];
  for (int i = 0; i < n; i++) {
    mass += sorted[i];
    if (mass >= top_p * total) {
      floor = sorted[i];
      break;
    }
  }
  free(sorted);
  return floor;
}

int32_t generate_pick(float *logits, int V, const struct generate_options *opt, struct rng *r) {
  int32_t best = argmax(logits, V);
  if (opt->temperature <= 0) return best;
  /* Weights exp((l - max) / T) in double, the likeliest at 1: the same
   * numbers for the cuts and for the draw. */
  double *w = xmalloc((size_t)V * sizeof *w);
  float max = logits[best]; /* l - max in float, as sample's draw has always computed it */
  for (int v = 0; v < V; v++) w[v] = exp((logits[v] - max) / opt->temperature);
  if (opt->top_k > 0 && opt->top_k < V) {
    double cut = kth_largest(w, V, opt->top_k);
    for (int v = 0; v < V; v++)
      if (w[v] < cut) w[v] = 0;
  }
  double total = 0;
  for (int v = 0; v < V; v++) total += w[v];
  if (opt->top_p > 0 && opt->top_p < 1) {
    double floor = nucleus_floor(w, V, total, opt->top_p);
    total = 0;
    for (int v = 0; v < V; v++) {
      if (w[v] < floor) w[v] = 0;
      total += w[v];
    }
  }
  double u = rng_uniform(r) * total, seen = 0;
  int32_t pick = best; /* where rounding leaves u beyond the last sum */
  for (int v = 0; v < V; v++) {
    seen += w[v];
    if (seen > u) {
      pick = v;
      break;
    }
  }
  free(w);
  return pick;
}

static bool check_rows(const struct backend *model, const struct completion *rows, int n,
                       const struct generate_options *opt, char *err, size_t err_size) {
  const struct backend_spec *spec = &model->spec;
  if (n < 0 || n > spec->gen_rows) {
    snprintf(err, err_size, "%d completions at once: the backend generates %d", n, spec->gen_rows);
    return false;
  }
  if (opt->max_new_tokens < 0) {
    snprintf(err, err_size, "max_new_tokens is %d: it cannot be negative", opt->max_new_tokens);
    return false;
  }
  for (int i = 0; i < n; i++) {
    const struct completion *c = &rows[i];
    if (c->prompt_len < 1 || c->prompt_len > spec->max_seq - opt->max_new_tokens) {
      snprintf(err, err_size, "prompt %d: %d tokens and %d new ones do not fit %d", i, c->prompt_len,
               opt->max_new_tokens, spec->max_seq);
      return false;
    }
    for (int t = 0; t < c->prompt_len; t++)
      if (c->prompt[t] < 0 || c->prompt[t] >= spec->cfg.vocab) {
        snprintf(err, err_size, "prompt %d: token %d is %d, outside the vocabulary of %d", i, t, (int)c->prompt[t],
                 spec->cfg.vocab);
        return false;
      }
  }
  return true;
}

/* Appends TOKEN to row C; whether the row goes on. */
static bool append(struct completion *c, int32_t token, const struct generate_options *opt) {
  c->tokens[c->len++] = token;
  c->stopped = token == opt->stop;
  return !c->stopped && c->len < opt->max_new_tokens;
}

bool generate(struct backend *model, struct completion *rows, int n, const struct generate_options *opt, char *err,
              size_t err_size) {
  if (!check_rows(model, rows, n, opt, err, err_size)) return false;
  for (int i = 0; i < n; i++) rows[i].len = 0, rows[i].stopped = false;
  if (n == 0 || opt->max_new_tokens == 0) return true;
  int V = model->spec.cfg.vocab;
  float *logits = xmalloc((size_t)n * V * sizeof *logits);
  struct rng *rng = xmalloc((size_t)n * sizeof *rng);
  int *going = xmalloc((size_t)n * sizeof *going); /* the rows still generating, in order */
  int32_t *last = xmalloc((size_t)n * sizeof *last);
  int m = 0;
  for (int i = 0; i < n; i++) {
    rng[i] = row_rng(opt->seed, opt->first_row + (uint64_t)i);
    model->ops->gen_prefill(model, i, rows[i].prompt, rows[i].prompt_len, logits);
    int32_t token = generate_pick(logits, V, opt, &rng[i]);
    if (append(&rows[i], token, opt)) going[m] = i, last[m++] = token;
  }
  while (m > 0) {
    model->ops->gen_decode(model, going, last, m, logits);
    int still = 0;
    for (int j = 0; j < m; j++) {
      int i = going[j];
      int32_t token = generate_pick(logits + (size_t)j * V, V, opt, &rng[i]);
      if (append(&rows[i], token, opt)) going[still] = i, last[still++] = token;
    }
    m = still;
  }
  free(logits);
  free(rng);
  free(going);
  free(last);
  return true;
}
