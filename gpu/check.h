/* Checks for CUDA and cuBLAS calls. The backend interface has no error
 * returns in the middle of a step, so a failed call prints what failed and
 * where, and ends the process:
 *
 *   trainpipe: CUDA error cudaErrorMemoryAllocation (out of memory) in cudaMalloc(&p, n) at gpu/x.cu:12
 *
 * CUDA_CHECK takes anything that yields a cudaError_t, the int that the
 * kernels of gpu/kernels.h return included. For .cu files only. */
#ifndef TRAINPIPE_GPU_CHECK_H
#define TRAINPIPE_GPU_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

static inline void cuda_check_failed(const char *name, const char *description, const char *call, const char *file,
                                     int line) {
  fprintf(stderr, "trainpipe: CUDA error %s (%s) in %s at %s:%d\n", name, description, call, file, line);
  exit(1);
}

static inline void cuda_check(int status, const char *call, const char *file, int line) {
  cudaError_t e = (cudaError_t)status;
  if (e != cudaSuccess) cuda_check_failed(cudaGetErrorName(e), cudaGetErrorString(e), call, file, line);
}

static inline void cublas_check(cublasStatus_t status, const char *call, const char *file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    cuda_check_failed(cublasGetStatusName(status), cublasGetStatusString(status), call, file, line);
}

#define CUDA_CHECK(call) cuda_check((int)(call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) cublas_check((call), #call, __FILE__, __LINE__)

#endif
