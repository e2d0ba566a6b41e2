/* The CPU backend's kernels, one forward/backward pair per layer.
 *
 * Shape letters: B batch, T sequence length, C width, OC a Linear's output
 * width, H heads, hs = C / H the head size, V vocabulary, N = B * T rows.
 *
 * Determinism: every parallel loop writes outputs no other iteration
 * touches, and every sum runs in an order fixed by the shapes alone, never
 * by the scheduler. Gradients summed over rows (biases, LayerNorm weights,
 * embeddings) are therefore split over columns: a row split would need
 * atomics or a race. The matmuls are OpenBLAS's, which divides a product
 * between its threads by the shapes and the thread count alone. */
/* The elementwise loops (GELU, the log-softmax's exponentials, AdamW) are
 * where time goes outside sgemm; GCC's -O2 cost model leaves them scalar,
 * and only without trapping math may a clamp become a select. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif
#include "runtime/cpu_kernels.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "runtime/adamw_element.h"

/* Columns per task in the column-split reductions: 16 floats span one
 * cache line, so neighbouring tasks rarely write the same line, and C = 768
 * still gives 48 tasks. */
#define COL_BLOCK 16

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------------------------
 * Encoder: token plus position embeddings */

void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C) {
  /* out [B, T, C], tokens [B, T], wte [V, C], wpe [T, C] */
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      size_t n = (size_t)b * T + t;
      float *o = out + n * C;
      const float *we = wte + (size_t)tokens[n] * C;
      const float *pe = wpe + (size_t)t * C;
      for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
    }
  }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C) {
  /* dwte [V, C], dwpe [T, C], dout [B, T, C], tokens [B, T] */
  /* A token may repeat within the batch, so rows of dwte cannot be given to
   * threads; columns can. */
#pragma omp parallel for
  for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
    int c1 = min_int(c0 + COL_BLOCK, C);
    for (int b = 0; b < B; b++) {
      for (int t = 0; t < T; t++) {
        size_t n = (size_t)b * T + t;
        const float *d = dout + n * C;
        float *dwe = dwte + (size_t)tokens[n] * C;
        float *dpe = dwpe + (size_t)t * C;
        for (int c = c0; c < c1; c++) {
          dwe[c] += d[c];
          dpe[c] += d[c];
        }
      }
    }
  }
}

/* ------------------------------------------------------------------------
 * LayerNorm */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                       int C) {
  /* out [N, C], mean [N], rstd [N], inp [N, C], w [C], b [C] */
  const float eps = 1e-5f;
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    /* Two passes: the variance of centred values does not cancel the way
     * E[x^2] - E[x]^2 does. */
    float m = 0.0f;
    for (int c = 0; c < C; c++) m += x[c];
    m /= (float)C;
    float var = 0.0f;
    for (int c = 0; c < C; c++) {
      float xm = x[c] - m;
      var += xm * xm;
    }
    var /= (float)C;
    float s = 1.0f / sqrtf(var + eps);
    float *o = out + (size_t)n * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
  /* dinp [N, C], dw [C], db [C], dout [N, C], inp [N, C], w [C], mean [N], rstd [N] */
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    const float *d = dout + (size_t)n * C;
    float m = mean[n], s = rstd[n];
    /* The normalised row's gradient minus its projections on the two
     * directions normalisation removes: the mean and the row itself. */
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * s;
      float dnorm = d[c] * w[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= (float)C;
    dnorm_norm_mean /= (float)C;
    float *di = dinp + (size_t)n * C;
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * s;
      di[c] += (d[c] * w[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
  }
  /* dw and db sum over rows: split over columns instead (see the top). */
#pragma omp parallel for
  for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
    int c1 = min_int(c0 + COL_BLOCK, C);
    double sw[COL_BLOCK] = {0}, sb[COL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
      const float *x = inp + (size_t)n * C;
      const float *d = dout + (size_t)n * C;
      float m = mean[n], s = rstd[n];
      for (int c = c0; c < c1; c++) {
        sw[c - c0] += d[c] * ((x[c] - m) * s);
        sb[c - c0] += d[c];
      }
    }
    for (int c = c0; c < c1; c++) {
      dw[c] += (float)sw[c - c0];
      db[c] += (float)sb[c - c0];
    }
  }
}

/* ------------------------------------------------------------------------
 * Linear: out = inp W^T + bias */

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC) {
  /* out [N, OC], inp [N, C], w [OC, C], bias [OC] or NULL */
  /* The bias goes in first so that one sgemm with beta = 1 adds the
   * product to it, instead of a second pass over out. */
  if (bias) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof *bias);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N,
                     int C, int OC) {
  /* dinp [N, C], dw [OC, C], dbias [OC] or NULL, dout [N, OC], inp [N, C], w [OC, C] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
  if (!dbias) return;
  /* Blocks of columns, rows in order inside: contiguous reads, and each
   * block's sum has one owner. */
#pragma omp parallel for
  for (int o0 = 0; o0 < OC; o0 += COL_BLOCK) {
    int o1 = min_int(o0 + COL_BLOCK, OC);
    double s[COL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
      const float *d = dout + (size_t)n * OC;
      for (int o = o0; o < o1; o++) s[o - o0] += d[o];
    }
    for (int o = o0; o < o1; o++) dbias[o] += (float)s[o - o0];
  }
}

/* ------------------------------------------------------------------------
 * Causal multi-head self-attention
 *
 * The products QK^T, att V and their gradients go through cblas_sgemm, one
 * head of one sequence at a time, and the softmax and its gradient through
 * one OpenMP loop over all rows (b, h, t) in between. An OpenMP loop over
 * (b, t, h) with the dot products written out was 2.5 to 14 times slower
 * on two threads (T = 128 to 1024, hs = 32 and 64), the more so the longer
 * the sequence. The sgemm calls stay outside OpenMP loops: OpenBLAS has
 * its own threads, and calling it from several at once oversubscribes.
 *
 * Only the lower triangle of att matters. Query rows go in blocks of
 * ATT_ROWS, each multiplied with the keys up to its last row only, so the
 * products skip the masked triangle but for a sliver of ATT_ROWS / T. */

#define ATT_ROWS 64

/* Where head h of sequence b starts in qkv [B, T, 3C] (its queries; keys
 * are C further, values 2C), in an activation [B, T, C], and in att. */
static inline size_t qkv_at(int b, int h, int T, int C, int hs) { return (size_t)b * T * 3 * C + (size_t)h * hs; }
static inline size_t act_at(int b, int h, int T, int C, int hs) { return (size_t)b * T * C + (size_t)h * hs; }
static inline size_t att_at(int b, int h, int T, int H) { return ((size_t)b * H + h) * T * T; }

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
  /* out [B, T, C], att [B, H, T, T], qkv [B, T, 3C] */
  int hs = C / H, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)hs);

  /* Scaled scores: att[t, t2] = scale <q_t, k_t2>, for t2 up to the block's
   * last row. */
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const float *q = qkv + qkv_at(b, h, T, C, hs), *k = q + C;
      float *a = att + att_at(b, h, T, H);
      for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
        int rows = min_int(ATT_ROWS, T - t0), keys = t0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hs, scale, q + (size_t)t0 * C3, C3, k, C3,
                    0.0f, a + (size_t)t0 * T, T);
      }
    }
  }

  /* Softmax over t2 <= t, and exact zeros above the diagonal: the products
   * below and the backward multiply by them. */
#pragma omp parallel for collapse(3)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++) {
        float *a = att + att_at(b, h, T, H) + (size_t)t * T;
        /* Subtracting the maximum keeps expf from overflowing; the weights
         * do not change. */
        float maxv = -INFINITY;
        for (int t2 = 0; t2 <= t; t2++)
          if (a[t2] > maxv) maxv = a[t2];
        float sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) {
          a[t2] = expf(a[t2] - maxv);
          sum += a[t2];
        }
        float inv = 1.0f / sum;
        for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
        for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
      }
    }
  }

  /* out_t = sum over t2 of att[t, t2] v_t2. */
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const float *v = qkv + qkv_at(b, h, T, C, hs) + 2 * C;
      const float *a = att + att_at(b, h, T, H);
      float *o = out + act_at(b, h, T, C, hs);
      for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
        int rows = min_int(ATT_ROWS, T - t0), keys = t0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, keys, 1.0f, a + (size_t)t0 * T, T, v, C3,
                    0.0f, o + (size_t)t0 * C, C);
      }
    }
  }
}

void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B, int T,
                        int C, int H) {
  /* dqkv [B, T, 3C], datt [B, H, T, T] scratch, dout [B, T, C], qkv [B, T, 3C], att [B, H, T, T] */
  int hs = C / H, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)hs);

  /* The weights' gradient: datt[t, t2] = <dout_t, v_t2>. */
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const float *v = qkv + qkv_at(b, h, T, C, hs) + 2 * C;
      const float *d = dout + act_at(b, h, T, C, hs);
      float *da = datt + att_at(b, h, T, H);
      for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
        int rows = min_int(ATT_ROWS, T - t0), keys = t0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, hs, 1.0f, d + (size_t)t0 * C, C, v, C3, 0.0f,
                    da + (size_t)t0 * T, T);
      }
    }
  }

  /* Through the softmax, whose Jacobian is diag(a) - a a^T, and the scale:
   * dscores = scale a (datt - <a, datt>), zero above the diagonal. */
#pragma omp parallel for collapse(3)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++) {
        const float *a = att + att_at(b, h, T, H) + (size_t)t * T;
        float *da = datt + att_at(b, h, T, H) + (size_t)t * T;
        float ada = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) ada += a[t2] * da[t2];
        for (int t2 = 0; t2 <= t; t2++) da[t2] = scale * a[t2] * (da[t2] - ada);
        for (int t2 = t + 1; t2 < T; t2++) da[t2] = 0.0f;
      }
    }
  }

  /* dq += dscores K; dk += dscores^T Q; dv += att^T dout. A key or value
   * row t2 of a block hears from the queries t >= t2, all in rows t0 on. */
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const float *q = qkv + qkv_at(b, h, T, C, hs), *k = q + C;
      const float *d = dout + act_at(b, h, T, C, hs);
      const float *a = att + att_at(b, h, T, H);
      const float *ds = datt + att_at(b, h, T, H);
      float *dq = dqkv + qkv_at(b, h, T, C, hs), *dk = dq + C, *dv = dq + 2 * C;
      for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
        int rows = min_int(ATT_ROWS, T - t0), keys = t0 + rows, later = T - t0;
        size_t r0 = (size_t)t0 * T, x0 = (size_t)t0 * C3;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, keys, 1.0f, ds + r0, T, k, C3, 1.0f,
                    dq + x0, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, hs, later, 1.0f, ds + r0 + t0, T, q + x0, C3, 1.0f,
                    dk + x0, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, hs, later, 1.0f, a + r0 + t0, T,
                    d + (size_t)t0 * C, C, 1.0f, dv + x0, C3);
      }
    }
  }
}

/* One query row a token: too little work for sgemm, whose calls would be
 * one per (token, head) with a single row each. The loops run over (token,
 * head) pairs instead, each of which writes only its own slice of out and
 * scores. */
void attention_cached_forward(float *out, float *scores, const float *qkv, const float *kcache, const float *vcache,
                              const int *rows, const int *len, int N, int S, int C, int H) {
  /* out [N, C], scores [N, H, S], qkv [N, 3C], kcache and vcache [R, S, C], rows [N], len [N] */
  int hs = C / H;
  float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2)
  for (int i = 0; i < N; i++) {
    for (int h = 0; h < H; h++) {
      const float *q = qkv + (size_t)i * 3 * C + (size_t)h * hs;
      size_t row = (size_t)rows[i] * S * C + (size_t)h * hs;
      const float *k = kcache + row, *v = vcache + row;
      float *s = scores + ((size_t)i * H + h) * S;
      int keys = len[i];
      float maxv = -INFINITY;
      for (int t = 0; t < keys; t++) {
        const float *kt = k + (size_t)t * C;
        float dot = 0.0f;
        for (int c = 0; c < hs; c++) dot += q[c] * kt[c];
        s[t] = scale * dot;
        if (s[t] > maxv) maxv = s[t];
      }
      float sum = 0.0f;
      for (int t = 0; t < keys; t++) {
        s[t] = expf(s[t] - maxv);
        sum += s[t];
      }
      float inv = 1.0f / sum;
      float *o = out + (size_t)i * C + (size_t)h * hs;
      for (int c = 0; c < hs; c++) o[c] = 0.0f;
      for (int t = 0; t < keys; t++) {
        const float *vt = v + (size_t)t * C;
        float a = s[t] * inv;
        for (int c = 0; c < hs; c++) o[c] += a * vt[c];
      }
    }
  }
}

/* ------------------------------------------------------------------------
 * GELU, tanh approximation */

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

/* e^x for float x, in arithmetic alone so that GCC vectorises the loops
 * that call it (libm's expf is a call per element): x = k ln 2 + r with
 * |r| <= ln 2 / 2, e^r by Cephes' degree-6 polynomial, 2^k put in the
 * exponent bits. Within 1 ulp of e^x over [-87, 88] (0.93 at worst, every
 * 998th float checked); below -87 it gives
 * about 1e-38 instead of a subnormal, above 88 it saturates: both far
 * outside what a softmax or a GELU can tell apart. */
static inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  /* round x / ln 2 to the nearest integer: adding 1.5 * 2^23 pushes the
   * fraction out of the mantissa */
  float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693359375f - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* 0.5 (1 + tanh u) is the logistic sigmoid of 2u. Computed as a sigmoid it
 * keeps its precision in the negative tail, where 1 + tanh u would cancel
 * to a few bits; expf overflowing to infinity there still gives 0. */
static inline float gelu_sigmoid(float x) {
  float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
  return 1.0f / (1.0f + exp_approx(-2.0f * u));
}

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * gelu_sigmoid(inp[i]);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float s = gelu_sigmoid(x);
    float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
    /* d/dx [x sigmoid(2u)] = sigmoid(2u) + 2 x sigmoid(2u) (1 - sigmoid(2u)) du/dx */
    dinp[i] += (s + 2.0f * x * s * (1.0f - s) * du) * dout[i];
  }
}

/* ------------------------------------------------------------------------
 * Residual connection */

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

/* ------------------------------------------------------------------------
 * The LM head with log-softmax and the target gather */

void logprob_forward(float *logp, float *lse, float *logits, const float *x, const float *wte,
                     const int32_t *targets, int rows, int C, int V) {
  /* logp [rows], lse [rows], logits [rows, V], x [rows, C], wte [V, C], targets [rows] */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, C, 1.0f, x, C, wte, C, 0.0f, logits, V);
#pragma omp parallel for
  for (int r = 0; r < rows; r++) {
    const float *l = logits + (size_t)r * V;
    float maxv = -INFINITY;
    for (int v = 0; v < V; v++)
      if (l[v] > maxv) maxv = l[v];
    /* Each term is at most 1, but V of them in float would lose the small
     * ones; a double sum keeps lse exact to float precision. */
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) sum += exp_approx(l[v] - maxv);
    double log_sum = log(sum);
    lse[r] = (float)((double)maxv + log_sum);
    int32_t target = targets[r];
    assert(target < V);
    /* (l - max) - log_sum rather than l - lse: no rounding of lse to float
     * in between. */
    logp[r] = target < 0 ? 0.0f : (float)((double)(l[target] - maxv) - log_sum);
  }
}

void logprob_backward(float *dx, float *dwte, float *logits, const float *lse, const float *dlogp, const float *x,
                      const float *wte, const int32_t *targets, int rows, int C, int V) {
  /* dx [rows, C], dwte [V, C], logits [rows, V] (dlogits on return), lse [rows], dlogp [rows], x [rows, C],
   * wte [V, C], targets [rows] */
#pragma omp parallel for
  for (int r = 0; r < rows; r++) {
    float *l = logits + (size_t)r * V;
    int32_t target = targets[r];
    float d = dlogp[r];
    /* A row without gradient skips its V exponentials; for an ignored
     * target this also keeps a NaN or infinite dlogp out of the sums. */
    if (target < 0 || d == 0.0f) {
      memset(l, 0, (size_t)V * sizeof *l);
      continue;
    }
    float m = lse[r];
#pragma omp simd
    for (int v = 0; v < V; v++) l[v] = -d * exp_approx(l[v] - m);
    l[target] += d;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, V, 1.0f, logits, V, wte, C, 1.0f, dx, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, rows, 1.0f, logits, V, x, C, 1.0f, dwte, C);
}

/* ------------------------------------------------------------------------
 * The scalar head: one value per position */

void scalar_head_forward(float *values, const float *x, const float *w, const float *b, int N, int C) {
  /* values [N], x [N, C], w [C], b [1] */
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float *xn = x + (size_t)n * C;
    float s = 0.0f;
    for (int c = 0; c < C; c++) s += xn[c] * w[c];
    values[n] = s + b[0];
  }
}

void scalar_head_backward(float *dx, float *dw, float *db, const float *dvalues, const float *x, const float *w, int N,
                          int C) {
  /* dx [N, C], dw [C], db [1], dvalues [N], x [N, C], w [C] */
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    float d = dvalues[n];
    float *dxn = dx + (size_t)n * C;
    for (int c = 0; c < C; c++) dxn[c] += d * w[c];
  }
  /* dw sums over rows: split over columns (see the top). */
#pragma omp parallel for
  for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
    int c1 = min_int(c0 + COL_BLOCK, C);
    double s[COL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
      const float *xn = x + (size_t)n * C;
      double d = dvalues[n];
      for (int c = c0; c < c1; c++) s[c - c0] += d * xn[c];
    }
    for (int c = c0; c < c1; c++) dw[c] += (float)s[c - c0];
  }
  double sb = 0.0;
  for (int n = 0; n < N; n++) sb += dvalues[n];
  db[0] += (float)sb;
}

/* ------------------------------------------------------------------------
 * The optimiser */

/* A fixed number of partial sums, whatever the thread count: the total is
 * then the same bit for bit on 1 thread or 64. */
#define SUM_SQUARES_PARTS 256

double sum_squares(const float *x, size_t n) {
  double part[SUM_SQUARES_PARTS];
  size_t chunk = (n + SUM_SQUARES_PARTS - 1) / SUM_SQUARES_PARTS;
#pragma omp parallel for
  for (int p = 0; p < SUM_SQUARES_PARTS; p++) {
    size_t lo = (size_t)p * chunk, hi = lo + chunk;
    if (lo > n) lo = n;
    if (hi > n) hi = n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
    part[p] = s;
  }
  double total = 0.0;
  for (int p = 0; p < SUM_SQUARES_PARTS; p++) total += part[p];
  return total;
}

void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int t) {
  struct adamw_constants k = adamw_constants_at(lr, beta1, beta2, eps, weight_decay, grad_scale, t);
  /* simd: the update is memory-bound and every element is independent */
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) adamw_element(&params[i], &m[i], &v[i], grads[i], k);
}
