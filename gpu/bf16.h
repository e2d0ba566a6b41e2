/* Element i of an array of either element type, as a float, and x stored
 * there, for the .cu files' kernels that take fp32 or bf16 arrays as
 * templates: they compute in float either way, widening bf16 exactly and
 * rounding to the nearest bf16 (ties to even) where they store it, so an
 * fp32 array gives the bits of an fp32-only kernel. */
#ifndef TRAINPIPE_GPU_BF16_H
#define TRAINPIPE_GPU_BF16_H

#include <cuda_bf16.h>

__device__ static inline float load(const float *p, size_t i) { return p[i]; }
__device__ static inline float load(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ static inline void store(float *p, size_t i, float x) { p[i] = x; }
__device__ static inline void store(__nv_bfloat16 *p, size_t i, float x) { p[i] = __float2bfloat16_rn(x); }

#endif
