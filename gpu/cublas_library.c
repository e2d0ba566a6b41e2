/* See cublas_library.h. The table of functions is the one process-wide
 * state trainpipe keeps outside main: it stands in for the dynamic
 * linker's, is written once, by the first load, before any backend can
 * call through it, and is read-only after. */
#include "gpu/cublas_library.h"

#include "config.h"
#include <dlfcn.h>
#include <stdio.h>

#include <cublasLt.h>
#include <cublas_v2.h>

#define STRINGIFY(x) #x
#define SONAME(stem, major) stem ".so." STRINGIFY(major)

enum { LIBRARY_CUBLAS, LIBRARY_CUBLAS_LT };
static const char *const library_names[] = {
    [LIBRARY_CUBLAS] = SONAME("libcublas", CUBLAS_VER_MAJOR),
    [LIBRARY_CUBLAS_LT] = SONAME("libcublasLt", CUBLAS_VER_MAJOR),
};

/* library, return type, name, parameters, arguments: what trainpipe calls */
#define CUBLAS_FUNCTIONS(X)                                                                                            \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasCreate_v2, (cublasHandle_t * handle), (handle))                              \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasDestroy_v2, (cublasHandle_t handle), (handle))                               \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream),                  \
    (handle, stream))                                                                                                  \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasSetMathMode, (cublasHandle_t handle, cublasMath_t mode), (handle, mode))     \
  X(LIBRARY_CUBLAS, const char *, cublasGetStatusName, (cublasStatus_t status), (status))                              \
  X(LIBRARY_CUBLAS, const char *, cublasGetStatusString, (cublasStatus_t status), (status))                            \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasSgemm_v2,                                                                    \
    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,                   \
     const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc),      \
    (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc))                                            \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasSgemmStridedBatched,                                                         \
    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,                   \
     const float *alpha, const float *A, int lda, long long int strideA, const float *B, int ldb,                      \
     long long int strideB, const float *beta, float *C, int ldc, long long int strideC, int batchCount),              \
    (handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount))     \
  X(LIBRARY_CUBLAS, cublasStatus_t, cublasGemmEx,                                                                      \
    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,                   \
     const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb,        \
     const void *beta, void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo),  \
    (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo))    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtCreate, (cublasLtHandle_t * handle), (handle))                          \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtDestroy, (cublasLtHandle_t handle), (handle))                           \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatrixLayoutCreate,                                                     \
    (cublasLtMatrixLayout_t * layout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld),                    \
    (layout, type, rows, cols, ld))                                                                                    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatrixLayoutDestroy, (cublasLtMatrixLayout_t layout), (layout))         \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulDescCreate,                                                       \
    (cublasLtMatmulDesc_t * desc, cublasComputeType_t computeType, cudaDataType_t scaleType),                          \
    (desc, computeType, scaleType))                                                                                    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulDescDestroy, (cublasLtMatmulDesc_t desc), (desc))                 \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulDescSetAttribute,                                                 \
    (cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *buf, size_t sizeInBytes),             \
    (desc, attr, buf, sizeInBytes))                                                                                    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulPreferenceCreate, (cublasLtMatmulPreference_t * pref), (pref))    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulPreferenceDestroy, (cublasLtMatmulPreference_t pref), (pref))     \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulPreferenceSetAttribute,                                           \
    (cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf, size_t sizeInBytes), \
    (pref, attr, buf, sizeInBytes))                                                                                    \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmulAlgoGetHeuristic,                                                 \
    (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,   \
     cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference,                \
     int requestedAlgoCount, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int *returnAlgoCount),           \
    (handle, desc, Adesc, Bdesc, Cdesc, Ddesc, preference, requestedAlgoCount, heuristicResultsArray,                  \
     returnAlgoCount))                                                                                                 \
  X(LIBRARY_CUBLAS_LT, cublasStatus_t, cublasLtMatmul,                                                                 \
    (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,                             \
     cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,       \
     cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,            \
     void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream),                                               \
    (handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace, workspaceSizeInBytes,         \
     stream))

#define AS_FIELD(library, type, name, params, args) type(*name) params;
static struct {
  bool loaded;
  CUBLAS_FUNCTIONS(AS_FIELD)
} found;

#define AS_FORWARD(library, type, name, params, args) \
  type name params { return found.name args; }
CUBLAS_FUNCTIONS(AS_FORWARD)

bool cublas_library_load(char *err, size_t err_size) {
  if (found.loaded) return true;
  void *handles[2];
  for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
    /* where the dynamic linker looks (LD_LIBRARY_PATH first), then in
     * the toolkit configure found */
    handles[i] = dlopen(library_names[i], RTLD_NOW | RTLD_LOCAL);
    if (!handles[i]) {
      char first[512], path[1024];
      snprintf(first, sizeof first, "%s", dlerror());
      snprintf(path, sizeof path, "%s/%s", CUDA_LIBDIR, library_names[i]);
      handles[i] = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (!handles[i]) {
        snprintf(err, err_size, "cannot load cuBLAS: %s; nor from %s", first, CUDA_LIBDIR);
        return false;
      }
    }
  }
  /* dlsym's void * into a function pointer, as POSIX's own example does */
#define LOOK_UP(library, type, name, params, args)                                              \
  *(void **)&found.name = dlsym(handles[library], #name);                                       \
  if (!found.name) {                                                                            \
    snprintf(err, err_size, "cannot load cuBLAS: %s has no %s", library_names[library], #name); \
    return false;                                                                               \
  }
  CUBLAS_FUNCTIONS(LOOK_UP)
  found.loaded = true;
  return true;
}
