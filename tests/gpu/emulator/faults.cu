/* The emulator against kernels with known faults: faults_test CASE runs
 * one case and exits 0 when the emulator did what the case expects. The
 * cases that must stop the run (out of bounds, a deadlock) are expected
 * to exit 1 with the emulator's message, which faults.gpu checks; the
 * others check what the CUDA calls return and what the kernels compute.
 * Compiled as gpu/'s sources are, through rewrite-launches. */
#include <cuda_runtime.h>
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

using namespace nvcuda;

__global__ static void write_one_past(float *x, int n) {
  if (threadIdx.x == 0) x[n + 256] = 1.0f; /* past the allocation's 256-byte rounding */
}

__global__ static void shuffle_from_returned(float *out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

__global__ static void split_warp(float *out) {
  if (threadIdx.x < 16)
    __syncwarp();
  else
    __syncthreads();
  out[threadIdx.x] = 1.0f;
}

/* thread 31 writes one past the shared array, which UBSan's bounds check
 * stops (the emulator's objects are built with it) */
__global__ static void shared_past_end(float *out) {
  __shared__ float row[32];
  row[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = row[threadIdx.x];
}

/* every thread writes the one element: the last to run wins */
__global__ static void racy_write(float *out) { out[0] = (float)(blockIdx.x * blockDim.x + threadIdx.x); }

__global__ static void read_before_write(float *out) {
  __shared__ float seen[32];
  out[threadIdx.x] = seen[threadIdx.x];
}

__global__ static void wmma_half_warp(float *out) {
  if (threadIdx.x >= 16) return;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

__global__ static void uses_shared(float *out, int n) {
  extern __shared__ float big[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) big[i] = (float)i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = big[n - 1];
}

/* every lane of a [32, 4] block sums its row by shuffles, and the block
 * sums the rows through shared memory: the positive control */
__global__ static void block_sum(float *out) {
  __shared__ float rows[4];
  float x = (float)(threadIdx.y * 32 + threadIdx.x);
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  if (threadIdx.x == 0) rows[threadIdx.y] = x;
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) out[blockIdx.x] = rows[0] + rows[1] + rows[2] + rows[3];
}

/* D = A B through WMMA, A [16, 16] row-major, B [16, 16] column-major */
__global__ static void wmma_product(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
}

static int expect(bool ok, const char *what) {
  printf("%s: %s\n", ok ? "ok" : "FAIL", what);
  return ok ? 0 : 1;
}

static float *device_floats(int n) {
  float *d = NULL;
  if (cudaMalloc(&d, (size_t)n * sizeof(float)) != cudaSuccess) {
    printf("FAIL: cudaMalloc\n");
    exit(1);
  }
  return d;
}

static int control(void) {
  int failed = 0;
  float *d = device_floats(3), h[3];
  block_sum<<<3, dim3(32, 4)>>>(d);
  failed += expect(cudaGetLastError() == cudaSuccess, "a [32, 4] block launches");
  cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
  failed += expect(h[0] == 127 * 128 / 2 && h[2] == h[0], "shuffles and __syncthreads sum a block");

  __nv_bfloat16 ha[256], hb[256];
  for (int i = 0; i < 256; i++)
    ha[i] = __float2bfloat16_rn((float)(i % 7)), hb[i] = __float2bfloat16_rn((float)(i % 5));
  __nv_bfloat16 *da, *db;
  float *dd = device_floats(256), hd[256];
  cudaMalloc(&da, sizeof ha), cudaMalloc(&db, sizeof hb);
  cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice), cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
  wmma_product<<<1, 32>>>(dd, da, db);
  cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost);
  bool same = true;
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) {
      float s = 0.0f;
      for (int k = 0; k < 16; k++) s += (float)(((i * 16 + k) % 7) * ((j * 16 + k) % 5));
      same = same && hd[i * 16 + j] == s;
    }
  failed += expect(same, "WMMA multiplies a row-major A by a column-major B");
  cudaFree(d), cudaFree(da), cudaFree(db), cudaFree(dd);
  return failed;
}

static int launches(void) {
  int failed = 0;
  float *d = device_floats(1 << 14), h = 0.0f;
  uses_shared<<<1, 128, 64 << 10>>>(d, 1 << 14);
  failed += expect(cudaGetLastError() == cudaErrorInvalidValue, "64 KiB of dynamic shared memory needs the attribute");
  failed +=
      expect(cudaFuncSetAttribute(uses_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10) == cudaSuccess,
             "the attribute raises the limit");
  uses_shared<<<1, 128, 64 << 10>>>(d, 1 << 14);
  failed += expect(cudaGetLastError() == cudaSuccess, "and then the launch runs");
  cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
  failed += expect(h == (float)((1 << 14) - 1), "with the shared memory it asked for");
  failed += expect(cudaFuncSetAttribute(uses_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 << 10) ==
                       cudaErrorInvalidValue,
                   "no more than 227 KiB");
  block_sum<<<1, 1025>>>(d);
  failed += expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "no block of 1025 threads");
  failed += expect(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears a launch error");
  cudaFree(d);
  return failed;
}

static int memory(void) {
  int failed = 0;
  float *d = device_floats(32), h[32];
  failed += expect(cudaMemcpy(h, d, sizeof h, cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
                   "a copy to the host named as to the device");
  failed += expect(cudaMemcpy(d, h, sizeof h + 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
                   "a copy past the allocation");
  cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
  failed += expect(h[0] != h[0], "fresh device memory reads as NaN");
  read_before_write<<<1, 32>>>(d);
  cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
  failed += expect(h[5] != h[5], "shared memory read before it is written is NaN");
  failed += expect(cudaFree(d + 1) == cudaErrorInvalidValue, "cudaFree of what cudaMalloc did not return");
  cudaFree(d);
  return failed;
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "";
  float host[64];
  if (!strcmp(which, "control")) return control();
  if (!strcmp(which, "launches")) return launches();
  if (!strcmp(which, "memory")) return memory();
  float *d = device_floats(64);
  if (!strcmp(which, "out-of-bounds"))
    write_one_past<<<1, 32>>>(d, 64);
  else if (!strcmp(which, "shuffle"))
    shuffle_from_returned<<<1, 32>>>(d);
  else if (!strcmp(which, "deadlock"))
    split_warp<<<1, 64>>>(d);
  else if (!strcmp(which, "wmma"))
    wmma_half_warp<<<1, 32>>>(d);
  else if (!strcmp(which, "host-pointer"))
    write_one_past<<<1, 32>>>(host, 0);
  else if (!strcmp(which, "shared-bounds"))
    shared_past_end<<<1, 32>>>(d);
  else if (!strcmp(which, "race"))
    racy_write<<<2, 32>>>(d);
  else {
    fprintf(stderr,
            "usage: faults_test "
            "control|launches|memory|out-of-bounds|shuffle|deadlock|wmma|host-pointer|shared-bounds|race\n");
    return 2;
  }
  printf("FAIL: the emulator let case %s run\n", which);
  return 0;
}
