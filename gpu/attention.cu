/* Fused causal attention (gpu/attention.h), with the WMMA interface to the
 * tensor cores: 16 x 16 x 16 bf16 products accumulated in fp32.
 *
 * A block takes one (batch, head) pair and one tile of TILE = 64 queries
 * or keys, with 4 warps; tiles of q, k, v, the output's gradient and the
 * scores live in shared memory. For head size HS:
 *
 * Forward, block per query tile, each warp owning 16 of its rows: for
 * each key tile up to the diagonal, S = Q K^T, then the running softmax of
 * each row (the row's maximum m and sum l so far; the output accumulated
 * so far is rescaled by exp(m_old - m_new) when m grows), then O += P V.
 * At the end O / l is the output and m + log l the row's log-sum-exp, all
 * in the scaled domain s = scale q.k.
 *
 * Backward, with P = exp(scale Q K^T - lse) recomputed, dP = dO V^T,
 * delta = rowsum(dO o O) and dS = scale P o (dP - delta):
 *   - block per key tile, over the query tiles from the diagonal on:
 *     dV += P^T dO, dK += dS^T Q (warps own key rows there, query rows
 *     while computing S and dP: a barrier between);
 *   - block per query tile, over the key tiles up to the diagonal:
 *     dQ += dS K.
 * Each output element has one owner block, which adds its terms in the
 * order of the tiles: deterministic, and no atomics.
 *
 * Positions past T are zero in the tiles and masked out of the softmax, as
 * are keys after the query. */
#include "gpu/attention.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>

#include "gpu/bf16.h"
#include "gpu/warp.h"

using namespace nvcuda;

typedef __nv_bfloat16 bf16;

#define TILE 64
#define WARPS 4
#define THREADS (WARPS * WARP)
#define WM 16 /* the WMMA tile */

typedef wmma::fragment<wmma::accumulator, WM, WM, WM, float> acc_frag;
typedef wmma::fragment<wmma::matrix_a, WM, WM, WM, bf16, wmma::row_major> a_row;
typedef wmma::fragment<wmma::matrix_a, WM, WM, WM, bf16, wmma::col_major> a_col;
typedef wmma::fragment<wmma::matrix_b, WM, WM, WM, bf16, wmma::row_major> b_row;
typedef wmma::fragment<wmma::matrix_b, WM, WM, WM, bf16, wmma::col_major> b_col;

/* Rows t0.. of one head of a [B, T, ROW] tensor (fp32 or bf16) whose
 * heads sit side by side from column OFFSET (qkv: ROW 3C, OFFSET 0, C or
 * 2C for q, k, v; out and dout: ROW C, OFFSET 0), into dst [TILE][HS] in
 * bf16; zero past T. */
template <int HS, typename S>
__device__ static void load_tile(bf16 *dst, const S *src, int b, int t0, int T, size_t row, size_t offset, int h) {
  for (int i = threadIdx.x; i < TILE * HS; i += THREADS) {
    int r = i / HS, d = i % HS, t = t0 + r;
    float x = t < T ? load(src, ((size_t)b * T + t) * row + offset + (size_t)h * HS + d) : 0.0f;
    dst[i] = __float2bfloat16_rn(x);
  }
}

/* C [16, 64] of a warp (row-major, ld TILE) = A [16, HS] B^T, A's rows and
 * B's rows from row-major [.][HS] tiles: scores from queries and keys, or
 * dP from dO and V. */
template <int HS>
__device__ static void rows_times_rows(float *c, const bf16 *a, const bf16 *b) {
  for (int n0 = 0; n0 < TILE; n0 += WM) {
    acc_frag acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < HS; k += WM) {
      a_row fa;
      b_col fb; /* B^T [HS][TILE] is B read column-major */
      wmma::load_matrix_sync(fa, a + k, HS);
      wmma::load_matrix_sync(fb, b + (size_t)n0 * HS + k, HS);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + n0, acc, TILE, wmma::mem_row_major);
  }
}

/* acc[HS / 16] (a warp's 16 rows of [., HS]) += A [16, TILE] B, A's rows
 * row-major with ld TILE (TRANSPOSED: A is the transpose of a [TILE][TILE]
 * tile's 16 columns, read column-major), B [TILE][HS] row-major. */
template <int HS, bool TRANSPOSED>
__device__ static void accumulate(acc_frag *acc, const bf16 *a, const bf16 *b) {
  for (int k = 0; k < TILE; k += WM) {
    if (TRANSPOSED) {
      a_col fa;
      wmma::load_matrix_sync(fa, a + (size_t)k * TILE, TILE);
      for (int n = 0; n < HS / WM; n++) {
        b_row fb;
        wmma::load_matrix_sync(fb, b + (size_t)k * HS + n * WM, HS);
        wmma::mma_sync(acc[n], fa, fb, acc[n]);
      }
    } else {
      a_row fa;
      wmma::load_matrix_sync(fa, a + k, TILE);
      for (int n = 0; n < HS / WM; n++) {
        b_row fb;
        wmma::load_matrix_sync(fb, b + (size_t)k * HS + n * WM, HS);
        wmma::mma_sync(acc[n], fa, fb, acc[n]);
      }
    }
  }
}

/* ------------------------------------------------------------------------
 * Forward */

template <int HS, typename Q>
__global__ static void __launch_bounds__(THREADS)
    flash_forward_kernel(float *out, float *lse, const Q *qkv, int T, int C, int H, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *qs = (bf16 *)smem, *ks = qs + TILE * HS, *vs = ks + TILE * HS, *ps = vs + TILE * HS;
  float *ss = (float *)(ps + TILE * TILE), *os = ss + TILE * TILE;
  int q0 = blockIdx.x * TILE, bh = blockIdx.y, b = bh / H, h = bh % H;
  int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, r0 = warp * WM;
  size_t row3 = 3 * (size_t)C;
  load_tile<HS>(qs, qkv, b, q0, T, row3, 0, h);
  for (int i = threadIdx.x; i < TILE * HS; i += THREADS) os[i] = 0.0f;
  float m[WM], l[WM];
#pragma unroll
  for (int r = 0; r < WM; r++) m[r] = -INFINITY, l[r] = 0.0f;
  int last = min(q0 + TILE, T) - 1; /* the last key any query of the tile sees */
  for (int k0 = 0; k0 <= last; k0 += TILE) {
    __syncthreads(); /* every warp is done with the last key tile */
    load_tile<HS>(ks, qkv, b, k0, T, row3, C, h);
    load_tile<HS>(vs, qkv, b, k0, T, row3, 2 * (size_t)C, h);
    __syncthreads();
    rows_times_rows<HS>(ss + r0 * TILE, qs + r0 * HS, ks);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < WM; r++) {
      int t = q0 + r0 + r;
      const float *srow = ss + (r0 + r) * TILE;
      float s[TILE / WARP], mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < TILE / WARP; j++) {
        int key = k0 + lane + j * WARP;
        s[j] = key <= t && key < T ? scale * srow[lane + j * WARP] : -INFINITY;
        mx = fmaxf(mx, s[j]);
      }
      float m_new = fmaxf(m[r], warp_max(mx)), sum = 0.0f;
#pragma unroll
      for (int j = 0; j < TILE / WARP; j++) {
        float p = s[j] == -INFINITY ? 0.0f : expf(s[j] - m_new);
        ps[(r0 + r) * TILE + lane + j * WARP] = __float2bfloat16_rn(p);
        sum += p;
      }
      float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(sum);
      m[r] = m_new;
      for (int d = lane; d < HS; d += WARP) os[(r0 + r) * HS + d] *= corr;
    }
    __syncwarp();
    acc_frag acc[HS / WM];
    for (int n = 0; n < HS / WM; n++) wmma::load_matrix_sync(acc[n], os + r0 * HS + n * WM, HS, wmma::mem_row_major);
    accumulate<HS, false>(acc, ps + r0 * TILE, vs);
    for (int n = 0; n < HS / WM; n++) wmma::store_matrix_sync(os + r0 * HS + n * WM, acc[n], HS, wmma::mem_row_major);
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < WM; r++) {
    int t = q0 + r0 + r;
    if (t >= T) continue;
    float inv = 1.0f / l[r];
    float *o = out + ((size_t)b * T + t) * C + (size_t)h * HS;
    for (int d = lane; d < HS; d += WARP) o[d] = os[(r0 + r) * HS + d] * inv;
    if (lane == 0) lse[(size_t)bh * T + t] = m[r] + logf(l[r]);
  }
}

/* ------------------------------------------------------------------------
 * Backward */

/* delta[b, h, t] = dout . out over the head's HS values: one warp each. */
__global__ static void flash_delta_kernel(float *delta, const float *dout, const float *out, int B, int T, int C,
                                          int H) {
  size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / WARP;
  int lane = threadIdx.x % WARP;
  if (w >= (size_t)B * H * T) return;
  int t = (int)(w % T), bh = (int)(w / T), b = bh / H, h = bh % H, hs = C / H;
  size_t at = ((size_t)b * T + t) * C + (size_t)h * hs;
  float sum = 0.0f;
  for (int d = lane; d < hs; d += WARP) sum += dout[at + d] * out[at + d];
  sum = warp_sum(sum);
  if (lane == 0) delta[w] = sum;
}

/* For a warp's 16 query rows (tile rows r0..) against a key tile at k0:
 * P (fp32, in ss) and dS = scale P (dP - delta) (bf16, in dss; bf16 P in
 * ps when it is not NULL), from the scores in ss and dP in dps. */
__device__ static void softmax_grad_rows(float *ss, const float *dps, bf16 *ps, bf16 *dss, const float *lse_t,
                                         const float *delta_t, int q0, int r0, int k0, int T, float scale) {
  int lane = threadIdx.x % WARP;
  for (int r = r0; r < r0 + WM; r++) {
    int t = q0 + r;
    for (int j = lane; j < TILE; j += WARP) {
      int key = k0 + j, at = r * TILE + j;
      float p = t < T && key <= t ? expf(scale * ss[at] - lse_t[r]) : 0.0f;
      if (ps) ps[at] = __float2bfloat16_rn(p);
      dss[at] = __float2bfloat16_rn(scale * p * (dps[at] - delta_t[r]));
    }
  }
}

/* The shared memory of both backward kernels: q, k, v and dO tiles, P and
 * dS in bf16, S and dP in fp32, and a tile's lse and delta. */
struct backward_smem {
  bf16 *qs, *ks, *vs, *dos, *ps, *dss;
  float *ss, *dps, *lse_t, *delta_t;
};

template <int HS>
__device__ static backward_smem backward_carve(unsigned char *smem) {
  backward_smem m;
  m.qs = (bf16 *)smem;
  m.ks = m.qs + TILE * HS;
  m.vs = m.ks + TILE * HS;
  m.dos = m.vs + TILE * HS;
  m.ps = m.dos + TILE * HS;
  m.dss = m.ps + TILE * TILE;
  m.ss = (float *)(m.dss + TILE * TILE);
  m.dps = m.ss + TILE * TILE;
  m.lse_t = m.dps + TILE * TILE;
  m.delta_t = m.lse_t + TILE;
  return m;
}

template <int HS>
static size_t backward_smem_bytes() {
  return (4 * TILE * HS + 2 * TILE * TILE) * sizeof(bf16) + (2 * TILE * TILE + 2 * TILE) * sizeof(float);
}

/* S, dP, P and dS of a warp's 16 query rows (r0..) against the key tile
 * at k0 (see softmax_grad_rows; P in bf16 into PS when it is not NULL). */
template <int HS>
__device__ static void tile_grads(backward_smem *s, bf16 *ps, int q0, int r0, int k0, int T, float scale) {
  rows_times_rows<HS>(s->ss + r0 * TILE, s->qs + r0 * HS, s->ks);
  rows_times_rows<HS>(s->dps + r0 * TILE, s->dos + r0 * HS, s->vs);
  __syncwarp();
  softmax_grad_rows(s->ss, s->dps, ps, s->dss, s->lse_t, s->delta_t, q0, r0, k0, T, scale);
}

/* A tile's lse and delta, 0 past T. */
__device__ static void load_row_stats(float *lse_t, float *delta_t, const float *lse, const float *delta, size_t bh,
                                      int q0, int T) {
  for (int i = threadIdx.x; i < TILE; i += THREADS) {
    int t = q0 + i;
    lse_t[i] = t < T ? lse[bh * T + t] : 0.0f;
    delta_t[i] = t < T ? delta[bh * T + t] : 0.0f;
  }
}

/* Writes a warp's accumulators (16 rows of a tile at k0, [16][HS]) into
 * rows of dqkv's slot OFFSET (fp32 or bf16), through STAGE (a warp's
 * [16][HS] floats). */
template <int HS, typename Q>
__device__ static void store_rows(Q *dqkv, acc_frag *acc, float *stage, int b, int t0, int r0, int T, int C,
                                  size_t offset, int h) {
  int lane = threadIdx.x % WARP;
  for (int n = 0; n < HS / WM; n++) wmma::store_matrix_sync(stage + n * WM, acc[n], HS, wmma::mem_row_major);
  __syncwarp();
  for (int r = 0; r < WM; r++) {
    int t = t0 + r0 + r;
    if (t >= T) break;
    Q *dst = dqkv + ((size_t)b * T + t) * 3 * C + offset + (size_t)h * HS;
    for (int d = lane; d < HS; d += WARP) store(dst, d, stage[r * HS + d]);
  }
  __syncwarp();
}

/* dK and dV of one key tile. */
template <int HS, typename Q>
__global__ static void __launch_bounds__(THREADS)
    flash_backward_kv_kernel(Q *dqkv, const float *dout, const Q *qkv, const float *lse, const float *delta, int T,
                             int C, int H, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  backward_smem s = backward_carve<HS>(smem);
  int k0 = blockIdx.x * TILE, bh = blockIdx.y, b = bh / H, h = bh % H;
  int warp = threadIdx.x / WARP, r0 = warp * WM;
  size_t row3 = 3 * (size_t)C;
  load_tile<HS>(s.ks, qkv, b, k0, T, row3, C, h);
  load_tile<HS>(s.vs, qkv, b, k0, T, row3, 2 * (size_t)C, h);
  acc_frag dk[HS / WM], dv[HS / WM];
  for (int n = 0; n < HS / WM; n++) wmma::fill_fragment(dk[n], 0.0f), wmma::fill_fragment(dv[n], 0.0f);
  for (int q0 = k0; q0 < T; q0 += TILE) { /* the query tiles that see these keys */
    __syncthreads();
    load_tile<HS>(s.qs, qkv, b, q0, T, row3, 0, h);
    load_tile<HS>(s.dos, dout, b, q0, T, C, 0, h);
    load_row_stats(s.lse_t, s.delta_t, lse, delta, bh, q0, T);
    __syncthreads();
    tile_grads<HS>(&s, s.ps, q0, r0, k0, T, scale);
    __syncthreads();
    /* the warp's key rows: dV += P^T dO, dK += dS^T Q */
    accumulate<HS, true>(dv, s.ps + r0, s.dos);
    accumulate<HS, true>(dk, s.dss + r0, s.qs);
  }
  __syncthreads();
  float *stage = s.ss + (size_t)r0 * HS; /* ss and dps together hold 4 warps' [16][HS] up to HS = 128 */
  store_rows<HS>(dqkv, dk, stage, b, k0, r0, T, C, C, h);
  store_rows<HS>(dqkv, dv, stage, b, k0, r0, T, C, 2 * (size_t)C, h);
}

/* dQ of one query tile; every warp owns its 16 query rows throughout. */
template <int HS, typename Q>
__global__ static void __launch_bounds__(THREADS)
    flash_backward_q_kernel(Q *dqkv, const float *dout, const Q *qkv, const float *lse, const float *delta, int T,
                            int C, int H, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  backward_smem s = backward_carve<HS>(smem);
  int q0 = blockIdx.x * TILE, bh = blockIdx.y, b = bh / H, h = bh % H;
  int warp = threadIdx.x / WARP, r0 = warp * WM;
  size_t row3 = 3 * (size_t)C;
  load_tile<HS>(s.qs, qkv, b, q0, T, row3, 0, h);
  load_tile<HS>(s.dos, dout, b, q0, T, C, 0, h);
  load_row_stats(s.lse_t, s.delta_t, lse, delta, bh, q0, T);
  acc_frag dq[HS / WM];
  for (int n = 0; n < HS / WM; n++) wmma::fill_fragment(dq[n], 0.0f);
  int last = min(q0 + TILE, T) - 1;
  for (int k0 = 0; k0 <= last; k0 += TILE) {
    __syncthreads();
    load_tile<HS>(s.ks, qkv, b, k0, T, row3, C, h);
    load_tile<HS>(s.vs, qkv, b, k0, T, row3, 2 * (size_t)C, h);
    __syncthreads();
    tile_grads<HS>(&s, NULL, q0, r0, k0, T, scale);
    __syncwarp();
    accumulate<HS, false>(dq, s.dss + r0 * TILE, s.ks);
  }
  __syncthreads();
  store_rows<HS>(dqkv, dq, s.ss + (size_t)r0 * HS, b, q0, r0, T, C, 0, h);
}

/* ------------------------------------------------------------------------
 * Launches */

template <int HS>
static size_t forward_smem_bytes() {
  return (3 * TILE * HS + TILE * TILE) * sizeof(bf16) + (TILE * TILE + TILE * HS) * sizeof(float);
}

template <int HS, typename Q>
static cudaError_t forward(cudaStream_t s, float *out, float *lse, const Q *qkv, int B, int T, int C, int H) {
  size_t bytes = forward_smem_bytes<HS>();
  cudaError_t err = cudaFuncSetAttribute(flash_forward_kernel<HS, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)bytes);
  if (err != cudaSuccess) return err;
  dim3 grid((T + TILE - 1) / TILE, B * H);
  flash_forward_kernel<HS, Q><<<grid, THREADS, bytes, s>>>(out, lse, qkv, T, C, H, 1.0f / sqrtf((float)HS));
  return cudaGetLastError();
}

template <int HS, typename Q>
static cudaError_t backward(cudaStream_t s, Q *dqkv, const float *delta, const float *dout, const Q *qkv,
                            const float *lse, int B, int T, int C, int H) {
  size_t bytes = backward_smem_bytes<HS>();
  cudaError_t err = cudaFuncSetAttribute(flash_backward_kv_kernel<HS, Q>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
  if (err == cudaSuccess)
    err = cudaFuncSetAttribute(flash_backward_q_kernel<HS, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int)bytes);
  if (err != cudaSuccess) return err;
  dim3 grid((T + TILE - 1) / TILE, B * H);
  float scale = 1.0f / sqrtf((float)HS);
  flash_backward_kv_kernel<HS, Q><<<grid, THREADS, bytes, s>>>(dqkv, dout, qkv, lse, delta, T, C, H, scale);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  flash_backward_q_kernel<HS, Q><<<grid, THREADS, bytes, s>>>(dqkv, dout, qkv, lse, delta, T, C, H, scale);
  return cudaGetLastError();
}

extern "C" int gpu_flash_supported(int hs) { return hs == 16 || hs == 32 || hs == 64 || hs == 128; }

template <typename Q>
static int flash_forward(gpu_stream s, float *out, float *lse, const Q *qkv, int B, int T, int C, int H) {
  cudaStream_t st = (cudaStream_t)s;
  if ((size_t)B * T * H == 0) return 0;
  switch (C / H) {
  case 16: return (int)forward<16>(st, out, lse, qkv, B, T, C, H);
  case 32: return (int)forward<32>(st, out, lse, qkv, B, T, C, H);
  case 64: return (int)forward<64>(st, out, lse, qkv, B, T, C, H);
  case 128: return (int)forward<128>(st, out, lse, qkv, B, T, C, H);
  }
  return (int)cudaErrorInvalidValue;
}

template <typename Q>
static int flash_backward(gpu_stream s, Q *dqkv, float *delta, const float *dout, const Q *qkv, const float *out,
                          const float *lse, int B, int T, int C, int H) {
  cudaStream_t st = (cudaStream_t)s;
  size_t rows = (size_t)B * H * T;
  if (rows == 0) return 0;
  enum { DELTA_BLOCK = 256 };
  flash_delta_kernel<<<(unsigned)((rows * WARP + DELTA_BLOCK - 1) / DELTA_BLOCK), DELTA_BLOCK, 0, st>>>(
      delta, dout, out, B, T, C, H);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return (int)err;
  switch (C / H) {
  case 16: return (int)backward<16>(st, dqkv, delta, dout, qkv, lse, B, T, C, H);
  case 32: return (int)backward<32>(st, dqkv, delta, dout, qkv, lse, B, T, C, H);
  case 64: return (int)backward<64>(st, dqkv, delta, dout, qkv, lse, B, T, C, H);
  case 128: return (int)backward<128>(st, dqkv, delta, dout, qkv, lse, B, T, C, H);
  }
  return (int)cudaErrorInvalidValue;
}

extern "C" int gpu_flash_forward(gpu_stream s, float *out, float *lse, const float *qkv, int B, int T, int C, int H) {
  return flash_forward(s, out, lse, qkv, B, T, C, H);
}

extern "C" int gpu_flash_forward16(gpu_stream s, float *out, float *lse, const gpu_bf16 *qkv, int B, int T, int C,
                                   int H) {
  return flash_forward(s, out, lse, (const bf16 *)qkv, B, T, C, H);
}

extern "C" int gpu_flash_backward(gpu_stream s, float *dqkv, float *delta, const float *dout, const float *qkv,
                                  const float *out, const float *lse, int B, int T, int C, int H) {
  return flash_backward(s, dqkv, delta, dout, qkv, out, lse, B, T, C, H);
}

extern "C" int gpu_flash_backward16(gpu_stream s, gpu_bf16 *dqkv, float *delta, const float *dout, const gpu_bf16 *qkv,
                                    const float *out, const float *lse, int B, int T, int C, int H) {
  return flash_backward(s, (bf16 *)dqkv, delta, dout, (const bf16 *)qkv, out, lse, B, T, C, H);
}
