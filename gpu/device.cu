#include "gpu/device.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

extern "C" void cuda_describe(char *buf, size_t size) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    snprintf(buf, size, "no device: %s", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
    return;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    snprintf(buf, size, "%d device%s", n, n == 1 ? "" : "s");
    return;
  }
  snprintf(buf, size, "%d device%s: %s (sm_%d%d, %zu GiB)", n, n == 1 ? "" : "s", prop.name, prop.major,
           prop.minor, prop.totalGlobalMem >> 30);
}

__global__ static void vector_add_kernel(const float *a, const float *b, float *sum, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) sum[i] = a[i] + b[i];
}

extern "C" int cuda_vector_add(const float *a, const float *b, float *sum, int n) {
  float *da = NULL, *db = NULL, *ds = NULL;
  size_t bytes = (size_t)n * sizeof(float);
  cudaError_t err = cudaMalloc(&da, bytes);
  if (err == cudaSuccess) err = cudaMalloc(&db, bytes);
  if (err == cudaSuccess) err = cudaMalloc(&ds, bytes);
  if (err == cudaSuccess) err = cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice);
  if (err == cudaSuccess) err = cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice);
  if (err == cudaSuccess) {
    vector_add_kernel<<<(n + 255) / 256, 256>>>(da, db, ds, n);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpy(sum, ds, bytes, cudaMemcpyDeviceToHost);
  cudaFree(da);
  cudaFree(db);
  cudaFree(ds);
  return (int)err;
}
