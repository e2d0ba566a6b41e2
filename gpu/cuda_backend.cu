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
 *   preatt = q k^T    [B H, T, T]   (cuBLAS, into att)
 *   att = causal softmax(preatt / sqrt(hs))   (gpu_softmax_causal_forward, in place)
 *   y = att v         [B H, T, hs]  (cuBLAS)
 *   atty = y as [B, T, H, hs]
 * and the backward mirrors it.
 *
 * Tokens, targets, log-probabilities and values cross the interface as host
 * arrays and are copied on the backend's stream, which every kernel and
 * cuBLAS call runs on; each copy back to the host waits for the stream.
 *
 * Precision (runtime/backend.h): fp32 runs cuBLAS's sgemm as it is; tf32
 * lets it use the tensor cores (CUBLAS_TF32_TENSOR_OP_MATH). bf16 keeps
 * the fp32 weights as the master copy and a bf16 copy of them (params16,
 * refreshed after every step and every write_params). A Linear layer's
 * input is written in bf16 by the pass that makes it (LayerNorm, GELU;
 * attention's output is rounded once) and kept for the backward (struct
 * layer16). The matmuls accumulate in fp32. The widest tensors stay in
 * bf16 from the matmul that writes them to the one that reads them: the
 * MLP's hidden activation [N, 4C] before and after GELU, its gradients,
 * the LM head's logits [N, V], which the log-softmax's backward
 * overwrites with their gradient, and with fused attention, which reads
 * and writes bf16, qkv [N, 3C] and its gradient. The other matmuls write
 * fp32. The residual stream's gradient stays fp32, and LayerNorm's
 * backward, which adds to it, leaves its bf16 rounding beside it for the
 * matmuls; other gradients a matmul reads are rounded into scratch
 * first. Every kernel computes in fp32 whatever it reads, as autocast
 * does with LayerNorm and softmax; attention's batched matmuls run in
 * tf32, or in bf16 when fused.
 *
 * The biases of attproj, fc and fcproj are added by the pass after their
 * matmul (the residual add, GELU), to the same bits as a pass of their
 * own, and every backward pass that can overwrite its output does, rather
 * than add into a zeroed buffer.
 *
 * With cuBLASLt's epilogues (struct cuda_options, bf16 only), qkv's
 * matmul adds its bias itself, fc's matmul writes GELU's input and output
 * at once, and fcproj's backward matmul applies GELU's derivative and sums
 * fc's bias gradient, in bf16, which is then added to the fp32 one. Where
 * cuBLASLt has no algorithm for an epilogue, the passes run apart as
 * without it. Generation keeps to cuBLAS.
 *
 * Generation has buffers of its own (struct gen_state), as on the CPU: a
 * KV cache of gen_rows rows and scratch for one prompt or one token of
 * every row, so sampling between a forward and its backward leaves what
 * the backward needs. The logits come back to the host, where
 * runtime/generate.c samples them with the CPU backend's code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "gpu/attention.h"
#include "gpu/check.h"
#include "gpu/cublas_library.h"
#include "gpu/cuda_backend.h"
#include "gpu/kernels.h"
#include "runtime/activations.h"

/* Without training, logits are computed for this many rows at a time, as on
 * the CPU. */
#define LOGIT_ROWS 64

/* The KV cache and generation's scratch (device), for R = gen_rows rows of
 * S = max_seq positions; P = max(R, S) positions at a time (a prompt, or
 * one token of every row), as in runtime/cpu_backend.c. */
struct gen_state {
  float *k, *v;       /* [L, R, S, C] */
  int *len;           /* [R], host: the positions each row holds */
  int32_t *host_ints; /* [3P], host: a call's n tokens, then n rows, then n positions */
  int32_t *ints;      /* [3P]: their device copy */
  struct gen_scratch s;
  float *logits; /* [R, V] */
  float *memory; /* the scratch and the logits, one allocation */
};

/* In bf16, a layer's matmul inputs in bf16: written by their producers
 * (LayerNorm, GELU; attention's output rounded once) and read again by the
 * backward, instead of rounded into scratch before each matmul; fc's
 * output, GELU's input; and with fused attention, which reads bf16, qkv.
 * All but atty replace their fp32 twins in struct layer_acts, which get no
 * memory (NULL). */
struct layer16 {
  gpu_bf16 *ln1, *qkv, *atty, *ln2, *fch, *fch_gelu;
};

struct cuda_backend {
  struct backend base;
  cudaStream_t stream;
  cublasHandle_t cublas;
  size_t offsets[GPT_TENSOR_COUNT];
  float *params, *grads, *m, *v;          /* grads, m and v NULL without training */
  struct activations act;                 /* device pointers; act.layers a host array */
  float *logp, *values, *dlogp, *dvalues; /* [N] each: the host arrays' device copies */
  int32_t *tokens, *targets;              /* of the last forward (device) */
  double *sum;                            /* one double for grad_norm */
  int B, T;                               /* of the last forward */
  bool lm_head;                           /* whether the last forward computed log-probabilities */
  float *q, *k, *vv, *y;                  /* [B, H, T, hs]: attention's permuted operands */
  float *dq, *dk, *dv, *dy;               /* and their gradients */
  float *memory;                          /* all of the above from act on, one allocation */
  /* bf16 precision: the weights' copy, and the operands of one matmul */
  bool bf16;
  gpu_bf16 *params16, *cast_a, *cast_b;
  struct layer16 *layers16; /* host array [L]; NULL outside bf16 */
  gpu_bf16 *lnf16;
  gpu_bf16 *logits16; /* the LM head's [logit_rows, V]; act.logits keeps next_logits' [B, V] */
  gpu_bf16 *dfch16;   /* the backward's dfch_gelu, then dfch in its place */
  gpu_bf16 *dqkv16;   /* with fused attention, the backward's dqkv */
  gpu_bf16 *dx16;     /* the residual stream's gradient, as LayerNorm's backward leaves it */
  gpu_bf16 *memory16; /* all of the bf16 activations, one allocation */
  bool fused; /* fused attention (gpu/attention.h) */
  /* cuBLASLt's epilogues (struct cuda_options): its handle and workspace,
   * and fc's bias gradient, which the epilogue writes in bf16 [4C] */
  bool epilogues;
  cublasLtHandle_t lt;
  void *lt_workspace;
  gpu_bf16 *dbias16;
  double *colsum; /* the backward's column sums' parts (gpu/kernels.h) */
  struct gen_state gen; /* all NULL without generation rows */
};

static float *tensor(float *base, const struct cuda_backend *b, enum gpt_tensor t) { return base + b->offsets[t]; }

/* The bf16 inputs of a layer outside bf16: none. */
static const struct layer16 no16 = {NULL, NULL, NULL, NULL, NULL, NULL};

static unsigned blocks(size_t n, unsigned block) { return (unsigned)((n + block - 1) / block); }

/* ------------------------------------------------------------------------
 * Matmuls (cuBLAS) */

/* A weight's bf16 copy: the same offset in params16. */
static const gpu_bf16 *weight16(const struct cuda_backend *b, const float *w) { return b->params16 + (w - b->params); }

/* N floats of X rounded into the scratch TO; returns TO. */
static const gpu_bf16 *rounded(struct cuda_backend *b, gpu_bf16 *to, const float *x, size_t n) {
  CUDA_CHECK(gpu_to_bf16(b->stream, to, x, n));
  return to;
}

/* A matmul's operand: its fp32 array, its bf16 one, or both. In bf16 the
 * bf16 one is read, rounded from the fp32 one into scratch when absent;
 * otherwise the fp32 one. */
struct operand {
  const float *f32;
  const gpu_bf16 *bf16;
};

/* Where a matmul writes: in bf16, into BF16 when it is not NULL;
 * otherwise into F32. */
struct result {
  float *f32;
  gpu_bf16 *bf16;
};

/* C [m, n] (column-major, leading dimension ldc) = op(A) op(B) + beta C,
 * with A and B as the precision reads them (struct operand: the caller
 * has the bf16 arrays in place). */
static void gemm(struct cuda_backend *b, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 struct operand A, int lda, struct operand B, int ldb, float beta, struct result C, int ldc) {
  const float one = 1.0f;
  if (b->bf16) {
    bool c16 = C.bf16 != NULL;
    CUBLAS_CHECK(cublasGemmEx(b->cublas, ta, tb, m, n, k, &one, A.bf16, CUDA_R_16BF, lda, B.bf16, CUDA_R_16BF, ldb,
                              &beta, c16 ? (void *)C.bf16 : (void *)C.f32, c16 ? CUDA_R_16BF : CUDA_R_32F, ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    CUBLAS_CHECK(cublasSgemm(b->cublas, ta, tb, m, n, k, &one, A.f32, lda, B.f32, ldb, &beta, C.f32, ldc));
  }
}

/* A matmul's epilogue in cuBLASLt: KIND with BIAS, the bias (of D's type)
 * or where the bias's gradient goes (the same), and AUX, GELU's input
 * [n, m] (column-major, ld m): written by GELU_AUX_BIAS, read by
 * DGELU_BGRAD. */
struct epilogue {
  cublasLtEpilogue_t kind;
  void *bias;
  void *aux;
};

/* cuBLASLt's workspace, what NVIDIA suggests for Hopper. */
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

/* The largest power of two up to 256 that divides P's address: the
 * alignment cuBLASLt's heuristic may count on. */
static uint32_t alignment_of(const void *p) {
  uint32_t a = 256;
  while (a > 1 && (uintptr_t)p % a) a /= 2;
  return a;
}

/* D [m, n] (column-major, ld ldd, of type DTYPE) = E(op(A) op(B)) from
 * bf16 A and B, with fp32 accumulation, through cuBLASLt; false, having
 * done nothing, when cuBLASLt has no algorithm for it (an epilogue it
 * does not take with these types or this alignment), for the caller to
 * take the plain path. */
static bool lt_gemm(struct cuda_backend *b, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const gpu_bf16 *A, int lda, const gpu_bf16 *B, int ldb, void *D, cudaDataType_t dtype, int ldd,
                    const struct epilogue *e) {
  /* The heuristic is told the bias's and aux's addresses, but kernels
   * picked for a bias under 16 bytes aligned have been seen to fault
   * (pytorch/pytorch#194497): a fault would end the run, the plain path
   * costs a pass. */
  if ((e->bias && alignment_of(e->bias) < 16) || (e->aux && alignment_of(e->aux) < 16)) return false;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e->kind, sizeof e->kind));
  if (e->bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &e->bias, sizeof e->bias));
  if (e->aux) {
    int64_t aux_ld = m;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &e->aux, sizeof e->aux));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
  }
  bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, an ? m : k, an ? k : m, lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, bn ? k : n, bn ? n : k, ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, dtype, m, n, ldd));
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t workspace = LT_WORKSPACE_BYTES;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                    sizeof workspace));
  /* The heuristic sees no operand's address and otherwise picks
   * algorithms that assume 256-byte alignment, which a weight or an
   * activation at an offset into params16 or memory16 need not have:
   * cublasLtMatmul would then refuse it. C is D. */
  const cublasLtMatmulPreferenceAttributes_t attrs[] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  const void *operands[] = {A, B, D, D};
  for (int i = 0; i < 4; i++) {
    uint32_t alignment = alignment_of(operands[i]);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &alignment, sizeof alignment));
  }
  cublasLtMatmulHeuristicResult_t found;
  int count = 0;
  bool ok = cublasLtMatmulAlgoGetHeuristic(b->lt, desc, la, lb, ld, ld, pref, 1, &found, &count) ==
                CUBLAS_STATUS_SUCCESS &&
            count > 0;
  if (ok) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(b->lt, desc, &one, A, la, B, lb, &zero, D, ld, D, ld, &found.algo, b->lt_workspace,
                                workspace, b->stream));
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatmulDescDestroy(desc);
  return ok;
}

/* The operand W, a slice of the parameters, with its bf16 copy in bf16. */
static struct operand weight(const struct cuda_backend *b, const float *w) {
  return {w, b->bf16 ? weight16(b, w) : NULL};
}

/* X, N C numbers, with its bf16 array in bf16: X's own or X rounded into
 * the scratch TO. */
static struct operand with_bf16(struct cuda_backend *b, struct operand x, gpu_bf16 *to, size_t n) {
  if (b->bf16 && !x.bf16) x.bf16 = rounded(b, to, x.f32, n);
  return x;
}

/* out [N, OC] = inp [N, C] W^T (+ bias [OC]), W [OC, C] (a slice of the
 * parameters). In cuBLAS's column-major terms: out^T [OC, N] = W^T' [OC,
 * C] inp^T [C, N], where W read column-major is W^T [C, OC], hence the
 * transpose on it. */
static void matmul_forward(struct cuda_backend *b, struct result out, struct operand inp, const float *w,
                           const float *bias, int N, int C, int OC) {
  inp = with_bf16(b, inp, b->cast_a, (size_t)N * C);
  gemm(b, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight(b, w), C, inp, C, 0.0f, out, OC);
  if (!bias) return;
  if (b->bf16 && out.bf16) CUDA_CHECK(gpu_bias_forward16(b->stream, out.bf16, bias, N, OC));
  else CUDA_CHECK(gpu_bias_forward(b->stream, out.f32, bias, N, OC));
}

/* dinp [N, C] = (ADD: +=) dout [N, OC] W; dw [OC, C] += dout^T inp; dbias
 * [OC] += the column sums of dout (when dbias is not NULL), of its bf16
 * array in bf16. Overwriting dinp spares the pass that would zero it
 * first. With DINP_EPILOGUE (not NULL; bf16 only, and not with ADD), dinp
 * goes through that epilogue when cuBLASLt can; returns whether it did. */
static bool matmul_backward(struct cuda_backend *b, struct result dinp, bool add, float *dw, float *dbias,
                            struct operand dout, struct operand inp, const float *w, int N, int C, int OC,
                            const struct epilogue *dinp_epilogue) {
  inp = with_bf16(b, inp, b->cast_a, (size_t)N * C);
  dout = with_bf16(b, dout, b->cast_b, (size_t)N * OC);
  /* dinp^T [C, N] (+)= W^T [C, OC] dout^T [OC, N] */
  bool through = dinp_epilogue && !add && b->epilogues &&
                 lt_gemm(b, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight16(b, w), C, dout.bf16, OC,
                         dinp.bf16 ? (void *)dinp.bf16 : (void *)dinp.f32, dinp.bf16 ? CUDA_R_16BF : CUDA_R_32F, C,
                         dinp_epilogue);
  if (!through) gemm(b, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight(b, w), C, dout, OC, add ? 1.0f : 0.0f, dinp, C);
  /* dw^T [C, OC] += inp^T [C, N] dout [N, OC] */
  gemm(b, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, result{dw, NULL}, C);
  if (dbias) {
    if (b->bf16) CUDA_CHECK(gpu_bias_backward16(b->stream, dbias, dout.bf16, N, OC, b->colsum));
    else CUDA_CHECK(gpu_bias_backward(b->stream, dbias, dout.f32, N, OC, b->colsum));
  }
  return through;
}

/* matmul_forward with the bias added by the matmul's epilogue, of the
 * output's type, in one cuBLASLt call; false when the backend has no
 * epilogues or cuBLASLt cannot. The training forward's qkv takes it;
 * generation's small matmuls would pay cuBLASLt's algorithm search on
 * every token for nothing. */
static bool bias_epilogue(struct cuda_backend *b, struct result out, struct operand inp, const float *w,
                          const float *bias, int N, int C, int OC) {
  if (!b->epilogues || !inp.bf16) return false;
  bool d16 = out.bf16 != NULL;
  struct epilogue e = {CUBLASLT_EPILOGUE_BIAS, d16 ? (void *)weight16(b, bias) : (void *)bias, NULL};
  return lt_gemm(b, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight16(b, w), C, inp.bf16, C,
                 d16 ? (void *)out.bf16 : (void *)out.f32, d16 ? CUDA_R_16BF : CUDA_R_32F, OC, &e);
}

/* fc's matmul, bias and GELU in one cuBLASLt call: pre = inp W^T + bias
 * and out = GELU(pre), both bf16 [N, OC]; false when the backend has no
 * epilogues or cuBLASLt cannot, for the caller to take the passes apart. */
static bool fc_gelu_epilogue(struct cuda_backend *b, gpu_bf16 *out, gpu_bf16 *pre, const gpu_bf16 *inp,
                             const float *w, const float *bias, int N, int C, int OC) {
  if (!b->epilogues || OC % 8) return false; /* GELU's input needs a leading dimension of 8k */
  struct epilogue e = {CUBLASLT_EPILOGUE_GELU_AUX_BIAS, (void *)weight16(b, bias), pre};
  return lt_gemm(b, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight16(b, w), C, inp, C, out, CUDA_R_16BF, OC, &e);
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
 * attention_forward; b->q, k, vv and y are scratch. The scores go into att
 * and the softmax runs there in place. With fused attention, att is the
 * log-sum-exps [B, H, T] instead, and qkv is read in bf16 when it is
 * there (in the bf16 precision). */
static void attention_forward(struct cuda_backend *b, float *out, float *att, struct operand qkv_in, int B, int T,
                              int C, int H) {
  if (b->fused) {
    if (b->bf16 && qkv_in.bf16) CUDA_CHECK(gpu_flash_forward16(b->stream, out, att, qkv_in.bf16, B, T, C, H));
    else CUDA_CHECK(gpu_flash_forward(b->stream, out, att, qkv_in.f32, B, T, C, H));
    return;
  }
  const float *qkv = qkv_in.f32;
  int hs = C / H, BH = B * H;
  size_t n = (size_t)B * T * C;
  const float one = 1.0f, zero = 0.0f;
  long long sqk = (long long)T * hs, satt = (long long)T * T;
  permute_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(b->q, b->k, b->vv, qkv, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
  /* preatt [T, T] = q k^T per (b, h), into att; column-major: preatt^T = k' q^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &one, b->k, hs, sqk, b->q, hs,
                                         sqk, &zero, att, T, satt, BH));
  CUDA_CHECK(gpu_softmax_causal_forward(b->stream, att, att, BH, T, 1.0f / sqrtf((float)hs)));
  /* y [T, hs] = att v; column-major: y^T = v^T att^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, b->vv, hs, sqk, att, T,
                                         satt, &zero, b->y, hs, sqk, BH));
  unpermute_kernel<<<blocks(n, PERMUTE_BLOCK), PERMUTE_BLOCK, 0, b->stream>>>(out, b->y, B, T, H, hs);
  CUDA_CHECK(cudaGetLastError());
}

/* dqkv [B, T, 3C] (overwritten: the CPU zeroes it before adding) from dout
 * [B, T, C], and qkv, out and att of the forward; fused, in bf16 where
 * qkv was. */
static void attention_backward(struct cuda_backend *b, struct result dqkv_out, const float *dout, struct operand qkv_in,
                               const float *out, const float *att, int B, int T, int C, int H) {
  if (b->fused) {
    if (b->bf16 && qkv_in.bf16)
      CUDA_CHECK(gpu_flash_backward16(b->stream, dqkv_out.bf16, b->act.datt, dout, qkv_in.bf16, out, att, B, T, C, H));
    else
      CUDA_CHECK(gpu_flash_backward(b->stream, dqkv_out.f32, b->act.datt, dout, qkv_in.f32, out, att, B, T, C, H));
    return;
  }
  float *dqkv = dqkv_out.f32;
  const float *qkv = qkv_in.f32;
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
                                         hs, sqk, &zero, b->act.datt, T, satt, BH));
  /* dv [T, hs] = att^T dy; column-major: dv^T = dy^T att */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, b->dy, hs, sqk, att, T,
                                         satt, &zero, b->dv, hs, sqk, BH));
  /* dpreatt, in place of datt */
  float *dpreatt = b->act.datt;
  CUDA_CHECK(gpu_softmax_causal_backward(b->stream, dpreatt, b->act.datt, att, BH, T, 1.0f / sqrtf((float)hs)));
  /* dq [T, hs] = dpreatt k; column-major: dq^T = k^T dpreatt^T */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, b->k, hs, sqk, dpreatt,
                                         T, satt, &zero, b->dq, hs, sqk, BH));
  /* dk [T, hs] = dpreatt^T q; column-major: dk^T = q^T dpreatt */
  CUBLAS_CHECK(cublasSgemmStridedBatched(b->cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, b->q, hs, sqk, dpreatt,
                                         T, satt, &zero, b->dk, hs, sqk, BH));
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

/* The log-probabilities and log-sum-exps of ROWS rows of the forward from
 * row R on, through their logits (in bf16, bf16 ones), which the buffer
 * holds from its start. */
static void lm_head_rows(struct cuda_backend *b, size_t r, int rows) {
  int C = b->base.spec.cfg.width, V = b->base.spec.cfg.vocab;
  const float *wte = tensor(b->params, b, GPT_WTE);
  size_t at = r * C;
  matmul_forward(b, {b->act.logits, b->logits16}, {b->act.lnf + at, b->lnf16 ? b->lnf16 + at : NULL}, wte, NULL,
                 rows, C, V);
  if (b->bf16)
    CUDA_CHECK(gpu_logprob_forward16(b->stream, b->logp + r, b->act.lse + r, b->logits16, b->targets + r, rows, V));
  else
    CUDA_CHECK(gpu_logprob_forward(b->stream, b->logp + r, b->act.lse + r, b->act.logits, b->targets + r, rows, V));
}

/* A LayerNorm's outputs, fp32 and bf16 (either may be NULL: an fp32 one
 * only matmuls read, in bf16; a bf16 one outside bf16), its statistics
 * and its weights. */
struct norm {
  float *out;
  gpu_bf16 *out16;
  float *mean, *rstd;
  const float *w, *b;
};

/* The LayerNorm that opens layer l's attention; for l = L, the final one,
 * in fp32 as well: the scalar head reads it. */
static struct norm attention_norm(struct cuda_backend *b, int l) {
  float *p = b->params;
  int C = b->base.spec.cfg.width;
  if (l == b->base.spec.cfg.layers)
    return {b->act.lnf, b->lnf16, b->act.lnf_mean, b->act.lnf_rstd, tensor(p, b, GPT_LNFW), tensor(p, b, GPT_LNFB)};
  struct layer_acts *a = &b->act.layers[l];
  const struct layer16 *a16 = b->layers16 ? &b->layers16[l] : &no16;
  size_t c = (size_t)l * C;
  return {a16->ln1 ? NULL : a->ln1, a16->ln1, a->ln1_mean, a->ln1_rstd, tensor(p, b, GPT_LN1W) + c,
          tensor(p, b, GPT_LN1B) + c};
}

/* The LayerNorm that opens layer l's MLP. */
static struct norm mlp_norm(struct cuda_backend *b, int l) {
  float *p = b->params;
  struct layer_acts *a = &b->act.layers[l];
  const struct layer16 *a16 = b->layers16 ? &b->layers16[l] : &no16;
  size_t c = (size_t)l * b->base.spec.cfg.width;
  return {a16->ln2 ? NULL : a->ln2, a16->ln2, a->ln2_mean, a->ln2_rstd, tensor(p, b, GPT_LN2W) + c,
          tensor(p, b, GPT_LN2B) + c};
}

/* RES = x + (y + bias), and NORM of it, in one pass. */
static void residual_norm(struct cuda_backend *b, float *res, const float *x, const float *y, const float *bias,
                          const struct norm *n, int N) {
  CUDA_CHECK(gpu_residual_layernorm_forward16(b->stream, res, x, y, bias, n->out, n->out16, n->mean, n->rstd, n->w,
                                              n->b, N, b->base.spec.cfg.width));
}

/* The LM head is skipped without TARGETS or LOGP (a reward model, or
 * next_logits, which wants the logits of a few rows only). */
static void cuda_forward(struct backend *be, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp,
                         float *values) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, L = cfg->layers;
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
  CUDA_CHECK(
      gpu_encoder_forward(b->stream, b->act.encoded, b->tokens, tensor(p, b, GPT_WTE), tensor(p, b, GPT_WPE), B, T, C));
  const float *x = b->act.encoded;
  /* every LayerNorm but the first runs in the pass of the residual before
   * it, and the biases of attproj, fc and fcproj are added by the pass
   * after their matmul (the residual, GELU), to the bits of passes of
   * their own */
  struct norm first = attention_norm(b, 0);
  CUDA_CHECK(gpu_layernorm_forward16(b->stream, first.out, first.out16, first.mean, first.rstd, x, first.w, first.b,
                                     (int)N, C));
  for (int l = 0; l < L; l++) {
    struct layer_acts *a = &b->act.layers[l];
    const struct layer16 *a16 = b->layers16 ? &b->layers16[l] : &no16;
    size_t c = (size_t)l * C;
    const float *qkvw = tensor(p, b, GPT_QKVW) + c * 3 * C, *qkvb = tensor(p, b, GPT_QKVB) + 3 * c;
    if (!bias_epilogue(b, {a->qkv, a16->qkv}, {a->ln1, a16->ln1}, qkvw, qkvb, (int)N, C, 3 * C))
      matmul_forward(b, {a->qkv, a16->qkv}, {a->ln1, a16->ln1}, qkvw, qkvb, (int)N, C, 3 * C);
    attention_forward(b, a->atty, a->att, {a->qkv, a16->qkv}, B, T, C, H);
    if (a16->atty) rounded(b, a16->atty, a->atty, N * C); /* fp32 kept too: attention's backward reads it */
    matmul_forward(b, {a->attproj, NULL}, {a->atty, a16->atty}, tensor(p, b, GPT_ATTPROJW) + c * C, NULL, (int)N, C,
                   C);
    struct norm ln2 = mlp_norm(b, l);
    residual_norm(b, a->residual2, x, a->attproj, tensor(p, b, GPT_ATTPROJB) + c, &ln2, (int)N);
    const float *fcw = tensor(p, b, GPT_FCW) + c * 4 * C, *fcb = tensor(p, b, GPT_FCB) + 4 * c;
    if (!fc_gelu_epilogue(b, a16->fch_gelu, a16->fch, a16->ln2, fcw, fcb, (int)N, C, 4 * C)) {
      matmul_forward(b, {a->fch, a16->fch}, {a->ln2, a16->ln2}, fcw, NULL, (int)N, C, 4 * C);
      if (a16->fch) CUDA_CHECK(gpu_bias_gelu_forward16(b->stream, a16->fch_gelu, a16->fch, fcb, (int)N, 4 * C));
      else CUDA_CHECK(gpu_bias_gelu_forward(b->stream, a->fch_gelu, a->fch, fcb, (int)N, 4 * C));
    }
    matmul_forward(b, {a->fcproj, NULL}, {a->fch_gelu, a16->fch_gelu}, tensor(p, b, GPT_FCPROJW) + c * 4 * C, NULL,
                   (int)N, 4 * C, C);
    struct norm next = attention_norm(b, l + 1); /* the next layer's, or the final one */
    residual_norm(b, a->residual3, a->residual2, a->fcproj, tensor(p, b, GPT_FCPROJB) + c, &next, (int)N);
    x = a->residual3;
  }
  if (values && cfg->head) {
    CUDA_CHECK(gpu_scalar_head_forward(b->stream, b->values, b->act.lnf, tensor(p, b, GPT_HEADW),
                                       tensor(p, b, GPT_HEADB), (int)N, C));
    to_host(b, values, b->values, N * sizeof *values);
  }
  if (!b->lm_head) return;
  if (be->spec.train) { /* the backward needs every row's logits */
    lm_head_rows(b, 0, (int)N);
  } else { /* only log-probabilities are wanted: the logits of a few rows at a time */
    for (size_t r = 0; r < N; r += LOGIT_ROWS) lm_head_rows(b, r, (int)(N - r < LOGIT_ROWS ? N - r : LOGIT_ROWS));
  }
  to_host(b, logp, b->logp, N * sizeof *logp);
}

static void cuda_next_logits(struct backend *be, const int32_t *tokens, int B, int T, float *logits) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  int C = be->spec.cfg.width, V = be->spec.cfg.vocab;
  cuda_forward(be, tokens, NULL, B, T, NULL, NULL);
  /* the last row of each sequence: lnf rows T - 1, 2T - 1, ..., a matrix
   * [B, C] with a leading dimension of T C */
  size_t last = (size_t)(T - 1) * C;
  struct operand x = {b->act.lnf + last, b->lnf16 ? b->lnf16 + last : NULL}; /* the forward wrote both */
  gemm(b, CUBLAS_OP_T, CUBLAS_OP_N, V, B, C, weight(b, tensor(b->params, b, GPT_WTE)), C, x, T * C, 0.0f,
       {b->act.logits, NULL}, V);
  to_host(b, logits, b->act.logits, (size_t)B * V * sizeof *logits);
}

/* A dlogp after a forward that skipped the LM head has nothing to flow
 * through and is ignored, as is dvalues without a scalar head. */
static void cuda_backward(struct backend *be, const float *dlogp, const float *dvalues) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, V = cfg->vocab, L = cfg->layers, B = b->B, T = b->T;
  size_t N = (size_t)B * T;
  float *p = b->params, *g = b->grads;
  const float *x_last = L > 0 ? b->act.layers[L - 1].residual3 : b->act.encoded;
  bool from_logp = dlogp && b->lm_head, from_values = dvalues && cfg->head;
  if (!g || N == 0 || (!from_logp && !from_values)) return;

  zero_device(b, b->act.dlnf, N * C);
  if (from_logp) {
    to_device(b, b->dlogp, dlogp, N * sizeof *dlogp);
    if (b->bf16)
      CUDA_CHECK(gpu_logprob_backward16(b->stream, b->logits16, b->act.lse, b->dlogp, b->targets, (int)N, V));
    else
      CUDA_CHECK(gpu_logprob_backward(b->stream, b->act.logits, b->act.lse, b->dlogp, b->targets, (int)N, V));
    /* dlnf += dlogits wte, dwte += dlogits^T lnf */
    matmul_backward(b, {b->act.dlnf, NULL}, true, tensor(g, b, GPT_WTE), NULL, {b->act.logits, b->logits16},
                    {b->act.lnf, b->lnf16}, tensor(p, b, GPT_WTE), (int)N, C, V, NULL);
  }
  if (from_values) {
    to_device(b, b->dvalues, dvalues, N * sizeof *dvalues);
    CUDA_CHECK(gpu_scalar_head_backward(b->stream, b->act.dlnf, tensor(g, b, GPT_HEADW), tensor(g, b, GPT_HEADB),
                                        b->dvalues, b->act.lnf, tensor(p, b, GPT_HEADW), (int)N, C, b->colsum));
  }
  zero_device(b, b->act.dx, N * C);
  CUDA_CHECK(gpu_layernorm_backward16(b->stream, b->act.dx, b->dx16, tensor(g, b, GPT_LNFW), tensor(g, b, GPT_LNFB),
                                      b->act.dlnf, x_last, tensor(p, b, GPT_LNFW), b->act.lnf_mean, b->act.lnf_rstd,
                                      (int)N, C, b->colsum));
  /* b->act.dx is the gradient of the residual stream; a residual add passes it
   * through unchanged to both of its inputs */
  for (int l = L - 1; l >= 0; l--) {
    struct layer_acts *a = &b->act.layers[l];
    const struct layer16 *a16 = b->layers16 ? &b->layers16[l] : &no16;
    const float *x = l > 0 ? b->act.layers[l - 1].residual3 : b->act.encoded;
    size_t c = (size_t)l * C;
    /* fcproj's input gradient, through GELU's backward and with fc's bias
     * gradient in its epilogue when it can */
    struct epilogue dgelu = {CUBLASLT_EPILOGUE_DGELU_BGRAD, b->dbias16, a16->fch};
    float *dfcb = tensor(g, b, GPT_FCB) + 4 * c;
    bool through_gelu = matmul_backward(b, {b->act.dfch_gelu, b->dfch16}, false, tensor(g, b, GPT_FCPROJW) + c * 4 * C,
                                        tensor(g, b, GPT_FCPROJB) + c, {b->act.dx, b->dx16},
                                        {a->fch_gelu, a16->fch_gelu}, tensor(p, b, GPT_FCPROJW) + c * 4 * C, (int)N,
                                        4 * C, C, b->dbias16 && (4 * C) % 8 == 0 ? &dgelu : NULL);
    if (through_gelu)
      CUDA_CHECK(gpu_accumulate16(b->stream, dfcb, b->dbias16, 4 * (size_t)C));
    else if (b->dfch16) /* dfch over dfch_gelu */
      CUDA_CHECK(gpu_gelu_backward16(b->stream, b->dfch16, a16->fch, b->dfch16, N * 4 * C));
    else
      CUDA_CHECK(gpu_gelu_backward_into(b->stream, b->act.dfch, a->fch, b->act.dfch_gelu, N * 4 * C));
    matmul_backward(b, {b->act.dln, NULL}, false, tensor(g, b, GPT_FCW) + c * 4 * C, through_gelu ? NULL : dfcb,
                    {b->act.dfch, b->dfch16}, {a->ln2, a16->ln2}, tensor(p, b, GPT_FCW) + c * 4 * C, (int)N, C,
                    4 * C, NULL);
    CUDA_CHECK(gpu_layernorm_backward16(b->stream, b->act.dx, b->dx16, tensor(g, b, GPT_LN2W) + c,
                                        tensor(g, b, GPT_LN2B) + c, b->act.dln, a->residual2,
                                        tensor(p, b, GPT_LN2W) + c, a->ln2_mean, a->ln2_rstd, (int)N, C, b->colsum));
    matmul_backward(b, {b->act.datty, NULL}, false, tensor(g, b, GPT_ATTPROJW) + c * C, tensor(g, b, GPT_ATTPROJB) + c,
                    {b->act.dx, b->dx16}, {a->atty, a16->atty}, tensor(p, b, GPT_ATTPROJW) + c * C, (int)N, C, C, NULL);
    attention_backward(b, {b->act.dqkv, b->dqkv16}, b->act.datty, {a->qkv, a16->qkv}, a->atty, a->att, B, T, C, H);
    matmul_backward(b, {b->act.dln, NULL}, false, tensor(g, b, GPT_QKVW) + c * 3 * C, tensor(g, b, GPT_QKVB) + 3 * c,
                    {b->act.dqkv, b->dqkv16}, {a->ln1, a16->ln1}, tensor(p, b, GPT_QKVW) + c * 3 * C, (int)N, C,
                    3 * C, NULL);
    CUDA_CHECK(gpu_layernorm_backward16(b->stream, b->act.dx, b->dx16, tensor(g, b, GPT_LN1W) + c,
                                        tensor(g, b, GPT_LN1B) + c, b->act.dln, x, tensor(p, b, GPT_LN1W) + c,
                                        a->ln1_mean, a->ln1_rstd, (int)N, C, b->colsum));
  }
  CUDA_CHECK(
      gpu_encoder_backward(b->stream, tensor(g, b, GPT_WTE), tensor(g, b, GPT_WPE), b->act.dx, b->tokens, B, T, C));
}

/* ------------------------------------------------------------------------
 * Generation over the KV cache */

/* Layer l's keys (or values): [R, S, C]. */
static float *cache_layer(const struct cuda_backend *b, float *cache, int l) {
  const struct backend_spec *s = &b->base.spec;
  return cache + (size_t)l * s->gen_rows * s->max_seq * s->cfg.width;
}

/* Layer l's LayerNorm and qkv over n rows of g->s.x, into g->s.qkv. */
static void gen_layer_qkv(struct cuda_backend *b, int l, int n) {
  struct gen_state *g = &b->gen;
  int C = b->base.spec.cfg.width;
  float *p = b->params;
  size_t c = (size_t)l * C;
  CUDA_CHECK(gpu_layernorm_forward(b->stream, g->s.ln, g->s.mean, g->s.rstd, g->s.x, tensor(p, b, GPT_LN1W) + c,
                                   tensor(p, b, GPT_LN1B) + c, n, C));
  matmul_forward(b, {g->s.qkv, NULL}, {g->s.ln, NULL}, tensor(p, b, GPT_QKVW) + c * 3 * C,
                 tensor(p, b, GPT_QKVB) + 3 * c, n, C, 3 * C);
}

/* The rest of layer l once g->s.atty holds its attention's output: the
 * projection, the residual, the MLP and its residual, over n rows of g->s.x. */
static void gen_layer_tail(struct cuda_backend *b, int l, int n) {
  struct gen_state *g = &b->gen;
  int C = b->base.spec.cfg.width;
  float *p = b->params;
  size_t c = (size_t)l * C, nc = (size_t)n * C;
  matmul_forward(b, {g->s.proj, NULL}, {g->s.atty, NULL}, tensor(p, b, GPT_ATTPROJW) + c * C,
                 tensor(p, b, GPT_ATTPROJB) + c, n, C, C);
  CUDA_CHECK(gpu_residual_forward(b->stream, g->s.x, g->s.x, g->s.proj, nc));
  CUDA_CHECK(gpu_layernorm_forward(b->stream, g->s.ln, g->s.mean, g->s.rstd, g->s.x, tensor(p, b, GPT_LN2W) + c,
                                   tensor(p, b, GPT_LN2B) + c, n, C));
  matmul_forward(b, {g->s.fch, NULL}, {g->s.ln, NULL}, tensor(p, b, GPT_FCW) + c * 4 * C, tensor(p, b, GPT_FCB) + 4 * c,
                 n, C, 4 * C);
  CUDA_CHECK(gpu_gelu_forward(b->stream, g->s.fch_gelu, g->s.fch, 4 * nc));
  matmul_forward(b, {g->s.proj, NULL}, {g->s.fch_gelu, NULL}, tensor(p, b, GPT_FCPROJW) + c * 4 * C,
                 tensor(p, b, GPT_FCPROJB) + c, n, 4 * C, C);
  CUDA_CHECK(gpu_residual_forward(b->stream, g->s.x, g->s.x, g->s.proj, nc));
}

/* The final LayerNorm of n rows of X and their logits [n, V], copied into
 * the host's LOGITS. */
static void gen_logits(struct cuda_backend *b, const float *x, int n, float *logits) {
  struct gen_state *g = &b->gen;
  const struct gpt_config *cfg = &b->base.spec.cfg;
  float *p = b->params;
  CUDA_CHECK(gpu_layernorm_forward(b->stream, g->s.ln, g->s.mean, g->s.rstd, x, tensor(p, b, GPT_LNFW),
                                   tensor(p, b, GPT_LNFB), n, cfg->width));
  matmul_forward(b, {g->logits, NULL}, {g->s.ln, NULL}, tensor(p, b, GPT_WTE), NULL, n, cfg->width, cfg->vocab);
  to_host(b, logits, g->logits, (size_t)n * cfg->vocab * sizeof *logits);
}

static void gen_misuse(const char *what) {
  fprintf(stderr, "trainpipe: internal error: %s\n", what);
  abort();
}

/* The device copies of a call's tokens, rows and positions (n of each). */
struct gen_call {
  const int32_t *tokens, *rows, *pos;
};

/* Token I of a call of N: its token, row and position. */
static void gen_put(struct gen_state *g, int n, int i, int32_t token, int row, int pos) {
  g->host_ints[i] = token;
  g->host_ints[n + i] = row;
  g->host_ints[2 * n + i] = pos;
}

/* Copies the call's 3 N numbers to the device, once. */
static struct gen_call gen_send(struct cuda_backend *b, int n) {
  struct gen_state *g = &b->gen;
  to_device(b, g->ints, g->host_ints, 3 * (size_t)n * sizeof *g->ints);
  return (struct gen_call){g->ints, g->ints + n, g->ints + 2 * n};
}

/* The prompt runs as a forward of one sequence would, with the same
 * kernels and shapes, and leaves its keys and values in ROW. */
static void cuda_gen_prefill(struct backend *be, int row, const int32_t *prompt, int n, float *logits) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  struct gen_state *g = &b->gen;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, S = be->spec.max_seq;
  if (row < 0 || row >= be->spec.gen_rows || n < 1 || n > S)
    gen_misuse("gen_prefill: no such row, or the prompt does not fit it");
  g->len[row] = 0;
  for (int i = 0; i < n; i++) gen_put(g, n, i, prompt[i], row, i);
  struct gen_call call = gen_send(b, n);
  CUDA_CHECK(gpu_encoder_forward(b->stream, g->s.x, call.tokens, tensor(b->params, b, GPT_WTE),
                                 tensor(b->params, b, GPT_WPE), 1, n, C));
  for (int l = 0; l < cfg->layers; l++) {
    gen_layer_qkv(b, l, n);
    CUDA_CHECK(gpu_kv_store(b->stream, cache_layer(b, g->k, l), cache_layer(b, g->v, l), g->s.qkv, call.rows, call.pos,
                            n, S, C));
    attention_forward(b, g->s.atty, g->s.att, {g->s.qkv, NULL}, 1, n, C, H);
    gen_layer_tail(b, l, n);
  }
  gen_logits(b, g->s.x + (size_t)(n - 1) * C, 1, logits);
  g->len[row] = n;
}

static void cuda_gen_decode(struct backend *be, const int *rows, const int32_t *tokens, int n, float *logits) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  struct gen_state *g = &b->gen;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, S = be->spec.max_seq;
  if (n < 0 || n > be->spec.gen_rows) gen_misuse("gen_decode: more tokens than rows");
  if (n == 0) return;
  for (int i = 0; i < n; i++) {
    int r = rows[i];
    if (r < 0 || r >= be->spec.gen_rows || g->len[r] < 1 || g->len[r] >= S)
      gen_misuse("gen_decode: a row that is empty, full or not there");
    gen_put(g, n, i, tokens[i], r, g->len[r]);
  }
  struct gen_call call = gen_send(b, n);
  CUDA_CHECK(gpu_embed_at(b->stream, g->s.x, call.tokens, call.pos, tensor(b->params, b, GPT_WTE),
                          tensor(b->params, b, GPT_WPE), n, C));
  for (int l = 0; l < cfg->layers; l++) {
    gen_layer_qkv(b, l, n);
    float *k = cache_layer(b, g->k, l), *v = cache_layer(b, g->v, l);
    CUDA_CHECK(gpu_kv_store(b->stream, k, v, g->s.qkv, call.rows, call.pos, n, S, C));
    CUDA_CHECK(gpu_attention_cached_forward(b->stream, g->s.atty, g->s.scores, g->s.qkv, k, v, call.rows, call.pos, n,
                                            S, C, H));
    gen_layer_tail(b, l, n);
  }
  gen_logits(b, g->s.x, n, logits);
  for (int i = 0; i < n; i++) g->len[rows[i]]++;
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

/* The bf16 copy of the weights follows the fp32 master copy. */
static void refresh_params16(struct cuda_backend *b) {
  if (b->bf16) CUDA_CHECK(gpu_to_bf16(b->stream, b->params16, b->params, b->base.n_params));
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
  refresh_params16(b);
}

static void cuda_read_params(struct backend *be, float *params) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  to_host(b, params, b->params, be->n_params * sizeof *params);
}

static void cuda_write_params(struct backend *be, const float *params) {
  struct cuda_backend *b = (struct cuda_backend *)be;
  to_device(b, b->params, params, be->n_params * sizeof *params);
  refresh_params16(b);
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
  cudaFree(b->params16);
  cudaFree(b->memory16);
  free(b->layers16);
  cudaFree(b->colsum);
  cudaFree(b->cast_a);
  cudaFree(b->cast_b);
  cudaFree(b->gen.k);
  cudaFree(b->gen.v);
  cudaFree(b->gen.ints);
  cudaFree(b->gen.memory);
  free(b->gen.len);
  free(b->gen.host_ints);
  if (b->cublas) cublasDestroy(b->cublas);
  if (b->lt) cublasLtDestroy(b->lt);
  cudaFree(b->lt_workspace);
  cudaFree(b->dbias16);
  if (b->stream) cudaStreamDestroy(b->stream);
  free(b->act.layers);
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

/* Pieces of the activations' allocations start 256 bytes apart at least,
 * cuBLAS's preferred alignment. */
#define ALIGN_FLOATS 64

/* cudaMalloc of n bytes (none for 0) into *p; false on failure, which is
 * left in ERR. */
static bool device_alloc(void **p, size_t bytes, const char *what, char *err, size_t err_size) {
  *p = NULL;
  if (bytes == 0) return true;
  void *q = NULL;
  cudaError_t e = cudaMalloc(&q, bytes);
  if (e == cudaSuccess) {
    e = cudaMemset(q, 0, bytes);
    if (e == cudaSuccess) {
      *p = q;
      return true;
    }
    cudaFree(q);
  }
  snprintf(err, err_size, "out of device memory for the %s (%.1f MiB): %s", what, bytes / 1048576.0,
           cudaGetErrorString(e));
  cudaGetLastError(); /* not sticky: clear it, or the next launch's check would report it */
  return false;
}

/* The activations (runtime/activations.h) and this backend's own: the
 * device copies of the host's arrays, and but for fused attention,
 * attention's permuted operands and their gradients. In bf16 the fp32 logits are next_logits' [B, V] alone:
 * the LM head's are bf16. */
static void lay_out_memory(struct cuda_backend *b, struct layout *l, size_t logit_rows) {
  const struct backend_spec *spec = &b->base.spec;
  size_t N = (size_t)spec->max_batch * spec->max_seq, C = (size_t)spec->cfg.width;
  size_t att = N * (size_t)spec->cfg.heads * (b->fused ? 1 : (size_t)spec->max_seq);
  unsigned in_bf16 = b->bf16 ? ACTS_BF16_MATMUL_IO | (b->fused ? ACTS_BF16_QKV : 0) : 0;
  activations_layout(&b->act, l, spec, b->bf16 ? (size_t)spec->max_batch : logit_rows, att, in_bf16);
  b->logp = layout_piece(l, N);
  b->values = layout_piece(l, N);
  b->dlogp = layout_piece(l, N);
  b->dvalues = layout_piece(l, N);
  b->q = b->k = b->vv = b->y = b->dq = b->dk = b->dv = b->dy = NULL;
  if (b->fused) return; /* it reads qkv where it is */
  b->q = layout_piece(l, N * C);
  b->k = layout_piece(l, N * C);
  b->vv = layout_piece(l, N * C);
  b->y = layout_piece(l, N * C);
  if (!spec->train) return;
  b->dq = layout_piece(l, N * C);
  b->dk = layout_piece(l, N * C);
  b->dv = layout_piece(l, N * C);
  b->dy = layout_piece(l, N * C);
}

/* Consecutive bf16 pieces of one allocation, as struct layout's: each
 * starts 256 bytes on at least, and with BASE NULL they are only
 * counted. */
struct layout16 {
  gpu_bf16 *base;
  size_t used;
};

static gpu_bf16 *piece16(struct layout16 *l, size_t n) {
  gpu_bf16 *p = l->base ? l->base + l->used : NULL;
  l->used += (n + 127) & ~(size_t)127;
  return p;
}

/* bf16's activations: struct layer16 for the layers the activations keep,
 * lnf's, the LM head's LOGIT_ROWS rows of logits, and with training the
 * MLP's gradient, fused attention's dqkv and the residual gradient. */
static void lay_out_memory16(struct cuda_backend *b, struct layout16 *l, size_t logit_rows) {
  const struct backend_spec *spec = &b->base.spec;
  size_t L = (size_t)spec->cfg.layers, kept = spec->train ? L : (L ? 1 : 0);
  size_t NC = (size_t)spec->max_batch * spec->max_seq * spec->cfg.width;
  for (size_t i = 0; i < L; i++) {
    struct layer16 *a = &b->layers16[i];
    if (i >= kept) {
      *a = b->layers16[0];
      continue;
    }
    a->ln1 = piece16(l, NC);
    a->qkv = b->fused ? piece16(l, 3 * NC) : NULL;
    a->atty = piece16(l, NC);
    a->ln2 = piece16(l, NC);
    a->fch = piece16(l, 4 * NC);
    a->fch_gelu = piece16(l, 4 * NC);
  }
  b->lnf16 = piece16(l, NC);
  b->logits16 = piece16(l, logit_rows * (size_t)spec->cfg.vocab);
  b->dfch16 = spec->train ? piece16(l, 4 * NC) : NULL;
  b->dqkv16 = spec->train && b->fused ? piece16(l, 3 * NC) : NULL;
  b->dx16 = spec->train ? piece16(l, NC) : NULL;
}

/* The bf16 activations (lay_out_memory16); false with the reason in ERR. */
static bool layers16_allocate(struct cuda_backend *b, size_t logit_rows, char *err, size_t err_size) {
  size_t L = (size_t)b->base.spec.cfg.layers;
  b->layers16 = (struct layer16 *)calloc(L ? L : 1, sizeof *b->layers16);
  if (!b->layers16) {
    snprintf(err, err_size, "out of host memory");
    return false;
  }
  struct layout16 count = {NULL, 0};
  lay_out_memory16(b, &count, logit_rows);
  if (!device_alloc((void **)&b->memory16, count.used * sizeof(gpu_bf16), "bf16 activations", err, err_size))
    return false;
  struct layout16 place = {b->memory16, 0};
  lay_out_memory16(b, &place, logit_rows);
  return true;
}

/* The KV cache and generation's scratch (struct gen_state); false with
 * the reason in ERR. */
static bool gen_allocate(struct cuda_backend *b, char *err, size_t err_size) {
  const struct backend_spec *spec = &b->base.spec;
  struct gen_state *g = &b->gen;
  size_t R = (size_t)spec->gen_rows, S = (size_t)spec->max_seq, C = (size_t)spec->cfg.width;
  size_t L = (size_t)spec->cfg.layers, V = (size_t)spec->cfg.vocab, P = (size_t)gen_positions(spec);
  g->len = (int *)calloc(R, sizeof *g->len);
  g->host_ints = (int32_t *)calloc(3 * P, sizeof *g->host_ints);
  if (!g->len || !g->host_ints) {
    snprintf(err, err_size, "out of host memory for the KV cache");
    return false;
  }
  struct layout count = {NULL, 0, ALIGN_FLOATS};
  gen_scratch_layout(&g->s, &count, spec);
  layout_piece(&count, R * V);
  if (!device_alloc((void **)&g->k, L * R * S * C * sizeof(float), "KV cache", err, err_size) ||
      !device_alloc((void **)&g->v, L * R * S * C * sizeof(float), "KV cache", err, err_size) ||
      !device_alloc((void **)&g->ints, 3 * P * sizeof(int32_t), "generation's tokens", err, err_size) ||
      !device_alloc((void **)&g->memory, count.used * sizeof(float), "generation's activations", err, err_size))
    return false;
  struct layout place = {g->memory, 0, ALIGN_FLOATS};
  gen_scratch_layout(&g->s, &place, spec);
  g->logits = layout_piece(&place, R * V);
  return true;
}

extern "C" struct backend *cuda_backend_create(const struct backend_spec *spec, char *err, size_t err_size) {
  return cuda_backend_create_with(spec, NULL, err, err_size);
}

extern "C" struct backend *cuda_backend_create_with(const struct backend_spec *spec, const struct cuda_options *opt,
                                                    char *err, size_t err_size) {
  const struct gpt_config *cfg = &spec->cfg;
  if (backend_spec_problem(spec, err, err_size)) return NULL;
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    snprintf(err, err_size, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    return NULL;
  }
  if (!cublas_library_load(err, err_size)) return NULL;
  size_t B = (size_t)spec->max_batch, T = (size_t)spec->max_seq, C = (size_t)cfg->width, H = (size_t)cfg->heads;
  size_t L = (size_t)cfg->layers, N = B * T;
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
  if (spec->precision == PRECISION_AUTO) b->base.spec.precision = PRECISION_BF16;
  b->bf16 = b->base.spec.precision == PRECISION_BF16;
  b->fused = opt && opt->fused_attention && b->bf16 && gpu_flash_supported(cfg->width / cfg->heads);
  b->epilogues = opt && opt->matmul_epilogues && b->bf16;
  int device = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    snprintf(prop.name, sizeof prop.name, "device %d", device);
  snprintf(b->base.description, sizeof b->base.description, "cuda, %.72s, %s%s%s", prop.name,
           backend_precision_name(b->base.spec.precision), b->fused ? ", fused attention" : "",
           b->epilogues ? ", cuBLASLt epilogues" : "");
  b->base.n_params = gpt_param_count(cfg);
  gpt_tensor_offsets(cfg, b->offsets);
  size_t P = b->base.n_params;
  b->act.layers = (struct layer_acts *)calloc(L ? L : 1, sizeof *b->act.layers);
  if (!b->act.layers) {
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
  if (cs == CUBLAS_STATUS_SUCCESS)
    cs = cublasSetMathMode(b->cublas, b->base.spec.precision == PRECISION_FP32 ? CUBLAS_DEFAULT_MATH
                                                                               : CUBLAS_TF32_TENSOR_OP_MATH);
  if (cs == CUBLAS_STATUS_SUCCESS && b->epilogues) cs = cublasLtCreate(&b->lt);
  if (cs != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, err_size, "cannot start cuBLAS: %s", cublasGetStatusString(cs));
    cuda_destroy(&b->base);
    return NULL;
  }

  size_t logit_rows = spec->train || N < LOGIT_ROWS ? N : LOGIT_ROWS;
  if (logit_rows < B) logit_rows = B; /* next_logits' [B, V] */
  struct layout count = {NULL, 0, ALIGN_FLOATS};
  lay_out_memory(b, &count, logit_rows);

  bool ok = device_alloc((void **)&b->params, P * sizeof(float), "parameters", err, err_size);
  if (ok && spec->train) {
    ok = device_alloc((void **)&b->grads, P * sizeof(float), "gradients", err, err_size) &&
         device_alloc((void **)&b->m, P * sizeof(float), "AdamW moments", err, err_size) &&
         device_alloc((void **)&b->v, P * sizeof(float), "AdamW moments", err, err_size);
  }
  ok = ok && device_alloc((void **)&b->memory, count.used * sizeof(float), "activations", err, err_size) &&
       device_alloc((void **)&b->tokens, N * sizeof(int32_t), "tokens", err, err_size) &&
       device_alloc((void **)&b->targets, N * sizeof(int32_t), "targets", err, err_size) &&
       device_alloc((void **)&b->sum, sizeof(double), "gradient norm", err, err_size);
  /* bf16: the weights' copy; a matmul's input that is not kept in bf16,
   * at most [N, 4C] (or a generation call's P rows); in the backward, the
   * output's gradient that is not, at most dqkv's [N, 3C] */
  size_t gen_rows = spec->gen_rows > 0 ? (size_t)gen_positions(spec) : 0, rows = N > gen_rows ? N : gen_rows;
  if (ok && b->bf16) {
    ok = device_alloc((void **)&b->params16, P * sizeof(gpu_bf16), "bf16 weights", err, err_size) &&
         device_alloc((void **)&b->cast_a, rows * 4 * C * sizeof(gpu_bf16), "bf16 operands", err, err_size) &&
         (!spec->train ||
          device_alloc((void **)&b->cast_b, N * 3 * C * sizeof(gpu_bf16), "bf16 operands", err, err_size));
  }
  if (ok && b->bf16) ok = layers16_allocate(b, logit_rows, err, err_size);
  if (ok && b->epilogues)
    ok = device_alloc(&b->lt_workspace, LT_WORKSPACE_BYTES, "cuBLASLt workspace", err, err_size) &&
         (!spec->train ||
          device_alloc((void **)&b->dbias16, 4 * C * sizeof(gpu_bf16), "bias gradient", err, err_size));
  /* the column sums' parts: the biases' (up to 4C columns), LayerNorm's (2C) */
  size_t parts = GPU_COLUMN_PARTS * 4 * C > GPU_LAYERNORM_PARTS * 2 * C ? GPU_COLUMN_PARTS * 4 * C
                                                                        : GPU_LAYERNORM_PARTS * 2 * C;
  if (ok && spec->train)
    ok = device_alloc((void **)&b->colsum, parts * sizeof(double), "gradient sums", err, err_size);
  if (ok && spec->gen_rows > 0) ok = gen_allocate(b, err, err_size);
  if (!ok) {
    cuda_destroy(&b->base);
    return NULL;
  }

  struct layout place = {b->memory, 0, ALIGN_FLOATS};
  lay_out_memory(b, &place, logit_rows);
  return &b->base;
}
