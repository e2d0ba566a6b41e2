/* Reductions over a warp, for the .cu files: butterflies with fixed
 * partners, so every lane ends with the same value, added in the same
 * order on every run. */
#ifndef TRAINPIPE_GPU_WARP_H
#define TRAINPIPE_GPU_WARP_H

#define WARP 32

__device__ static inline float warp_sum(float x) {
  for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ static inline double warp_sum_double(double x) {
  for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ static inline float warp_max(float x) {
  for (int o = WARP / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

#endif
