/* The CUDA backend: the GPT-2 forward and backward passes of
 * runtime/cpu_backend.c on one GPU, in fp32, composed from the kernels of
 * gpu/kernels.h and cuBLAS matmuls, in the same order and with the same
 * buffers. Every device buffer is allocated at creation for the largest
 * micro-batch; a backend that does not train keeps one layer's activations,
 * which every layer reuses, and computes logits LOGIT_ROWS rows at a time.
 *
 * Shapes: B sequences, T tokens, C width, H heads, hs = C / H, V vocab, N =
 * B T positions. Matrices are row-major, as on the CPU; cuBLAS is
 * column-major, so a row-major [R, K] matrix is handed to it as its
 * column-major transpose [K, R] (see matmul_forward).
 *
 * Attention permutes qkv [B, T, 3, H, hs] into q, k, v [B, H, T, hs], so
 * that each (b, h) pair is one matrix of a strided batch:
 *   preatt = q k^T    [B H, T, T]   (cuBLAS)
 *   att = causal softmax(preatt / sqrt(hs))   (gpu_softmax_causal_forward)
 *   y = att v         [B H, T, hs]  (cuBLAS)
 *   atty = y as [B, T, H, hs]
 * and the backward mirrors it.
 *
 * Tokens, targets, log-probabilities and values cross the interface as host
 * arrays and are copied on the backend's stream, which every kernel and
 * cuBLAS call runs on; each copy back to the host waits for the stream.
 * Generation (gen_rows > 0) is refused at creation for now. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "gpu/check.h"
#include "gpu/cuda_backend.h"
#include "gpu/kernels.h"

/* Without training, logits are computed for this many rows at a time, as on
 * the CPU. */
#define LOGIT_ROWS 64

/* Activations of one layer, for B x T positions (device). */
struct layer_acts {
  float *ln1, *ln1_mean, *ln1_rstd; /* ln1 of the layer's input */
  float *qkv, *atty, *att;          /* att [B, H, T, T] */
  float *attproj, *residual2;
  float *ln2, *ln2_mean, *ln2_rstd;
  float *fch, *fch_gelu, *fcproj;
  float *residual3; /* the layer's output */
};

struct cuda_backend {
  struct backend base;
  cudaStream_t stream;
  cublasHandle_t cublas;
  size_t offsets[GPT_TENSOR_COUNT];
  float *params, *grads, *m, *v; /* device; grads, m and v NULL without training */
  /* activations */
  float *encoded;
  struct layer_acts *layers; /* host array of device pointers */
  float *lnf, *lnf_mean, *lnf_rstd, *logits, *lse;
  float *logp, *values, *dlogp, *dvalues; /* [N] each: the host arrays' device copies */
  int32_t *tokens, *targets;              /* of the last forward (device) */
  double *sum;                            /* one double for grad_norm */
  int B, T;                               /* of the last forward */
  bool lm_head;                           /* whether the last forward computed log-probabilities */
  /* attention scratch: q, k, v, y [B, H, T, hs], preatt [B, H, T, T] */
  float *q, *k, *vv, *y, *preatt;
  /* backward scratch, one layer's worth */
  float *dx, *dln, *dqkv, *datty, *datt, *dfch, *dfch_gelu, *dlnf;
  float *dq, *dk, *dv, *dy; /* [B, H, T, hs] */
  float *memory;            /* every activation and scratch buffer, one allocation */
};

static float *tensor(float *base, const struct cuda_backend *b, enum gpt_tensor t) { return base + b->offsets[t]; }

static unsigned blocks(size_t n, unsigned block) { return (unsigned)((n + block - 1) / block); }

/* ------------------------------------------------------------------------
 * Matmuls (cuBLAS) */

/* out [N, OC] = inp [N, C] W^T (+ bias [OC]), W [OC, C]. In cuBLAS's
 * column-major terms: out^T [OC, N] = W^T' [OC, C] inp^T [C, N], where W
 * read column-major is W^T [C, OC], hence the transpose on it. */
static void matmul_forward(struct cuda_backend *b, float *out, const float *inp, const float *w, const float *bias,
                           int N, int C, int OC) {
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_CHECK(cublasSgemm(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w, C, inp, C, &zero, out, OC));
  if (bias) CUDA_CHECK(gpu_bias_forward(b->stream, out, bias, N, OC));
}

/* dinp [N, C] += dout [N, OC] W; dw [OC, C] += dout^T inp; dbias [OC] +=
 * the column sums of dout (when dbias is not NULL). */
static void matmul_backward(struct cuda_backend *b, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC) {
  const float one = 1.0f;
  /* dinp^T [C, N] += W^T [C, OC] dout^T [OC, N] */
  CUBLAS_CHECK(cublasSgemm(b->cublas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w, C, dout, OC, &one, dinp, C));
  /* dw^T [C, OC] += inp^T [C, N] dout [N, OC] */
  CUBLAS_CHECK(cublasSgemm(b->cublas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dw, C));
  if (dbias) CUDA_CHECK(gpu_bias_backward(b->stream, dbias, dout, N, OC));
}

/* ------------------------------------------------------------------------
 * Attention */

/* Where element I of a [B, H, T, hs] tensor sits in a [B, T, ...] one
 * whose rows are ROW floats wide with the heads side by side at their
 * start: qkv's queries (ROW 3C; the keys and values are C and 2C further)
 * or the heads' outputs (ROW C). */
__device__ static size_t head_offset(size_t i, int T, int H, int hs, size_t row) {
  int d = (int)(i % hs);
  size_t rest = i / hs;
  int t = (int)(rest % T);
  rest /= T;
  int h = (int)(rest % H);
  int bb = (int)(rest / H);
  return ((size_t)bb * T + t) * row + (size_t)h * hs + d;
}

/* qkv [B, T, 3, H, hs] -> q, k, v [B, H, T, hs] */
__global__ static void permute_kernel(float *q, float *k, float *v, const float *qkv, int B, int T, int H, int hs) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t n = (size_t)B * H * T * hs;
  if (i >= n) return;
  size_t C = (size_t)H * hs;
  const float *row = qkv + head_offset(i, T, H, hs, 3 * C);
  q[i] = row[0];
  k[i] = row[C];
  v[i] = row[2 * C];
}

/* The reverse: dq, dk, dv [B, H, T, hs] -> dqkv [B, T, 3, H, hs]
 * (overwritten). */
__global__ static void permute_backward_kernel(float *dqkv, const float *dq, const float *dk, const float *dv, int B,
                                               int T, int H, int hs) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t n = (size_t)B * H * T * hs;
  if (i >= n) return;
  size_t C = (size_t)H * hs;
  float *row = dqkv + head_offset(i, T, H, hs, 3 * C);
  row[0] = dq[i];
  row[C] = dk[i];
  row[2 * C] = dv[i];
}

/* y [B, H, T, hs] -> out [B, T, H, hs] */
__global__ static void unpermute_kernel(float *out, const float *y, int B, int T, int H, int hs) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t n = (size_t)B * H * T * hs;
  if (i >= n) return;
  out[head_offset(i, T, H, hs, (size_t)H * hs)] = y[i];
}

/* The reverse: dout [B, T, H, hs] -> dy [B, H, T, hs] */
__global__ static void unpermute_backward_kernel(float *dy, const float *dout, int B, int T, int H, int hs) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t n = (size_t)B * H * T * hs;
  if (i >= n) return;
  dy[i] = dout[head_offset(i, T, H, hs, (size_t)H * hs)];
}

#define PERMUTE_BLOCK 256

/* out [B, T, C] and att [B, H, T, T] from qkv [B, T, 3C], as cpu
 * attention_forward; b->q, k, vv, y and preatt are scratch. */
static void attention_forward(struct cuda_backend *b, float *out, float *att, const float *qkv, int B, int T, int C,
                              int H) {
  int hs = C / H, BH = B * H;
  size_t n = (size_t)B * T * C;
  const float one = 1.0f, zero = 0.0f;
  long long sqk = (long long)T * hs, satt = (long long)T * T;
  permute_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(b->q, b->k, b->vv, qkv, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
  /* preatt [T, T] = q k^T per (b, h); column-major: preatt^T = k' q^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &one, b->k, hs, sqk, b->q, hs,
                                         sqk, &zero, b->preatt, T, satt, BH));
  CUDA_CHECK(gpu_softmax_causal_forward(b->stream, att, b->preatt, BH, T, 1.0f / sqrtf((float)hs)));
  /* y [T, hs] = att v; column-major: y^T = v^T att^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, b->vv, hs, sqk, att, T,
                                         satt, &zero, b->y, hs, sqk, BH));
  unpermute_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(out, b->y, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
}

/* dqkv [B, T, 3C] (overwritten: the CPU zeroes it before adding) from dout
 * [B, T, C], qkv and att of the forward. */
static void attention_backward(struct cuda_backend *b, float *dqkv, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int H) {
  int hs = C / H, BH = B * H;
  size_t n = (size_t)B * T * C;
  const float one = 1.0f, zero = 0.0f;
  long long sqk = (long long)T * hs, satt = (long long)T * T;
  permute_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(b->q, b->k, b->vv, qkv, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
  unpermute_backward_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(b->dy, dout, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
  /* datt [T, T] = dy v^T; column-major: datt^T = v' dy^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &one, b->vv, hs, sqk, b->dy,
                                         hs, sqk, &zero, b->datt, T, satt, BH));
  /* dv [T, hs] = att^T dy; column-major: dv^T = dy^T att */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, b->dy, hs, sqk, att, T,
                                         satt, &zero, b->dv, hs, sqk, BH));
  /* dpreatt (in b->preatt): the softmax's backward leaves the entries
   * above the diagonal as they are, so they start at 0 */
  CUDA_CHECK(cudaMemsetAsync(b->preatt, 0, (size_t)BH * T * T * sizeof(float), b->stream));
  CUDA_CHECK(gpu_softmax_causal_backward(b->stream, b->preatt, b->datt, att, BH, T, 1.0f / sqrtf((float)hs)));
  /* dq [T, hs] = dpreatt k; column-major: dq^T = k^T dpreatt^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, b->k, hs, sqk,
                                         b->preatt, T, satt, &zero, b->dq, hs, sqk, BH));
  /* dk [T, hs] = dpreatt^T q; column-major: dk^T = q^T dpreatt */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, b->q, hs, sqk,
                                         b->preatt, T, satt, &zero, b->dk, hs, sqk, BH));
  permute_backward_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(dqkv, b->dq, b->dk, b->dv, B, T,
                                                                                     H, hs);
  CUDA_CHECK(cudaGetLastError());
}

/* ------------------------------------------------------------------------
 * Host <-> device */

static void to_device(struct cuda_backend *b, void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, b->stream));
}

/* Waits for the stream, so the host array is filled on return. */
static void to_host(struct cuda_backend *b, void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, b->stream));
  CUDA_CHECK(cudaStreamSynchronize(b->stream));
}

static void zero_device(struct cuda_backend *b, float *x, size_t n) {
  CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof *x, b->stream));
}

/* ------------------------------------------------------------------------
 * The passes */

/* The LM head is skipped without TARGETS or LOGP (a reward model, or
 * next_logits, which wants the logits of a few rows only). */
static void cuda_forward(struct backend *be, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp,
                         float *values) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, V = cfg->vocab, L = cfg->layers;
  size_t N = (size_t)B * T;
  float *p = b->params;
  if (B < 1 || T < 1 || B > be->spec.max_batch || T > be->spec.max_seq) {
    fprintf(stderr, "trainpipe: internal error: a forward of %d x %d on a CUDA backend built for %d x %d\n", B, T,
            be->spec.max_batch, be->spec.max_seq);
    abort();
  }
  to_device(b, b->tokens, tokens, N * sizeof *tokens);
  b->lm_head = targets && logp;
  if (b->lm_head) to_device(b, b->targets, targets, N * sizeof *targets);
  b->B = B;
  b->T = T;
  CUDA_CHECK(gpu_encoder_forward(b->stream, b->encoded, b->tokens, tensor(p, b, GPT_WTE), tensor(p, b, GPT_WPE), B, T,
                                 C));
  const float *x = b->encoded;
  for (int l = 0; l < L; l++) {
    struct layer_acts *a = &b->layers[l];
    size_t c = (size_t)l * C;
    CUDA_CHECK(gpu_layernorm_forward(b->stream, a->ln1, a->ln1_mean, a->ln1_rstd, x, tensor(p, b, GPT_LN1W) + c,
                                     tensor(p, b, GPT_LN1B) + c, (int)N, C));
    matmul_forward(b, a->qkv, a->ln1, tensor(p, b, GPT_QKVW) + c * 3 * C, tensor(p, b, GPT_QKVB) + 3 * c, (int)N, C,
                   3 * C);
    attention_forward(b, a->atty, a->att, a->qkv, B, T, C, H);
    matmul_forward(b, a->attproj, a->atty, tensor(p, b, GPT_ATTPROJW) + c * C, tensor(p, b, GPT_ATTPROJB) + c, (int)N,
                   C, C);
    CUDA_CHECK(gpu_residual_forward(b->stream, a->residual2, x, a->attproj, N * C));
    CUDA_CHECK(gpu_layernorm_forward(b->stream, a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2,
                                     tensor(p, b, GPT_LN2W) + c, tensor(p, b, GPT_LN2B) + c, (int)N, C));
    matmul_forward(b, a->fch, a->ln2, tensor(p, b, GPT_FCW) + c * 4 * C, tensor(p, b, GPT_FCB) + 4 * c, (int)N, C,
                   4 * C);
    CUDA_CHECK(gpu_gelu_forward(b->stream, a->fch_gelu, a->fch, N * 4 * C));
    matmul_forward(b, a->fcproj, a->fch_gelu, tensor(p, b, GPT_FCPROJW) + c * 4 * C, tensor(p, b, GPT_FCPROJB) + c,
                   (int)N, 4 * C, C);
    CUDA_CHECK(gpu_residual_forward(b->stream, a->residual3, a->residual2, a->fcproj, N * C));
    x = a->residual3;
  }
  CUDA_CHECK(gpu_layernorm_forward(b->stream, b->lnf, b->lnf_mean, b->lnf_rstd, x, tensor(p, b, GPT_LNFW),
                                   tensor(p, b, GPT_LNFB), (int)N, C));
  if (values && cfg->head) {
    CUDA_CHECK(gpu_scalar_head_forward(b->stream, b->values, b->lnf, tensor(p, b, GPT_HEADW), tensor(p, b, GPT_HEADB),
                                       (int)N, C));
    to_host(b, values, b->values, N * sizeof *values);
  }
  if (!b->lm_head) return;
  const float *wte = tensor(p, b, GPT_WTE);
  if (be->spec.train) { /* the backward needs every row's logits */
    matmul_forward(b, b->logits, b->lnf, wte, NULL, (int)N, C, V);
    CUDA_CHECK(gpu_logprob_forward(b->stream, b->logp, b->lse, b->logits, b->targets, (int)N, V));
  } else { /* only log-probabilities are wanted: the logits of a few rows at a time */
    for (size_t r = 0; r < N; r += LOGIT_ROWS) {
      int rows = (int)(N - r < LOGIT_ROWS ? N - r : LOGIT_ROWS);
      matmul_forward(b, b->logits, b->lnf + r * C, wte, NULL, rows, C, V);
      CUDA_CHECK(gpu_logprob_forward(b->stream, b->logp + r, b->lse + r, b->logits, b->targets + r, rows, V));
    }
  }
  to_host(b, logp, b->logp, N * sizeof *logp);
}

static void cuda_next_logits(struct backend *be, const int32_t *tokens, int B, int T, float *logits) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  int C = be->spec.cfg.width, V = be->spec.cfg.vocab;
  const float one = 1.0f, zero = 0.0f;
  cuda_forward(be, tokens, NULL, B, T, NULL, NULL);
  /* the last row of each sequence: lnf rows T - 1, 2T - 1, ..., a matrix
   * [B, C] with a leading dimension of T C */
  CUBLAS_CHECK(cublasSgemm(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, V, B, C, &one, tensor(b->params, b, GPT_WTE), C,
                           b->lnf + (size_t)(T - 1) * C, T * C, &zero, b->logits, V));
  to_host(b, logits, b->logits, (size_t)B * V * sizeof *logits);
}

/* A dlogp after a forward that skipped the LM head has nothing to flow
 * through and is ignored, as is dvalues without a scalar head. */
static void cuda_backward(struct backend *be, const float *dlogp, const float *dvalues) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, V = cfg->vocab, L = cfg->layers, B = b->B, T = b->T;
  size_t N = (size_t)B * T;
  float *p = b->params, *g = b->grads;
  const float *x_last = L > 0 ? b->layers[L - 1].residual3 : b->encoded;
  bool from_logp = dlogp && b->lm_head, from_values = dvalues && cfg->head;
  if (!g || N == 0 || (!from_logp && !from_values)) return;

  zero_device(b, b->dlnf, N * C);
  if (from_logp) {
    to_device(b, b->dlogp, dlogp, N * sizeof *dlogp);
    CUDA_CHECK(gpu_logprob_backward(b->stream, b->logits, b->lse, b->dlogp, b->targets, (int)N, V));
    /* dlnf += dlogits wte, dwte += dlogits^T lnf */
    matmul_backward(b, b->dlnf, tensor(g, b, GPT_WTE), NULL, b->logits, b->lnf, tensor(p, b, GPT_WTE), (int)N, C, V);
  }
  if (from_values) {
    to_device(b, b->dvalues, dvalues, N * sizeof *dvalues);
    CUDA_CHECK(gpu_scalar_head_backward(b->stream, b->dlnf, tensor(g, b, GPT_HEADW), tensor(g, b, GPT_HEADB),
                                        b->dvalues, b->lnf, tensor(p, b, GPT_HEADW), (int)N, C));
  }
  zero_device(b, b->dx, N * C);
  CUDA_CHECK(gpu_layernorm_backward(b->stream, b->dx, tensor(g, b, GPT_LNFW), tensor(g, b, GPT_LNFB), b->dlnf, x_last,
                                    tensor(p, b, GPT_LNFW), b->lnf_mean, b->lnf_rstd, (int)N, C));
  /* b->dx is the gradient of the residual stream; a residual add passes it
   * through unchanged to both of its inputs */
  for (int l = L - 1; l >= 0; l--) {
    struct layer_acts *a = &b->layers[l];
    const float *x = l > 0 ? b->layers[l - 1].residual3 : b->encoded;
    size_t c = (size_t)l * C;
    zero_device(b, b->dfch_gelu, N * 4 * C);
    matmul_backward(b, b->dfch_gelu, tensor(g, b, GPT_FCPROJW) + c * 4 * C, tensor(g, b, GPT_FCPROJB) + c, b->dx,
                    a->fch_gelu, tensor(p, b, GPT_FCPROJW) + c * 4 * C, (int)N, 4 * C, C);
    zero_device(b, b->dfch, N * 4 * C);
    CUDA_CHECK(gpu_gelu_backward(b->stream, b->dfch, a->fch, b->dfch_gelu, N * 4 * C));
    zero_device(b, b->dln, N * C);
    matmul_backward(b, b->dln, tensor(g, b, GPT_FCW) + c * 4 * C, tensor(g, b, GPT_FCB) + 4 * c, b->dfch, a->ln2,
                    tensor(p, b, GPT_FCW) + c * 4 * C, (int)N, C, 4 * C);
    CUDA_CHECK(gpu_layernorm_backward(b->stream, b->dx, tensor(g, b, GPT_LN2W) + c, tensor(g, b, GPT_LN2B) + c, b->dln,
                                      a->residual2, tensor(p, b, GPT_LN2W) + c, a->ln2_mean, a->ln2_rstd, (int)N, C));
    zero_device(b, b->datty, N * C);
    matmul_backward(b, b->datty, tensor(g, b, GPT_ATTPROJW) + c * C, tensor(g, b, GPT_ATTPROJB) + c, b->dx, a->atty,
                    tensor(p, b, GPT_ATTPROJW) + c * C, (int)N, C, C);
    attention_backward(b, b->dqkv, b->datty, a->qkv, a->att, B, T, C, H);
    zero_device(b, b->dln, N * C);
    matmul_backward(b, b->dln, tensor(g, b, GPT_QKVW) + c * 3 * C, tensor(g, b, GPT_QKVB) + 3 * c, b->dqkv, a->ln1,
                    tensor(p, b, GPT_QKVW) + c * 3 * C, (int)N, C, 3 * C);
    CUDA_CHECK(gpu_layernorm_backward(b->stream, b->dx, tensor(g, b, GPT_LN1W) + c, tensor(g, b, GPT_LN1B) + c, b->dln,
                                      x, tensor(p, b, GPT_LN1W) + c, a->ln1_mean, a->ln1_rstd, (int)N, C));
  }
  CUDA_CHECK(gpu_encoder_backward(b->stream, tensor(g, b, GPT_WTE), tensor(g, b, GPT_WPE), b->dx, b->tokens, B, T, C));
}

/* create refuses gen_rows > 0, so these are never called */
static void gen_unavailable(const char *what) {
  fprintf(stderr, "trainpipe: internal error: %s: generation on the CUDA backend is not available yet\n", what);
  abort();
}

static void cuda_gen_prefill(struct backend *, int, const int32_t *, int, float *) { gen_unavailable("gen_prefill"); }

static void cuda_gen_decode(struct backend *, const int *, const int32_t *, int, float *) {
  gen_unavailable("gen_decode");
}

/* ------------------------------------------------------------------------
 * Gradients, the optimizer and copies */

static void cuda_zero_grad(struct backend *be) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (b->grads) zero_device(b, b->grads, be->n_params);
}

static double cuda_grad_norm(struct backend *be, double scale) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (!b->grads) return 0;
  double sum = 0;
  CUDA_CHECK(gpu_sum_squares(b->stream, b->sum, b->grads, be->n_params));
  to_host(b, &sum, b->sum, sizeof sum);
  return sqrt(sum) * scale;
}

static void cuda_step(struct backend *be, const struct adamw_step *s) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (!b->grads) return;
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t at = b->offsets[t], n = gpt_tensor_size(&be->spec.cfg, (enum gpt_tensor)t);
    if (n == 0) continue; /* the scalar head of a model without one */
    float decay = gpt_tensor_decays((enum gpt_tensor)t) ? s->weight_decay : 0.0f;
    CUDA_CHECK(gpu_adamw_update(b->stream, b->params + at, b->grads + at, b->m + at, b->v + at, n, s->lr, s->beta1,
                                s->beta2, s->eps, decay, s->grad_scale, s->t));
  }
}

static void cuda_read_params(struct backend *be, float *params) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  to_host(b, params, b->params, be->n_params * sizeof *params);
}

static void cuda_write_params(struct backend *be, const float *params) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  to_device(b, b->params, params, be->n_params * sizeof *params);
  CUDA_CHECK(cudaStreamSynchronize(b->stream)); /* the caller may free PARAMS */
}

static bool cuda_read_moments(struct backend *be, float *m, float *v) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (!b->m) return false;
  to_host(b, m, b->m, be->n_params * sizeof *m);
  to_host(b, v, b->v, be->n_params * sizeof *v);
  return true;
}

static bool cuda_write_moments(struct backend *be, const float *m, const float *v) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (!b->m) return false;
  to_device(b, b->m, m, be->n_params * sizeof *m);
  to_device(b, b->v, v, be->n_params * sizeof *v);
  CUDA_CHECK(cudaStreamSynchronize(b->stream));
  return true;
}

static void cuda_read_grads(struct backend *be, float *grads) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (b->grads) to_host(b, grads, b->grads, be->n_params * sizeof *grads);
  else memset(grads, 0, be->n_params * sizeof *grads);
}

/* Frees what was allocated; safe on a partly built backend. Errors are
 * ignored here: destroy also runs after a failed creation. */
static void cuda_destroy(struct backend *be) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  if (b->stream) cudaStreamSynchronize(b->stream);
  cudaFree(b->params);
  cudaFree(b->grads);
  cudaFree(b->m);
  cudaFree(b->v);
  cudaFree(b->memory);
  cudaFree(b->tokens);
  cudaFree(b->targets);
  cudaFree(b->sum);
  if (b->cublas) cublasDestroy(b->cublas);
  if (b->stream) cudaStreamDestroy(b->stream);
  free(b->layers);
  free(b);
}

/* in the order of struct backend_ops */
static const struct backend_ops cuda_ops = {
    "cuda",
    cuda_forward,
    cuda_next_logits,
    cuda_backward,
    cuda_gen_prefill,
    cuda_gen_decode,
    cuda_zero_grad,
    cuda_grad_norm,
    cuda_step,
    cuda_read_params,
    cuda_write_params,
    cuda_read_moments,
    cuda_write_moments,
    cuda_read_grads,
    cuda_destroy,
};

/* ------------------------------------------------------------------------
 * Creation */

/* Hands out consecutive pieces of one allocation. */
struct carver {
  float *next;
};

static float *carve(struct carver *c, size_t n) {
  float *p = c->next;
  c->next += (n + 63) & ~(size_t)63; /* 256-byte aligned pieces */
  return p;
}

/* Pieces of n floats as carve hands them out. */
static size_t carved(size_t n) { return (n + 63) & ~(size_t)63; }

/* cudaMalloc of n bytes (none for 0) into *p; false on failure, which is
 * left in ERR. */
static bool device_alloc(void **p, size_t bytes, const char *what, char *err, size_t err_size) {
  *p = NULL;
  if (bytes == 0) return true;
  cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaSuccess) e = cudaMemset(*p, 0, bytes);
  if (e == cudaSuccess) return true;
  snprintf(err, err_size, "out of device memory for the %s (%.1f MiB): %s", what, bytes / 1048576.0,
           cudaGetErrorString(e));
  *p = NULL;
  return false;
}

extern "C" struct backend *cuda_backend_create(const struct backend_spec *spec, char *err, size_t err_size) {
  const struct gpt_config *cfg = &spec->cfg;
  const char *problem = gpt_config_problem(cfg);
  if (problem) {
    snprintf(err, err_size, "cannot build the model: %s", problem);
    return NULL;
  }
  if (spec->max_batch < 1 || spec->max_seq < 1 || spec->max_seq > cfg->context) {
    snprintf(err, err_size, "a micro-batch of %d sequences of %d tokens does not fit a context of %d",
             spec->max_batch, spec->max_seq, cfg->context);
    return NULL;
  }
  if (spec->gen_rows < 0) {
    snprintf(err, err_size, "%d rows of generation: the count cannot be negative", spec->gen_rows);
    return NULL;
  }
  if (spec->gen_rows > 0) {
    snprintf(err, err_size, "generation on the CUDA backend is not available yet");
    return NULL;
  }
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    snprintf(err, err_size, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    return NULL;
  }
  size_t B = (size_t)spec->max_batch, T = (size_t)spec->max_seq, C = (size_t)cfg->width, H = (size_t)cfg->heads;
  size_t V = (size_t)cfg->vocab, L = (size_t)cfg->layers, N = B * T;
  /* cuBLAS and the kernels count rows and columns in ints (elements in
   * size_t): attention's B H T rows are the most */
  if (B * H * T > (size_t)INT32_MAX || 4 * C > (size_t)INT32_MAX) {
    snprintf(err, err_size, "a micro-batch of %d x %d is too large for one CUDA backend of this model",
             spec->max_batch, spec->max_seq);
    return NULL;
  }

  struct cuda_backend *b = (struct cuda_backend *)calloc(1, sizeof *b);
  if (!b) {
    snprintf(err, err_size, "out of host memory");
    return NULL;
  }
  b->base.ops = &cuda_ops;
  b->base.spec = *spec;
  b->base.n_params = gpt_param_count(cfg);
  gpt_tensor_offsets(cfg, b->offsets);
  size_t P = b->base.n_params;
  b->layers = (struct layer_acts *)calloc(L ? L : 1, sizeof *b->layers);
  if (!b->layers) {
    snprintf(err, err_size, "out of host memory");
    cuda_destroy(&b->base);
    return NULL;
  }
  e = cudaStreamCreate(&b->stream);
  if (e != cudaSuccess) {
    snprintf(err, err_size, "cannot create a CUDA stream: %s", cudaGetErrorString(e));
    b->stream = NULL;
    cuda_destroy(&b->base);
    return NULL;
  }
  cublasStatus_t cs = cublasCreate(&b->cublas);
  if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(b->cublas, b->stream);
  if (cs != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, err_size, "cannot start cuBLAS: %s", cublasGetStatusString(cs));
    cuda_destroy(&b->base);
    return NULL;
  }

  /* activations: per layer 18 of [N, C] (ln1, qkv's 3, atty, attproj,
   * residual2, ln2, fch's 4, fch_gelu's 4, fcproj, residual3), att [B, H,
   * T, T] and 4 of [N] (ln1's and ln2's mean and rstd); without training
   * every layer uses the same ones (a layer reads its input, the previous
   * residual3, before it writes its own) */
  size_t kept_layers = spec->train ? L : (L ? 1 : 0);
  size_t logit_rows = spec->train || N < LOGIT_ROWS ? N : LOGIT_ROWS;
  if (logit_rows < B) logit_rows = B; /* next_logits' [B, V] */
  size_t per_layer =
      7 * carved(N * C) + carved(3 * N * C) + 2 * carved(4 * N * C) + carved(B * H * T * T) + 4 * carved(N);
  size_t total = kept_layers * per_layer;
  total += 2 * carved(N * C) + 3 * carved(N) + carved(logit_rows * V); /* encoded, lnf; lnf's mean, rstd, lse */
  total += 4 * carved(N);                                                /* logp, values, dlogp, dvalues */
  total += 4 * carved(N * C) + carved(B * H * T * T);                    /* q, k, vv, y; preatt */
  if (spec->train) /* dx, dln, dlnf, datty, dq, dk, dv, dy; dqkv; dfch, dfch_gelu; datt */
    total += 8 * carved(N * C) + carved(3 * N * C) + 2 * carved(4 * N * C) + carved(B * H * T * T);

  bool ok = device_alloc((void **)&b->params, P * sizeof(float), "parameters", err, err_size);
  if (ok && spec->train) {
    ok = device_alloc((void **)&b->grads, P * sizeof(float), "gradients", err, err_size) &&
         device_alloc((void **)&b->m, P * sizeof(float), "AdamW moments", err, err_size) &&
         device_alloc((void **)&b->v, P * sizeof(float), "AdamW moments", err, err_size);
  }
  ok = ok && device_alloc((void **)&b->memory, total * sizeof(float), "activations", err, err_size) &&
       device_alloc((void **)&b->tokens, N * sizeof(int32_t), "tokens", err, err_size) &&
       device_alloc((void **)&b->targets, N * sizeof(int32_t), "targets", err, err_size) &&
       device_alloc((void **)&b->sum, sizeof(double), "gradient norm", err, err_size);
  if (!ok) {
    cuda_destroy(&b->base);
    return NULL;
  }

  struct carver c = {b->memory};
  b->encoded = carve(&c, N * C);
  for (size_t l = 0; l < L; l++) {
    struct layer_acts *a = &b->layers[l];
    if (l >= kept_layers) {
      *a = b->layers[0];
      continue;
    }
    a->ln1 = carve(&c, N * C);
    a->ln1_mean = carve(&c, N);
    a->ln1_rstd = carve(&c, N);
    a->qkv = carve(&c, 3 * N * C);
    a->atty = carve(&c, N * C);
    a->att = carve(&c, B * H * T * T);
    a->attproj = carve(&c, N * C);
    a->residual2 = carve(&c, N * C);
    a->ln2 = carve(&c, N * C);
    a->ln2_mean = carve(&c, N);
    a->ln2_rstd = carve(&c, N);
    a->fch = carve(&c, 4 * N * C);
    a->fch_gelu = carve(&c, 4 * N * C);
    a->fcproj = carve(&c, N * C);
    a->residual3 = carve(&c, N * C);
  }
  b->lnf = carve(&c, N * C);
  b->lnf_mean = carve(&c, N);
  b->lnf_rstd = carve(&c, N);
  b->lse = carve(&c, N);
  b->logits = carve(&c, logit_rows * V);
  b->logp = carve(&c, N);
  b->values = carve(&c, N);
  b->dlogp = carve(&c, N);
  b->dvalues = carve(&c, N);
  b->q = carve(&c, N * C);
  b->k = carve(&c, N * C);
  b->vv = carve(&c, N * C);
  b->y = carve(&c, N * C);
  b->preatt = carve(&c, B * H * T * T);
  if (spec->train) {
    b->dx = carve(&c, N * C);
    b->dln = carve(&c, N * C);
    b->dlnf = carve(&c, N * C);
    b->datty = carve(&c, N * C);
    b->dq = carve(&c, N * C);
    b->dk = carve(&c, N * C);
    b->dv = carve(&c, N * C);
    b->dy = carve(&c, N * C);
    b->dqkv = carve(&c, 3 * N * C);
    b->dfch = carve(&c, 4 * N * C);
    b->dfch_gelu = carve(&c, 4 * N * C);
    b->datt = carve(&c, B * H * T * T);
  }
  if (c.next > b->memory + total) { /* the sizes above undercount: a bug, never a silent overrun */
    snprintf(err, err_size, "internal error: device activation memory miscounted");
    cuda_destroy(&b->base);
    return NULL;
  }
  return &b->base;
}
