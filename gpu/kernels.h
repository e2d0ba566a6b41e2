/* The CUDA backend's kernels: the same operations, shapes and semantics as
 * runtime/cpu_kernels.h, on device pointers, in fp32, each launched on the
 * given stream. A function whose name ends in 16 reads and writes bf16
 * where its arguments say gpu_bf16 (the activations that bf16's matmuls
 * write or read), computing in fp32 in between. Matmuls go through cuBLAS
 * (gpu/cuda_backend.cu); everything else is a kernel here. A backward
 * ADDS into the gradients it writes, as on the CPU, so that micro-batches
 * accumulate, but where it says it overwrites: the gradient of a matmul's
 * output, which nothing else adds to. Outputs never depend on the
 * launch configuration's race order: reductions that cross threads are
 * either done by one block per output or summed in a fixed tree, so a
 * kernel gives the same bits on every run.
 *
 * Each function returns 0 or the cudaError_t of the launch; the caller
 * reports it with the call and the file:line (gpu/check.h). */
#ifndef TRAINPIPE_GPU_KERNELS_H
#define TRAINPIPE_GPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *gpu_stream;
/* A bf16 number's bits (the device's __nv_bfloat16). */
typedef uint16_t gpu_bf16;

int gpu_encoder_forward(gpu_stream s, float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
                        int T, int C);
int gpu_encoder_backward(gpu_stream s, float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T,
                         int C);

/* The backwards that sum over rows (the biases', the scalar head's dw)
 * take a scratch of GPU_COLUMN_PARTS doubles a column they sum, for their
 * partial sums; LayerNorm's backward, which sums dw and db as it reads
 * its rows, GPU_LAYERNORM_PARTS doubles for each of its 2 C columns. */
#define GPU_COLUMN_PARTS 32
#define GPU_LAYERNORM_PARTS 1024

int gpu_layernorm_forward(gpu_stream s, float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C);
/* The same, writing out (when not NULL) and its bf16 rounding out16 (when
 * not NULL): the input of a matmul that reads bf16 needs no other pass. */
int gpu_layernorm_forward16(gpu_stream s, float *out, gpu_bf16 *out16, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C);
/* res [N, C] = a + (r + bias [C]): the residual with the bias of the
 * matmul that made r, to the bits of adding the bias first; then the
 * LayerNorm of res as gpu_layernorm_forward16 (out, out16, mean, rstd
 * with w and b), to its bits: a residual add and the LayerNorm after it
 * in one pass over each row. */
int gpu_residual_layernorm_forward16(gpu_stream s, float *res, const float *a, const float *r, const float *bias,
                                     float *out, gpu_bf16 *out16, float *mean, float *rstd, const float *w,
                                     const float *b, int N, int C);
/* LayerNorm's backward, adding into dinp, dw and db; and the bf16
 * rounding of the sum dinp into dinp16 (when not NULL): the residual
 * stream's gradient, which the next backward matmul reads in bf16. */
int gpu_layernorm_backward16(gpu_stream s, float *dinp, gpu_bf16 *dinp16, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean, const float *rstd, int N, int C,
                             double *scratch);

/* Causal attention's softmax over preatt [B, H, T, T] (the unscaled q k^T
 * that cuBLAS computed): att = softmax(scale * preatt) over keys <= query,
 * 0 above the diagonal, as cpu attention_forward keeps it (scale is
 * 1/sqrt(C/H)); and its backward: dpreatt = scale att (datt - <att,
 * datt>) over keys <= query, the chain factor scale included, and 0 above
 * the diagonal (overwritten, not added: it is the gradient of a matmul's
 * output). att may be preatt, and dpreatt datt. */
int gpu_softmax_causal_forward(gpu_stream s, float *att, const float *preatt, int BH, int T, float scale);
int gpu_softmax_causal_backward(gpu_stream s, float *dpreatt, const float *datt, const float *att, int BH, int T,
                                float scale);

int gpu_gelu_forward(gpu_stream s, float *out, const float *inp, size_t n);
/* pre [N, OC] += bias [OC] (kept: the backward reads it), then out =
 * GELU(pre): the fc layer's bias and activation in one pass, to the bits
 * of two. In bf16, GELU takes pre as stored, rounded. */
int gpu_bias_gelu_forward(gpu_stream s, float *out, float *pre, const float *bias, int N, int OC);
int gpu_bias_gelu_forward16(gpu_stream s, gpu_bf16 *out, gpu_bf16 *pre, const float *bias, int N, int OC);
/* GELU's backward, which writes dinp (=) instead of adding to it: it is
 * the gradient of a matmul's output; in bf16, dinp may be dout. */
int gpu_gelu_backward_into(gpu_stream s, float *dinp, const float *inp, const float *dout, size_t n);
int gpu_gelu_backward16(gpu_stream s, gpu_bf16 *dinp, const gpu_bf16 *inp, const gpu_bf16 *dout, size_t n);

int gpu_residual_forward(gpu_stream s, float *out, const float *a, const float *b, size_t n);

/* Adds the bias [OC] to every row of out [N, OC]; and dbias += the column
 * sums of dout [N, OC]. */
int gpu_bias_forward(gpu_stream s, float *out, const float *bias, int N, int OC);
int gpu_bias_forward16(gpu_stream s, gpu_bf16 *out, const float *bias, int N, int OC);
int gpu_bias_backward(gpu_stream s, float *dbias, const float *dout, int N, int OC, double *scratch);
int gpu_bias_backward16(gpu_stream s, float *dbias, const gpu_bf16 *dout, int N, int OC, double *scratch);

/* The fused LM head's log-softmax and target gather, on logits [rows, V]
 * that cuBLAS computed: lse[r] = logsumexp(logits[r]), logp[r] =
 * logits[r, target] - lse[r] (0 for a target < 0). Backward overwrites
 * logits with dlogits = dlogp (onehot(target) - softmax). */
int gpu_logprob_forward(gpu_stream s, float *logp, float *lse, const float *logits, const int32_t *targets, int rows,
                        int V);
int gpu_logprob_backward(gpu_stream s, float *logits, const float *lse, const float *dlogp, const int32_t *targets,
                         int rows, int V);
int gpu_logprob_forward16(gpu_stream s, float *logp, float *lse, const gpu_bf16 *logits, const int32_t *targets,
                          int rows, int V);
int gpu_logprob_backward16(gpu_stream s, gpu_bf16 *logits, const float *lse, const float *dlogp,
                           const int32_t *targets, int rows, int V);

/* The scalar head: values[r] = x[r] . w + b[0]; backward: dx += dvalues w,
 * dw += sum_r dvalues[r] x[r], db += sum dvalues. */
int gpu_scalar_head_forward(gpu_stream s, float *values, const float *x, const float *w, const float *b, int N, int C);
int gpu_scalar_head_backward(gpu_stream s, float *dx, float *dw, float *db, const float *dvalues, const float *x,
                             const float *w, int N, int C, double *scratch);

/* Sum of squares of n values into *out (device, one double), in a fixed
 * order. */
int gpu_sum_squares(gpu_stream s, double *out, const float *x, size_t n);

/* AdamW on n parameters, as cpu_kernels.h's adamw_update. */
int gpu_adamw_update(gpu_stream s, float *params, const float *grads, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);

/* Generation over a KV cache [R, S, C] per layer (row r's position t at
 * (r S + t) C), for n tokens, token i of row rows[i] at position pos[i]:
 * embed_at writes out [n, C] = wte[tokens[i]] + wpe[pos[i]]; kv_store
 * puts the key and value of qkv [n, 3C] row i at (rows[i], pos[i]);
 * attention_cached_forward writes out [n, C], each head's attention of
 * query i over its row's positions 0..pos[i] (stored first), as the CPU's
 * attention_cached_forward; scores [n, H, S] is scratch. */
int gpu_embed_at(gpu_stream s, float *out, const int32_t *tokens, const int32_t *pos, const float *wte,
                 const float *wpe, int n, int C);
int gpu_kv_store(gpu_stream s, float *kcache, float *vcache, const float *qkv, const int32_t *rows,
                 const int32_t *pos, int n, int S, int C);
int gpu_attention_cached_forward(gpu_stream s, float *out, float *scores, const float *qkv, const float *kcache,
                                 const float *vcache, const int32_t *rows, const int32_t *pos, int n, int S, int C,
                                 int H);

/* out[i] = in[i] rounded to the nearest bf16 (ties to even). */
int gpu_to_bf16(gpu_stream s, gpu_bf16 *out, const float *in, size_t n);
/* acc[i] += x[i]: a gradient that a matmul's epilogue wrote in bf16, added
 * to the fp32 one. */
int gpu_accumulate16(gpu_stream s, float *acc, const gpu_bf16 *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
