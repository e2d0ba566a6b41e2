/* The CUDA backend's kernels, one forward/backward pair per layer, in fp32
 * (some also over bf16 arrays: see gpu/bf16.h).
 *
 * Shape letters as in runtime/cpu_kernels.c: B batch, T sequence length,
 * C width, OC a Linear's output width, V vocabulary, N = B * T rows, BH =
 * B * H attention rows of T queries each.
 *
 * Every kernel is flat: one thread, warp or block per output (element, row
 * or column), written once by its owner, so there are no atomics anywhere.
 * Reductions across threads go through warp shuffles and shared memory in
 * a tree whose shape depends only on the block size, which is a constant
 * here, never on the device or the scheduling: the same inputs give the
 * same bits on every run.
 *
 * Sums over rows (bias and scalar-head gradients; LayerNorm's, where its
 * rows are too wide for its own partial sums in shared memory) take two
 * passes. In the first, the rows are cut into GPU_COLUMN_PARTS fixed
 * ranges, and block (x, p) owns 32 adjacent columns (coalesced reads of a
 * row) of range p: its 8 thread rows take every 8th row of the range, in
 * double like the CPU's, and add their 8 sums in a fixed order into the
 * scratch parts[p][column]. In the second, one thread per column adds its
 * GPU_COLUMN_PARTS parts in order of p. A grid of columns alone would leave
 * most of the GPU idle on a width of 768 (24 blocks) while each thread
 * walked thousands of rows. Every function adds its result to the gradient
 * once, in float, like the CPU.
 *
 * Every function launches on the given stream and returns the
 * cudaGetLastError() after its launches (0 on success). */
#include "gpu/kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "gpu/bf16.h"
#include "gpu/warp.h"
#include "runtime/adamw_element.h"

/* Threads per block of the elementwise and row kernels. */
#define BLOCK 256
/* The column-sum kernels' block: COL_X columns by COL_Y row phases. */
#define COL_X 32
#define COL_Y 8

static inline cudaStream_t as_stream(gpu_stream s) { return (cudaStream_t)s; }

static inline unsigned blocks_for(size_t n, unsigned per_block) { return (unsigned)((n + per_block - 1) / per_block); }

/* The sum of one double from each thread of a BLOCK-thread block, in a
 * fixed tree; every thread gets it. Uses shared[BLOCK / WARP]. */
__device__ static double block_sum_double(double x, double *shared) {
  int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
  x = warp_sum_double(x);
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < BLOCK / WARP ? shared[lane] : 0.0;
  x = warp_sum_double(x);
  __syncthreads(); /* shared may be reused by the caller */
  return x;
}

/* The rows [*lo, *hi) of part blockIdx.y of N rows. */
__device__ static void column_part_rows(int N, int *lo, int *hi) {
  int chunk = (N + GPU_COLUMN_PARTS - 1) / GPU_COLUMN_PARTS;
  *lo = min(N, (int)blockIdx.y * chunk);
  *hi = min(N, *lo + chunk);
}

/* Adds the COL_Y partial sums of a column-sum block, row phase 0 first,
 * into parts[blockIdx.y][c] (when c < ncols). part is shared[COL_Y][COL_X]. */
__device__ static void column_part_finish(double *parts, int c, int ncols, double s, double (*part)[COL_X]) {
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < ncols) {
    double total = 0.0;
    for (int y = 0; y < COL_Y; y++) total += part[y][threadIdx.x];
    parts[(size_t)blockIdx.y * ncols + c] = total;
  }
}

/* The second pass: out[c] += the GPU_COLUMN_PARTS parts of column c, in
 * order. */
__global__ static void column_parts_total_kernel(float *out, const double *parts, int ncols) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= ncols) return;
  double total = 0.0;
  for (int p = 0; p < GPU_COLUMN_PARTS; p++) total += parts[(size_t)p * ncols + c];
  out[c] += (float)total;
}

static inline dim3 column_grid(int ncols) { return dim3(blocks_for((size_t)ncols, COL_X), GPU_COLUMN_PARTS); }

static inline cudaError_t column_parts_total(cudaStream_t s, float *out, const double *parts, int ncols) {
  column_parts_total_kernel<<<blocks_for((size_t)ncols, BLOCK), BLOCK, 0, s>>>(out, parts, ncols);
  return cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * Encoder: token plus position embeddings */

__global__ static void encoder_forward_kernel(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                              int N, int T, int C) {
  /* out [N, C], tokens [N], wte [V, C], wpe [T, C]; one thread per element */
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)N * C) return;
  int n = (int)(i / C), c = (int)(i % C);
  int t = n % T;
  out[i] = wte[(size_t)tokens[n] * C + c] + wpe[(size_t)t * C + c];
}

/* A token may occur at several positions, so threads cannot own positions;
 * they own (token class, column) pairs instead. The thread for column c in
 * grid row k walks all N positions in order and, for those whose token is
 * congruent to k mod WTE_SPLIT, adds dout[n, c] into dwte[tokens[n], c].
 * Each element of dwte thus has exactly one writer, which adds its terms
 * in position order, the CPU's order: the result is deterministic (and the
 * CPU's bits) without atomics or a sort. WTE_SPLIT multiplies the C
 * threads' parallelism and divides each one's serial read-modify-writes;
 * the token reads are the same address across a block (a broadcast), the
 * dout and dwte accesses are coalesced along c. */
#define WTE_SPLIT 32

__global__ static void encoder_backward_wte_kernel(float *dwte, const float *dout, const int32_t *tokens, int N,
                                                   int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  int k = blockIdx.y;
  if (c >= C) return;
  for (int n = 0; n < N; n++) {
    int32_t tok = tokens[n];
    if (tok % WTE_SPLIT == k) dwte[(size_t)tok * C + c] += dout[(size_t)n * C + c];
  }
}

/* dwpe[t, c] has one owner thread, which adds the B positions b*T + t in
 * order of b, as the CPU does. */
__global__ static void encoder_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)T * C) return;
  float acc = dwpe[i];
  for (int b = 0; b < B; b++) acc += dout[(size_t)b * T * C + i];
  dwpe[i] = acc;
}

extern "C" int gpu_encoder_forward(gpu_stream s, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                   int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  if (n == 0) return 0;
  encoder_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(out, tokens, wte, wpe, B * T, T, C);
  return (int)cudaGetLastError();
}

extern "C" int gpu_encoder_backward(gpu_stream s, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                    int B, int T, int C) {
  /* dwte [V, C], dwpe [T, C], dout [B, T, C], tokens [B, T] */
  enum { WTE_BLOCK = 64 }; /* C = 768 gives 12 x WTE_SPLIT blocks */
  if ((size_t)B * T * C == 0) return 0;
  dim3 wte_grid(blocks_for((size_t)C, WTE_BLOCK), WTE_SPLIT);
  encoder_backward_wte_kernel<<<wte_grid, WTE_BLOCK, 0, as_stream(s)>>>(dwte, dout, tokens, B * T, C);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return (int)err;
  encoder_backward_wpe_kernel<<<blocks_for((size_t)T * C, BLOCK), BLOCK, 0, as_stream(s)>>>(dwpe, dout, B, T, C);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * LayerNorm (eps 1e-5, biased variance, as the CPU and torch.nn.LayerNorm) */

#define LN_EPS 1e-5f

/* Row n, x, by the warp, whose lanes have summed their columns (c = lane,
 * lane + 32, ...) into SUM: the mean, then the variance of the centred
 * values, as on the CPU (E[x^2] - E[x]^2 would cancel). */
__device__ static void layernorm_row(float *out, __nv_bfloat16 *out16, float *mean, float *rstd, const float *x,
                                     const float *w, const float *b, int n, int C, float sum) {
  int lane = threadIdx.x % WARP;
  float m = warp_sum(sum) / (float)C;
  float var = 0.0f;
  for (int c = lane; c < C; c += WARP) {
    float xm = x[c] - m;
    var += xm * xm;
  }
  var = warp_sum(var) / (float)C;
  float s = 1.0f / sqrtf(var + LN_EPS);
  size_t row = (size_t)n * C;
  for (int c = lane; c < C; c += WARP) {
    float y = (x[c] - m) * s * w[c] + b[c];
    if (out) out[row + c] = y;
    if (out16) out16[row + c] = __float2bfloat16_rn(y);
  }
  if (lane == 0) {
    mean[n] = m;
    rstd[n] = s;
  }
}

/* One warp per row. */
__global__ static void layernorm_forward_kernel(float *out, __nv_bfloat16 *out16, float *mean, float *rstd,
                                                const float *inp, const float *w, const float *b, int N, int C) {
  int n = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  if (n >= N) return;
  const float *x = inp + (size_t)n * C;
  float sum = 0.0f;
  for (int c = threadIdx.x % WARP; c < C; c += WARP) sum += x[c];
  layernorm_row(out, out16, mean, rstd, x, w, b, n, C, sum);
}

/* One warp per row: the residual's row, then its LayerNorm, which reads
 * back what its own lanes wrote. */
__global__ static void residual_layernorm_forward_kernel(float *res, const float *a, const float *r, const float *bias,
                                                         float *out, __nv_bfloat16 *out16, float *mean, float *rstd,
                                                         const float *w, const float *b, int N, int C) {
  int n = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (n >= N) return;
  size_t row = (size_t)n * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += WARP) {
    float y = a[row + c] + (r[row + c] + bias[c]);
    res[row + c] = y;
    sum += y;
  }
  layernorm_row(out, out16, mean, rstd, res + row, w, b, n, C, sum);
}

/* Row n's dinp by the warp: the normalised row's gradient minus its
 * projections on the mean and on the normalised row, as on the CPU; the
 * sum's bf16 rounding in dinp16 when it is not NULL; and, when ACC is not
 * NULL, each column's dout * norm added into acc[c] and dout into acc[C +
 * c] (the lane's own columns: no other lane touches them). */
__device__ static void layernorm_backward_row(float *dinp, __nv_bfloat16 *dinp16, float *acc, const float *dout,
                                              const float *inp, const float *w, const float *mean, const float *rstd,
                                              int n, int C) {
  int lane = threadIdx.x % WARP;
  const float *x = inp + (size_t)n * C;
  const float *d = dout + (size_t)n * C;
  float m = mean[n], s = rstd[n];
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
  for (int c = lane; c < C; c += WARP) {
    float norm = (x[c] - m) * s;
    float dnorm = d[c] * w[c];
    dnorm_mean += dnorm;
    dnorm_norm_mean += dnorm * norm;
  }
  dnorm_mean = warp_sum(dnorm_mean) / (float)C;
  dnorm_norm_mean = warp_sum(dnorm_norm_mean) / (float)C;
  size_t row = (size_t)n * C;
  for (int c = lane; c < C; c += WARP) {
    float norm = (x[c] - m) * s;
    float di = dinp[row + c] + (d[c] * w[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
    dinp[row + c] = di;
    if (dinp16) dinp16[row + c] = __float2bfloat16_rn(di);
    if (acc) {
      acc[c] += d[c] * norm;
      acc[C + c] += d[c];
    }
  }
}

/* dinp alone, one warp per row; dw and db come from the column sums of
 * layernorm_backward_dwdb_kernel. */
__global__ static void layernorm_backward_dinp_kernel(float *dinp, __nv_bfloat16 *dinp16, const float *dout,
                                                      const float *inp, const float *w, const float *mean,
                                                      const float *rstd, int N, int C) {
  int n = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  if (n < N) layernorm_backward_row(dinp, dinp16, NULL, dout, inp, w, mean, rstd, n, C);
}

/* layernorm_backward_kernel's warps, and the most shared memory it takes
 * for their sums (8 bytes a column a warp): up to a width of 3072, on any
 * device from sm_80 on, so that which path runs, and so the bits, never
 * depends on the device. */
#define LN_WARPS 4
#define LN_SMEM_MAX (96 * 1024)

/* dinp, and the partial sums of dw and db over the rows of part
 * blockIdx.x of GPU_LAYERNORM_PARTS, reading the rows once: each warp takes
 * every LN_WARPS-th row of the part and sums its columns' terms in its own
 * [2C] floats of shared memory; then the warps' sums are added in order,
 * in double, into parts[p][c] (dw) and parts[p][C + c] (db). */
__global__ static void layernorm_backward_kernel(float *dinp, __nv_bfloat16 *dinp16, double *parts,
                                                 const float *dout, const float *inp, const float *w,
                                                 const float *mean, const float *rstd, int N, int C) {
  extern __shared__ float acc[]; /* [LN_WARPS][2C] */
  int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
  float *mine = acc + (size_t)warp * 2 * C;
  for (int c = lane; c < C; c += WARP) mine[c] = mine[C + c] = 0.0f; /* the lane's own, as it adds to them */
  int chunk = (N + GPU_LAYERNORM_PARTS - 1) / GPU_LAYERNORM_PARTS;
  int lo = min(N, (int)blockIdx.x * chunk), hi = min(N, lo + chunk);
  for (int n = lo + warp; n < hi; n += LN_WARPS)
    layernorm_backward_row(dinp, dinp16, mine, dout, inp, w, mean, rstd, n, C);
  __syncthreads();
  for (int c = threadIdx.x; c < 2 * C; c += LN_WARPS * WARP) {
    double sum = 0.0;
    for (int k = 0; k < LN_WARPS; k++) sum += acc[(size_t)k * 2 * C + c];
    parts[(size_t)blockIdx.x * 2 * C + c] = sum;
  }
}

/* dw[c] += the GPU_LAYERNORM_PARTS parts of column c, db[c] those of
 * column C + c, in order. */
__global__ static void layernorm_parts_total_kernel(float *dw, float *db, const double *parts, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= 2 * C) return;
  double total = 0.0;
  for (int p = 0; p < GPU_LAYERNORM_PARTS; p++) total += parts[(size_t)p * 2 * C + c];
  if (c < C) dw[c] += (float)total;
  else db[c - C] += (float)total;
}

/* dw's and db's parts: a column-sum block (see the top). */
__global__ static void layernorm_backward_dwdb_kernel(double *dw_parts, double *db_parts, const float *dout,
                                                      const float *inp, const float *mean, const float *rstd, int N,
                                                      int C) {
  __shared__ double part[COL_Y][COL_X];
  int c = blockIdx.x * COL_X + threadIdx.x, lo, hi;
  column_part_rows(N, &lo, &hi);
  double sw = 0.0, sb = 0.0;
  if (c < C) {
    for (int n = lo + threadIdx.y; n < hi; n += COL_Y) {
      float d = dout[(size_t)n * C + c];
      float norm = (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
      sw += d * norm;
      sb += d;
    }
  }
  column_part_finish(dw_parts, c, C, sw, part);
  __syncthreads();
  column_part_finish(db_parts, c, C, sb, part);
}

extern "C" int gpu_layernorm_forward16(gpu_stream s, float *out, gpu_bf16 *out16, float *mean, float *rstd,
                                       const float *inp, const float *w, const float *b, int N, int C) {
  /* out [N, C], out16 [N, C], mean [N], rstd [N], inp [N, C], w [C], b [C] */
  if (N == 0 || C == 0) return 0;
  layernorm_forward_kernel<<<blocks_for((size_t)N, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(
      out, (__nv_bfloat16 *)out16, mean, rstd, inp, w, b, N, C);
  return (int)cudaGetLastError();
}

extern "C" int gpu_layernorm_forward(gpu_stream s, float *out, float *mean, float *rstd, const float *inp,
                                     const float *w, const float *b, int N, int C) {
  return gpu_layernorm_forward16(s, out, NULL, mean, rstd, inp, w, b, N, C);
}

extern "C" int gpu_residual_layernorm_forward16(gpu_stream s, float *res, const float *a, const float *r,
                                                const float *bias, float *out, gpu_bf16 *out16, float *mean,
                                                float *rstd, const float *w, const float *b, int N, int C) {
  if (N == 0 || C == 0) return 0;
  residual_layernorm_forward_kernel<<<blocks_for((size_t)N, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(
      res, a, r, bias, out, (__nv_bfloat16 *)out16, mean, rstd, w, b, N, C);
  return (int)cudaGetLastError();
}

/* The shared memory layernorm_backward_kernel needs for width C: 0 over
 * LN_SMEM_MAX, where dw and db are left to the column sums of a second
 * read. */
static size_t layernorm_backward_smem(int C) {
  size_t bytes = (size_t)LN_WARPS * 2 * C * sizeof(float);
  return bytes <= LN_SMEM_MAX ? bytes : 0;
}

extern "C" int gpu_layernorm_backward16(gpu_stream s, float *dinp, gpu_bf16 *dinp16, float *dw, float *db,
                                        const float *dout, const float *inp, const float *w, const float *mean,
                                        const float *rstd, int N, int C, double *scratch) {
  /* dinp [N, C], dinp16 [N, C], dw [C], db [C], dout [N, C], inp [N, C], w [C], mean [N], rstd [N] */
  if (N == 0 || C == 0) return 0;
  cudaStream_t st = as_stream(s);
  cudaError_t err;
  size_t smem = layernorm_backward_smem(C);
  if (smem) {
    err = cudaFuncSetAttribute(layernorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return (int)err;
    layernorm_backward_kernel<<<GPU_LAYERNORM_PARTS, LN_WARPS * WARP, smem, st>>>(dinp, (__nv_bfloat16 *)dinp16,
                                                                                   scratch, dout, inp, w, mean, rstd,
                                                                                   N, C);
    if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
    layernorm_parts_total_kernel<<<blocks_for(2 * (size_t)C, BLOCK), BLOCK, 0, st>>>(dw, db, scratch, C);
    return (int)cudaGetLastError();
  }
  layernorm_backward_dinp_kernel<<<blocks_for((size_t)N, BLOCK / WARP), BLOCK, 0, st>>>(
      dinp, (__nv_bfloat16 *)dinp16, dout, inp, w, mean, rstd, N, C);
  if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
  double *dw_parts = scratch, *db_parts = scratch + (size_t)GPU_COLUMN_PARTS * C;
  layernorm_backward_dwdb_kernel<<<column_grid(C), dim3(COL_X, COL_Y), 0, st>>>(dw_parts, db_parts, dout, inp, mean,
                                                                               rstd, N, C);
  if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
  if ((err = column_parts_total(st, dw, dw_parts, C)) != cudaSuccess) return (int)err;
  return (int)column_parts_total(st, db, db_parts, C);
}

/* ------------------------------------------------------------------------
 * Causal softmax of attention
 *
 * The backend computes preatt = q k^T with cuBLAS, unscaled, and the scale
 * 1/sqrt(hs) is applied here: for query t of attention row r = (b, h, t),
 *
 *   att[r, t2] = exp(scale preatt[r, t2] - mx) / sum_{t3 <= t} exp(scale preatt[r, t3] - mx)
 *
 * for t2 <= t, with mx the row's largest scaled score, and att[r, t2] = 0
 * for t2 > t, which is what cpu attention_forward keeps in att (it scales
 * inside its sgemm instead).
 *
 * Backward: with datt = dL/datt, the softmax's Jacobian diag(a) - a a^T
 * and the chain factor d(scale preatt)/d(preatt) = scale give
 *
 *   dpreatt[r, t2] = scale att[r, t2] (datt[r, t2] - sum_{t3 <= t} att[r, t3] datt[r, t3])
 *
 * for t2 <= t, the CPU attention_backward's dscores, and 0 above the
 * diagonal (whatever cuBLAS wrote in datt there is never read). Writing
 * every entry, instead of adding into a zeroed buffer, saves a pass over
 * the [BH, T, T] tensor to zero it and one to read it back. One warp per
 * row, 8 rows a block; dpreatt may be datt itself: a lane reads an entry
 * (after the warp's sum, which every lane waits for) just before writing
 * it. */

/* att may be preatt: a lane reads an entry, then writes it; the entries
 * above the diagonal, which it zeroes, are never read. */
__global__ static void softmax_causal_forward_kernel(float *att, const float *preatt, int rows, int T, float scale) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int t = r % T;
  const float *p = preatt + (size_t)r * T;
  float *a = att + (size_t)r * T;
  float mx = -INFINITY;
  for (int t2 = lane; t2 <= t; t2 += WARP) mx = fmaxf(mx, scale * p[t2]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += WARP) {
    float e = expf(scale * p[t2] - mx);
    a[t2] = e;
    sum += e;
  }
  /* Each lane reads back only what it wrote itself, so no barrier. */
  float inv = 1.0f / warp_sum(sum);
  for (int t2 = lane; t2 <= t; t2 += WARP) a[t2] *= inv;
  for (int t2 = t + 1 + lane; t2 < T; t2 += WARP) a[t2] = 0.0f;
}

__global__ static void softmax_causal_backward_kernel(float *dpreatt, const float *datt, const float *att,
                                                      int rows, int T, float scale) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int t = r % T;
  const float *a = att + (size_t)r * T;
  const float *da = datt + (size_t)r * T;
  float *dp = dpreatt + (size_t)r * T;
  float ada = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += WARP) ada += a[t2] * da[t2];
  ada = warp_sum(ada);
  for (int t2 = lane; t2 <= t; t2 += WARP) dp[t2] = scale * a[t2] * (da[t2] - ada);
  for (int t2 = t + 1 + lane; t2 < T; t2 += WARP) dp[t2] = 0.0f;
}

extern "C" int gpu_softmax_causal_forward(gpu_stream s, float *att, const float *preatt, int BH, int T, float scale) {
  /* att [BH, T, T], preatt [BH, T, T] */
  int rows = BH * T;
  if (rows == 0) return 0;
  softmax_causal_forward_kernel<<<blocks_for((size_t)rows, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(att, preatt, rows,
                                                                                                    T, scale);
  return (int)cudaGetLastError();
}

extern "C" int gpu_softmax_causal_backward(gpu_stream s, float *dpreatt, const float *datt, const float *att, int BH,
                                           int T, float scale) {
  /* dpreatt [BH, T, T], datt [BH, T, T], att [BH, T, T] */
  int rows = BH * T;
  if (rows == 0) return 0;
  softmax_causal_backward_kernel<<<blocks_for((size_t)rows, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(
      dpreatt, datt, att, rows, T, scale);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * GELU, tanh approximation
 *
 * 0.5 (1 + tanh u) is computed as the logistic sigmoid of 2u, the CPU's
 * form, which keeps its precision in the negative tail where 1 + tanh u
 * would cancel. expf here is CUDA's accurate one (no fast math). */

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

__device__ static inline float gelu_sigmoid(float x) {
  float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

/* With a bias, the pre-activation gets it first and keeps it (the
 * backward reads it): inp += bias, the two passes of bias_forward and
 * gelu_forward in one, to the same bits. GELU then reads the value as
 * stored, so that in bf16 the backward's derivative is taken where the
 * forward was. */
template <typename P, typename O>
__global__ static void gelu_forward_kernel(O *out, P *inp, const float *bias, size_t n, int C) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (bias) store(inp, i, load(inp, i) + bias[i % C]);
  float x = load(inp, i);
  store(out, i, x * gelu_sigmoid(x));
}

/* dinp = (overwritten) the gradient through GELU; dinp may be dout: each
 * thread reads its element before writing it. */
template <typename T>
__global__ static void gelu_backward_kernel(T *dinp, const T *inp, const T *dout, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = load(inp, i);
  float s = gelu_sigmoid(x);
  float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
  /* d/dx [x sigmoid(2u)] = sigmoid(2u) + 2 x sigmoid(2u) (1 - sigmoid(2u)) du/dx */
  float d = (s + 2.0f * x * s * (1.0f - s) * du) * load(dout, i);
  store(dinp, i, d);
}

extern "C" int gpu_gelu_forward(gpu_stream s, float *out, const float *inp, size_t n) {
  if (n == 0) return 0;
  /* without a bias the kernel never writes inp */
  gelu_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(out, (float *)inp, (const float *)NULL, n, 1);
  return (int)cudaGetLastError();
}

extern "C" int gpu_bias_gelu_forward(gpu_stream s, float *out, float *pre, const float *bias, int N, int OC) {
  size_t n = (size_t)N * OC;
  if (n == 0) return 0;
  gelu_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(out, pre, bias, n, OC);
  return (int)cudaGetLastError();
}

extern "C" int gpu_bias_gelu_forward16(gpu_stream s, gpu_bf16 *out, gpu_bf16 *pre, const float *bias, int N, int OC) {
  size_t n = (size_t)N * OC;
  if (n == 0) return 0;
  gelu_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>((__nv_bfloat16 *)out, (__nv_bfloat16 *)pre,
                                                                        bias, n, OC);
  return (int)cudaGetLastError();
}

extern "C" int gpu_gelu_backward_into(gpu_stream s, float *dinp, const float *inp, const float *dout, size_t n) {
  if (n == 0) return 0;
  gelu_backward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(dinp, inp, dout, n);
  return (int)cudaGetLastError();
}

extern "C" int gpu_gelu_backward16(gpu_stream s, gpu_bf16 *dinp, const gpu_bf16 *inp, const gpu_bf16 *dout,
                                   size_t n) {
  if (n == 0) return 0;
  gelu_backward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(
      (__nv_bfloat16 *)dinp, (const __nv_bfloat16 *)inp, (const __nv_bfloat16 *)dout, n);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * Residual connection (no backward kernel: the gradient reaches both inputs
 * unchanged) */

__global__ static void residual_forward_kernel(float *out, const float *a, const float *b, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

extern "C" int gpu_residual_forward(gpu_stream s, float *out, const float *a, const float *b, size_t n) {
  if (n == 0) return 0;
  residual_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(out, a, b, n);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * Bias of a Linear layer */

template <typename T>
__global__ static void bias_forward_kernel(T *out, const float *bias, int N, int OC) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (size_t)N * OC) store(out, i, load(out, i) + bias[i % OC]);
}

/* dbias's parts: a column-sum block (see the top), in double like the CPU. */
template <typename T>
__global__ static void bias_backward_kernel(double *parts, const T *dout, int N, int OC) {
  __shared__ double part[COL_Y][COL_X];
  int o = blockIdx.x * COL_X + threadIdx.x, lo, hi;
  column_part_rows(N, &lo, &hi);
  double sum = 0.0;
  if (o < OC)
    for (int n = lo + threadIdx.y; n < hi; n += COL_Y) sum += load(dout, (size_t)n * OC + o);
  column_part_finish(parts, o, OC, sum, part);
}

extern "C" int gpu_bias_forward(gpu_stream s, float *out, const float *bias, int N, int OC) {
  /* out [N, OC], bias [OC] */
  size_t n = (size_t)N * OC;
  if (n == 0) return 0;
  bias_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(out, bias, N, OC);
  return (int)cudaGetLastError();
}

extern "C" int gpu_bias_forward16(gpu_stream s, gpu_bf16 *out, const float *bias, int N, int OC) {
  size_t n = (size_t)N * OC;
  if (n == 0) return 0;
  bias_forward_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>((__nv_bfloat16 *)out, bias, N, OC);
  return (int)cudaGetLastError();
}

template <typename T>
static int bias_backward(gpu_stream s, float *dbias, const T *dout, int N, int OC, double *scratch) {
  /* dbias [OC], dout [N, OC] */
  if (OC == 0) return 0;
  bias_backward_kernel<<<column_grid(OC), dim3(COL_X, COL_Y), 0, as_stream(s)>>>(scratch, dout, N, OC);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return (int)err;
  return (int)column_parts_total(as_stream(s), dbias, scratch, OC);
}

extern "C" int gpu_bias_backward(gpu_stream s, float *dbias, const float *dout, int N, int OC, double *scratch) {
  return bias_backward(s, dbias, dout, N, OC, scratch);
}

extern "C" int gpu_bias_backward16(gpu_stream s, float *dbias, const gpu_bf16 *dout, int N, int OC, double *scratch) {
  return bias_backward(s, dbias, (const __nv_bfloat16 *)dout, N, OC, scratch);
}

/* ------------------------------------------------------------------------
 * Log-softmax and the target gather of the LM head
 *
 * One block per row of logits, read once: each thread keeps the largest
 * logit m it has seen and the sum s of exp(l - m) over them, rescaling s
 * when m grows (the online softmax), so that no exponential overflows;
 * then the block merges the threads' (m, s) pairs in a fixed tree. A
 * second pass for the sum would read a row of a fifty-thousand-word
 * vocabulary again, from memory rather than the L2 cache once a thousand
 * rows are in flight. The sums are kept in double, as on the CPU, so that
 * V small terms are not lost; logp = (l[target] - m) - log(s), without
 * rounding lse to float in between. */

/* (m, s) and (m2, s2) as one pair over both sets; an empty set is (-inf,
 * 0). Symmetric to the bit, so both lanes of a butterfly get the same. */
__device__ static inline void softmax_merge(float *m, double *s, float m2, double s2) {
  float mx = fmaxf(*m, m2);
  double a = *m == -INFINITY ? 0.0 : *s * (double)expf(*m - mx);
  double b = m2 == -INFINITY ? 0.0 : s2 * (double)expf(m2 - mx);
  *m = mx;
  *s = a + b;
}

__device__ static inline void warp_softmax_merge(float *m, double *s) {
  for (int o = WARP / 2; o > 0; o /= 2) {
    float m2 = __shfl_xor_sync(0xffffffffu, *m, o);
    double s2 = __shfl_xor_sync(0xffffffffu, *s, o);
    softmax_merge(m, s, m2, s2);
  }
}

template <typename T>
__global__ static void logprob_forward_kernel(float *logp, float *lse, const T *logits, const int32_t *targets, int V) {
  __shared__ float smax[BLOCK / WARP];
  __shared__ double ssum[BLOCK / WARP];
  int r = blockIdx.x, lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
  const T *l = logits + (size_t)r * V;
  float m = -INFINITY;
  double sum = 0.0;
  for (int v = threadIdx.x; v < V; v += BLOCK) {
    float x = load(l, v);
    if (x > m) {
      sum = (m == -INFINITY ? 0.0 : sum * (double)expf(m - x)) + 1.0;
      m = x;
    } else {
      sum += (double)expf(x - m);
    }
  }
  warp_softmax_merge(&m, &sum);
  if (lane == 0) smax[warp] = m, ssum[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    m = lane < BLOCK / WARP ? smax[lane] : -INFINITY;
    sum = lane < BLOCK / WARP ? ssum[lane] : 0.0;
    warp_softmax_merge(&m, &sum);
    if (lane == 0) {
      double log_sum = log(sum);
      lse[r] = (float)((double)m + log_sum);
      int32_t target = targets[r];
      logp[r] = target < 0 ? 0.0f : (float)((double)(load(l, target) - m) - log_sum);
    }
  }
}

/* dlogits = dlogp (onehot(target) - exp(l - lse)) over the row, one block a
 * row; a row with target < 0 (or dlogp 0) becomes zeros, so that a NaN or
 * infinite dlogp of an ignored row goes nowhere, as on the CPU. */
template <typename T>
__global__ static void logprob_backward_kernel(T *logits, const float *lse, const float *dlogp, const int32_t *targets,
                                               int V) {
  int r = blockIdx.x;
  T *l = logits + (size_t)r * V;
  int32_t target = targets[r];
  float d = dlogp[r];
  if (target < 0 || d == 0.0f) {
    for (int v = threadIdx.x; v < V; v += BLOCK) store(l, v, 0.0f);
    return;
  }
  float m = lse[r];
  for (int v = threadIdx.x; v < V; v += BLOCK) {
    float g = -d * expf(load(l, v) - m);
    if (v == target) g += d;
    store(l, v, g);
  }
}

extern "C" int gpu_logprob_forward(gpu_stream s, float *logp, float *lse, const float *logits, const int32_t *targets,
                                   int rows, int V) {
  /* logp [rows], lse [rows], logits [rows, V], targets [rows] */
  if (rows == 0) return 0;
  logprob_forward_kernel<<<rows, BLOCK, 0, as_stream(s)>>>(logp, lse, logits, targets, V);
  return (int)cudaGetLastError();
}

extern "C" int gpu_logprob_backward(gpu_stream s, float *logits, const float *lse, const float *dlogp,
                                    const int32_t *targets, int rows, int V) {
  /* logits [rows, V] (dlogits on return), lse [rows], dlogp [rows], targets [rows] */
  if (rows == 0) return 0;
  logprob_backward_kernel<<<rows, BLOCK, 0, as_stream(s)>>>(logits, lse, dlogp, targets, V);
  return (int)cudaGetLastError();
}

extern "C" int gpu_logprob_forward16(gpu_stream s, float *logp, float *lse, const gpu_bf16 *logits,
                                     const int32_t *targets, int rows, int V) {
  if (rows == 0) return 0;
  logprob_forward_kernel<<<rows, BLOCK, 0, as_stream(s)>>>(logp, lse, (const __nv_bfloat16 *)logits, targets, V);
  return (int)cudaGetLastError();
}

extern "C" int gpu_logprob_backward16(gpu_stream s, gpu_bf16 *logits, const float *lse, const float *dlogp,
                                      const int32_t *targets, int rows, int V) {
  if (rows == 0) return 0;
  logprob_backward_kernel<<<rows, BLOCK, 0, as_stream(s)>>>((__nv_bfloat16 *)logits, lse, dlogp, targets, V);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * The scalar head: one value per position */

/* One warp per row: values[n] = x[n, :] . w + b[0]. */
__global__ static void scalar_head_forward_kernel(float *values, const float *x, const float *w, const float *b, int N,
                                                  int C) {
  int n = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (n >= N) return;
  const float *xn = x + (size_t)n * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += WARP) sum += xn[c] * w[c];
  sum = warp_sum(sum);
  if (lane == 0) values[n] = sum + b[0];
}

__global__ static void scalar_head_backward_dx_kernel(float *dx, const float *dvalues, const float *w, int N, int C) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (size_t)N * C) dx[i] += dvalues[i / C] * w[i % C];
}

/* dw's parts: a column-sum block (see the top), sum_n dvalues[n] x[n, c]
 * in double. */
__global__ static void scalar_head_backward_dw_kernel(double *parts, const float *dvalues, const float *x, int N,
                                                      int C) {
  __shared__ double part[COL_Y][COL_X];
  int c = blockIdx.x * COL_X + threadIdx.x, lo, hi;
  column_part_rows(N, &lo, &hi);
  double sum = 0.0;
  if (c < C)
    for (int n = lo + threadIdx.y; n < hi; n += COL_Y) sum += (double)dvalues[n] * x[(size_t)n * C + c];
  column_part_finish(parts, c, C, sum, part);
}

/* db[0] += sum of dvalues: one block, a fixed tree. */
__global__ static void scalar_head_backward_db_kernel(float *db, const float *dvalues, int N) {
  __shared__ double shared[BLOCK / WARP];
  double sum = 0.0;
  for (int n = threadIdx.x; n < N; n += BLOCK) sum += dvalues[n];
  sum = block_sum_double(sum, shared);
  if (threadIdx.x == 0) db[0] += (float)sum;
}

extern "C" int gpu_scalar_head_forward(gpu_stream s, float *values, const float *x, const float *w, const float *b,
                                       int N, int C) {
  /* values [N], x [N, C], w [C], b [1] */
  if (N == 0) return 0;
  scalar_head_forward_kernel<<<blocks_for((size_t)N, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(values, x, w, b, N, C);
  return (int)cudaGetLastError();
}

extern "C" int gpu_scalar_head_backward(gpu_stream s, float *dx, float *dw, float *db, const float *dvalues,
                                        const float *x, const float *w, int N, int C, double *scratch) {
  /* dx [N, C], dw [C], db [1], dvalues [N], x [N, C], w [C] */
  cudaStream_t st = as_stream(s);
  if ((size_t)N * C > 0) {
    scalar_head_backward_dx_kernel<<<blocks_for((size_t)N * C, BLOCK), BLOCK, 0, st>>>(dx, dvalues, w, N, C);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return (int)err;
  }
  if (C > 0) {
    scalar_head_backward_dw_kernel<<<column_grid(C), dim3(COL_X, COL_Y), 0, st>>>(scratch, dvalues, x, N, C);
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) err = column_parts_total(st, dw, scratch, C);
    if (err != cudaSuccess) return (int)err;
  }
  scalar_head_backward_db_kernel<<<1, BLOCK, 0, st>>>(db, dvalues, N);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * Sum of squares, for the global gradient norm
 *
 * Two passes in a fixed tree. Pass one: SUM_SQUARES_PARTS blocks, block p
 * summing the contiguous chunk p of x (its threads striding through it),
 * each square in double (exact: a float's square fits a double's
 * mantissa), into parts[p]. Pass two: one block adds the parts. The grid
 * does not depend on the device, so neither do the bits.
 *
 * The parts live in a static device array: calls on one stream run in
 * order, but two calls in flight at once on different streams would share
 * it, which the backend never does (the norm is one call per step). */

#define SUM_SQUARES_PARTS 512

__device__ static double sum_squares_parts[SUM_SQUARES_PARTS];

__global__ static void sum_squares_part_kernel(const float *x, size_t n, size_t chunk) {
  __shared__ double shared[BLOCK / WARP];
  size_t lo = (size_t)blockIdx.x * chunk, hi = lo + chunk;
  if (lo > n) lo = n;
  if (hi > n) hi = n;
  double sum = 0.0;
  for (size_t i = lo + threadIdx.x; i < hi; i += BLOCK) sum += (double)x[i] * x[i];
  sum = block_sum_double(sum, shared);
  if (threadIdx.x == 0) sum_squares_parts[blockIdx.x] = sum;
}

__global__ static void sum_squares_total_kernel(double *out) {
  __shared__ double shared[BLOCK / WARP];
  double sum = 0.0;
  for (int p = threadIdx.x; p < SUM_SQUARES_PARTS; p += BLOCK) sum += sum_squares_parts[p];
  sum = block_sum_double(sum, shared);
  if (threadIdx.x == 0) *out = sum;
}

extern "C" int gpu_sum_squares(gpu_stream s, double *out, const float *x, size_t n) {
  size_t chunk = (n + SUM_SQUARES_PARTS - 1) / SUM_SQUARES_PARTS;
  sum_squares_part_kernel<<<SUM_SQUARES_PARTS, BLOCK, 0, as_stream(s)>>>(x, n, chunk);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return (int)err;
  sum_squares_total_kernel<<<1, BLOCK, 0, as_stream(s)>>>(out);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * AdamW: runtime/adamw_element.h's update, one thread a parameter. */

__global__ static void adamw_kernel(float *params, const float *grads, float *m, float *v, size_t n,
                                    struct adamw_constants k) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) adamw_element(&params[i], &m[i], &v[i], grads[i], k);
}

extern "C" int gpu_adamw_update(gpu_stream s, float *params, const float *grads, float *m, float *v, size_t n,
                                float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                                int t) {
  if (n == 0) return 0;
  struct adamw_constants k = adamw_constants_at(lr, beta1, beta2, eps, weight_decay, grad_scale, t);
  adamw_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(params, grads, m, v, n, k);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * Generation: the KV cache, as cpu_backend.c's cache_at / cache_store and
 * cpu_kernels.c's attention_cached_forward. A cache is [R, S, C]: row r's
 * position t starts at (r S + t) C. */

/* out [n, C] = wte[tokens[i]] + wpe[pos[i]]: each token at its own row's
 * next position. */
__global__ static void embed_at_kernel(float *out, const int32_t *tokens, const int32_t *pos, const float *wte,
                                       const float *wpe, int n, int C) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)n * C) return;
  int r = (int)(i / C), c = (int)(i % C);
  out[i] = wte[(size_t)tokens[r] * C + c] + wpe[(size_t)pos[r] * C + c];
}

extern "C" int gpu_embed_at(gpu_stream s, float *out, const int32_t *tokens, const int32_t *pos, const float *wte,
                            const float *wpe, int n, int C) {
  size_t total = (size_t)n * C;
  if (total == 0) return 0;
  embed_at_kernel<<<blocks_for(total, BLOCK), BLOCK, 0, as_stream(s)>>>(out, tokens, pos, wte, wpe, n, C);
  return (int)cudaGetLastError();
}

/* One thread per (token, column): the key and the value of qkv row i. */
__global__ static void kv_store_kernel(float *kcache, float *vcache, const float *qkv, const int32_t *rows,
                                       const int32_t *pos, int n, int S, int C) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)n * C) return;
  int r = (int)(i / C), c = (int)(i % C);
  size_t at = ((size_t)rows[r] * S + pos[r]) * C + c;
  const float *kv = qkv + (size_t)r * 3 * C;
  kcache[at] = kv[C + c];
  vcache[at] = kv[2 * C + c];
}

extern "C" int gpu_kv_store(gpu_stream s, float *kcache, float *vcache, const float *qkv, const int32_t *rows,
                            const int32_t *pos, int n, int S, int C) {
  size_t total = (size_t)n * C;
  if (total == 0) return 0;
  kv_store_kernel<<<blocks_for(total, BLOCK), BLOCK, 0, as_stream(s)>>>(kcache, vcache, qkv, rows, pos, n, S, C);
  return (int)cudaGetLastError();
}

/* One warp per (token, head). Each lane owns the keys t = lane, lane + 32,
 * ...: it takes their dot products with the query in the CPU's order (c
 * from 0) and keeps the scores in SCORES; the maximum and the sum of the
 * exponentials are warp trees. The output's columns are then split over
 * the lanes, each adding every key's share in order of t, so it must see
 * the other lanes' scores first (__syncwarp). */
__global__ static void attention_cached_kernel(float *out, float *scores, const float *qkv, const float *kcache,
                                               const float *vcache, const int32_t *rows, const int32_t *pos, int n,
                                               int S, int C, int H) {
  int w = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (w >= n * H) return;
  int i = w / H, h = w % H, hs = C / H;
  int keys = pos[i] + 1; /* the token's own key is already stored */
  float scale = rsqrtf((float)hs);
  const float *q = qkv + (size_t)i * 3 * C + (size_t)h * hs;
  size_t row = (size_t)rows[i] * S * C + (size_t)h * hs;
  const float *k = kcache + row, *v = vcache + row;
  float *sc = scores + (size_t)w * S;
  float mx = -INFINITY;
  for (int t = lane; t < keys; t += WARP) {
    const float *kt = k + (size_t)t * C;
    float dot = 0.0f;
    for (int c = 0; c < hs; c++) dot += q[c] * kt[c];
    sc[t] = scale * dot;
    mx = fmaxf(mx, sc[t]);
  }
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int t = lane; t < keys; t += WARP) {
    float e = expf(sc[t] - mx);
    sc[t] = e;
    sum += e;
  }
  float inv = 1.0f / warp_sum(sum);
  __syncwarp();
  float *o = out + (size_t)i * C + (size_t)h * hs;
  for (int c = lane; c < hs; c += WARP) {
    float acc = 0.0f;
    for (int t = 0; t < keys; t++) acc += sc[t] * inv * v[(size_t)t * C + c];
    o[c] = acc;
  }
}

extern "C" int gpu_attention_cached_forward(gpu_stream s, float *out, float *scores, const float *qkv,
                                            const float *kcache, const float *vcache, const int32_t *rows,
                                            const int32_t *pos, int n, int S, int C, int H) {
  size_t warps = (size_t)n * H;
  if (warps == 0) return 0;
  attention_cached_kernel<<<blocks_for(warps, BLOCK / WARP), BLOCK, 0, as_stream(s)>>>(out, scores, qkv, kcache,
                                                                                      vcache, rows, pos, n, S, C, H);
  return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------
 * bf16: the matmuls' operands in the bf16 precision */

__global__ static void to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

__global__ static void accumulate16_kernel(float *acc, const __nv_bfloat16 *x, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) acc[i] += __bfloat162float(x[i]);
}

extern "C" int gpu_accumulate16(gpu_stream s, float *acc, const gpu_bf16 *x, size_t n) {
  if (n == 0) return 0;
  accumulate16_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>(acc, (const __nv_bfloat16 *)x, n);
  return (int)cudaGetLastError();
}

extern "C" int gpu_to_bf16(gpu_stream s, gpu_bf16 *out, const float *in, size_t n) {
  if (n == 0) return 0;
  to_bf16_kernel<<<blocks_for(n, BLOCK), BLOCK, 0, as_stream(s)>>>((__nv_bfloat16 *)out, in, n);
  return (int)cudaGetLastError();
}
