/* The C side of bench/train-gpu: training steps of a GPT model on
 * trainpipe's CUDA backend, as runtime/train.c makes them: zero_grad, the
 * forward to per-token log-probabilities, the mean next-token loss on the
 * host, the backward, the global gradient norm with clipping at 1.0, and
 * AdamW (lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on the matmul
 * weights), on one fixed random batch. WARMUP untimed steps, then STEPS
 * timed ones, each ended by a device synchronisation and timed on the
 * host's monotonic clock; prints `key value` lines as
 * bench/train_gpu_reference.py does: the median step, tokens/s, the
 * model's FLOPs per token (6 N + 6 L T C, N every parameter but the
 * position embeddings, as `trainpipe plan` counts them) and the MFU over
 * --peak-tflops, the device memory the backend took, the loss before and
 * after.
 *
 * --fused-attention runs attention through gpu/attention.h's fused
 * kernels (bf16 only) instead of cuBLAS and the [B, H, T, T] matrix;
 * --epilogues runs qkv's bias, fc's bias and GELU, and GELU's backward
 * with fc's bias gradient in cuBLASLt's matmul epilogues (bf16 only). The
 * backend's description, printed as `backend`, says which ran.
 *
 * --batch 0 takes the largest power of two up to 64 whose backend fits the
 * device (the backend allocates everything at creation, so a creation that
 * succeeds fits). --profile runs one more step between cudaProfilerStart
 * and cudaProfilerStop, for `ncu --profile-from-start off`.
 *
 * Built by `make bench/train_gpu` in a build with CUDA. */
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/cuda_backend.h"
#include "gpu/device.h"
#include "runtime/backend.h"
#include "runtime/gpt.h"
#include "runtime/rng.h"

static void die(const char *what, const char *detail) {
  fprintf(stderr, "train_gpu: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) die("out of host memory", NULL);
  return p;
}

struct options {
  struct gpt_config cfg;
  int batch, seq, warmup, steps;
  double peak_tflops;
  enum backend_precision precision;
  bool profile, fused_attention, epilogues;
};

static long number(const char *opt, const char *v, long lo, long hi) {
  char *end;
  long n = strtol(v, &end, 10);
  if (!*v || *end || n < lo || n > hi) {
    fprintf(stderr, "train_gpu: %s expects a whole number from %ld to %ld, not '%s'\n", opt, lo, hi, v);
    exit(2);
  }
  return n;
}

static struct options parse(int argc, char **argv) {
  struct options o = {
      .cfg = {.vocab = 50257, .context = 1024, .layers = 12, .heads = 12, .width = 768},
      .batch = 0,
      .seq = 1024,
      .warmup = 3,
      .steps = 10,
      .peak_tflops = 989,
      .precision = PRECISION_BF16,
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--profile") == 0) {
      o.profile = true;
      continue;
    }
    if (strcmp(a, "--fused-attention") == 0) {
      o.fused_attention = true;
      continue;
    }
    if (strcmp(a, "--epilogues") == 0) {
      o.epilogues = true;
      continue;
    }
    if (!v) {
      fprintf(stderr, "train_gpu: unknown option or missing value: %s\n", a);
      exit(2);
    }
    i++;
    if (strcmp(a, "--vocab") == 0) o.cfg.vocab = (int)number(a, v, 1, 1 << 22);
    else if (strcmp(a, "--context") == 0) o.cfg.context = (int)number(a, v, 1, 1 << 20);
    else if (strcmp(a, "--layers") == 0) o.cfg.layers = (int)number(a, v, 1, 1024);
    else if (strcmp(a, "--heads") == 0) o.cfg.heads = (int)number(a, v, 1, 1024);
    else if (strcmp(a, "--width") == 0) o.cfg.width = (int)number(a, v, 1, 1 << 16);
    else if (strcmp(a, "--batch") == 0) o.batch = (int)number(a, v, 0, 4096);
    else if (strcmp(a, "--seq") == 0) o.seq = (int)number(a, v, 1, 1 << 20);
    else if (strcmp(a, "--warmup") == 0) o.warmup = (int)number(a, v, 0, 1000);
    else if (strcmp(a, "--steps") == 0) o.steps = (int)number(a, v, 1, 100000);
    else if (strcmp(a, "--peak-tflops") == 0) o.peak_tflops = (double)number(a, v, 1, 100000);
    else if (strcmp(a, "--precision") == 0) {
      if (!backend_precision_find(v, &o.precision) || o.precision == PRECISION_AUTO) {
        fprintf(stderr, "train_gpu: --precision is fp32, tf32 or bf16, not '%s'\n", v);
        exit(2);
      }
    } else {
      fprintf(stderr, "train_gpu: unknown option %s\n", a);
      exit(2);
    }
  }
  return o;
}

/* The backend for B sequences; NULL when it does not fit (ERR says why). */
static struct backend *backend_for(const struct options *o, int B, char *err, size_t err_size) {
  struct backend_spec spec = {
      .cfg = o->cfg, .max_batch = B, .max_seq = o->seq, .train = true, .precision = o->precision};
  struct cuda_options opt = {.fused_attention = o->fused_attention, .matmul_epilogues = o->epilogues};
  return cuda_backend_create_with(&spec, &opt, err, err_size);
}

/* One step of runtime/train.c's loop; returns the loss. */
static double train_step(struct backend *be, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp,
                         float *dlogp, int t) {
  size_t N = (size_t)B * T;
  be->ops->zero_grad(be);
  be->ops->forward(be, tokens, targets, B, T, logp, NULL);
  double loss = 0;
  for (size_t i = 0; i < N; i++) loss -= logp[i];
  loss /= (double)N;
  for (size_t i = 0; i < N; i++) dlogp[i] = -1.0f / (float)N;
  be->ops->backward(be, dlogp, NULL);
  double norm = be->ops->grad_norm(be, 1.0);
  struct adamw_step s = {.lr = 6e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                         .grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f, .t = t};
  be->ops->step(be, &s);
  if (cudaDeviceSynchronize() != cudaSuccess) die("the step failed on the device", NULL);
  return loss;
}

int main(int argc, char **argv) {
  struct options o = parse(argc, argv);
  if (cuda_device_count() == 0) {
    char why[256];
    cuda_describe(why, sizeof why);
    die("no CUDA device", why);
  }
  const char *problem = gpt_config_problem(&o.cfg);
  if (problem) die("the model", problem);
  if (o.seq > o.cfg.context) die("--seq is longer than --context", NULL);
  char info[256], err[256];
  cuda_describe(info, sizeof info);
  size_t free_before = 0, total = 0;
  cudaMemGetInfo(&free_before, &total);

  struct backend *be = NULL;
  int B = o.batch;
  if (B > 0) {
    be = backend_for(&o, B, err, sizeof err);
    if (!be) die("the backend does not fit", err);
  } else {
    for (B = 64; B >= 1 && !be; B /= 2)
      if ((be = backend_for(&o, B, err, sizeof err))) break;
    if (!be) die("not even one sequence fits", err);
  }
  size_t free_after = 0;
  cudaMemGetInfo(&free_after, &total);

  int T = o.seq;
  size_t N = (size_t)B * T, P = be->n_params;
  float *params = xcalloc(P, sizeof *params);
  gpt_init(&o.cfg, params, 1);
  be->ops->write_params(be, params);
  free(params);
  int32_t *tokens = xcalloc(N + 1, sizeof *tokens);
  struct rng r = rng_seed(7);
  for (size_t i = 0; i <= N; i++) tokens[i] = (int32_t)rng_below(&r, (uint64_t)o.cfg.vocab);
  float *logp = xcalloc(N, sizeof *logp), *dlogp = xcalloc(N, sizeof *dlogp);
  double *times = xcalloc((size_t)o.steps, sizeof *times);

  double loss_first = NAN, loss_last = NAN;
  int t = 1;
  for (int s = 0; s < o.warmup + o.steps; s++, t++) {
    double t0 = now();
    double loss = train_step(be, tokens, tokens + 1, B, T, logp, dlogp, t);
    double dt = now() - t0;
    if (s == 0) loss_first = loss;
    loss_last = loss;
    if (s >= o.warmup) times[s - o.warmup] = dt;
  }
  if (o.profile) {
    cudaProfilerStart();
    train_step(be, tokens, tokens + 1, B, T, logp, dlogp, t);
    cudaProfilerStop();
  }
  qsort(times, (size_t)o.steps, sizeof *times, by_value);
  double median = o.steps % 2 ? times[o.steps / 2] : (times[o.steps / 2 - 1] + times[o.steps / 2]) / 2;

  /* the FLOPs a token costs, as interp/plan.c counts them */
  const struct gpt_config *c = &o.cfg;
  double n_matmul = (double)P - (double)gpt_tensor_size(c, GPT_WPE);
  double flops_per_token = 6 * n_matmul + 6.0 * c->layers * T * c->width;
  double tokens_per_s = (double)N / median;
  double achieved = tokens_per_s * flops_per_token;

  printf("device %s\n", info);
  printf("backend %s\n", be->description);
  printf("precision %s\n", backend_precision_name(be->spec.precision));
  printf("params %zu\n", P);
  printf("batch %d\n", B);
  printf("seq %d\n", T);
  printf("tokens_per_step %zu\n", N);
  printf("steps %d\n", o.steps);
  printf("warmup %d\n", o.warmup);
  printf("step_median_s %.6f\n", median);
  printf("step_min_s %.6f\n", times[0]);
  printf("step_max_s %.6f\n", times[o.steps - 1]);
  printf("tokens_per_s %.1f\n", tokens_per_s);
  printf("flops_per_token %.6g\n", flops_per_token);
  printf("model_tflops %.2f\n", achieved / 1e12);
  printf("mfu %.4f\n", achieved / (o.peak_tflops * 1e12));
  printf("loss_first %.4f\n", loss_first);
  printf("loss_last %.4f\n", loss_last);
  printf("device_memory_gib %.2f\n", (double)(free_before - free_after) / (1u << 30));
  backend_destroy(be);
  free(tokens), free(logp), free(dlogp), free(times);
  return 0;
}
