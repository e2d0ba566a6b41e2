/* A CPU stand-in for the parts of cuBLAS and cuBLASLt that
 * gpu/cuda_backend.cu calls, so that the CUDA backend's tests run on
 * machines without a GPU; on a device, real cuBLAS is what runs.
 *
 * The functions have the names, C linkage and signatures that
 * <cublas_v2.h> and <cublasLt.h> declare (cublasCreate is the macro for
 * cublasCreate_v2, and so on), and work on plain host memory: "device"
 * pointers are host pointers here, streams are ignored and every call
 * finishes before it returns.
 *
 * Numbers: each dot product is summed in double, in order of k, then
 * scaled, added to beta C and whatever the epilogue adds, and rounded
 * once to the output's type (double to float, then float to bf16 with
 * round-to-nearest-even). The tensor cores' TF32 inputs are reproduced by
 * rounding fp32 operands to 10 mantissa bits where the math mode or the
 * compute type allows TF32.
 *
 * Only what the backend uses is here, and the rest is refused rather than
 * guessed at: other math modes, types, epilogues and attributes get
 * CUBLAS_STATUS_NOT_SUPPORTED or CUBLAS_STATUS_INVALID_VALUE, as real
 * cuBLAS answers what it does not take. Nothing is printed. */
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>

#include "gpu/cublas_library.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <new>

/* The handles' structs, which the headers leave incomplete. */
struct cublasContext {
  cublasMath_t math; /* as cublasSetMathMode left it */
};

/* Nothing to keep: cuBLASLt calls carry all their state in descriptors.
 * (So a cublasHandle_t cast to a cublasLtHandle_t, which the
 * documentation allows, works too: it is never dereferenced.) */
struct cublasLtContext {
  int unused;
};

namespace {

/* ------------------------------------------------------------------------
 * Elements */

float load(const float *p, size_t i) { return p[i]; }
float load(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }

/* V rounded once to the element's type: bf16 goes through float, as the
 * device's fp32 accumulator does. */
void store(float *p, size_t i, double v) { p[i] = (float)v; }
void store(__nv_bfloat16 *p, size_t i, double v) { p[i] = __float2bfloat16_rn((float)v); }

/* X with its mantissa rounded to TF32's 10 bits, to nearest even; inf and
 * NaN as they are. A carry out of the mantissa steps the exponent, which
 * is the right rounding (up to inf past TF32's largest). */
float to_tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  uint32_t dropped = 13; /* 23 mantissa bits - 10 */
  uint32_t half = (1u << (dropped - 1)) - 1 + ((u >> dropped) & 1);
  u = (u + half) & ~((1u << dropped) - 1);
  memcpy(&x, &u, sizeof x);
  return x;
}

bool is_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

/* For real matrices CUBLAS_OP_C is CUBLAS_OP_T. */
bool transposed(cublasOperation_t op) { return op != CUBLAS_OP_N; }

int64_t max1(int64_t x) { return x > 1 ? x : 1; }

/* ------------------------------------------------------------------------
 * The product op(A) op(B) */

/* The operands of one product, copied to float as the kernels read them:
 * a holds op(A) [m, k] row by row and b holds op(B) [k, n] column by
 * column, so that each dot product walks two contiguous arrays. */
struct product {
  float *a, *b;
  int64_t m, n, k;
};

/* ROWS x K numbers of X into TO (row r at TO + r K), element (r, l) at
 * X[r RS + l LS], TF32-rounded when TF32. */
template <typename T>
void pack(float *to, const T *x, int64_t rows, int64_t k, int64_t rs, int64_t ls, bool tf32) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t l = 0; l < k; l++) {
      float v = load(x, (size_t)(r * rs + l * ls));
      to[r * k + l] = tf32 ? to_tf32(v) : v;
    }
}

/* Copies op(A) [m, k] (leading dimension lda) and op(B) [k, n] (ldb) into
 * P; false when out of memory. The caller frees P with product_free. */
template <typename TA, typename TB>
bool product_init(product *p, int64_t m, int64_t n, int64_t k, const TA *A, int64_t lda, bool ta, const TB *B,
                  int64_t ldb, bool tb, bool tf32) {
  p->m = m;
  p->n = n;
  p->k = k;
  p->a = (float *)malloc(sizeof(float) * (size_t)(m * k + 1));
  p->b = (float *)malloc(sizeof(float) * (size_t)(n * k + 1));
  if (!p->a || !p->b) {
    free(p->a);
    free(p->b);
    return false;
  }
  /* op(A)[i, l] is A[i + l lda], or A[l + i lda] transposed */
  pack(p->a, A, m, k, ta ? lda : 1, ta ? 1 : lda, tf32);
  /* op(B)[l, j] is B[l + j ldb], or B[j + l ldb] transposed */
  pack(p->b, B, n, k, tb ? 1 : ldb, tb ? ldb : 1, tf32);
  return true;
}

void product_free(product *p) {
  free(p->a);
  free(p->b);
}

/* (op(A) op(B))[i, j], summed in double in order of l; each product of
 * two floats is exact in double. */
double dot(const product *p, int64_t i, int64_t j) {
  const float *a = p->a + i * p->k, *b = p->b + j * p->k;
  double sum = 0.0;
  for (int64_t l = 0; l < p->k; l++) sum += (double)a[l] * (double)b[l];
  return sum;
}

/* C [m, n] (leading dimension ldc) = alpha op(A) op(B) + beta C; C is not
 * read when beta is 0, as BLAS promises (it may hold NaN). */
template <typename TA, typename TB, typename TC>
cublasStatus_t gemm(int64_t m, int64_t n, int64_t k, float alpha, const TA *A, int64_t lda, bool ta, const TB *B,
                    int64_t ldb, bool tb, float beta, TC *C, int64_t ldc, bool tf32) {
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  product p;
  if (!product_init(&p, m, n, k, A, lda, ta, B, ldb, tb, tf32)) return CUBLAS_STATUS_ALLOC_FAILED;
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) {
      size_t at = (size_t)(i + j * ldc);
      double v = (double)alpha * dot(&p, i, j);
      if (beta != 0.0f) v += (double)beta * load(C, at);
      store(C, at, v);
    }
  product_free(&p);
  return CUBLAS_STATUS_SUCCESS;
}

/* The argument checks of cublas<t>gemm's documentation: INVALID_VALUE
 * for negative sizes, an unknown operation, a leading dimension shorter
 * than the stored matrix's rows (A is m x k or k x m by transa, B k x n
 * or n x k, C m x n), or NULL alpha or beta. */
cublasStatus_t gemm_check(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                          int k, const void *alpha, int lda, int ldb, const void *beta, int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!is_op(transa) || !is_op(transb) || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < max1(transposed(transa) ? k : m) || ldb < max1(transposed(transb) ? n : k) || ldc < max1(m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

/* Whether the handle's math mode lets single-precision routines round
 * their inputs to TF32 (CUBLAS_TF32_TENSOR_OP_MATH). */
bool tf32_math(cublasHandle_t handle) {
  return (handle->math & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) == CUBLAS_TF32_TENSOR_OP_MATH;
}

} // namespace

/* ------------------------------------------------------------------------
 * cuBLAS */

extern "C" {

/* gpu/cublas_library.h's loader: the functions below are linked in */
bool cublas_library_load(char *, size_t) { return true; }

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  cublasHandle_t h = new (std::nothrow) cublasContext;
  if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
  h->math = CUBLAS_DEFAULT_MATH;
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

/* Everything is synchronous, so the stream needs no keeping. */
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  (void)stream;
  return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

/* The default, pedantic and TF32 modes (with or without
 * DISALLOW_REDUCED_PRECISION_REDUCTION, which changes nothing for fp32
 * outputs). The others (TENSOR_OP_MATH's fp16 inputs, the BF16x9 and
 * fixed-point emulations) would need their own rounding, so they are
 * refused rather than run as plain fp32. */
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "success";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
  case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
  case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
  }
  return "unknown cuBLAS status";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
  cublasStatus_t s = gemm_check(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  return gemm(m, n, k, *alpha, A, lda, transposed(transa), B, ldb, transposed(transb), *beta, C, ldc,
              tf32_math(handle));
}

/* Batch i: A + i strideA, B + i strideB, C + i strideC (a stride may be 0,
 * to reuse one operand). */
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb, long long strideB,
                                         const float *beta, float *C, int ldc, long long strideC, int batchCount) {
  cublasStatus_t s = gemm_check(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  for (int i = 0; i < batchCount && s == CUBLAS_STATUS_SUCCESS; i++)
    s = gemm(m, n, k, *alpha, A + i * strideA, lda, transposed(transa), B + i * strideB, ldb, transposed(transb),
             *beta, C + i * strideC, ldc, tf32_math(handle));
  return s;
}

/* The combinations of cublasGemmEx's type table that the backend can ask
 * for, with fp32 alpha and beta on the host: bf16 A and B into bf16 or
 * fp32 C, and fp32 into fp32, under CUBLAS_COMPUTE_32F (TF32 when the
 * handle's math mode allows it, as for cublasSgemm) or, for fp32,
 * CUBLAS_COMPUTE_32F_FAST_TF32. bf16 inputs are exact in TF32, so only
 * fp32 ones are rounded. The algorithm is a performance hint: ignored. */
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  (void)algo;
  cublasStatus_t s = gemm_check(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  bool ta = transposed(transa), tb = transposed(transb);
  float a = *(const float *)alpha, b = *(const float *)beta;
  if (Atype == CUDA_R_16BF && Btype == CUDA_R_16BF && computeType == CUBLAS_COMPUTE_32F) {
    const __nv_bfloat16 *a16 = (const __nv_bfloat16 *)A, *b16 = (const __nv_bfloat16 *)B;
    if (Ctype == CUDA_R_16BF) return gemm(m, n, k, a, a16, lda, ta, b16, ldb, tb, b, (__nv_bfloat16 *)C, ldc, false);
    if (Ctype == CUDA_R_32F) return gemm(m, n, k, a, a16, lda, ta, b16, ldb, tb, b, (float *)C, ldc, false);
  }
  if (Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F &&
      (computeType == CUBLAS_COMPUTE_32F || computeType == CUBLAS_COMPUTE_32F_FAST_TF32)) {
    bool tf32 = computeType == CUBLAS_COMPUTE_32F_FAST_TF32 || tf32_math(handle);
    return gemm(m, n, k, a, (const float *)A, lda, ta, (const float *)B, ldb, tb, b, (float *)C, ldc, tf32);
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

} // extern "C"

/* ------------------------------------------------------------------------
 * cuBLASLt: descriptors */

namespace {

/* The descriptors behind the headers' pointer typedefs: each Create
 * allocates one of these and hands it out cast to the opaque type, and
 * the other calls cast it back. */
struct lt_desc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t transa, transb; /* cublasOperation_t */
  uint32_t epilogue;      /* cublasLtEpilogue_t */
  void *bias;             /* bias (read) or bias gradient (written) */
  int32_t bias_type;      /* cudaDataType_t; -1: D's type */
  void *aux;              /* GELU's input: written forward, read backward */
  int64_t aux_ld;
};

struct lt_layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};

/* The alignments, in bytes, that the algorithms the heuristic picks may
 * assume of A, B, C and D: the caller's promise, 256 unless it says less
 * (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES). */
enum { LT_A, LT_B, LT_C, LT_D, LT_OPERANDS };
const uint32_t LT_DEFAULT_ALIGNMENT = 256;

struct lt_pref {
  uint64_t max_workspace;
  uint32_t min_alignment[LT_OPERANDS];
};

lt_desc *desc_of(cublasLtMatmulDesc_t d) { return reinterpret_cast<lt_desc *>(d); }
const lt_layout *layout_of(cublasLtMatrixLayout_t l) { return reinterpret_cast<const lt_layout *>(l); }
lt_pref *pref_of(cublasLtMatmulPreference_t p) { return reinterpret_cast<lt_pref *>(p); }

/* An attribute's value from BUF into FIELD; INVALID_VALUE when BUF is
 * NULL or SIZE is not the attribute's size, as the header documents. */
template <typename T>
cublasStatus_t set_attribute(T *field, const void *buf, size_t size) {
  if (!buf || size != sizeof *field) return CUBLAS_STATUS_INVALID_VALUE;
  memcpy(field, buf, sizeof *field);
  return CUBLAS_STATUS_SUCCESS;
}

/* Marks the algorithms the heuristic hands out, so that cublasLtMatmul
 * can tell one from uninitialized memory. */
const uint64_t ALGO_MAGIC = 0x656d752d6c742d31ull;

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
  if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
  cublasLtHandle_t h = new (std::nothrow) cublasLtContext;
  if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
  h->unused = 0;
  *lightHandle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
  if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete lightHandle;
  return CUBLAS_STATUS_SUCCESS;
}

/* The defaults are the header's: no transposes, CUBLASLT_EPILOGUE_DEFAULT,
 * no bias or aux, bias type -1 (D's). */
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
  if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
  lt_desc *d = new (std::nothrow) lt_desc;
  if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
  d->compute = computeType;
  d->scale = scaleType;
  d->transa = CUBLAS_OP_N;
  d->transb = CUBLAS_OP_N;
  d->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  d->bias = NULL;
  d->bias_type = -1;
  d->aux = NULL;
  d->aux_ld = 0;
  *matmulDesc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
  delete desc_of(matmulDesc);
  return CUBLAS_STATUS_SUCCESS;
}

/* The attributes the backend sets, with the types the header gives them
 * (int32_t for the types and transposes, uint32_t for the epilogue,
 * pointers, int64_t for the aux leading dimension). Any other attribute
 * is refused: the emulation would otherwise ignore what it asks for. */
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes) {
  lt_desc *d = desc_of(matmulDesc);
  if (!d) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
  case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: {
    int32_t v;
    cublasStatus_t s = set_attribute(&v, buf, sizeInBytes);
    if (s == CUBLAS_STATUS_SUCCESS) d->compute = (cublasComputeType_t)v;
    return s;
  }
  case CUBLASLT_MATMUL_DESC_SCALE_TYPE: {
    int32_t v;
    cublasStatus_t s = set_attribute(&v, buf, sizeInBytes);
    if (s == CUBLAS_STATUS_SUCCESS) d->scale = (cudaDataType_t)v;
    return s;
  }
  case CUBLASLT_MATMUL_DESC_TRANSA: return set_attribute(&d->transa, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_TRANSB: return set_attribute(&d->transb, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_attribute(&d->epilogue, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_attribute(&d->bias, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set_attribute(&d->bias_type, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return set_attribute(&d->aux, buf, sizeInBytes);
  case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return set_attribute(&d->aux_ld, buf, sizeInBytes);
  default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

/* A column-major ROWS x COLS matrix of TYPE; a leading dimension shorter
 * than a column is refused. */
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!matLayout || ld < 0 || (uint64_t)ld < rows) return CUBLAS_STATUS_INVALID_VALUE;
  lt_layout *l = new (std::nothrow) lt_layout;
  if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
  l->type = type;
  l->rows = rows;
  l->cols = cols;
  l->ld = ld;
  *matLayout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
  delete layout_of(matLayout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  lt_pref *p = new (std::nothrow) lt_pref;
  if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
  p->max_workspace = 0;
  for (uint32_t &a : p->min_alignment) a = LT_DEFAULT_ALIGNMENT;
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(p);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref_of(pref);
  return CUBLAS_STATUS_SUCCESS;
}

/* The workspace limit (uint64_t), which no emulated algorithm needs, and
 * the operands' alignments (uint32_t). */
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes) {
  lt_pref *p = pref_of(pref);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
  case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set_attribute(&p->max_workspace, buf, sizeInBytes);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set_attribute(&p->min_alignment[LT_A], buf, sizeInBytes);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set_attribute(&p->min_alignment[LT_B], buf, sizeInBytes);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set_attribute(&p->min_alignment[LT_C], buf, sizeInBytes);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set_attribute(&p->min_alignment[LT_D], buf, sizeInBytes);
  default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

} // extern "C"

/* ------------------------------------------------------------------------
 * cuBLASLt: what is supported, and the matmul */

namespace {

/* One cublasLtMatmul, its descriptors checked and resolved. */
struct lt_problem {
  int64_t m, n, k;
  bool ta, tb;
  cudaDataType_t ab_type, d_type;
  int64_t lda, ldb, ldc, ldd;
  uint32_t epilogue;
  void *bias;
  void *aux;
  int64_t aux_ld;
};

bool gelu_epilogue(uint32_t e) { return e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU_BGRAD; }

bool bias_epilogue(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU_BGRAD;
}

/* Whether the matmul described is one this emulation runs, with P filled
 * in when it is. NOT_SUPPORTED for what cuBLASLt does not take (or the
 * emulation does not model), INVALID_VALUE for descriptors that
 * contradict each other. The rules, from the cuBLAS documentation
 * (docs.nvidia.com/cuda/cublas, "cublasLtMatmul()" and
 * "cublasLtMatmulDescAttributes_t"; the attributes' rules are also in
 * the comments of <cublasLt.h>):
 *  - the datatypes table of cublasLtMatmul(): with CUBLAS_COMPUTE_32F and
 *    scale type CUDA_R_32F, A and B bf16 give C (= D) bf16 or fp32, A and
 *    B fp32 give fp32; the bias's type is C's in each of those rows;
 *  - "both matrices must have the same data type, number of rows, number
 *    of columns": C and D, out of place; a NULL Cdesc means Ddesc;
 *  - CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: "If unset (or set to the default
 *    value of -1), the bias vector elements are the same type as the
 *    elements of the output matrix (Dtype)", the bias gradient included
 *    (CUBLASLT_MATMUL_DESC_BIAS_POINTER: "same as matrix D datatype";
 *    <cublasLt.h>: "Bias gradient vector elements are the same type as
 *    the output elements");
 *  - CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, for GELU_AUX_BIAS and
 *    DGELU_BGRAD: "Must be divisible by 8 and be no less than the number
 *    of rows in the output matrix";
 *  - CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE (never set here, so -1):
 *    GELU's input matrix has D's type.
 * The emulated epilogues are DEFAULT, BIAS, GELU_AUX_BIAS and
 * DGELU_BGRAD; the others are NOT_SUPPORTED. The documentation gives no
 * alignment for the bias and aux pointers (only that the heuristic looks
 * at their values), so none is enforced. */
cublasStatus_t lt_check(const lt_desc *d, const lt_layout *a, const lt_layout *b, const lt_layout *c,
                        const lt_layout *dd, lt_problem *p) {
  if (!d || !a || !b || !dd) return CUBLAS_STATUS_INVALID_VALUE;
  if (!c) c = dd;
  if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!is_op((cublasOperation_t)d->transa) || !is_op((cublasOperation_t)d->transb))
    return CUBLAS_STATUS_INVALID_VALUE;
  bool bf16_in = a->type == CUDA_R_16BF && b->type == CUDA_R_16BF;
  bool fp32_in = a->type == CUDA_R_32F && b->type == CUDA_R_32F;
  bool types = (bf16_in && (dd->type == CUDA_R_16BF || dd->type == CUDA_R_32F)) || (fp32_in && dd->type == CUDA_R_32F);
  if (!types || c->type != dd->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  p->ta = transposed((cublasOperation_t)d->transa);
  p->tb = transposed((cublasOperation_t)d->transb);
  p->m = (int64_t)dd->rows;
  p->n = (int64_t)dd->cols;
  p->k = (int64_t)(p->ta ? a->rows : a->cols);
  uint64_t a_m = p->ta ? a->cols : a->rows;
  uint64_t b_k = p->tb ? b->cols : b->rows, b_n = p->tb ? b->rows : b->cols;
  if (a_m != dd->rows || b_k != (uint64_t)p->k || b_n != dd->cols || c->rows != dd->rows || c->cols != dd->cols)
    return CUBLAS_STATUS_INVALID_VALUE;
  uint32_t e = d->epilogue;
  if (e != CUBLASLT_EPILOGUE_DEFAULT && !bias_epilogue(e)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (bias_epilogue(e) && d->bias_type != -1 && d->bias_type != dd->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (gelu_epilogue(e) && (d->aux_ld % 8 != 0 || d->aux_ld < p->m)) return CUBLAS_STATUS_NOT_SUPPORTED;
  p->ab_type = a->type;
  p->d_type = dd->type;
  p->lda = a->ld;
  p->ldb = b->ld;
  p->ldc = c->ld;
  p->ldd = dd->ld;
  p->epilogue = e;
  p->bias = d->bias;
  p->aux = d->aux;
  p->aux_ld = d->aux_ld;
  return CUBLAS_STATUS_SUCCESS;
}

/* GELU's tanh approximation, as the cublasLtEpilogue_t documentation
 * gives it: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
const double GELU_SCALE = 0.7978845608028654; /* sqrt(2/pi) */
const double GELU_CUBE = 0.044715;

double gelu(double x) { return 0.5 * x * (1.0 + tanh(GELU_SCALE * (x + GELU_CUBE * x * x * x))); }

/* Its derivative: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2), with t the tanh. */
double gelu_grad(double x) {
  double t = tanh(GELU_SCALE * (x + GELU_CUBE * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBE * x * x);
}

/* D = epilogue(alpha op(A) op(B) + beta C) for element types TA/TB of A
 * and B and TD of C, D, the bias and aux. Per element (i, j), with
 * v = alpha AB + beta C (C not read when beta is 0):
 *  - DEFAULT: D = v;
 *  - BIAS: D = v + bias[i] (the bias is added "before applying the final
 *    postprocessing");
 *  - GELU_AUX_BIAS: x = v + bias[i]; aux[i + j aux_ld] = x (in TD);
 *    D = gelu(x), from the unrounded x;
 *  - DGELU_BGRAD: D = v gelu'(aux[i + j aux_ld]), and bias[i] = the sum
 *    over j of those D. The documentation says only that the bias
 *    gradient is stored, in D's type; which values it sums is not stated,
 *    so the sum is of the unrounded products, in double and in order of
 *    j, rounded once. Each row's sums are kept apart from D, so the sums
 *    stay right where C and D are the same matrix. */
template <typename TA, typename TB, typename TD>
cublasStatus_t lt_run(const lt_problem *p, float alpha, const void *A, const void *B, float beta, const void *C,
                      void *D) {
  int64_t m = p->m, n = p->n;
  if (m == 0) return CUBLAS_STATUS_SUCCESS;
  product prod;
  if (!product_init(&prod, m, n, p->k, (const TA *)A, p->lda, p->ta, (const TB *)B, p->ldb, p->tb, false))
    return CUBLAS_STATUS_ALLOC_FAILED;
  double *sums = NULL;
  if (p->epilogue == CUBLASLT_EPILOGUE_DGELU_BGRAD) {
    sums = (double *)calloc((size_t)m, sizeof *sums);
    if (!sums) {
      product_free(&prod);
      return CUBLAS_STATUS_ALLOC_FAILED;
    }
  }
  const TD *c = (const TD *)C;
  TD *d = (TD *)D, *bias = (TD *)p->bias, *aux = (TD *)p->aux;
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) {
      double v = (double)alpha * dot(&prod, i, j);
      if (beta != 0.0f) v += (double)beta * load(c, (size_t)(i + j * p->ldc));
      size_t at = (size_t)(i + j * p->ldd), aux_at = (size_t)(i + j * p->aux_ld);
      switch (p->epilogue) {
      case CUBLASLT_EPILOGUE_BIAS: v += load(bias, (size_t)i); break;
      case CUBLASLT_EPILOGUE_GELU_AUX_BIAS:
        v += load(bias, (size_t)i);
        store(aux, aux_at, v);
        v = gelu(v);
        break;
      case CUBLASLT_EPILOGUE_DGELU_BGRAD:
        v *= gelu_grad(load(aux, aux_at));
        sums[i] += v;
        break;
      default: break;
      }
      store(d, at, v);
    }
  if (sums)
    for (int64_t i = 0; i < m; i++) store(bias, (size_t)i, sums[i]);
  free(sums);
  product_free(&prod);
  return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

/* One algorithm, needing no workspace, for every matmul lt_check takes;
 * NOT_SUPPORTED with no algorithm otherwise. INVALID_VALUE for
 * requestedAlgoCount <= 0, as the header documents. The heuristic sees
 * no operand's address, so its algorithm may assume the alignments the
 * preference gives (256 bytes unless it says less); the one it hands out
 * keeps them, in algo.data[1 + LT_A..LT_D], for cublasLtMatmul to hold
 * the pointers to, as the fastest algorithm a real heuristic picks would. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount) {
  if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!returnAlgoCount || !heuristicResultsArray || requestedAlgoCount <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  *returnAlgoCount = 0;
  lt_problem p;
  if (lt_check(desc_of(operationDesc), layout_of(Adesc), layout_of(Bdesc), layout_of(Cdesc), layout_of(Ddesc), &p) !=
      CUBLAS_STATUS_SUCCESS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  cublasLtMatmulHeuristicResult_t *r = &heuristicResultsArray[0];
  memset(r, 0, sizeof *r);
  r->algo.data[0] = ALGO_MAGIC;
  const lt_pref *pref = pref_of(preference);
  for (int i = 0; i < LT_OPERANDS; i++) r->algo.data[1 + i] = pref ? pref->min_alignment[i] : LT_DEFAULT_ALIGNMENT;
  r->workspaceSize = 0;
  r->state = CUBLAS_STATUS_SUCCESS;
  r->wavesCount = 1.0f;
  *returnAlgoCount = 1;
  return CUBLAS_STATUS_SUCCESS;
}

/* D = epilogue(alpha op(A) op(B) + beta C) (see lt_run), with alpha and
 * beta fp32 on the host. ALGO is the heuristic's, or NULL (which the
 * documentation makes an implicit heuristic query); the workspace is not
 * needed. NULL pointers the operation needs (alpha, beta, A, B, D, C when
 * beta is not 0, the bias of a bias epilogue, GELU's aux) are
 * INVALID_VALUE. An operand less aligned than the heuristic's algorithm
 * assumed is NOT_SUPPORTED, what cuBLASLt answers for such a pointer
 * (which the caller avoids by giving the heuristic the alignments). */
cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream) {
  (void)workspace;
  (void)workspaceSizeInBytes;
  (void)stream;
  if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
  lt_problem p;
  cublasStatus_t s =
      lt_check(desc_of(computeDesc), layout_of(Adesc), layout_of(Bdesc), layout_of(Cdesc), layout_of(Ddesc), &p);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (algo && algo->data[0] != ALGO_MAGIC) return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  float a = *(const float *)alpha, b = *(const float *)beta;
  bool empty = p.m == 0 || p.n == 0;
  if (!empty && (!D || (b != 0.0f && !C) || (p.k > 0 && (!A || !B)))) return CUBLAS_STATUS_INVALID_VALUE;
  if (bias_epilogue(p.epilogue) && !p.bias) return CUBLAS_STATUS_INVALID_VALUE;
  if (gelu_epilogue(p.epilogue) && !p.aux) return CUBLAS_STATUS_INVALID_VALUE;
  const void *operands[LT_OPERANDS] = {A, B, C, D};
  for (int i = 0; algo && !empty && i < LT_OPERANDS; i++) {
    uint64_t assumed = algo->data[1 + i];
    if (operands[i] && assumed > 1 && (uintptr_t)operands[i] % assumed != 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (p.ab_type == CUDA_R_32F) return lt_run<float, float, float>(&p, a, A, B, b, C, D);
  if (p.d_type == CUDA_R_16BF) return lt_run<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16>(&p, a, A, B, b, C, D);
  return lt_run<__nv_bfloat16, __nv_bfloat16, float>(&p, a, A, B, b, C, D);
}

} // extern "C"
