/* Did-you-mean: the candidate closest to a misspelt word by edit distance
 * (insertions, deletions, substitutions and swaps of neighbours), if it is
 * close enough to be a plausible typo. */
#ifndef TRAINPIPE_SUGGEST_H
#define TRAINPIPE_SUGGEST_H

#include <stddef.h>

struct suggest {
  const char *word;
  size_t len;
  const char *best;
  size_t best_len;
  size_t best_distance;
};

void suggest_begin(struct suggest *s, const char *word, size_t len);
void suggest_consider(struct suggest *s, const char *candidate, size_t len);
/* Considers every word of a "a|b|c" list. */
void suggest_consider_list(struct suggest *s, const char *list);
/* The best candidate, or NULL when none is close enough. */
const char *suggest_result(const struct suggest *s, size_t *len);
size_t edit_distance(const char *a, size_t na, const char *b, size_t nb, size_t limit);

#endif
