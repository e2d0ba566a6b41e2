#include "runtime/rng.h"

#include <math.h>

double rng_normal(struct rng *r) {
  double u1 = rng_uniform(r), u2 = rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300; /* log(0) */
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
