#include "interp/suggest.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"

#define MAX_WORD 64

static size_t min3(size_t a, size_t b, size_t c) {
  size_t m = a < b ? a : b;
  return m < c ? m : c;
}

/* Optimal string alignment distance; past `limit` the exact value does not
 * matter, so long words are cut off early. */
size_t edit_distance(const char *a, size_t na, const char *b, size_t nb, size_t limit) {
  if (na > MAX_WORD || nb > MAX_WORD) return limit + 1;
  size_t diff = na > nb ? na - nb : nb - na;
  if (diff > limit) return limit + 1;
  size_t rows[3][MAX_WORD + 1];
  size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= nb; j++) prev[j] = j;
  for (size_t i = 1; i <= na; i++) {
    cur[0] = i;
    size_t row_min = cur[0];
    for (size_t j = 1; j <= nb; j++) {
      size_t cost = a[i - 1] != b[j - 1];
      cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < cur[j])
        cur[j] = prev2[j - 2] + 1;
      if (cur[j] < row_min) row_min = cur[j];
    }
    if (row_min > limit) return limit + 1;
    size_t *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[nb];
}

void suggest_begin(struct suggest *s, const char *word, size_t len) {
  memset(s, 0, sizeof *s);
  s->word = word;
  s->len = len;
  s->best_distance = (size_t)-1;
}

/* Short names are too close to each other for a guess to help. */
static size_t limit_for(size_t len) { return len <= 2 ? 0 : len <= 4 ? 1 : len <= 8 ? 2 : 3; }

void suggest_consider(struct suggest *s, const char *candidate, size_t len) {
  size_t limit = limit_for(s->len);
  if (limit == 0) return;
  if (s->best && s->best_distance <= limit) limit = s->best_distance - 1;
  size_t d = edit_distance(s->word, s->len, candidate, len, limit);
  if (d <= limit && d > 0 && d < s->best_distance) {
    s->best = candidate;
    s->best_len = len;
    s->best_distance = d;
  }
}

void suggest_consider_list(struct suggest *s, const char *list) {
  for (const char *p = list; *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    suggest_consider(s, p, n);
    if (!bar) break;
    p = bar + 1;
  }
}

const char *suggest_result(const struct suggest *s, size_t *len) {
  if (!s->best) return NULL;
  *len = s->best_len;
  return s->best;
}
