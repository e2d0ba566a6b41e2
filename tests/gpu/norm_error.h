/* The error of a whole tensor against its reference, |got - want| / |want|
 * in the L2 norm (|got - want| where want is all zeros; NaN stays NaN):
 * the measure for results with bf16 or tf32 operands, whose elements near
 * zero carry no relative precision of their own. */
#ifndef TRAINPIPE_TESTS_NORM_ERROR_H
#define TRAINPIPE_TESTS_NORM_ERROR_H

#include <math.h>
#include <stddef.h>

static double norm_error(const float *got, const float *want, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    diff += d * d;
    ref += (double)want[i] * want[i];
  }
  return ref > 0 ? sqrt(diff / ref) : sqrt(diff);
}

#endif
