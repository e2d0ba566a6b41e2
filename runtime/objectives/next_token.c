#include "runtime/objectives/objectives.h"

#include <stdbool.h>

double next_token_loss(const float *logp, const int32_t *targets, size_t n, double norm, float *dlogp) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    bool counted = targets[i] >= 0;
    sum += counted ? -(double)logp[i] : 0.0;
    dlogp[i] = counted ? (float)(-1.0 / norm) : 0.0f;
  }
  return sum / norm;
}
