/* What the preference objectives share: the logistic function and its
 * logarithm in forms that neither overflow nor lose the small tail
 * (log sigmoid(x) = -log(1 + e^-x) for x >= 0, x - log(1 + e^x) below),
 * and the statistics of a pair of rewards. */
#ifndef TRAINPIPE_OBJECTIVES_LOGISTIC_H
#define TRAINPIPE_OBJECTIVES_LOGISTIC_H

#include <math.h>

#include "runtime/objectives/objectives.h"

static inline double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

static inline double sigmoid(double x) {
  if (x >= 0) return 1 / (1 + exp(-x));
  double e = exp(x);
  return e / (1 + e);
}

/* One pair's rewards into ST (may be NULL): pairs, correct, margin,
 * chosen, rejected. */
static inline void pair_stats_add(struct objective_stats *st, double chosen, double rejected) {
  if (!st) return;
  st->pairs += 1;
  st->correct += chosen - rejected > OBJECTIVE_TIE;
  st->margin += chosen - rejected;
  st->chosen += chosen;
  st->rejected += rejected;
}

#endif
