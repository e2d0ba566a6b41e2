/* Fused causal attention on the tensor cores, in bf16 with fp32
 * accumulation: the forward and backward of cpu_kernels.h's
 * attention_forward and attention_backward without the [B, H, T, T]
 * attention matrix, which they recompute a tile at a time (the method of
 * FlashAttention, Dao et al. 2022). Only the log-sum-exp of each query's
 * scores, [B, H, T], is kept between the forward and the backward.
 *
 * q, k and v are read where the qkv matmul put them, qkv [B, T, 3C] (q, k,
 * v side by side, each with the heads side by side), and rounded to bf16 as
 * they are loaded; the softmax and every sum are fp32. The backward takes
 * no atomics: one kernel owns each key tile's dk and dv, another each query
 * tile's dq, so the bits are the same on every run.
 *
 * Each returns 0 or the cudaError_t of its launches. */
#ifndef TRAINPIPE_GPU_ATTENTION_H
#define TRAINPIPE_GPU_ATTENTION_H

#include "gpu/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the kernels take heads of HS = C / H values (16, 32, 64, 128). */
int gpu_flash_supported(int hs);

/* out [B, T, C] (the heads side by side) and lse [B, H, T] from qkv. */
int gpu_flash_forward(gpu_stream s, float *out, float *lse, const float *qkv, int B, int T, int C, int H);

/* dqkv [B, T, 3C] (overwritten) from dout [B, T, C], and qkv, out and lse
 * of the forward; delta [B, H, T] is scratch. */
int gpu_flash_backward(gpu_stream s, float *dqkv, float *delta, const float *dout, const float *qkv, const float *out,
                       const float *lse, int B, int T, int C, int H);

/* The same with qkv and dqkv in bf16: the tiles are the same bf16 numbers,
 * so the outputs are the fp32 functions' on qkv widened, dqkv rounded. */
int gpu_flash_forward16(gpu_stream s, float *out, float *lse, const gpu_bf16 *qkv, int B, int T, int C, int H);
int gpu_flash_backward16(gpu_stream s, gpu_bf16 *dqkv, float *delta, const float *dout, const gpu_bf16 *qkv,
                         const float *out, const float *lse, int B, int T, int C, int H);

#ifdef __cplusplus
}
#endif

#endif
