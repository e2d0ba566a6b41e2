/* Verifiers: programmatic rewards for RL with verifiable rewards.
 *
 * A verifier extracts the answer from a completion with a PCRE2 pattern
 * (`match`: the first capture group of the first match) and compares it
 * with a field of the prompt's data line (`against`): exactly (the
 * strings, trimmed of surrounding white space, are equal) or numerically
 * (both parse as numbers, strtod over the whole trimmed text, and differ by
 * at most `tolerance`). Its accuracy score is 1 or 0. With `format`, the
 * whole completion must also match that pattern (anchored at both ends)
 * for a format score of 1, added to the accuracy score: R1's accuracy plus
 * format rewards. The verifier's reward is `weight` x (its scores); a
 * combination of verifiers sums their rewards.
 *
 * No pattern can hang a run: every match runs under PCRE2 match and depth
 * limits; a match that hits a limit scores 0 and is counted, and the
 * caller reports how many did. A field that is missing from the data
 * line, or is not a string or a number, is an error naming it. */
#ifndef TRAINPIPE_VERIFIER_H
#define TRAINPIPE_VERIFIER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum verifier_compare { VERIFIER_EXACT, VERIFIER_NUMERIC };

struct verifier_spec {
  const char *match;    /* PCRE2 pattern with at least one capture group */
  const char *against;  /* the data field holding the expected answer */
  enum verifier_compare compare;
  double tolerance;     /* numeric: largest accepted |answer - expected| */
  const char *format;   /* NULL: no format score */
  double weight;
};

/* The limits every match runs under. */
#define VERIFIER_MATCH_LIMIT 1000000u
#define VERIFIER_DEPTH_LIMIT 10000u

struct verifier;

/* Compiles the N specs into one reward; NULL with the reason in ERR
 * (pattern, offset and PCRE2's message; a match pattern with no group). */
struct verifier *verifier_create(const struct verifier_spec *specs, size_t n, char *err, size_t err_size);
void verifier_free(struct verifier *v);

/* What one completion scored. */
struct verifier_result {
  double reward;        /* sum over the verifiers of weight x (accuracy + format) */
  bool answered;        /* the first verifier's pattern found an answer */
  bool correct;         /* ... and it equals the expected one */
  bool formatted;       /* the first verifier's format matched (false without a format) */
  size_t limit_hits;    /* matches stopped by a limit */
};

/* Scores COMPLETION (LEN bytes, not necessarily valid UTF-8) against the
 * data line EXAMPLE. False with the reason in ERR when a field is missing
 * or of the wrong type. */
bool verifier_score(const struct verifier *v, const char *completion, size_t len, const json_t *example,
                    struct verifier_result *out, char *err, size_t err_size);

#endif
