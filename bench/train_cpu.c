/* train_cpu: the C side of bench/train-cpu, compiled by that script against
 * a build's libtrainpipe.a. Four modes, each printing `key value` lines:
 *
 *   train_cpu info
 *       the OpenBLAS that is linked: its configuration, the kernel it chose
 *       for this CPU, its threading (pthreads or OpenMP) and its file.
 *   train_cpu sgemm THREADS SIZE REPS [SIZE REPS ...]
 *       square row-major sgemm (C = A B), best of REPS runs per size after
 *       one warm-up, in GFLOP/s.
 *   train_cpu shapes THREADS V L C B T REPS
 *       every sgemm one training step of that model makes, with the same
 *       shapes, transposes and leading dimensions as runtime/cpu_kernels.c,
 *       each timed alone (best of REPS passes over the list, after one to
 *       warm up) and summed with its multiplicity:
 *       the time the step's matmuls take at the rate OpenBLAS reaches on
 *       their own shapes.
 *   train_cpu step THREADS V CTX L H C B T WARMUP STEPS
 *       trainpipe's CPU backend: one training step as runtime/train.c makes
 *       it (zero_grad, forward, next-token objective, backward, grad_norm,
 *       AdamW step with clipping at 1.0), WARMUP untimed steps then STEPS
 *       timed ones on one fixed random batch; the median and the spread of
 *       the step time, the median of each phase, the loss before and after,
 *       the peak RSS, and the memory the backend is expected to hold.
 *
 * THREADS goes to the backend (omp_set_num_threads) and to OpenBLAS
 * (openblas_set_num_threads); the script also sets OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BENCH_NAME "train_cpu"
#include "bench_model.h"
#include "runtime/objectives/objectives.h"
#include "runtime/schedule.h"

static double maximum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] > m) m = v[i];
  return m;
}

static void fill(float *x, size_t n, uint64_t seed) {
  struct rng r = rng_seed(seed);
  for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(&r) - 0.5);
}

/* ------------------------------------------------------------------------ */

static int mode_info(void) {
  int par = openblas_get_parallel();
  printf("openblas_config %s\n", openblas_get_config());
  printf("openblas_core %s\n", openblas_get_corename());
  printf("openblas_threading %s\n", par == 0 ? "sequential" : par == 1 ? "pthreads" : par == 2 ? "OpenMP" : "unknown");
  printf("openblas_max_threads %d\n", openblas_get_num_threads());
  /* The file the dynamic linker chose, from this process's mappings. */
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096], found[4096] = "";
  while (f && fgets(line, sizeof line, f)) {
    char *path = strchr(line, '/');
    if (path && strstr(path, "blas")) {
      path[strcspn(path, "\n")] = '\0';
      snprintf(found, sizeof found, "%s", path);
      break;
    }
  }
  if (f) fclose(f);
  printf("openblas_file %s\n", found[0] ? found : "(linked statically)");
  return 0;
}

static int mode_sgemm(int argc, char **argv) {
  if (argc < 3 || argc % 2 == 0) die("usage: train_cpu sgemm THREADS SIZE REPS [SIZE REPS ...]");
  set_threads(arg_int(argv[0]));
  double best_all = 0;
  for (int a = 1; a + 1 < argc; a += 2) {
    int n = arg_int(argv[a]), reps = arg_int(argv[a + 1]);
    if (n < 1 || reps < 1) die("sgemm sizes and repetitions must be positive");
    size_t nn = (size_t)n * n;
    float *A = alloc(nn * sizeof *A), *B = alloc(nn * sizeof *B), *C = alloc(nn * sizeof *C);
    fill(A, nn, 1);
    fill(B, nn, 2);
    memset(C, 0, nn * sizeof *C);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* run 0 warms up */
      double t0 = now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
      double t = now() - t0;
      if (r > 0 && t < best) best = t;
    }
    double gflops = 2.0 * n * (double)n * n / best * 1e-9;
    printf("sgemm %d %.6f %.2f\n", n, best, gflops);
    if (gflops > best_all) best_all = gflops;
    free(A);
    free(B);
    free(C);
  }
  printf("sgemm_peak_gflops %.2f\n", best_all);
  return 0;
}

/* ------------------------------------------------------------------------ */

/* One sgemm of a training step: C[M, N] = op(A) op(B), row-major, with the
 * leading dimensions the kernels pass; `times` per step. */
struct gemm {
  const char *what;
  int ta, tb; /* transposed */
  int M, N, K, lda, ldb;
  float beta;
  int times;
};

static int step_gemms(struct gemm *g, int V, int L, int C, int N) {
  int n = 0;
  /* matmul_forward(out, inp[N, C], w[OC, C]): out = inp w^T, beta 1 (bias first) */
  /* matmul_backward: dinp[N, C] += dout[N, OC] w[OC, C]; dw[OC, C] += dout^T inp */
  struct {
    const char *name;
    int C_in, OC;
  } lin[] = {{"qkv", C, 3 * C}, {"attproj", C, C}, {"fc", C, 4 * C}, {"fcproj", 4 * C, C}};
  for (int i = 0; i < 4; i++) {
    int ci = lin[i].C_in, oc = lin[i].OC;
    g[n++] = (struct gemm){lin[i].name, 0, 1, N, oc, ci, ci, ci, 1.0f, L};          /* forward */
    g[n++] = (struct gemm){lin[i].name, 0, 0, N, ci, oc, oc, ci, 1.0f, L};          /* dinp */
    g[n++] = (struct gemm){lin[i].name, 1, 0, oc, ci, N, oc, ci, 1.0f, L};          /* dw */
  }
  g[n++] = (struct gemm){"lm_head", 0, 1, N, V, C, C, C, 0.0f, 1}; /* logits = x wte^T */
  g[n++] = (struct gemm){"lm_head", 0, 0, N, C, V, V, C, 1.0f, 1}; /* dx += dlogits wte */
  g[n++] = (struct gemm){"lm_head", 1, 0, V, C, N, V, C, 1.0f, 1}; /* dwte += dlogits^T x */
  return n;
}

static int mode_shapes(int argc, char **argv) {
  if (argc != 7) die("usage: train_cpu shapes THREADS V L C B T REPS");
  set_threads(arg_int(argv[0]));
  int V = arg_int(argv[1]), L = arg_int(argv[2]), C = arg_int(argv[3]);
  int N = arg_int(argv[4]) * arg_int(argv[5]), reps = arg_int(argv[6]);
  if (V < 1 || L < 0 || C < 1 || N < 1 || reps < 1) die("shapes: bad arguments");
  struct gemm g[16];
  int ng = step_gemms(g, V, L, C, N);
  size_t most = 0;
  for (int i = 0; i < ng; i++) {
    size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N, c = (size_t)g[i].M * g[i].N;
    if (a > most) most = a;
    if (b > most) most = b;
    if (c > most) most = c;
  }
  float *A = alloc(most * sizeof *A), *B = alloc(most * sizeof *B), *Cm = alloc(most * sizeof *Cm);
  fill(A, most, 3);
  fill(B, most, 4);
  memset(Cm, 0, most * sizeof *Cm);
  /* Passes over the whole list, the first to warm up, so that the runs of
   * one shape are spread over the measurement and a burst of other work on
   * the machine spoils one of them rather than all. */
  double best[16];
  for (int i = 0; i < ng; i++) best[i] = 1e30;
  for (int r = 0; r <= reps; r++) {
    for (int i = 0; i < ng; i++) {
      if (g[i].times == 0) continue;
      double t0 = now();
      cblas_sgemm(CblasRowMajor, g[i].ta ? CblasTrans : CblasNoTrans, g[i].tb ? CblasTrans : CblasNoTrans, g[i].M,
                  g[i].N, g[i].K, 1.0f, A, g[i].lda, B, g[i].ldb, g[i].beta, Cm, g[i].N);
      double t = now() - t0;
      if (r > 0 && t < best[i]) best[i] = t;
    }
  }
  double total_t = 0, total_f = 0;
  for (int i = 0; i < ng; i++) {
    if (g[i].times == 0) continue;
    double f = 2.0 * g[i].M * (double)g[i].N * g[i].K;
    printf("gemm %s %c%c %d %d %d x%d %.6f %.2f\n", g[i].what, g[i].ta ? 'T' : 'N', g[i].tb ? 'T' : 'N', g[i].M,
           g[i].N, g[i].K, g[i].times, best[i], f / best[i] * 1e-9);
    total_t += best[i] * g[i].times;
    total_f += f * g[i].times;
  }
  printf("gemm_step_seconds %.6f\n", total_t);
  printf("gemm_step_gflops %.2f\n", total_f / total_t * 1e-9);
  free(A);
  free(B);
  free(Cm);
  return 0;
}

/* ------------------------------------------------------------------------ */

/* The floats cpu_backend_create allocates for the activations and the
 * backward's scratch (runtime/cpu_backend.c; keep the two in step). */
static size_t backend_activation_floats(const struct gpt_config *cfg, size_t B, size_t T) {
  size_t C = (size_t)cfg->width, H = (size_t)cfg->heads, V = (size_t)cfg->vocab, L = (size_t)cfg->layers, N = B * T;
  size_t per_layer = 18 * N * C + B * H * T * T + 4 * N + 16 * 16;
  size_t total = L * per_layer + 2 * N * C + 3 * N + N * V + 16 * 16;
  total += 15 * N * C + B * H * T * T + 16 * 16;
  return total;
}

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

enum { PH_ZERO, PH_FORWARD, PH_LOSS, PH_BACKWARD, PH_NORM, PH_STEP, PH_COUNT };
static const char *phase_name[PH_COUNT] = {"zero_grad", "forward", "objective", "backward", "grad_norm", "adamw"};

static int mode_step(int argc, char **argv) {
  if (argc != 10) die("usage: train_cpu step THREADS V CTX L H C B T WARMUP STEPS");
  int threads = arg_int(argv[0]);
  /* CTX sizes the position table only: sequences of T <= CTX tokens. */
  struct gpt_config cfg = arg_model(argv + 1);
  int B = arg_int(argv[6]), T = arg_int(argv[7]), warmup = arg_int(argv[8]), steps = arg_int(argv[9]);
  if (steps < 1) die("step: at least one timed step");
  set_threads(threads);
  long rss_start = peak_rss_kib();

  double t_setup = now();
  struct backend_spec spec = {.cfg = cfg, .max_batch = B, .max_seq = T, .threads = threads, .train = true};
  struct backend *be = bench_backend(&spec);
  size_t P = be->n_params, n = (size_t)B * T;
  /* One batch of random token ids; the targets are the next tokens. */
  int32_t *seq = alloc((n + 1) * sizeof *seq), *tokens = alloc(n * sizeof *tokens), *targets = alloc(n * sizeof *targets);
  struct rng r = rng_seed(7);
  for (size_t i = 0; i <= n; i++) seq[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
  for (size_t i = 0; i < n; i++) {
    tokens[i] = seq[i];
    targets[i] = seq[i + 1];
  }
  float *logp = alloc(n * sizeof *logp), *dlogp = alloc(n * sizeof *dlogp);

  t_setup = now() - t_setup;
  int total = warmup + steps;
  double first_step = 0;
  double *step_t = alloc((size_t)steps * sizeof *step_t), *phase_t[PH_COUNT];
  for (int p = 0; p < PH_COUNT; p++) phase_t[p] = alloc((size_t)steps * sizeof *phase_t[p]);
  double first_loss = NAN, last_loss = NAN;
  for (int s = 0; s < total; s++) {
    double t[PH_COUNT + 1];
    t[0] = now();
    be->ops->zero_grad(be);
    t[1] = now();
    be->ops->forward(be, tokens, targets, B, T, logp, NULL);
    t[2] = now();
    double loss = next_token_loss(logp, targets, n, (double)n, dlogp);
    t[3] = now();
    be->ops->backward(be, dlogp, NULL);
    t[4] = now();
    double norm = be->ops->grad_norm(be, 1.0);
    t[5] = now();
    struct adamw_step st = {.lr = 6e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                            .grad_scale = (float)clip_factor(norm, 1.0), .t = s + 1};
    be->ops->step(be, &st);
    t[6] = now();
    if (s == 0) first_loss = loss, first_step = t[6] - t[0];
    last_loss = loss;
    if (s >= warmup) {
      step_t[s - warmup] = t[6] - t[0];
      for (int p = 0; p < PH_COUNT; p++) phase_t[p][s - warmup] = t[p + 1] - t[p];
    }
  }
  long rss = peak_rss_kib();

  size_t acts = backend_activation_floats(&cfg, (size_t)B, (size_t)T);
  double state_bytes = 16.0 * (double)P;          /* params, grads, AdamW m and v */
  double act_bytes = 4.0 * (double)acts + 8.0 * n; /* + tokens and targets */
  printf("params %zu\n", P);
  printf("tokens_per_step %zu\n", n);
  printf("steps %d\n", steps);
  printf("warmup %d\n", warmup);
  printf("setup_s %.6f\n", t_setup);
  printf("first_step_s %.6f\n", first_step);
  printf("step_median_s %.6f\n", median(step_t, steps));
  printf("step_min_s %.6f\n", minimum(step_t, steps));
  printf("step_max_s %.6f\n", maximum(step_t, steps));
  for (int p = 0; p < PH_COUNT; p++) printf("phase_%s_s %.6f\n", phase_name[p], median(phase_t[p], steps));
  printf("loss_first %.4f\n", first_loss);
  printf("loss_last %.4f\n", last_loss);
  printf("rss_start_kib %ld\n", rss_start);
  printf("rss_peak_kib %ld\n", rss);
  printf("model_state_bytes %.0f\n", state_bytes);
  printf("activation_bytes %.0f\n", act_bytes);
  backend_destroy(be);
  free(seq);
  free(tokens);
  free(targets);
  free(logp);
  free(dlogp);
  free(step_t);
  for (int p = 0; p < PH_COUNT; p++) free(phase_t[p]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "info") == 0) return mode_info();
  if (argc >= 2 && strcmp(argv[1], "sgemm") == 0) return mode_sgemm(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "shapes") == 0) return mode_shapes(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "step") == 0) return mode_step(argc - 2, argv + 2);
  fprintf(stderr, "usage: train_cpu info | sgemm ... | shapes ... | step ...\n");
  return 2;
}
