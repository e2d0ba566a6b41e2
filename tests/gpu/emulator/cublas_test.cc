/* Tests of tests/gpu/emulator/cublas.cc, the CPU stand-in for cuBLAS and
 * cuBLASLt, against plain double-precision loops written here. Linked
 * with cublas.cc alone (no CUDA library), which also checks that the
 * headers' names (cublasCreate, cublasSgemm: macros for the _v2
 * symbols) find their definitions. Prints each failing case; exits 1 if
 * any failed. */
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

static int failures = 0;

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                      \
      printf(__VA_ARGS__);                                                                                             \
      printf("\n");                                                                                                    \
      failures++;                                                                                                      \
    }                                                                                                                  \
  } while (0)

#define EXPECT_STATUS(call, want)                                                                                      \
  do {                                                                                                                 \
    cublasStatus_t got_ = (call);                                                                                      \
    CHECK(got_ == (want), "%s returned %s, want %s", #call, cublasGetStatusName(got_), cublasGetStatusName(want));   \
  } while (0)

/* ------------------------------------------------------------------------
 * Data and tolerances */

/* Deterministic numbers in [-1, 1). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static std::vector<float> random_floats(size_t n, float scale) {
  std::vector<float> v(n);
  for (float &x : v) x = scale * uniform();
  return v;
}

static float bf16_round(double x) { return __bfloat162float(__float2bfloat16_rn((float)x)); }

/* N numbers, exact in bf16, and their bf16 copy. */
static std::vector<float> random_bf16(size_t n, float scale, std::vector<__nv_bfloat16> *out) {
  std::vector<float> v = random_floats(n, scale);
  out->resize(n);
  for (size_t i = 0; i < n; i++) {
    (*out)[i] = __float2bfloat16_rn(v[i]);
    v[i] = __bfloat162float((*out)[i]);
  }
  return v;
}

/* fp32: the emulation sums as the reference does, so they should agree to the bit; 1e-6 relative is allowed. */
static bool close32(double got, double want) { return fabs(got - want) <= 1e-6 * fabs(want) + 1e-30; }

/* bf16: within one unit in the last place of WANT. */
static bool close16(double got, double want) {
  int e;
  frexp(want, &e);
  double ulp = want == 0.0 ? 1e-30 : ldexp(1.0, e - 8);
  return fabs(got - want) <= ulp;
}

/* X rounded to TF32, written apart from the emulation's bit arithmetic:
 * 11 significant bits, rounded to nearest even by rint. */
static double tf32_ref(float x) {
  if (!isfinite(x) || x == 0.0f) return x;
  int e;
  double f = frexp((double)x, &e); /* x = f 2^e, 0.5 <= |f| < 1 */
  return ldexp(rint(ldexp(f, 11)), e - 11);
}

/* ------------------------------------------------------------------------
 * The reference product */

/* op(X)[r, c] of a column-major X with leading dimension ld. */
static double op_at(const std::vector<float> &x, size_t offset, int ld, bool t, int r, int c) {
  return t ? x[offset + (size_t)c + (size_t)r * ld] : x[offset + (size_t)r + (size_t)c * ld];
}

/* (alpha op(A) op(B))[i, j] in double, summed in order of l; TF32-rounded inputs when tf32. */
static double ref_dot(const std::vector<float> &A, size_t ao, int lda, bool ta, const std::vector<float> &B, size_t bo,
                      int ldb, bool tb, int i, int j, int k, double alpha, bool tf32) {
  double sum = 0.0;
  for (int l = 0; l < k; l++) {
    double a = op_at(A, ao, lda, ta, i, l), b = op_at(B, bo, ldb, tb, l, j);
    if (tf32) {
      a = tf32_ref((float)a);
      b = tf32_ref((float)b);
    }
    sum += a * b;
  }
  return alpha * sum;
}

/* ------------------------------------------------------------------------
 * cuBLAS */

static const char *op_name(cublasOperation_t op) { return op == CUBLAS_OP_N ? "N" : "T"; }

/* cublasSgemm, every transpose pair, leading dimensions longer than the
 * rows, beta 0 over NaN and beta 1 over numbers; the padding below each
 * column of C must be left alone. */
static void test_sgemm(cublasHandle_t h) {
  const int m = 5, n = 3, k = 7;
  const cublasOperation_t ops[2] = {CUBLAS_OP_N, CUBLAS_OP_T};
  for (cublasOperation_t ta : ops)
    for (cublasOperation_t tb : ops)
      for (int beta_one = 0; beta_one < 2; beta_one++) {
        bool at = ta == CUBLAS_OP_T, bt = tb == CUBLAS_OP_T;
        int lda = (at ? k : m) + 2, ldb = (bt ? n : k) + 1, ldc = m + 3;
        std::vector<float> A = random_floats((size_t)lda * (at ? m : k), 1.0f);
        std::vector<float> B = random_floats((size_t)ldb * (bt ? k : n), 1.0f);
        std::vector<float> C = random_floats((size_t)ldc * n, 1.0f), C0 = C;
        if (!beta_one)
          for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) C[i + j * ldc] = NAN;
        float alpha = 0.75f, beta = beta_one ? 1.0f : 0.0f;
        EXPECT_STATUS(cublasSgemm(h, ta, tb, m, n, k, &alpha, A.data(), lda, B.data(), ldb, &beta, C.data(), ldc),
                      CUBLAS_STATUS_SUCCESS);
        for (int j = 0; j < n; j++)
          for (int i = 0; i < ldc; i++) {
            double got = C[i + j * ldc];
            if (i >= m) {
              CHECK(got == C0[i + j * ldc], "sgemm %s%s: padding C[%d,%d] changed", op_name(ta), op_name(tb), i, j);
              continue;
            }
            double want = ref_dot(A, 0, lda, at, B, 0, ldb, bt, i, j, k, alpha, false);
            if (beta_one) want += C0[i + j * ldc];
            want = (float)want;
            CHECK(close32(got, want), "sgemm %s%s beta %g: C[%d,%d] = %.9g, want %.9g", op_name(ta), op_name(tb),
                  beta, i, j, got, want);
          }
      }
}

/* Three batches with strides longer than the matrices, the gaps between
 * the Cs left alone. */
static void test_strided_batched(cublasHandle_t h, bool tf32) {
  const int m = 4, n = 6, k = 5, batches = 3;
  int lda = k, ldb = k + 1, ldc = m + 1; /* A transposed (k x m stored), B not (k x n) */
  long long sa = (long long)lda * m + 3, sb = (long long)ldb * n + 2, sc = (long long)ldc * n + 4;
  std::vector<float> A = random_floats((size_t)sa * batches, 1.0f), B = random_floats((size_t)sb * batches, 1.0f);
  std::vector<float> C = random_floats((size_t)sc * batches, 1.0f), C0 = C;
  float alpha = 1.0f, beta = 0.5f;
  EXPECT_STATUS(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.data(), lda, sa, B.data(),
                                          ldb, sb, &beta, C.data(), ldc, sc, batches),
                CUBLAS_STATUS_SUCCESS);
  for (int b = 0; b < batches; b++)
    for (long long at = 0; at < sc; at++) {
      int i = (int)(at % ldc), j = (int)(at / ldc);
      size_t c = (size_t)(b * sc + at);
      if (i >= m || j >= n) {
        CHECK(C[c] == C0[c], "strided batched: batch %d, C[%lld] outside the matrix changed", b, at);
        continue;
      }
      double want = ref_dot(A, (size_t)(b * sa), lda, true, B, (size_t)(b * sb), ldb, false, i, j, k, alpha, tf32);
      want = (float)(want + beta * C0[c]);
      CHECK(close32(C[c], want), "strided batched%s: batch %d C[%d,%d] = %.9g, want %.9g", tf32 ? " (tf32)" : "", b,
            i, j, C[c], want);
    }
}

/* TF32 math rounds A and B to 10 mantissa bits, to nearest even: 1+2^-12
 * becomes 1, the halfway 1+2^-11 goes down to 1, the halfway
 * 1+2^-10+2^-11 up to 1+2^-9; default math keeps fp32. */
static void test_tf32(cublasHandle_t h) {
  const float in[3] = {1.0f + 0x1p-12f, 1.0f + 0x1p-11f, 1.0f + 0x1p-10f + 0x1p-11f};
  const float tf32_out[3] = {1.0f, 1.0f, 1.0f + 0x1p-9f};
  float one = 1.0f, zero = 0.0f;
  for (int t = 0; t < 3; t++)
    for (int mode = 0; mode < 2; mode++) {
      EXPECT_STATUS(cublasSetMathMode(h, mode ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                    CUBLAS_STATUS_SUCCESS);
      float c = NAN;
      EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &in[t], 1, &one, 1, &zero, &c, 1),
                    CUBLAS_STATUS_SUCCESS);
      float want = mode ? tf32_out[t] : in[t];
      CHECK(c == want, "tf32 %s: %.9g x 1 = %.9g, want %.9g", mode ? "on" : "off", in[t], c, want);
    }
  /* and a whole product, against the reference's own TF32 rounding */
  const int m = 6, n = 5, k = 9;
  std::vector<float> A = random_floats((size_t)m * k, 3.0f), B = random_floats((size_t)k * n, 3.0f);
  std::vector<float> C((size_t)m * n, NAN);
  EXPECT_STATUS(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A.data(), m, B.data(), k, &zero, C.data(), m),
                CUBLAS_STATUS_SUCCESS);
  int differ = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double want = (float)ref_dot(A, 0, m, false, B, 0, k, false, i, j, k, 1.0, true);
      double fp32 = (float)ref_dot(A, 0, m, false, B, 0, k, false, i, j, k, 1.0, false);
      differ += want != fp32;
      CHECK(close32(C[i + j * m], want), "tf32 product C[%d,%d] = %.9g, want %.9g", i, j, C[i + j * m], want);
    }
  CHECK(differ > 0, "tf32 product: no element differs from fp32, so the test shows nothing");
  test_strided_batched(h, true);
  EXPECT_STATUS(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
}

/* cublasGemmEx with bf16 A and B into fp32 C and into bf16 C, as the
 * backend calls it, and a combination cuBLAS does not take. */
static void test_gemm_ex(cublasHandle_t h) {
  const int m = 7, n = 4, k = 6;
  for (int c16 = 0; c16 < 2; c16++)
    for (int beta_one = 0; beta_one < 2; beta_one++) {
      int lda = k + 1, ldb = k, ldc = m + 2; /* A transposed (k x m), B not */
      std::vector<__nv_bfloat16> A16, B16, C16;
      std::vector<float> A = random_bf16((size_t)lda * m, 1.0f, &A16), B = random_bf16((size_t)ldb * n, 1.0f, &B16);
      std::vector<float> C = random_bf16((size_t)ldc * n, 1.0f, &C16), C0 = C;
      if (!beta_one)
        for (size_t i = 0; i < C.size(); i++) {
          C[i] = NAN;
          C16[i] = __float2bfloat16_rn(NAN);
        }
      float alpha = 1.0f, beta = beta_one ? 1.0f : 0.0f;
      void *c = c16 ? (void *)C16.data() : (void *)C.data();
      EXPECT_STATUS(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A16.data(), CUDA_R_16BF, lda,
                                 B16.data(), CUDA_R_16BF, ldb, &beta, c, c16 ? CUDA_R_16BF : CUDA_R_32F, ldc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    CUBLAS_STATUS_SUCCESS);
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
          double want = ref_dot(A, 0, lda, true, B, 0, ldb, false, i, j, k, alpha, false);
          if (beta_one) want += C0[i + j * ldc];
          double got = c16 ? __bfloat162float(C16[i + j * ldc]) : C[i + j * ldc];
          bool ok = c16 ? close16(got, bf16_round(want)) : close32(got, (float)want);
          CHECK(ok, "gemm_ex bf16 -> %s beta %g: C[%d,%d] = %.9g, want %.9g", c16 ? "bf16" : "fp32", beta, i, j, got,
                want);
        }
    }
  float one = 1.0f, zero = 0.0f, a = 1.0f, c = 0.0f;
  __nv_bfloat16 b = __float2bfloat16_rn(1.0f);
  EXPECT_STATUS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &a, CUDA_R_32F, 1, &b, CUDA_R_16BF, 1, &zero,
                             &c, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_STATUS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &b, CUDA_R_16BF, 1, &b, CUDA_R_16BF, 1, &zero,
                             &c, CUDA_R_32F, 1, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_NOT_SUPPORTED);
}

/* The argument checks. */
static void test_invalid(cublasHandle_t h) {
  float A[64] = {0}, B[64] = {0}, C[64] = {0}, one = 1.0f;
  /* A is m x k = 4 x 2 untransposed: lda 3 < 4 */
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 3, B, 2, &one, C, 4),
                CUBLAS_STATUS_INVALID_VALUE);
  /* transposed, A is stored k x m = 2 x 4: lda 2 is enough, 1 is not */
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 3, 2, &one, A, 2, B, 2, &one, C, 4),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 3, 2, &one, A, 1, B, 2, &one, C, 4),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 4, B, 1, &one, C, 4),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, 4, 3, 2, &one, A, 4, B, 2, &one, C, 4),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 4, B, 2, &one, C, 3),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 3, 2, &one, A, 4, B, 2, &one, C, 4),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 4, B, 2, &one, C, 4),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 4, B, 2, &one, C, 4),
                CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_STATUS(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 2, 8, B, 2, 6, &one, C, 4,
                                          12, 2),
                CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_STATUS(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A, 4, 8, B, 2, 6, &one, C, 4,
                                          12, -1),
                CUBLAS_STATUS_INVALID_VALUE);
  __nv_bfloat16 b[64];
  EXPECT_STATUS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, b, CUDA_R_16BF, 2, b, CUDA_R_16BF, 2, &one, C,
                             CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_INVALID_VALUE);
  CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED") == 0,
        "status name %s", cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED));
  CHECK(strlen(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)) > 0, "empty status string");
}

/* ------------------------------------------------------------------------
 * cuBLASLt */

/* GELU's tanh approximation, and its derivative from sech^2 = 1 / cosh^2. */
static double ref_gelu(double x) {
  const double s = sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + tanh(s * (x + 0.044715 * x * x * x)));
}

static double ref_gelu_grad(double x) {
  const double s = sqrt(2.0 / M_PI);
  double u = s * (x + 0.044715 * pow(x, 3)), du = s * (1.0 + 3.0 * 0.044715 * x * x);
  double sech = 1.0 / cosh(u);
  return 0.5 * (1.0 + tanh(u)) + 0.5 * x * sech * sech * du;
}

/* One cublasLtMatmul set up as the backend's lt_gemm does (bf16 A and B,
 * C = D with beta 0), with ldd and aux_ld of the caller's choosing. */
struct lt_case {
  cublasOperation_t ta, tb;
  int m, n, k, lda, ldb, ldd;
  cudaDataType_t dtype;
  cublasLtEpilogue_t epilogue;
  void *bias, *aux;
  int64_t aux_ld;
};

/* The preference's alignments of A, B, C and D. */
static const cublasLtMatmulPreferenceAttributes_t LT_ALIGNMENTS[4] = {
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};

/* The descriptors and preference of an lt_case. */
struct lt_setup {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatmulPreference_t pref;
};

static void lt_setup_init(lt_setup *s, const lt_case *c) {
  EXPECT_STATUS(cublasLtMatmulDescCreate(&s->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_TRANSA, &c->ta, sizeof c->ta),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_TRANSB, &c->tb, sizeof c->tb),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(
      cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &c->epilogue, sizeof c->epilogue),
      CUBLAS_STATUS_SUCCESS);
  if (c->bias)
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c->bias, sizeof c->bias),
                  CUBLAS_STATUS_SUCCESS);
  if (c->aux) {
    EXPECT_STATUS(
        cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c->aux, sizeof c->aux),
        CUBLAS_STATUS_SUCCESS);
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &c->aux_ld,
                                                 sizeof c->aux_ld),
                  CUBLAS_STATUS_SUCCESS);
  }
  bool an = c->ta == CUBLAS_OP_N, bn = c->tb == CUBLAS_OP_N;
  EXPECT_STATUS(cublasLtMatrixLayoutCreate(&s->la, CUDA_R_16BF, an ? c->m : c->k, an ? c->k : c->m, c->lda),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasLtMatrixLayoutCreate(&s->lb, CUDA_R_16BF, bn ? c->k : c->n, bn ? c->n : c->k, c->ldb),
                CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasLtMatrixLayoutCreate(&s->ld, c->dtype, c->m, c->n, c->ldd), CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasLtMatmulPreferenceCreate(&s->pref), CUBLAS_STATUS_SUCCESS);
  uint64_t workspace = 32u << 20;
  EXPECT_STATUS(cublasLtMatmulPreferenceSetAttribute(s->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                     sizeof workspace),
                CUBLAS_STATUS_SUCCESS);
  /* The cases' arrays are the host's, aligned to their elements only
   * (test_lt_alignment holds the heuristic to these). */
  for (cublasLtMatmulPreferenceAttributes_t attr : LT_ALIGNMENTS) {
    uint32_t any = 2;
    EXPECT_STATUS(cublasLtMatmulPreferenceSetAttribute(s->pref, attr, &any, sizeof any), CUBLAS_STATUS_SUCCESS);
  }
}

static void lt_setup_free(lt_setup *s) {
  cublasLtMatmulPreferenceDestroy(s->pref);
  cublasLtMatrixLayoutDestroy(s->ld);
  cublasLtMatrixLayoutDestroy(s->lb);
  cublasLtMatrixLayoutDestroy(s->la);
  cublasLtMatmulDescDestroy(s->desc);
}

static cublasStatus_t lt_heuristic(cublasLtHandle_t lt, lt_setup *s, cublasLtMatmulHeuristicResult_t *found,
                                   int *count) {
  *count = -1;
  return cublasLtMatmulAlgoGetHeuristic(lt, s->desc, s->la, s->lb, s->ld, s->ld, s->pref, 1, found, count);
}

/* Whether the heuristic refuses C: NOT_SUPPORTED with no algorithm. */
static void expect_refused(cublasLtHandle_t lt, const lt_case *c, const char *what) {
  lt_setup s;
  lt_setup_init(&s, c);
  cublasLtMatmulHeuristicResult_t found;
  int count;
  cublasStatus_t st = lt_heuristic(lt, &s, &found, &count);
  CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED && count == 0, "heuristic took %s: %s, count %d", what,
        cublasGetStatusName(st), count);
  lt_setup_free(&s);
}

/* The element D[i, j] (or aux, or bias) of type DTYPE as a double. */
static double get(const void *p, cudaDataType_t dtype, size_t at) {
  return dtype == CUDA_R_16BF ? (double)__bfloat162float(((const __nv_bfloat16 *)p)[at]) : ((const float *)p)[at];
}

static void put(void *p, cudaDataType_t dtype, size_t at, double v) {
  if (dtype == CUDA_R_16BF) ((__nv_bfloat16 *)p)[at] = __float2bfloat16_rn((float)v);
  else ((float *)p)[at] = (float)v;
}

static bool close_as(cudaDataType_t dtype, double got, double want) {
  return dtype == CUDA_R_16BF ? close16(got, bf16_round(want)) : close32(got, (float)want);
}

/* Runs one epilogue on an m x n result from random bf16 A [k] and B and
 * checks D, aux and the bias (gradient) against the loops here. The
 * padding of D (ldd > m) and of aux must stay as it was. */
static void test_lt_epilogue(cublasLtHandle_t lt, cublasLtEpilogue_t epilogue, cudaDataType_t dtype,
                             cublasOperation_t ta, cublasOperation_t tb, const char *name) {
  const int m = 16, n = 3, k = 5;
  bool at = ta == CUBLAS_OP_T, bt = tb == CUBLAS_OP_T;
  int lda = (at ? k : m) + 1, ldb = (bt ? n : k) + 2, ldd = m + 1;
  int64_t aux_ld = 24;
  size_t es = dtype == CUDA_R_16BF ? 2 : 4;
  std::vector<__nv_bfloat16> A16, B16;
  std::vector<float> A = random_bf16((size_t)lda * (at ? m : k), 1.0f, &A16);
  std::vector<float> B = random_bf16((size_t)ldb * (bt ? k : n), 1.0f, &B16);
  std::vector<unsigned char> D((size_t)ldd * n * es), bias((size_t)m * es), aux((size_t)aux_ld * n * es);
  for (size_t i = 0; i < (size_t)ldd * n; i++) put(D.data(), dtype, i, i % ldd < (size_t)m ? NAN : 1234.0);
  for (int i = 0; i < m; i++) put(bias.data(), dtype, (size_t)i, 0.5 * uniform());
  for (size_t i = 0; i < (size_t)aux_ld * n; i++) put(aux.data(), dtype, i, 2.5 * uniform()); /* GELU's input */
  std::vector<unsigned char> D0 = D, bias0 = bias, aux0 = aux;
  bool has_bias = epilogue != CUBLASLT_EPILOGUE_DEFAULT;
  bool has_aux = epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || epilogue == CUBLASLT_EPILOGUE_DGELU_BGRAD;
  lt_case c = {ta, tb, m, n, k, lda, ldb, ldd, dtype, epilogue, has_bias ? bias.data() : NULL,
               has_aux ? aux.data() : NULL, aux_ld};
  lt_setup s;
  lt_setup_init(&s, &c);
  cublasLtMatmulHeuristicResult_t found;
  int count;
  EXPECT_STATUS(lt_heuristic(lt, &s, &found, &count), CUBLAS_STATUS_SUCCESS);
  CHECK(count == 1 && found.state == CUBLAS_STATUS_SUCCESS, "%s: heuristic gave %d algorithms", name, count);
  const float one = 1.0f, zero = 0.0f;
  std::vector<unsigned char> workspace(256);
  EXPECT_STATUS(cublasLtMatmul(lt, s.desc, &one, A16.data(), s.la, B16.data(), s.lb, &zero, D.data(), s.ld, D.data(),
                               s.ld, &found.algo, workspace.data(), workspace.size(), NULL),
                CUBLAS_STATUS_SUCCESS);
  lt_setup_free(&s);

  std::vector<double> bgrad(m, 0.0);
  for (int j = 0; j < n; j++)
    for (int i = 0; i < ldd; i++) {
      size_t d = (size_t)i + (size_t)j * ldd, x = (size_t)i + (size_t)j * aux_ld;
      if (i >= m) {
        CHECK(get(D.data(), dtype, d) == get(D0.data(), dtype, d), "%s: padding D[%d,%d] changed", name, i, j);
        continue;
      }
      double v = ref_dot(A, 0, lda, at, B, 0, ldb, bt, i, j, k, 1.0, false), want = v;
      if (epilogue == CUBLASLT_EPILOGUE_BIAS) want = v + get(bias0.data(), dtype, (size_t)i);
      if (epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
        double pre = v + get(bias0.data(), dtype, (size_t)i);
        double got_aux = get(aux.data(), dtype, x);
        CHECK(close_as(dtype, got_aux, pre), "%s: aux[%d,%d] = %.9g, want %.9g", name, i, j, got_aux, pre);
        want = ref_gelu(pre);
      }
      if (epilogue == CUBLASLT_EPILOGUE_DGELU_BGRAD) {
        want = v * ref_gelu_grad(get(aux0.data(), dtype, x));
        bgrad[i] += want;
      }
      double got = get(D.data(), dtype, d);
      CHECK(close_as(dtype, got, want), "%s: D[%d,%d] = %.9g, want %.9g", name, i, j, got, want);
    }
  /* aux: written only where GELU_AUX_BIAS writes, nowhere else */
  for (int j = 0; j < n; j++)
    for (int64_t i = 0; i < aux_ld; i++) {
      size_t x = (size_t)i + (size_t)j * aux_ld;
      if (epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS && i < m) continue;
      CHECK(get(aux.data(), dtype, x) == get(aux0.data(), dtype, x), "%s: aux[%lld,%d] changed", name, (long long)i,
            j);
    }
  for (int i = 0; i < m; i++) {
    double got = get(bias.data(), dtype, (size_t)i);
    if (epilogue == CUBLASLT_EPILOGUE_DGELU_BGRAD)
      CHECK(close_as(dtype, got, bgrad[i]), "%s: bias gradient[%d] = %.9g, want %.9g", name, i, got, bgrad[i]);
    else
      CHECK(got == get(bias0.data(), dtype, (size_t)i), "%s: bias[%d] changed", name, i);
  }
}

/* Runs C on its own arrays, checking the heuristic and the matmul succeed. */
static void lt_run_case(cublasLtHandle_t lt, const lt_case *c, const void *A, const void *B, void *D) {
  lt_setup s;
  lt_setup_init(&s, c);
  cublasLtMatmulHeuristicResult_t found;
  int count;
  EXPECT_STATUS(lt_heuristic(lt, &s, &found, &count), CUBLAS_STATUS_SUCCESS);
  const float one = 1.0f, zero = 0.0f;
  EXPECT_STATUS(cublasLtMatmul(lt, s.desc, &one, A, s.la, B, s.lb, &zero, D, s.ld, D, s.ld, &found.algo, NULL, 0, NULL),
                CUBLAS_STATUS_SUCCESS);
  lt_setup_free(&s);
}

/* Where the single rounding shows, which the one-ulp tolerances above
 * would let pass: exact checks on chosen numbers, with A [8, 2] = (1, d)
 * per row and B [2, n] all ones, so that row i's product is 1 + d_i
 * exactly, which bf16 cannot hold.
 *  - DGELU_BGRAD with GELU's input 10 (gelu'(10) = 1 in double): D = 1 + d
 *    rounds to 1 in bf16, but the bias gradient, summed unrounded over 3
 *    columns, is 3 + 3d, which rounds to 3 + 2^-6 (summing the rounded D
 *    would give 3);
 *  - GELU_AUX_BIAS: D = gelu(1 + d) rounded once, not gelu of the bf16
 *    aux; the rows' d are chosen so that the two differ in some rows. */
static void test_lt_rounding(cublasLtHandle_t lt) {
  const int m = 8, n = 3, k = 2;
  const cudaDataType_t types[2] = {CUDA_R_32F, CUDA_R_16BF};
  std::vector<__nv_bfloat16> A(m * k), B(k * n, __float2bfloat16_rn(1.0f));
  for (cudaDataType_t t : types) {
    size_t es = t == CUDA_R_16BF ? 2 : 4;
    std::vector<unsigned char> D(m * n * es), bias(m * es), aux(m * n * es);
    double d = 3.0 / 1024.0;
    for (int i = 0; i < m; i++) {
      A[i] = __float2bfloat16_rn(1.0f);
      A[i + m] = __float2bfloat16_rn((float)d);
    }
    for (int i = 0; i < m * n; i++) put(aux.data(), t, (size_t)i, 10.0);
    lt_case c = {CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k, m, t, CUBLASLT_EPILOGUE_DGELU_BGRAD, bias.data(),
                 aux.data(), m};
    lt_run_case(lt, &c, A.data(), B.data(), D.data());
    double want_d = t == CUDA_R_16BF ? 1.0 : 1.0 + d, want_b = t == CUDA_R_16BF ? 3.0 + 0x1p-6 : 3.0 + 3.0 * d;
    for (int i = 0; i < m * n; i++)
      CHECK(get(D.data(), t, (size_t)i) == want_d, "DGELU_BGRAD exact: D[%d] = %.9g, want %.9g", i,
            get(D.data(), t, (size_t)i), want_d);
    for (int i = 0; i < m; i++)
      CHECK(get(bias.data(), t, (size_t)i) == want_b, "DGELU_BGRAD exact: bias gradient[%d] = %.9g, want %.9g", i,
            get(bias.data(), t, (size_t)i), want_b);
  }
  std::vector<unsigned char> D(m * n * 2), bias(m * 2), aux(m * n * 2);
  for (int i = 0; i < m; i++) {
    put(bias.data(), CUDA_R_16BF, (size_t)i, 0.0);
    A[i + m] = __float2bfloat16_rn((float)((5 + 7 * i) / 1024.0));
  }
  lt_case c = {CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k, m, CUDA_R_16BF, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias.data(),
               aux.data(), m};
  lt_run_case(lt, &c, A.data(), B.data(), D.data());
  int differ = 0;
  for (int i = 0; i < m; i++) {
    double x = 1.0 + (5 + 7 * i) / 1024.0;
    double want = bf16_round(ref_gelu(x)), from_aux = bf16_round(ref_gelu(bf16_round(x)));
    differ += want != from_aux;
    for (int j = 0; j < n; j++) {
      double got = get(D.data(), CUDA_R_16BF, (size_t)(i + j * m));
      double got_aux = get(aux.data(), CUDA_R_16BF, (size_t)(i + j * m));
      CHECK(got == want, "GELU_AUX_BIAS exact: D[%d,%d] = %.9g, want %.9g (gelu of bf16 x: %.9g)", i, j, got, want,
            from_aux);
      CHECK(got_aux == bf16_round(x), "GELU_AUX_BIAS exact: aux[%d,%d] = %.9g, want %.9g", i, j, got_aux,
            bf16_round(x));
    }
  }
  CHECK(differ > 0, "GELU_AUX_BIAS exact: no row tells gelu(x) from gelu(bf16 x), so the test shows nothing");
}

/* The heuristic picks algorithms for the alignments its preference
 * promises, 256 bytes unless it says less, and cublasLtMatmul refuses
 * (NOT_SUPPORTED) an operand less aligned than its algorithm assumed:
 * each of A, B, C and D in turn moved 64 bytes off 256, under the
 * default preference, then under one that promises 64, then 128. */
static void test_lt_alignment(cublasLtHandle_t lt) {
  const int m = 32, n = 4, k = 32;
  unsigned char *base[4];
  for (unsigned char *&p : base) {
    p = (unsigned char *)aligned_alloc(256, 4096);
    if (!p) exit(1);
    memset(p, 0, 4096);
  }
  lt_case c = {CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, k, k, m, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0};
  const char *names[4] = {"A", "B", "C", "D"};
  const float one = 1.0f, zero = 0.0f;
  for (int off = 0; off < 4; off++) {
    unsigned char *at[4] = {base[0], base[1], base[2], base[3]}; /* A, B, C, D; C and D apart */
    at[off] += 64;
    const uint32_t promises[3] = {0, 64, 128}; /* 0: the default */
    const cublasStatus_t want[3] = {CUBLAS_STATUS_NOT_SUPPORTED, CUBLAS_STATUS_SUCCESS, CUBLAS_STATUS_NOT_SUPPORTED};
    for (int p = 0; p < 3; p++) {
      lt_setup s;
      lt_setup_init(&s, &c);
      uint32_t full = 256;
      for (cublasLtMatmulPreferenceAttributes_t attr : LT_ALIGNMENTS)
        EXPECT_STATUS(cublasLtMatmulPreferenceSetAttribute(s.pref, attr, &full, sizeof full), CUBLAS_STATUS_SUCCESS);
      if (promises[p])
        EXPECT_STATUS(
            cublasLtMatmulPreferenceSetAttribute(s.pref, LT_ALIGNMENTS[off], &promises[p], sizeof promises[p]),
            CUBLAS_STATUS_SUCCESS);
      cublasLtMatmulHeuristicResult_t found;
      int count;
      EXPECT_STATUS(lt_heuristic(lt, &s, &found, &count), CUBLAS_STATUS_SUCCESS);
      cublasStatus_t st = cublasLtMatmul(lt, s.desc, &one, at[0], s.la, at[1], s.lb, &zero, at[2], s.ld, at[3], s.ld,
                                         &found.algo, NULL, 0, NULL);
      CHECK(st == want[p], "%s 64 bytes off 256, preference %u: %s, want %s", names[off], promises[p],
            cublasGetStatusName(st), cublasGetStatusName(want[p]));
      lt_setup_free(&s);
    }
  }
  uint16_t narrow = 16;
  lt_setup s;
  lt_setup_init(&s, &c);
  EXPECT_STATUS(
      cublasLtMatmulPreferenceSetAttribute(s.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &narrow, sizeof narrow),
      CUBLAS_STATUS_INVALID_VALUE);
  lt_setup_free(&s);
  for (unsigned char *p : base) free(p);
}

/* What the heuristic and the setters refuse. */
static void test_lt_refusals(cublasLtHandle_t lt) {
  const int m = 16, n = 3, k = 5;
  __nv_bfloat16 bias[16], aux[64];
  lt_case good = {CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, k, k, m, CUDA_R_16BF, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, bias, aux,
                  m};
  lt_case c = good;
  c.epilogue = CUBLASLT_EPILOGUE_RELU_BIAS;
  expect_refused(lt, &c, "RELU_BIAS, which the emulation does not run");
  c = good;
  c.epilogue = CUBLASLT_EPILOGUE_GELU_BIAS;
  expect_refused(lt, &c, "GELU_BIAS, which the emulation does not run");
  c = good;
  c.aux_ld = 20;
  expect_refused(lt, &c, "an aux ld of 20, not a multiple of 8");
  c = good;
  c.aux_ld = 8;
  expect_refused(lt, &c, "an aux ld of 8, under the 16 rows of D");
  c = good;
  c.epilogue = CUBLASLT_EPILOGUE_DGELU_BGRAD;
  c.aux_ld = 12;
  expect_refused(lt, &c, "DGELU_BGRAD with an aux ld of 12");
  c = good;
  c.k = k + 1; /* A's k; B's layout is then replaced by one with k rows */
  c.lda = c.ldb = k + 1;
  {
    lt_setup s;
    lt_setup_init(&s, &c);
    cublasLtMatrixLayoutDestroy(s.lb);
    EXPECT_STATUS(cublasLtMatrixLayoutCreate(&s.lb, CUDA_R_16BF, k, n, k), CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t found;
    int count;
    cublasStatus_t st = lt_heuristic(lt, &s, &found, &count);
    CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED && count == 0, "heuristic took mismatched k: %s, count %d",
          cublasGetStatusName(st), count);
    lt_setup_free(&s);
  }
  {
    /* an fp32 bias for a bf16 D: the documentation's bias type is D's */
    lt_setup s;
    c = good;
    c.epilogue = CUBLASLT_EPILOGUE_BIAS;
    c.aux = NULL;
    lt_setup_init(&s, &c);
    int32_t fp32 = CUDA_R_32F;
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &fp32, sizeof fp32),
                  CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t found;
    int count;
    cublasStatus_t st = lt_heuristic(lt, &s, &found, &count);
    CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED && count == 0, "heuristic took an fp32 bias with bf16 D: %s, count %d",
          cublasGetStatusName(st), count);
    /* a NULL bias for BIAS passes the heuristic but not the matmul */
    void *none = NULL;
    int32_t bf16 = CUDA_R_16BF;
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bf16, sizeof bf16),
                  CUBLAS_STATUS_SUCCESS);
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &none, sizeof none),
                  CUBLAS_STATUS_SUCCESS);
    EXPECT_STATUS(lt_heuristic(lt, &s, &found, &count), CUBLAS_STATUS_SUCCESS);
    __nv_bfloat16 a[128] = {}, d[128];
    const float one = 1.0f, zero = 0.0f;
    EXPECT_STATUS(cublasLtMatmul(lt, s.desc, &one, a, s.la, a, s.lb, &zero, d, s.ld, d, s.ld, &found.algo, NULL, 0,
                                 NULL),
                  CUBLAS_STATUS_INVALID_VALUE);
    /* the setters: a size that is not the attribute's, an attribute not emulated */
    int64_t wide = 0;
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, &wide, sizeof wide),
                  CUBLAS_STATUS_INVALID_VALUE);
    int32_t narrow = 16;
    EXPECT_STATUS(
        cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &narrow, sizeof narrow),
        CUBLAS_STATUS_INVALID_VALUE);
    int32_t mode = 0;
    EXPECT_STATUS(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode),
                  CUBLAS_STATUS_INVALID_VALUE);
    uint32_t search = 0;
    EXPECT_STATUS(
        cublasLtMatmulPreferenceSetAttribute(s.pref, CUBLASLT_MATMUL_PREF_SEARCH_MODE, &search, sizeof search),
        CUBLAS_STATUS_INVALID_VALUE);
    EXPECT_STATUS(lt_heuristic(lt, &s, &found, &count), CUBLAS_STATUS_SUCCESS);
    EXPECT_STATUS(cublasLtMatmulAlgoGetHeuristic(lt, s.desc, s.la, s.lb, s.ld, s.ld, s.pref, 0, &found, &count),
                  CUBLAS_STATUS_INVALID_VALUE);
    lt_setup_free(&s);
  }
  cublasLtMatrixLayout_t l;
  EXPECT_STATUS(cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, 16, 3, 15), CUBLAS_STATUS_INVALID_VALUE);
}

int main(void) {
  cublasHandle_t h;
  EXPECT_STATUS(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  EXPECT_STATUS(cublasSetStream(h, NULL), CUBLAS_STATUS_SUCCESS);
  test_sgemm(h);
  test_strided_batched(h, false);
  test_tf32(h);
  test_gemm_ex(h);
  test_invalid(h);
  EXPECT_STATUS(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);

  cublasLtHandle_t lt;
  EXPECT_STATUS(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  const cudaDataType_t types[2] = {CUDA_R_32F, CUDA_R_16BF};
  for (cudaDataType_t t : types) {
    bool b16 = t == CUDA_R_16BF;
    test_lt_epilogue(lt, CUBLASLT_EPILOGUE_DEFAULT, t, CUBLAS_OP_T, CUBLAS_OP_N, b16 ? "DEFAULT bf16" : "DEFAULT fp32");
    test_lt_epilogue(lt, CUBLASLT_EPILOGUE_BIAS, t, CUBLAS_OP_T, CUBLAS_OP_N, b16 ? "BIAS bf16" : "BIAS fp32");
    test_lt_epilogue(lt, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, t, CUBLAS_OP_T, CUBLAS_OP_N,
                     b16 ? "GELU_AUX_BIAS bf16" : "GELU_AUX_BIAS fp32");
    test_lt_epilogue(lt, CUBLASLT_EPILOGUE_DGELU_BGRAD, t, CUBLAS_OP_N, CUBLAS_OP_N,
                     b16 ? "DGELU_BGRAD bf16" : "DGELU_BGRAD fp32");
    test_lt_epilogue(lt, CUBLASLT_EPILOGUE_DGELU_BGRAD, t, CUBLAS_OP_T, CUBLAS_OP_T,
                     b16 ? "DGELU_BGRAD TT bf16" : "DGELU_BGRAD TT fp32");
  }
  test_lt_rounding(lt);
  test_lt_alignment(lt);
  test_lt_refusals(lt);
  EXPECT_STATUS(cublasLtDestroy(lt), CUBLAS_STATUS_SUCCESS);

  if (failures) {
    printf("%d failures\n", failures);
    return 1;
  }
  printf("cublas emulation: all tests passed\n");
  return 0;
}
