#include "runtime/objectives/objectives.h"

double masked_next_token_loss(const float *logp, const float *weights, size_t n, double norm, float *dlogp) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum -= (double)weights[i] * logp[i];
    dlogp[i] = (float)(-(double)weights[i] / norm); /* exactly 0 where the weight is 0 */
  }
  return sum / norm;
}
