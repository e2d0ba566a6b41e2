/* The CPU backend's kernels: one forward/backward pair per layer, in fp32,
 * matmuls through OpenBLAS's cblas_sgemm, everything else parallelised with
 * OpenMP over independent outputs (no atomics), so results are identical
 * run to run for a given thread count.
 *
 * Shapes are row-major; N = B * T rows of activations. Every backward
 * kernel ADDS into the gradients it writes (d-arguments), so gradients
 * accumulate over micro-batches and over the two uses of a tied weight;
 * scratch arguments are overwritten. A Linear weight is [OC, C] and
 * y = x W^T + b, as in PyTorch. Tokens and non-negative targets lie in
 * [0, V). */
#ifndef TRAINPIPE_CPU_KERNELS_H
#define TRAINPIPE_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] */
void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C);

/* out = (inp - mean) * rstd * w + b over the last axis (eps 1e-5, biased
 * variance, as torch.nn.LayerNorm); mean and rstd [N] are kept. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                       int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C);

/* out[N, OC] = inp[N, C] W[OC, C]^T + bias[OC] (bias may be NULL). */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);
/* dinp += dout W; dw += dout^T inp; dbias += sum over rows of dout (dbias
 * may be NULL). */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N,
                     int C, int OC);

/* Causal multi-head attention. qkv [B, T, 3C] holds q, k, v (each C wide,
 * heads contiguous, head size C/H); out [B, T, C] the heads' outputs side
 * by side. att [B, H, T, T] keeps the softmax weights (scaled by
 * 1/sqrt(C/H), masked to key positions <= query position; entries above the
 * diagonal are 0). */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H);
/* dqkv += the gradient; datt [B, H, T, T] is scratch. */
void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B, int T,
                        int C, int H);

/* Attention of N new tokens over a KV cache (generation). Token i belongs
 * to cache row rows[i] and attends to that row's positions 0 .. len[i] - 1,
 * its own key and value included (stored there before the call). qkv
 * [N, 3C] as above (only the queries are read); kcache, vcache [R, S, C]
 * for R rows of S positions; out [N, C]; scores [N, H, S] is scratch. The
 * softmax is attention_forward's, to rounding. */
void attention_cached_forward(float *out, float *scores, const float *qkv, const float *kcache, const float *vcache,
                              const int *rows, const int *len, int N, int S, int C, int H);

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b; backward adds dout into both. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* The LM head fused with log-softmax and the target gather, for ROWS rows
 * of x [rows, C] after the final LayerNorm and the tied head wte [V, C]:
 * logits [rows, V] is a buffer the caller owns (kept for the backward, or
 * reused chunk by chunk when only log-probabilities are wanted);
 * lse [rows] keeps each row's log-sum-exp; logp[r] = logits[r, targets[r]]
 * - lse[r]. A target < 0 gives logp 0 and no gradient: its row of dlogits
 * is 0, whatever dlogp holds there. */
void logprob_forward(float *logp, float *lse, float *logits, const float *x, const float *wte,
                     const int32_t *targets, int rows, int C, int V);
/* From dlogp [rows]: dlogits = dlogp (onehot(target) - softmax), written
 * over logits; then dx += dlogits wte and dwte += dlogits^T x. */
void logprob_backward(float *dx, float *dwte, float *logits, const float *lse, const float *dlogp, const float *x,
                      const float *wte, const int32_t *targets, int rows, int C, int V);

/* The scalar head (a reward or a value): values[n] = x[n, :] . w + b[0]
 * for x [N, C] after the final LayerNorm, w [C], b [1]. */
void scalar_head_forward(float *values, const float *x, const float *w, const float *b, int N, int C);
/* From dvalues [N]: dx[n, :] += dvalues[n] w, dw += sum over n of
 * dvalues[n] x[n, :], db[0] += sum of dvalues. */
void scalar_head_backward(float *dx, float *dw, float *db, const float *dvalues, const float *x, const float *w, int N,
                          int C);

/* Sum of squares of n values, in double, for the global gradient norm;
 * the same bits for any thread count (fixed partial sums). */
double sum_squares(const float *x, size_t n);

/* One AdamW update of n parameters, in place (Loshchilov and Hutter:
 * decoupled weight decay): p -= lr (mhat / (sqrt(vhat) + eps) + weight_decay
 * p), with p before the step. g is scaled by grad_scale first (clipping);
 * step t counts from 1 for the bias corrections. */
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int t);

#endif
