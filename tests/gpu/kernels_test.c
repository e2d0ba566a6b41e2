/* The CUDA kernels (gpu/kernels.h) against the CPU kernels
 * (runtime/cpu_kernels.h) on the same random inputs, drawn from a fixed
 * seed; and every backward run twice from the same state, which must give
 * the same bits. Prints the maximum relative error of every output and
 * exits 1 on any failure, 77 (skipped) where no device is present.
 *
 * Relative error: |gpu - cpu| / max(|cpu|, rms), rms being the root mean
 * square of the CPU tensor. An element near zero that results from
 * cancellation (a LayerNorm gradient, a GELU derivative near its minimum)
 * is thus measured against the tensor's typical size instead of its own,
 * which rounding alone would make arbitrarily large.
 *
 * Tolerances: 1e-5 for fp32 results that both sides compute with the same
 * formula and at most a few roundings apart (different summation orders
 * of tens of terms, expf within an ulp or two of the CPU's exp_approx);
 * 1e-4 for LayerNorm's dinp, which subtracts two row means from each
 * gradient and so amplifies the difference between the CPU's sequential
 * and the GPU's tree sums of C terms; 1e-12 for the double sum of
 * squares. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/attention.h"
#include "gpu/device.h"
#include "gpu/kernels.h"
#include "runtime/cpu_kernels.h"
#include "runtime/rng.h"
#include "tests/gpu/norm_error.h"

/* Shapes: T above 64 and C not a multiple of 32, so that the CPU's row
 * blocks and the GPU's warp loops both see ragged ends. */
enum { B = 2, T = 70, C = 80, H = 4, VOCAB_ENC = 50, V = 1000, N = B * T };

#define TOL 1e-5
#define TOL_LN_DINP 1e-4
#define TOL_SUM_SQUARES 1e-12

static struct rng rng;
static int failures;
static const gpu_stream stream = NULL;
/* the column sums' parts (gpu/kernels.h): GPU_COLUMN_PARTS for up to
 * SCRATCH_COLUMNS columns (the widest LayerNorm's 2 x 3100 among them),
 * and GPU_LAYERNORM_PARTS for LayerNorm's 2 C */
enum { SCRATCH_COLUMNS = 8192 };
static double *d_scratch;

#define CUDA_OK(call)                                                                                     \
  do {                                                                                                    \
    int err_ = (int)(call);                                                                               \
    if (err_ != 0) {                                                                                      \
      printf("FAIL: %s: CUDA error %d (%s) at %s:%d\n", #call, err_, cudaGetErrorString((cudaError_t)err_), \
             __FILE__, __LINE__);                                                                         \
      exit(1);                                                                                            \
    }                                                                                                     \
  } while (0)

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    printf("FAIL: out of memory\n");
    exit(1);
  }
  return p;
}

static float *host_normal(size_t n, double sd, double mean) {
  float *p = xmalloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = (float)(mean + sd * rng_normal(&rng));
  return p;
}

static float *host_copy(const float *src, size_t n) {
  float *p = xmalloc(n * sizeof *p);
  memcpy(p, src, n * sizeof *p);
  return p;
}

static void *dev_from(const void *host, size_t bytes) {
  void *d = NULL;
  CUDA_OK(cudaMalloc(&d, bytes ? bytes : 1));
  if (bytes) CUDA_OK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
  return d;
}

static float *dev_floats(const float *host, size_t n) { return dev_from(host, n * sizeof(float)); }

static void dev_set(void *d, const void *host, size_t bytes) {
  CUDA_OK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
}

/* Waits for the stream's work, then copies back. */
static void to_host(void *host, const void *d, size_t bytes) {
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
}

static float *host_from_dev(const float *d, size_t n) {
  float *p = xmalloc(n * sizeof *p);
  to_host(p, d, n * sizeof *p);
  return p;
}

/* Compares n values of the GPU with the CPU's; see the top for the error. */
static void compare(const char *name, const float *gpu, const float *cpu, size_t n, double tol) {
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) ss += (double)cpu[i] * cpu[i];
  double rms = n ? sqrt(ss / (double)n) : 0.0;
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double ref = fabs(cpu[i]) > rms ? fabs(cpu[i]) : rms;
    double diff = fabs((double)gpu[i] - cpu[i]);
    double err = diff == 0.0 ? 0.0 : diff / ref; /* 0 / 0 where both are exact zeros */
    if (!(err <= worst)) { /* a NaN is worse than anything */
      worst = err;
      at = i;
      if (isnan(err)) break;
    }
  }
  int ok = worst <= tol;
  printf("%-32s max rel err %.3e (tol %.0e)\n", name, worst, tol);
  if (!ok) {
    printf("  FAIL at [%zu]: gpu %.9g, cpu %.9g\n", at, gpu[at], cpu[at]);
    failures++;
  }
}

static void compare_bits(const char *name, const float *a, const float *b, size_t n) {
  if (memcmp(a, b, n * sizeof *a) == 0) {
    printf("%-32s same bits on a second run\n", name);
    return;
  }
  size_t i = 0;
  while (memcmp(a + i, b + i, sizeof *a) == 0) i++;
  printf("%-32s FAIL: runs differ at [%zu]: %.9g, then %.9g\n", name, i, a[i], b[i]);
  failures++;
}

/* ------------------------------------------------------------------------ */

static void test_encoder(void) {
  int32_t tokens[N];
  for (int i = 0; i < N; i++) tokens[i] = (int32_t)rng_below(&rng, VOCAB_ENC); /* tokens repeat */
  float *wte = host_normal((size_t)VOCAB_ENC * C, 1.0, 0.0), *wpe = host_normal((size_t)T * C, 1.0, 0.0);
  float *out = xmalloc((size_t)N * C * sizeof *out);
  encoder_forward(out, tokens, wte, wpe, B, T, C);

  int32_t *d_tokens = dev_from(tokens, sizeof tokens);
  float *d_wte = dev_floats(wte, (size_t)VOCAB_ENC * C), *d_wpe = dev_floats(wpe, (size_t)T * C);
  float *d_out = dev_floats(out, (size_t)N * C);
  CUDA_OK(cudaMemset(d_out, 0, (size_t)N * C * sizeof(float)));
  CUDA_OK(gpu_encoder_forward(stream, d_out, d_tokens, d_wte, d_wpe, B, T, C));
  float *g_out = host_from_dev(d_out, (size_t)N * C);
  compare("encoder_forward out", g_out, out, (size_t)N * C, TOL);

  /* Backward from random gradients already there: it must add. */
  float *dout = host_normal((size_t)N * C, 1.0, 0.0);
  float *dwte0 = host_normal((size_t)VOCAB_ENC * C, 1.0, 0.0), *dwpe0 = host_normal((size_t)T * C, 1.0, 0.0);
  float *dwte = host_copy(dwte0, (size_t)VOCAB_ENC * C), *dwpe = host_copy(dwpe0, (size_t)T * C);
  encoder_backward(dwte, dwpe, dout, tokens, B, T, C);

  float *d_dout = dev_floats(dout, (size_t)N * C);
  float *d_dwte = dev_floats(dwte0, (size_t)VOCAB_ENC * C), *d_dwpe = dev_floats(dwpe0, (size_t)T * C);
  float *g_dwte[2], *g_dwpe[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_dwte, dwte0, (size_t)VOCAB_ENC * C * sizeof(float));
    dev_set(d_dwpe, dwpe0, (size_t)T * C * sizeof(float));
    CUDA_OK(gpu_encoder_backward(stream, d_dwte, d_dwpe, d_dout, d_tokens, B, T, C));
    g_dwte[run] = host_from_dev(d_dwte, (size_t)VOCAB_ENC * C);
    g_dwpe[run] = host_from_dev(d_dwpe, (size_t)T * C);
  }
  compare("encoder_backward dwte", g_dwte[0], dwte, (size_t)VOCAB_ENC * C, TOL);
  compare("encoder_backward dwpe", g_dwpe[0], dwpe, (size_t)T * C, TOL);
  compare_bits("encoder_backward dwte", g_dwte[0], g_dwte[1], (size_t)VOCAB_ENC * C);
  compare_bits("encoder_backward dwpe", g_dwpe[0], g_dwpe[1], (size_t)T * C);

  cudaFree(d_tokens), cudaFree(d_wte), cudaFree(d_wpe), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_dwte),
      cudaFree(d_dwpe);
  free(wte), free(wpe), free(out), free(g_out), free(dout), free(dwte0), free(dwpe0), free(dwte), free(dwpe);
  for (int run = 0; run < 2; run++) free(g_dwte[run]), free(g_dwpe[run]);
}

/* NAME with TAG after it, in BUF. */
static const char *tagged(char *buf, size_t size, const char *name, const char *tag) {
  snprintf(buf, size, "%s%s", name, tag);
  return buf;
}

/* LayerNorm over ROWS rows of WIDTH values; TAG names the case in the
 * output. */
static void test_layernorm(int rows, int width, const char *tag) {
  char nm[64];
  size_t nc = (size_t)rows * width;
  float *inp = host_normal(nc, 2.0, 0.5), *w = host_normal(width, 0.5, 1.0), *b = host_normal(width, 0.5, 0.0);
  float *out = xmalloc(nc * sizeof *out), *mean = xmalloc(rows * sizeof *mean), *rstd = xmalloc(rows * sizeof *rstd);
  layernorm_forward(out, mean, rstd, inp, w, b, rows, width);

  float *d_inp = dev_floats(inp, nc), *d_w = dev_floats(w, width), *d_b = dev_floats(b, width);
  float *d_out = dev_floats(out, nc), *d_mean = dev_floats(mean, rows), *d_rstd = dev_floats(rstd, rows);
  CUDA_OK(gpu_layernorm_forward(stream, d_out, d_mean, d_rstd, d_inp, d_w, d_b, rows, width));
  float *g_out = host_from_dev(d_out, nc), *g_mean = host_from_dev(d_mean, rows), *g_rstd = host_from_dev(d_rstd, rows);
  compare(tagged(nm, sizeof nm, "layernorm_forward out", tag), g_out, out, nc, TOL);
  compare(tagged(nm, sizeof nm, "layernorm_forward mean", tag), g_mean, mean, rows, TOL);
  compare(tagged(nm, sizeof nm, "layernorm_forward rstd", tag), g_rstd, rstd, rows, TOL);

  /* The backward reads the CPU's mean and rstd on both sides, so that it
   * is compared alone. */
  dev_set(d_mean, mean, rows * sizeof(float));
  dev_set(d_rstd, rstd, rows * sizeof(float));
  float *dout = host_normal(nc, 1.0, 0.0);
  float *dinp0 = host_normal(nc, 1.0, 0.0), *dw0 = host_normal(width, 1.0, 0.0), *db0 = host_normal(width, 1.0, 0.0);
  float *dinp = host_copy(dinp0, nc), *dw = host_copy(dw0, width), *db = host_copy(db0, width);
  layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, rows, width);

  float *d_dout = dev_floats(dout, nc), *d_dinp = dev_floats(dinp0, nc), *d_dw = dev_floats(dw0, width),
        *d_db = dev_floats(db0, width);
  float *g_dinp[2], *g_dw[2], *g_db[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_dinp, dinp0, nc * sizeof(float));
    dev_set(d_dw, dw0, width * sizeof(float));
    dev_set(d_db, db0, width * sizeof(float));
    CUDA_OK(gpu_layernorm_backward16(stream, d_dinp, NULL, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, rows, width,
                                     d_scratch));
    g_dinp[run] = host_from_dev(d_dinp, nc);
    g_dw[run] = host_from_dev(d_dw, width);
    g_db[run] = host_from_dev(d_db, width);
  }
  compare(tagged(nm, sizeof nm, "layernorm_backward dinp", tag), g_dinp[0], dinp, nc, TOL_LN_DINP);
  compare(tagged(nm, sizeof nm, "layernorm_backward dw", tag), g_dw[0], dw, width, TOL);
  compare(tagged(nm, sizeof nm, "layernorm_backward db", tag), g_db[0], db, width, TOL);
  compare_bits(tagged(nm, sizeof nm, "layernorm_backward dinp", tag), g_dinp[0], g_dinp[1], nc);
  compare_bits(tagged(nm, sizeof nm, "layernorm_backward dw", tag), g_dw[0], g_dw[1], width);
  compare_bits(tagged(nm, sizeof nm, "layernorm_backward db", tag), g_db[0], g_db[1], width);

  cudaFree(d_inp), cudaFree(d_w), cudaFree(d_b), cudaFree(d_out), cudaFree(d_mean), cudaFree(d_rstd), cudaFree(d_dout),
      cudaFree(d_dinp), cudaFree(d_dw), cudaFree(d_db);
  free(inp), free(w), free(b), free(out), free(mean), free(rstd), free(g_out), free(g_mean), free(g_rstd);
  free(dout), free(dinp0), free(dw0), free(db0), free(dinp), free(dw), free(db);
  for (int run = 0; run < 2; run++) free(g_dinp[run]), free(g_dw[run]), free(g_db[run]);
}

/* The softmax against the att that cpu attention_forward keeps: preatt is
 * q k^T from the same qkv, in double here (cuBLAS's part in the backend),
 * over the full T x T as cuBLAS writes it; the GPU scales it by
 * 1/sqrt(C/H) inside the softmax. The backward against its formula in
 * double on the CPU's att, which is how cpu attention_backward turns datt
 * into the scores' gradient. */
static void test_softmax_causal(void) {
  int hs = C / H, BH = B * H;
  size_t natt = (size_t)BH * T * T;
  float scale = 1.0f / sqrtf((float)hs);
  float *qkv = host_normal((size_t)N * 3 * C, 1.0, 0.0);
  float *out = xmalloc((size_t)N * C * sizeof *out), *att = xmalloc(natt * sizeof *att);
  attention_forward(out, att, qkv, B, T, C, H);

  float *preatt = xmalloc(natt * sizeof *preatt);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++)
        for (int t2 = 0; t2 < T; t2++) {
          const float *q = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * hs;
          const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + (size_t)h * hs;
          double dot = 0.0;
          for (int i = 0; i < hs; i++) dot += (double)q[i] * k[i];
          preatt[(((size_t)b * H + h) * T + t) * T + t2] = (float)dot;
        }

  float *d_preatt = dev_floats(preatt, natt), *d_att = dev_floats(preatt, natt); /* att starts as garbage */
  CUDA_OK(gpu_softmax_causal_forward(stream, d_att, d_preatt, BH, T, scale));
  float *g_att = host_from_dev(d_att, natt);
  compare("softmax_causal_forward att", g_att, att, natt, TOL);
  /* in place, as the backend runs it */
  CUDA_OK(gpu_softmax_causal_forward(stream, d_preatt, d_preatt, BH, T, scale));
  float *g_att_inplace = host_from_dev(d_preatt, natt);
  compare_bits("softmax_causal_forward in place", g_att_inplace, g_att, natt);
  free(g_att_inplace);

  /* datt over the full square, as cuBLAS writes it; above the diagonal it
   * must be ignored, and dpreatt (which starts as garbage) written 0. */
  float *datt = host_normal(natt, 1.0, 0.0), *dpre0 = host_normal(natt, 1.0, 0.0);
  float *dpre = xmalloc(natt * sizeof *dpre);
  for (size_t row = 0; row < (size_t)BH * T; row++) {
    int t = (int)(row % T);
    const float *a = att + row * T, *da = datt + row * T;
    double ada = 0.0;
    for (int t2 = 0; t2 <= t; t2++) ada += (double)a[t2] * da[t2];
    for (int t2 = 0; t2 < T; t2++) dpre[row * T + t2] = t2 <= t ? (float)(scale * a[t2] * (da[t2] - ada)) : 0.0f;
  }
  dev_set(d_att, att, natt * sizeof(float)); /* the CPU's att, so that the backward is compared alone */
  float *d_datt = dev_floats(datt, natt), *d_dpre = dev_floats(dpre0, natt);
  float *g_dpre[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_dpre, dpre0, natt * sizeof(float));
    CUDA_OK(gpu_softmax_causal_backward(stream, d_dpre, d_datt, d_att, BH, T, scale));
    g_dpre[run] = host_from_dev(d_dpre, natt);
  }
  compare("softmax_causal_backward dpreatt", g_dpre[0], dpre, natt, TOL);
  compare_bits("softmax_causal_backward dpreatt", g_dpre[0], g_dpre[1], natt);
  /* in place, as the backend runs it */
  CUDA_OK(gpu_softmax_causal_backward(stream, d_datt, d_datt, d_att, BH, T, scale));
  float *g_inplace = host_from_dev(d_datt, natt);
  compare_bits("softmax_causal_backward in place", g_inplace, g_dpre[0], natt);
  free(g_inplace);

  cudaFree(d_preatt), cudaFree(d_att), cudaFree(d_datt), cudaFree(d_dpre);
  free(qkv), free(out), free(att), free(preatt), free(g_att), free(datt), free(dpre0), free(dpre);
  for (int run = 0; run < 2; run++) free(g_dpre[run]);
}

static void test_gelu_residual(void) {
  const size_t n = 10007;
  float *inp = host_normal(n, 3.0, 0.0), *other = host_normal(n, 1.0, 0.0);
  float *out = xmalloc(n * sizeof *out), *sum = xmalloc(n * sizeof *sum);
  gelu_forward(out, inp, n);
  residual_forward(sum, inp, other, n);

  float *d_inp = dev_floats(inp, n), *d_other = dev_floats(other, n), *d_out = dev_floats(out, n);
  CUDA_OK(gpu_gelu_forward(stream, d_out, d_inp, n));
  float *g_out = host_from_dev(d_out, n);
  compare("gelu_forward out", g_out, out, n, TOL);
  CUDA_OK(gpu_residual_forward(stream, d_out, d_inp, d_other, n));
  float *g_sum = host_from_dev(d_out, n);
  compare("residual_forward out", g_sum, sum, n, TOL);

  /* the GPU's backward overwrites: against the CPU's added to zeros */
  float *dout = host_normal(n, 1.0, 0.0), *dinp = xmalloc(n * sizeof *dinp);
  memset(dinp, 0, n * sizeof *dinp);
  gelu_backward(dinp, inp, dout, n);
  float *d_dout = dev_floats(dout, n), *d_dinp = dev_floats(dout, n);
  float *g_dinp[2];
  for (int run = 0; run < 2; run++) {
    CUDA_OK(cudaMemset(d_dinp, 0xff, n * sizeof(float))); /* NaN: overwritten, never read */
    CUDA_OK(gpu_gelu_backward_into(stream, d_dinp, d_inp, d_dout, n));
    g_dinp[run] = host_from_dev(d_dinp, n);
  }
  compare("gelu_backward_into dinp", g_dinp[0], dinp, n, TOL);
  compare_bits("gelu_backward_into dinp", g_dinp[0], g_dinp[1], n);

  cudaFree(d_inp), cudaFree(d_other), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_dinp);
  free(inp), free(other), free(out), free(sum), free(g_out), free(g_sum), free(dout), free(dinp);
  for (int run = 0; run < 2; run++) free(g_dinp[run]);
}

/* The bias against cpu matmul_forward and matmul_backward, whose bias
 * parts these are: a zero input makes the product vanish, leaving the
 * bias; and matmul_backward's dbias is the column sum. */
static void test_bias(void) {
  enum { OC = 3 * C + 5, K = 3 };
  size_t nout = (size_t)N * OC;
  float *bias = host_normal(OC, 1.0, 0.0), *w = host_normal((size_t)OC * K, 1.0, 0.0);
  float *zero = xmalloc((size_t)N * K * sizeof *zero);
  memset(zero, 0, (size_t)N * K * sizeof *zero);
  float *out = xmalloc(nout * sizeof *out);
  matmul_forward(out, zero, w, bias, N, K, OC);

  float *d_bias = dev_floats(bias, OC), *d_out = dev_floats(out, nout);
  CUDA_OK(cudaMemset(d_out, 0, nout * sizeof(float)));
  CUDA_OK(gpu_bias_forward(stream, d_out, d_bias, N, OC));
  float *g_out = host_from_dev(d_out, nout);
  compare("bias_forward out", g_out, out, nout, TOL);

  float *dout = host_normal(nout, 1.0, 0.0), *dbias0 = host_normal(OC, 1.0, 0.0), *dbias = host_copy(dbias0, OC);
  float *dinp = xmalloc((size_t)N * K * sizeof *dinp), *dw = xmalloc((size_t)OC * K * sizeof *dw);
  memset(dinp, 0, (size_t)N * K * sizeof *dinp);
  memset(dw, 0, (size_t)OC * K * sizeof *dw);
  matmul_backward(dinp, dw, dbias, dout, zero, w, N, K, OC);

  float *d_dout = dev_floats(dout, nout), *d_dbias = dev_floats(dbias0, OC);
  float *g_dbias[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_dbias, dbias0, OC * sizeof(float));
    CUDA_OK(gpu_bias_backward(stream, d_dbias, d_dout, N, OC, d_scratch));
    g_dbias[run] = host_from_dev(d_dbias, OC);
  }
  compare("bias_backward dbias", g_dbias[0], dbias, OC, TOL);
  compare_bits("bias_backward dbias", g_dbias[0], g_dbias[1], OC);

  cudaFree(d_bias), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_dbias);
  free(bias), free(w), free(zero), free(out), free(g_out), free(dout), free(dbias0), free(dbias), free(dinp),
      free(dw);
  for (int run = 0; run < 2; run++) free(g_dbias[run]);
}

/* Logits from cpu logprob_forward's product go to both sides. Every 7th
 * target is -1 (ignored), with a NaN dlogp that must not get through;
 * every 11th row has dlogp 0. */
static void test_logprob(void) {
  int rows = N;
  int32_t targets[N];
  for (int r = 0; r < rows; r++) targets[r] = r % 7 == 3 ? -1 : (int32_t)rng_below(&rng, V);
  float *x = host_normal((size_t)rows * C, 1.0, 0.0), *wte = host_normal((size_t)V * C, 0.5, 0.0);
  float *logits = xmalloc((size_t)rows * V * sizeof *logits);
  float logp[N], lse[N];
  logprob_forward(logp, lse, logits, x, wte, targets, rows, C, V);

  int32_t *d_targets = dev_from(targets, sizeof targets);
  float *d_logits = dev_floats(logits, (size_t)rows * V);
  float *d_logp = dev_floats(logp, rows), *d_lse = dev_floats(lse, rows);
  CUDA_OK(gpu_logprob_forward(stream, d_logp, d_lse, d_logits, d_targets, rows, V));
  float *g_logp = host_from_dev(d_logp, rows), *g_lse = host_from_dev(d_lse, rows);
  compare("logprob_forward logp", g_logp, logp, rows, TOL);
  compare("logprob_forward lse", g_lse, lse, rows, TOL);

  float dlogp[N];
  for (int r = 0; r < rows; r++) dlogp[r] = targets[r] < 0 ? NAN : r % 11 == 5 ? 0.0f : (float)rng_normal(&rng);
  float *dx = xmalloc((size_t)rows * C * sizeof *dx), *dwte = xmalloc((size_t)V * C * sizeof *dwte);
  memset(dx, 0, (size_t)rows * C * sizeof *dx);
  memset(dwte, 0, (size_t)V * C * sizeof *dwte);
  float *dlogits = host_copy(logits, (size_t)rows * V);
  logprob_backward(dx, dwte, dlogits, lse, dlogp, x, wte, targets, rows, C, V);

  /* The CPU's lse on both sides: the backward compared alone. */
  dev_set(d_lse, lse, rows * sizeof(float));
  float *d_dlogp = dev_floats(dlogp, rows);
  float *g_dlogits[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_logits, logits, (size_t)rows * V * sizeof(float));
    CUDA_OK(gpu_logprob_backward(stream, d_logits, d_lse, d_dlogp, d_targets, rows, V));
    g_dlogits[run] = host_from_dev(d_logits, (size_t)rows * V);
  }
  compare("logprob_backward dlogits", g_dlogits[0], dlogits, (size_t)rows * V, TOL);
  compare_bits("logprob_backward dlogits", g_dlogits[0], g_dlogits[1], (size_t)rows * V);

  cudaFree(d_targets), cudaFree(d_logits), cudaFree(d_logp), cudaFree(d_lse), cudaFree(d_dlogp);
  free(x), free(wte), free(logits), free(g_logp), free(g_lse), free(dx), free(dwte), free(dlogits);
  for (int run = 0; run < 2; run++) free(g_dlogits[run]);
}

static void test_scalar_head(void) {
  size_t nc = (size_t)N * C;
  float *x = host_normal(nc, 1.0, 0.0), *w = host_normal(C, 0.3, 0.0), b[1] = {0.25f};
  float values[N];
  scalar_head_forward(values, x, w, b, N, C);

  float *d_x = dev_floats(x, nc), *d_w = dev_floats(w, C), *d_b = dev_floats(b, 1), *d_values = dev_floats(values, N);
  CUDA_OK(gpu_scalar_head_forward(stream, d_values, d_x, d_w, d_b, N, C));
  float *g_values = host_from_dev(d_values, N);
  compare("scalar_head_forward values", g_values, values, N, TOL);

  float *dvalues = host_normal(N, 1.0, 0.0);
  float *dx0 = host_normal(nc, 1.0, 0.0), *dw0 = host_normal(C, 1.0, 0.0), db0[1] = {-0.5f};
  float *dx = host_copy(dx0, nc), *dw = host_copy(dw0, C), db[1] = {db0[0]};
  scalar_head_backward(dx, dw, db, dvalues, x, w, N, C);

  float *d_dvalues = dev_floats(dvalues, N), *d_dx = dev_floats(dx0, nc), *d_dw = dev_floats(dw0, C),
        *d_db = dev_floats(db0, 1);
  float *g_dx[2], *g_dw[2], *g_db[2];
  for (int run = 0; run < 2; run++) {
    dev_set(d_dx, dx0, nc * sizeof(float));
    dev_set(d_dw, dw0, C * sizeof(float));
    dev_set(d_db, db0, sizeof(float));
    CUDA_OK(gpu_scalar_head_backward(stream, d_dx, d_dw, d_db, d_dvalues, d_x, d_w, N, C, d_scratch));
    g_dx[run] = host_from_dev(d_dx, nc);
    g_dw[run] = host_from_dev(d_dw, C);
    g_db[run] = host_from_dev(d_db, 1);
  }
  compare("scalar_head_backward dx", g_dx[0], dx, nc, TOL);
  compare("scalar_head_backward dw", g_dw[0], dw, C, TOL);
  compare("scalar_head_backward db", g_db[0], db, 1, TOL);
  compare_bits("scalar_head_backward dx", g_dx[0], g_dx[1], nc);
  compare_bits("scalar_head_backward dw", g_dw[0], g_dw[1], C);
  compare_bits("scalar_head_backward db", g_db[0], g_db[1], 1);

  cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_values), cudaFree(d_dvalues), cudaFree(d_dx),
      cudaFree(d_dw), cudaFree(d_db);
  free(x), free(w), free(g_values), free(dvalues), free(dx0), free(dw0), free(dx), free(dw);
  for (int run = 0; run < 2; run++) free(g_dx[run]), free(g_dw[run]), free(g_db[run]);
}

/* Doubles: a sum of exact squares, in different orders on the two sides. */
static void test_sum_squares(void) {
  const size_t n = 1000003;
  float *x = host_normal(n, 1.0, 0.0);
  double cpu = sum_squares(x, n);
  float *d_x = dev_floats(x, n);
  double *d_out = NULL;
  CUDA_OK(cudaMalloc((void **)&d_out, sizeof(double)));
  double gpu[2];
  for (int run = 0; run < 2; run++) {
    CUDA_OK(gpu_sum_squares(stream, d_out, d_x, n));
    to_host(&gpu[run], d_out, sizeof(double));
  }
  double err = fabs(gpu[0] - cpu) / fabs(cpu);
  int ok = err <= TOL_SUM_SQUARES;
  printf("%-32s max rel err %.3e (tol %.0e)\n", "sum_squares", err, TOL_SUM_SQUARES);
  if (!ok) {
    printf("  FAIL: gpu %.17g, cpu %.17g\n", gpu[0], cpu);
    failures++;
  }
  if (memcmp(&gpu[0], &gpu[1], sizeof(double)) == 0) {
    printf("%-32s same bits on a second run\n", "sum_squares");
  } else {
    printf("%-32s FAIL: runs differ: %.17g, then %.17g\n", "sum_squares", gpu[0], gpu[1]);
    failures++;
  }
  cudaFree(d_x), cudaFree(d_out);
  free(x);
}

static void test_adamw(void) {
  const size_t n = 10007;
  const float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, wd = 0.1f, grad_scale = 0.7f;
  const int t = 3;
  float *p0 = host_normal(n, 1.0, 0.0), *g = host_normal(n, 1.0, 0.0), *m0 = host_normal(n, 0.1, 0.0);
  float *v0 = host_normal(n, 0.01, 0.0);
  for (size_t i = 0; i < n; i++) v0[i] = fabsf(v0[i]);
  float *p = host_copy(p0, n), *m = host_copy(m0, n), *v = host_copy(v0, n);
  adamw_update(p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, t);

  float *d_p = dev_floats(p0, n), *d_g = dev_floats(g, n), *d_m = dev_floats(m0, n), *d_v = dev_floats(v0, n);
  CUDA_OK(gpu_adamw_update(stream, d_p, d_g, d_m, d_v, n, lr, beta1, beta2, eps, wd, grad_scale, t));
  float *g_p = host_from_dev(d_p, n), *g_m = host_from_dev(d_m, n), *g_v = host_from_dev(d_v, n);
  compare("adamw_update params", g_p, p, n, TOL);
  compare("adamw_update m", g_m, m, n, TOL);
  compare("adamw_update v", g_v, v, n, TOL);

  cudaFree(d_p), cudaFree(d_g), cudaFree(d_m), cudaFree(d_v);
  free(p0), free(g), free(m0), free(v0), free(p), free(m), free(v), free(g_p), free(g_m), free(g_v);
}

/* The KV cache: tokens of 3 rows at positions 10, 0 and S - 1 (the first
 * and the last a row can hold), stored, then attended to; the cache
 * entries must be copies, the attention within TOL of the CPU's. */
static void test_generation(void) {
  enum { R = 3, S = T, NT = 3 };
  const int32_t rows[NT] = {2, 0, 1}, pos[NT] = {10, 0, S - 1}, tokens[NT] = {7, 49, 0};
  int len[NT];
  size_t ncache = (size_t)R * S * C;
  float *k = host_normal(ncache, 1.0, 0.0), *v = host_normal(ncache, 1.0, 0.0);
  float *qkv = host_normal((size_t)NT * 3 * C, 1.0, 0.0);
  float *wte = host_normal((size_t)VOCAB_ENC * C, 1.0, 0.0), *wpe = host_normal((size_t)S * C, 1.0, 0.0);
  float *d_k = dev_floats(k, ncache), *d_v = dev_floats(v, ncache), *d_qkv = dev_floats(qkv, (size_t)NT * 3 * C);
  float *d_wte = dev_floats(wte, (size_t)VOCAB_ENC * C), *d_wpe = dev_floats(wpe, (size_t)S * C);
  int32_t *d_rows = dev_from(rows, sizeof rows), *d_pos = dev_from(pos, sizeof pos);
  int32_t *d_tok = dev_from(tokens, sizeof tokens);

  float *embed = xmalloc((size_t)NT * C * sizeof *embed);
  for (int i = 0; i < NT; i++)
    for (int c = 0; c < C; c++) embed[i * C + c] = wte[tokens[i] * C + c] + wpe[pos[i] * C + c];
  float *d_embed = dev_floats(embed, (size_t)NT * C);
  CUDA_OK(gpu_embed_at(stream, d_embed, d_tok, d_pos, d_wte, d_wpe, NT, C));
  float *g_embed = host_from_dev(d_embed, (size_t)NT * C);
  compare("embed_at out", g_embed, embed, (size_t)NT * C, TOL);

  for (int i = 0; i < NT; i++) {
    size_t at = ((size_t)rows[i] * S + pos[i]) * C;
    memcpy(k + at, qkv + (size_t)i * 3 * C + C, C * sizeof *k);
    memcpy(v + at, qkv + (size_t)i * 3 * C + 2 * C, C * sizeof *v);
    len[i] = pos[i] + 1;
  }
  CUDA_OK(gpu_kv_store(stream, d_k, d_v, d_qkv, d_rows, d_pos, NT, S, C));
  float *g_k = host_from_dev(d_k, ncache), *g_v = host_from_dev(d_v, ncache);
  bool copied = memcmp(g_k, k, ncache * sizeof *k) == 0 && memcmp(g_v, v, ncache * sizeof *v) == 0;
  printf("%-32s %s\n", "kv_store caches", copied ? "the CPU's bits" : "FAIL: differ from the CPU's");
  failures += !copied;

  float *out = xmalloc((size_t)NT * C * sizeof *out), *scores = xmalloc((size_t)NT * H * S * sizeof *scores);
  attention_cached_forward(out, scores, qkv, k, v, (const int *)rows, len, NT, S, C, H);
  float *d_out = dev_floats(out, (size_t)NT * C), *d_scores = dev_floats(scores, (size_t)NT * H * S);
  float *g_out[2];
  for (int run = 0; run < 2; run++) {
    CUDA_OK(gpu_attention_cached_forward(stream, d_out, d_scores, d_qkv, d_k, d_v, d_rows, d_pos, NT, S, C, H));
    g_out[run] = host_from_dev(d_out, (size_t)NT * C);
  }
  compare("attention_cached_forward out", g_out[0], out, (size_t)NT * C, TOL);
  compare_bits("attention_cached_forward out", g_out[0], g_out[1], (size_t)NT * C);

  cudaFree(d_k), cudaFree(d_v), cudaFree(d_qkv), cudaFree(d_wte), cudaFree(d_wpe), cudaFree(d_rows), cudaFree(d_pos);
  cudaFree(d_tok), cudaFree(d_embed), cudaFree(d_out), cudaFree(d_scores);
  free(k), free(v), free(qkv), free(wte), free(wpe), free(embed), free(g_embed), free(g_k), free(g_v), free(out);
  free(scores), free(g_out[0]), free(g_out[1]);
}

/* |gpu - cpu| / |cpu| over the whole tensor, for results with bf16
 * operands (see gpu/attention.h). */
static void compare_norm(const char *name, const float *gpu, const float *cpu, size_t n, double tol) {
  double err = norm_error(gpu, cpu, n);
  printf("%-32s norm rel err %.3e (tol %.0e)\n", name, err, tol);
  if (!(err <= tol)) {
    printf("  FAIL\n");
    failures++;
  }
}

/* Fused attention against the CPU's attention_forward and
 * attention_backward, for head sizes 16 and 64, T = 70 (a partial second
 * tile): the output and the log-sum-exps within bf16's 1e-2, dqkv within
 * 3e-2, every output written (they start as NaN), the backward's bits the
 * same twice. */
static void test_flash(void) {
  const int heads[][2] = {{16, 4}, {64, 2}}; /* head size, heads */
  for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
    int hs = heads[k][0], nh = heads[k][1], c = hs * nh;
    size_t nqkv = (size_t)N * 3 * c, nout = (size_t)N * c, natt = (size_t)B * nh * T * T, nlse = (size_t)B * nh * T;
    float *qkv = host_normal(nqkv, 1.0, 0.0), *dout = host_normal(nout, 1.0, 0.0);
    float *out = xmalloc(nout * sizeof *out), *att = xmalloc(natt * sizeof *att), *datt = xmalloc(natt * sizeof *datt);
    float *dqkv = xmalloc(nqkv * sizeof *dqkv), *lse = xmalloc(nlse * sizeof *lse);
    attention_forward(out, att, qkv, B, T, c, nh);
    memset(dqkv, 0, nqkv * sizeof *dqkv);
    attention_backward(dqkv, datt, dout, qkv, att, B, T, c, nh);
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
      for (int h = 0; h < nh; h++)
        for (int t = 0; t < T; t++) {
          double mx = -INFINITY, sum = 0.0, s[T];
          for (int t2 = 0; t2 <= t; t2++) {
            const float *q = qkv + ((size_t)b * T + t) * 3 * c + (size_t)h * hs;
            const float *kk = qkv + ((size_t)b * T + t2) * 3 * c + c + (size_t)h * hs;
            double dot = 0.0;
            for (int d = 0; d < hs; d++) dot += (double)q[d] * kk[d];
            s[t2] = scale * dot;
            mx = fmax(mx, s[t2]);
          }
          for (int t2 = 0; t2 <= t; t2++) sum += exp(s[t2] - mx);
          lse[((size_t)b * nh + h) * T + t] = (float)(mx + log(sum));
        }

    float *d_qkv = dev_floats(qkv, nqkv), *d_dout = dev_floats(dout, nout);
    float *d_out = NULL, *d_lse = NULL, *d_dqkv = NULL, *d_delta = NULL;
    CUDA_OK(cudaMalloc((void **)&d_out, nout * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&d_lse, nlse * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&d_dqkv, nqkv * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&d_delta, nlse * sizeof(float)));
    CUDA_OK(cudaMemset(d_out, 0xff, nout * sizeof(float))); /* NaN: an element never written shows */
    CUDA_OK(cudaMemset(d_lse, 0xff, nlse * sizeof(float)));
    CUDA_OK(gpu_flash_forward(stream, d_out, d_lse, d_qkv, B, T, c, nh));
    float *g_out = host_from_dev(d_out, nout), *g_lse = host_from_dev(d_lse, nlse);
    char name[64];
    snprintf(name, sizeof name, "flash_forward out (hs %d)", hs);
    compare_norm(name, g_out, out, nout, 1e-2);
    snprintf(name, sizeof name, "flash_forward lse (hs %d)", hs);
    compare_norm(name, g_lse, lse, nlse, 1e-2);

    float *g_dqkv[2];
    for (int run = 0; run < 2; run++) {
      CUDA_OK(cudaMemset(d_dqkv, 0xff, nqkv * sizeof(float)));
      CUDA_OK(gpu_flash_backward(stream, d_dqkv, d_delta, d_dout, d_qkv, d_out, d_lse, B, T, c, nh));
      g_dqkv[run] = host_from_dev(d_dqkv, nqkv);
    }
    snprintf(name, sizeof name, "flash_backward dqkv (hs %d)", hs);
    compare_norm(name, g_dqkv[0], dqkv, nqkv, 3e-2);
    compare_bits(name, g_dqkv[0], g_dqkv[1], nqkv);

    cudaFree(d_qkv), cudaFree(d_dout), cudaFree(d_out), cudaFree(d_lse), cudaFree(d_dqkv), cudaFree(d_delta);
    free(qkv), free(dout), free(out), free(att), free(datt), free(dqkv), free(lse), free(g_out), free(g_lse);
    free(g_dqkv[0]), free(g_dqkv[1]);
  }
}

/* X rounded to the nearest bf16, ties to even (not for NaN). */
static uint16_t bf16_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Whether the bf16 array GOT (device) holds the rounding of WANT [n]. */
static void compare_rounding(const char *name, const gpu_bf16 *d_got, const float *want, size_t n) {
  uint16_t *got = xmalloc(n * sizeof *got);
  to_host(got, d_got, n * sizeof *got);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) wrong += got[i] != bf16_bits(want[i]);
  printf("%-32s %s\n", name, wrong ? "FAIL: not the rounding of the fp32 output" : "the fp32 output, rounded");
  failures += wrong != 0;
  free(got);
}

/* The passes that do two things at once, against the two done apart:
 * LayerNorm with its bf16 copy (forward and backward), bias + GELU, the
 * GELU backward that overwrites, and the residual with a bias and the
 * LayerNorm after it. */
static void test_fused_passes(void) {
  size_t nc = (size_t)N * C;
  float *inp = host_normal(nc, 2.0, 0.5), *w = host_normal(C, 0.5, 1.0), *b = host_normal(C, 0.5, 0.0);
  float *d_inp = dev_floats(inp, nc), *d_w = dev_floats(w, C), *d_b = dev_floats(b, C);
  float *d_out = dev_floats(inp, nc), *d_mean = dev_floats(inp, N), *d_rstd = dev_floats(inp, N);
  gpu_bf16 *d_out16 = NULL;
  CUDA_OK(cudaMalloc((void **)&d_out16, nc * sizeof *d_out16));
  CUDA_OK(gpu_layernorm_forward16(stream, d_out, d_out16, d_mean, d_rstd, d_inp, d_w, d_b, N, C));
  float *g_out = host_from_dev(d_out, nc);
  compare_rounding("layernorm_forward16 out16", d_out16, g_out, nc);
  CUDA_OK(cudaMemset(d_out16, 0xff, nc * sizeof *d_out16));
  CUDA_OK(gpu_layernorm_forward16(stream, NULL, d_out16, d_mean, d_rstd, d_inp, d_w, d_b, N, C));
  compare_rounding("layernorm_forward16 out16 alone", d_out16, g_out, nc);
  /* the backward's bf16 copy of the sum it leaves in dinp */
  {
    float *dout = host_normal(nc, 1.0, 0.0), *dinp0 = host_normal(nc, 1.0, 0.0);
    float *d_dout = dev_floats(dout, nc), *d_dinp = dev_floats(dinp0, nc), *d_dinp_ref = dev_floats(dinp0, nc);
    float *d_dw = dev_floats(w, C), *d_db = dev_floats(b, C);
    CUDA_OK(gpu_layernorm_backward16(stream, d_dinp_ref, NULL, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, N, C,
                                     d_scratch));
    CUDA_OK(gpu_layernorm_backward16(stream, d_dinp, d_out16, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, N, C,
                                     d_scratch));
    float *g_ref = host_from_dev(d_dinp_ref, nc), *g_dinp = host_from_dev(d_dinp, nc);
    bool same = memcmp(g_dinp, g_ref, nc * sizeof *g_dinp) == 0;
    printf("%-32s %s\n", "layernorm_backward16 dinp",
           same ? "the fp32 kernel's bits" : "FAIL: not the fp32 kernel's bits");
    failures += !same;
    compare_rounding("layernorm_backward16 dinp16", d_out16, g_dinp, nc);
    cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dinp_ref), cudaFree(d_dw), cudaFree(d_db);
    free(dout), free(dinp0), free(g_ref), free(g_dinp);
  }

  enum { OC = 4 * C };
  size_t n = (size_t)N * OC;
  float *pre = host_normal(n, 3.0, 0.0), *bias = host_normal(OC, 1.0, 0.0), *pre_ref = host_copy(pre, n);
  float *out = xmalloc(n * sizeof *out);
  for (size_t i = 0; i < n; i++) pre_ref[i] += bias[i % OC];
  gelu_forward(out, pre_ref, n);
  float *d_pre = dev_floats(pre, n), *d_bias = dev_floats(bias, OC), *d_gelu = dev_floats(pre, n);
  CUDA_OK(gpu_bias_gelu_forward(stream, d_gelu, d_pre, d_bias, N, OC));
  float *g_pre = host_from_dev(d_pre, n), *g_gelu = host_from_dev(d_gelu, n);
  compare("bias_gelu_forward pre", g_pre, pre_ref, n, TOL);
  compare("bias_gelu_forward out", g_gelu, out, n, TOL);

  float *dout = host_normal(n, 1.0, 0.0), *dinp = xmalloc(n * sizeof *dinp);
  memset(dinp, 0, n * sizeof *dinp);
  gelu_backward(dinp, pre_ref, dout, n);
  float *d_dout = dev_floats(dout, n), *d_dinp = dev_floats(dout, n);
  CUDA_OK(cudaMemset(d_dinp, 0xff, n * sizeof(float))); /* NaN: overwritten, never read */
  CUDA_OK(gpu_gelu_backward_into(stream, d_dinp, d_pre, d_dout, n));
  float *g_dinp = host_from_dev(d_dinp, n);
  compare("gelu_backward_into dinp", g_dinp, dinp, n, TOL);

  /* the residual with a bias and the LayerNorm after it in one pass: the
   * residual's bits are the two float additions done here, the
   * LayerNorm's those of its own pass over them */
  float *other = host_normal(nc, 1.0, 0.0), *biased = host_copy(other, nc), *sum = xmalloc(nc * sizeof *sum);
  for (size_t i = 0; i < nc; i++) biased[i] += b[i % C];
  residual_forward(sum, inp, biased, nc);
  {
    float *d_other = dev_floats(other, nc), *d_sum = dev_floats(sum, nc), *d_res = dev_floats(inp, nc);
    float *d_ln = dev_floats(inp, nc), *d_mean2 = dev_floats(inp, N), *d_rstd2 = dev_floats(inp, N);
    gpu_bf16 *d_ln16 = NULL;
    CUDA_OK(cudaMalloc((void **)&d_ln16, nc * sizeof *d_ln16));
    CUDA_OK(gpu_layernorm_forward16(stream, d_out, d_out16, d_mean, d_rstd, d_sum, d_w, d_b, N, C));
    float *ref[3] = {host_from_dev(d_out, nc), host_from_dev(d_mean, N), host_from_dev(d_rstd, N)};
    CUDA_OK(gpu_residual_layernorm_forward16(stream, d_res, d_inp, d_other, d_b, d_ln, d_ln16, d_mean2, d_rstd2, d_w,
                                             d_b, N, C));
    float *got[4] = {host_from_dev(d_res, nc), host_from_dev(d_ln, nc), host_from_dev(d_mean2, N),
                     host_from_dev(d_rstd2, N)};
    uint16_t *ref16 = xmalloc(nc * sizeof *ref16), *got16 = xmalloc(nc * sizeof *got16);
    to_host(ref16, d_out16, nc * sizeof *ref16);
    to_host(got16, d_ln16, nc * sizeof *got16);
    bool same = memcmp(got[0], sum, nc * sizeof(float)) == 0 && memcmp(got[1], ref[0], nc * sizeof(float)) == 0 &&
                memcmp(got[2], ref[1], N * sizeof(float)) == 0 && memcmp(got[3], ref[2], N * sizeof(float)) == 0 &&
                memcmp(got16, ref16, nc * sizeof *got16) == 0;
    printf("%-32s %s\n", "residual_layernorm_forward16",
           same ? "the residual's and LayerNorm's bits" : "FAIL: not the residual's and LayerNorm's bits");
    failures += !same;
    cudaFree(d_other), cudaFree(d_sum), cudaFree(d_res), cudaFree(d_ln), cudaFree(d_mean2), cudaFree(d_rstd2);
    cudaFree(d_ln16);
    for (int i = 0; i < 3; i++) free(ref[i]);
    for (int i = 0; i < 4; i++) free(got[i]);
    free(ref16), free(got16);
  }

  cudaFree(d_inp), cudaFree(d_w), cudaFree(d_b), cudaFree(d_out), cudaFree(d_mean), cudaFree(d_rstd);
  cudaFree(d_out16), cudaFree(d_pre), cudaFree(d_bias), cudaFree(d_gelu), cudaFree(d_dout), cudaFree(d_dinp);
  free(inp), free(w), free(b), free(g_out), free(pre), free(bias), free(pre_ref), free(out), free(g_pre);
  free(g_gelu), free(dout), free(dinp), free(g_dinp), free(other), free(biased), free(sum);
}

/* N normal numbers rounded to bf16: their bits (BITS), and the same
 * values as floats (WIDE), exactly. */
static void bf16_normal(uint16_t *bits, float *wide, size_t n, double sd) {
  for (size_t i = 0; i < n; i++) {
    bits[i] = bf16_bits((float)(sd * rng_normal(&rng)));
    uint32_t u = (uint32_t)bits[i] << 16;
    memcpy(&wide[i], &u, sizeof u);
  }
}

/* Whether the bf16 arrays A and B (device) hold the same bits. */
static void compare_bits16(const char *name, const gpu_bf16 *d_a, const gpu_bf16 *d_b, size_t n) {
  uint16_t *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b);
  to_host(a, d_a, n * sizeof *a);
  to_host(b, d_b, n * sizeof *b);
  bool same = memcmp(a, b, n * sizeof *a) == 0;
  printf("%-32s %s\n", name, same ? "same bits on a second run" : "FAIL: runs differ");
  failures += !same;
  free(a), free(b);
}

/* The kernels over bf16 arrays against the fp32 ones on the same values
 * (bf16 numbers, which widen exactly): the same computation in float, so
 * every fp32 result has the same bits and every bf16 one is the fp32
 * result rounded. GELU's pre-activation is rounded before GELU reads it,
 * so the reference GELU runs on the rounded sum. */
static void test_bf16_passes(void) {
  int rows = N;
  size_t nl = (size_t)rows * V;
  int32_t targets[N];
  for (int r = 0; r < rows; r++) targets[r] = r % 7 == 3 ? -1 : (int32_t)rng_below(&rng, V);
  uint16_t *l16 = xmalloc(nl * sizeof *l16);
  float *l32 = xmalloc(nl * sizeof *l32);
  bf16_normal(l16, l32, nl, 4.0);
  int32_t *d_targets = dev_from(targets, sizeof targets);
  gpu_bf16 *d_l16 = dev_from(l16, nl * sizeof *l16);
  float *d_l32 = dev_floats(l32, nl), *d_logp = dev_floats(l32, rows), *d_lse = dev_floats(l32, rows);
  float *d_logp16 = dev_floats(l32, rows), *d_lse16 = dev_floats(l32, rows);
  CUDA_OK(gpu_logprob_forward(stream, d_logp, d_lse, d_l32, d_targets, rows, V));
  CUDA_OK(gpu_logprob_forward16(stream, d_logp16, d_lse16, d_l16, d_targets, rows, V));
  float *logp = host_from_dev(d_logp, rows), *lse = host_from_dev(d_lse, rows);
  float *logp16 = host_from_dev(d_logp16, rows), *lse16 = host_from_dev(d_lse16, rows);
  bool same = memcmp(logp, logp16, rows * sizeof *logp) == 0 && memcmp(lse, lse16, rows * sizeof *lse) == 0;
  printf("%-32s %s\n", "logprob_forward16", same ? "the fp32 kernel's bits" : "FAIL: not the fp32 kernel's bits");
  failures += !same;

  float dlogp[N];
  for (int r = 0; r < rows; r++) dlogp[r] = targets[r] < 0 ? NAN : r % 11 == 5 ? 0.0f : (float)rng_normal(&rng);
  float *d_dlogp = dev_floats(dlogp, rows);
  CUDA_OK(gpu_logprob_backward(stream, d_l32, d_lse, d_dlogp, d_targets, rows, V));
  float *dlogits = host_from_dev(d_l32, nl);
  gpu_bf16 *d_again = dev_from(l16, nl * sizeof *l16);
  CUDA_OK(gpu_logprob_backward16(stream, d_l16, d_lse, d_dlogp, d_targets, rows, V));
  CUDA_OK(gpu_logprob_backward16(stream, d_again, d_lse, d_dlogp, d_targets, rows, V));
  compare_rounding("logprob_backward16 dlogits", d_l16, dlogits, nl);
  compare_bits16("logprob_backward16 dlogits", d_l16, d_again, nl);

  enum { OC = 4 * C };
  size_t n = (size_t)N * OC;
  uint16_t *pre16 = xmalloc(n * sizeof *pre16), *dout16 = xmalloc(n * sizeof *dout16);
  float *pre = xmalloc(n * sizeof *pre), *dout = xmalloc(n * sizeof *dout), *bias = host_normal(OC, 1.0, 0.0);
  bf16_normal(pre16, pre, n, 3.0);
  bf16_normal(dout16, dout, n, 1.0);
  /* the pre-activation with its bias, rounded, as the kernel stores it */
  float *sum = xmalloc(n * sizeof *sum), *biased = xmalloc(n * sizeof *biased);
  for (size_t i = 0; i < n; i++) {
    sum[i] = pre[i] + bias[i % OC];
    uint32_t u = (uint32_t)bf16_bits(sum[i]) << 16;
    memcpy(&biased[i], &u, sizeof u);
  }
  gpu_bf16 *d_pre16 = dev_from(pre16, n * sizeof *pre16), *d_gelu16 = dev_from(pre16, n * sizeof *pre16);
  float *d_bias = dev_floats(bias, OC), *d_biased = dev_floats(biased, n), *d_gelu = dev_floats(biased, n);
  CUDA_OK(gpu_bias_forward16(stream, d_gelu16, d_bias, N, OC)); /* d_gelu16 holds pre16 */
  compare_rounding("bias_forward16 out", d_gelu16, sum, n);
  CUDA_OK(gpu_bias_gelu_forward16(stream, d_gelu16, d_pre16, d_bias, N, OC));
  compare_rounding("bias_gelu_forward16 pre", d_pre16, sum, n);
  CUDA_OK(gpu_gelu_forward(stream, d_gelu, d_biased, n));
  float *gelu = host_from_dev(d_gelu, n);
  compare_rounding("bias_gelu_forward16 out", d_gelu16, gelu, n);

  float *d_dout = dev_floats(dout, n), *d_dinp = dev_floats(dout, n);
  CUDA_OK(gpu_gelu_backward_into(stream, d_dinp, d_biased, d_dout, n));
  float *dinp = host_from_dev(d_dinp, n);
  gpu_bf16 *d_dout16 = dev_from(dout16, n * sizeof *dout16);
  CUDA_OK(gpu_gelu_backward16(stream, d_dout16, d_pre16, d_dout16, n)); /* in place */
  compare_rounding("gelu_backward16 dinp, in place", d_dout16, dinp, n);

  /* the bias's gradient from dout's bf16 bits: the fp32 kernel's sums */
  float *dbias0 = host_normal(OC, 1.0, 0.0), *d_db = dev_floats(dbias0, OC), *d_db16 = dev_floats(dbias0, OC);
  dev_set(d_dout16, dout16, n * sizeof *dout16);
  CUDA_OK(gpu_bias_backward(stream, d_db, d_dout, N, OC, d_scratch));
  CUDA_OK(gpu_bias_backward16(stream, d_db16, d_dout16, N, OC, d_scratch));
  float *db = host_from_dev(d_db, OC), *db16 = host_from_dev(d_db16, OC);
  same = memcmp(db, db16, OC * sizeof *db) == 0;
  printf("%-32s %s\n", "bias_backward16 dbias", same ? "the fp32 kernel's bits" : "FAIL: not the fp32 kernel's bits");
  failures += !same;

  cudaFree(d_targets), cudaFree(d_l16), cudaFree(d_l32), cudaFree(d_logp), cudaFree(d_lse), cudaFree(d_logp16);
  cudaFree(d_lse16), cudaFree(d_dlogp), cudaFree(d_again), cudaFree(d_pre16), cudaFree(d_gelu16), cudaFree(d_bias);
  cudaFree(d_biased), cudaFree(d_gelu), cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dout16), cudaFree(d_db);
  cudaFree(d_db16);
  free(l16), free(l32), free(logp), free(lse), free(logp16), free(lse16), free(dlogits), free(pre16), free(dout16);
  free(pre), free(dout), free(bias), free(sum), free(biased), free(gelu), free(dinp), free(dbias0), free(db);
  free(db16);
}

/* Fused attention on bf16 qkv against the fp32 kernels on the same
 * numbers widened: the tiles hold the same bf16 numbers either way, so the
 * output and the log-sum-exps have the fp32 kernels' bits, and dqkv is
 * their dqkv rounded. */
static void test_flash16(void) {
  const int heads[][2] = {{16, 4}, {64, 2}}; /* head size, heads */
  for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
    int hs = heads[k][0], nh = heads[k][1], c = hs * nh;
    size_t nqkv = (size_t)N * 3 * c, nout = (size_t)N * c, nlse = (size_t)B * nh * T;
    uint16_t *qkv16 = xmalloc(nqkv * sizeof *qkv16);
    float *qkv = xmalloc(nqkv * sizeof *qkv), *dout = host_normal(nout, 1.0, 0.0);
    bf16_normal(qkv16, qkv, nqkv, 1.0);
    float *d_qkv = dev_floats(qkv, nqkv), *d_dout = dev_floats(dout, nout);
    gpu_bf16 *d_qkv16 = dev_from(qkv16, nqkv * sizeof *qkv16), *d_dqkv16 = dev_from(qkv16, nqkv * sizeof *qkv16);
    float *d_out = dev_floats(dout, nout), *d_out16 = dev_floats(dout, nout), *d_dqkv = dev_floats(qkv, nqkv);
    float *d_lse = NULL, *d_lse16 = NULL, *d_delta = NULL;
    CUDA_OK(cudaMalloc((void **)&d_lse, nlse * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&d_lse16, nlse * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&d_delta, nlse * sizeof(float)));
    CUDA_OK(gpu_flash_forward(stream, d_out, d_lse, d_qkv, B, T, c, nh));
    CUDA_OK(gpu_flash_forward16(stream, d_out16, d_lse16, d_qkv16, B, T, c, nh));
    float *out = host_from_dev(d_out, nout), *out16 = host_from_dev(d_out16, nout);
    float *lse = host_from_dev(d_lse, nlse), *lse16 = host_from_dev(d_lse16, nlse);
    bool same = memcmp(out, out16, nout * sizeof *out) == 0 && memcmp(lse, lse16, nlse * sizeof *lse) == 0;
    char name[64];
    snprintf(name, sizeof name, "flash_forward16 (hs %d)", hs);
    printf("%-32s %s\n", name, same ? "the fp32 kernel's bits" : "FAIL: not the fp32 kernel's bits");
    failures += !same;
    CUDA_OK(gpu_flash_backward(stream, d_dqkv, d_delta, d_dout, d_qkv, d_out, d_lse, B, T, c, nh));
    float *dqkv = host_from_dev(d_dqkv, nqkv);
    CUDA_OK(gpu_flash_backward16(stream, d_dqkv16, d_delta, d_dout, d_qkv16, d_out16, d_lse16, B, T, c, nh));
    snprintf(name, sizeof name, "flash_backward16 dqkv (hs %d)", hs);
    compare_rounding(name, d_dqkv16, dqkv, nqkv);
    cudaFree(d_qkv), cudaFree(d_dout), cudaFree(d_qkv16), cudaFree(d_dqkv16), cudaFree(d_out), cudaFree(d_out16);
    cudaFree(d_dqkv), cudaFree(d_lse), cudaFree(d_lse16), cudaFree(d_delta);
    free(qkv16), free(qkv), free(dout), free(out), free(out16), free(lse), free(lse16), free(dqkv);
  }
}

/* bf16 rounding against the bits worked out here: round to nearest, ties
 * to even, on normal numbers, ties, subnormals, zeros and infinities. */
static void test_to_bf16(void) {
  enum { NB = 4096 };
  float *x = host_normal(NB, 3.0, 0.0);
  const uint32_t special[] = {0x3f808000u /* a tie, rounds down to even */, 0x3f818000u /* a tie, rounds up */,
                              0x00000001u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu /* rounds to inf */};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[i], &special[i], sizeof x[i]);
  uint16_t want[NB], got[NB];
  for (int i = 0; i < NB; i++) want[i] = bf16_bits(x[i]);
  float *d_x = dev_floats(x, NB);
  gpu_bf16 *d_y = NULL;
  CUDA_OK(cudaMalloc((void **)&d_y, NB * sizeof *d_y));
  CUDA_OK(gpu_to_bf16(stream, d_y, d_x, NB));
  to_host(got, d_y, sizeof got);
  int wrong = 0;
  for (int i = 0; i < NB; i++) wrong += got[i] != want[i];
  printf("%-32s %s\n", "to_bf16", wrong ? "FAIL: bits differ" : "round to nearest even, every bit");
  if (wrong) printf("  %d of %d differ\n", wrong, NB);
  failures += wrong != 0;
  cudaFree(d_x), cudaFree(d_y);
  free(x);
}

/* accumulate16 against the float sums worked out here: bf16 widens
 * exactly, so each sum is one float addition. */
static void test_accumulate16(void) {
  enum { NA = 3001 };
  uint16_t x16[NA];
  float x[NA], *acc = host_normal(NA, 2.0, 0.0), want[NA], got[NA];
  bf16_normal(x16, x, NA, 1.0);
  for (int i = 0; i < NA; i++) want[i] = acc[i] + x[i];
  float *d_acc = dev_floats(acc, NA);
  gpu_bf16 *d_x = dev_from(x16, sizeof x16);
  CUDA_OK(gpu_accumulate16(stream, d_acc, d_x, NA));
  to_host(got, d_acc, sizeof got);
  bool same = memcmp(got, want, sizeof got) == 0;
  printf("%-32s %s\n", "accumulate16", same ? "every float sum" : "FAIL: sums differ");
  failures += !same;
  cudaFree(d_acc), cudaFree(d_x);
  free(acc);
}

int main(void) {
  char info[256];
  cuda_describe(info, sizeof info);
  if (cuda_device_count() == 0) {
    printf("SKIP: %s\n", info);
    return 77;
  }
  printf("%s\n", info);
  rng = rng_seed(20240611);
  size_t scratch = (size_t)GPU_COLUMN_PARTS * SCRATCH_COLUMNS, ln_scratch = (size_t)GPU_LAYERNORM_PARTS * 2 * C;
  CUDA_OK(cudaMalloc((void **)&d_scratch, (scratch > ln_scratch ? scratch : ln_scratch) * sizeof(double)));
  test_encoder();
  test_layernorm(N, C, "");
  /* rows too wide for the backward's sums in shared memory: the column sums */
  test_layernorm(6, 3100, " (width 3100)");
  test_softmax_causal();
  test_gelu_residual();
  test_bias();
  test_logprob();
  test_scalar_head();
  test_sum_squares();
  test_adamw();
  test_generation();
  test_to_bf16();
  test_accumulate16();
  test_fused_passes();
  test_bf16_passes();
  test_flash();
  test_flash16();
  if (failures) {
    printf("FAIL: %d comparison%s failed\n", failures, failures == 1 ? "" : "s");
    return 1;
  }
  printf("PASS: every kernel matches the CPU and repeats its bits\n");
  return 0;
}
