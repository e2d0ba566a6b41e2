/* What bench/generate.c and bench/train_cpu.c share: a GPT model on
 * trainpipe's CPU backend, its parameters set without gpt_init's cost,
 * and the helpers of a timing program (clock, arguments, threads, median).
 * Static functions, for programs compiled from one file against a build's
 * libtrainpipe.a (bench/generate and bench/train-cpu compile them; this
 * header is found beside the file that includes it). Define BENCH_NAME,
 * the program's name for its messages, before including it. */
#ifndef TRAINPIPE_BENCH_MODEL_H
#define TRAINPIPE_BENCH_MODEL_H

#ifndef BENCH_NAME
#error "define BENCH_NAME, the program's name for its messages, before including bench_model.h"
#endif

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/backend.h"
#include "runtime/gpt.h"
#include "runtime/rng.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *msg) {
  fprintf(stderr, BENCH_NAME ": %s\n", msg);
  exit(1);
}

static void *alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

/* A count from the command line; exits with status 2 on anything else. */
static int arg_int(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000000L) {
    fprintf(stderr, BENCH_NAME ": not a count: '%s'\n", s);
    exit(2);
  }
  return (int)v;
}

/* The model of the five arguments V CTX L H C. */
static struct gpt_config arg_model(char **argv) {
  return (struct gpt_config){.vocab = arg_int(argv[0]), .context = arg_int(argv[1]), .layers = arg_int(argv[2]),
                             .heads = arg_int(argv[3]), .width = arg_int(argv[4])};
}

/* THREADS for OpenBLAS and for the backend's OpenMP loops; 0: unchanged. */
static void set_threads(int threads) {
  if (threads <= 0) return;
  openblas_set_num_threads(threads);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, int n) {
  double *s = alloc((size_t)n * sizeof *s);
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  free(s);
  return m;
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] < m) m = v[i];
  return m;
}

/* GPT-2's initialisation in shape (LayerNorm weights 1, biases 0, the
 * other weights of standard deviation 0.02, the residual projections
 * 0.02 / sqrt(2 L)), but uniform rather than normal: gpt_init's Box-Muller
 * takes seconds for GPT-2 small, and neither a training step's speed nor
 * generation's depends on the distribution. */
static void init_params(const struct gpt_config *cfg, float *params) {
  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(cfg, offsets);
  struct rng r = rng_seed(1);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    float *p = params + offsets[t];
    size_t n = gpt_tensor_size(cfg, (enum gpt_tensor)t);
    double std = 0.02;
    switch ((enum gpt_tensor)t) {
    case GPT_LN1W: case GPT_LN2W: case GPT_LNFW:
      for (size_t i = 0; i < n; i++) p[i] = 1.0f;
      continue;
    case GPT_LN1B: case GPT_LN2B: case GPT_LNFB: case GPT_QKVB: case GPT_ATTPROJB: case GPT_FCB: case GPT_FCPROJB:
    case GPT_HEADB:
      memset(p, 0, n * sizeof *p);
      continue;
    case GPT_ATTPROJW: case GPT_FCPROJW:
      std = 0.02 / sqrt(2.0 * cfg->layers);
      break;
    default:
      break;
    }
    double a = 2.0 * sqrt(3.0) * std; /* uniform on [-a/2, a/2] has this std */
    for (size_t i = 0; i < n; i++) p[i] = (float)((rng_uniform(&r) - 0.5) * a);
  }
}

/* The CPU backend of SPEC, its parameters set by init_params; exits on
 * failure. */
static struct backend *bench_backend(const struct backend_spec *spec) {
  char err[256];
  struct backend *be = cpu_backend_create(spec, err, sizeof err);
  if (!be) die(err);
  float *params = alloc(be->n_params * sizeof *params);
  init_params(&spec->cfg, params);
  be->ops->write_params(be, params);
  free(params);
  return be;
}

#endif
