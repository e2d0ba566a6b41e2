/* The CUDA backend (gpu/cuda_backend.cu) against the CPU backend on the
 * same tiny model and batch: the log-probabilities and the scalar head's
 * values of a forward, every parameter's gradient after a backward from the
 * same dlogp and dvalues, the weights after one AdamW step (against the
 * CPU's AdamW on the GPU's gradients), and the
 * log-probabilities of a backend that does not train; then the whole
 * forward, backward and step run twice on the GPU from the same state,
 * which must give the same bits. All of that in fp32; then the forward and
 * the gradients in tf32 and in bf16 against the CPU's fp32, within their
 * rounding; then generation through the KV cache (prefill and decode
 * logits against the CPU's, and the tokens runtime/generate.c samples from
 * them with the same seed). Prints the largest relative error of each and
 * exits 1 on a failure, 77 (skipped) where no device is present.
 *
 * Relative error as in kernels_test.c: |gpu - cpu| / max(|cpu|, rms of the
 * CPU tensor). Tolerances: 1e-4 for the forward outputs and 1e-3 for the
 * gradients (fp32 on both sides, but cuBLAS sums the matmuls' C or N terms
 * in another order than OpenBLAS, and a gradient goes through every
 * layer's such sums); 1e-5 for the stepped weights, the same formula on
 * the same numbers. tf32 and bf16 are compared by the error of the whole
 * tensor, |gpu - cpu| / |cpu| in the L2 norm: about 5e-4 a matmul in tf32
 * and 4e-3 in bf16 (8 and 16 bits of mantissa), compounded through the
 * layers, give the tolerances 3e-3 and 3e-2 for the outputs and 1e-2 and
 * 6e-2 for the gradients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/cuda_backend.h"
#include "gpu/device.h"
#include "runtime/backend.h"
#include "runtime/cpu_kernels.h"
#include "runtime/generate.h"
#include "runtime/gpt.h"
#include "runtime/rng.h"
#include "tests/gpu/norm_error.h"

enum { B = 2, T = 24 };

static int failures;

static double max_rel(const float *gpu, const float *cpu, size_t n) {
  double sq = 0, worst = 0;
  for (size_t i = 0; i < n; i++) sq += (double)cpu[i] * cpu[i];
  double rms = n ? sqrt(sq / (double)n) : 0;
  for (size_t i = 0; i < n; i++) {
    double scale = fmax(fabs(cpu[i]), rms);
    double e = scale > 0 ? fabs((double)gpu[i] - cpu[i]) / scale : fabs((double)gpu[i] - cpu[i]);
    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
  }
  return worst;
}

static void compare(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
  double e = max_rel(gpu, cpu, n);
  bool ok = e <= tol;
  printf("%-28s max rel err %.3g (tolerance %.0e)%s\n", what, e, tol, ok ? "" : "  FAILED");
  failures += !ok;
}

/* |gpu - cpu| / |cpu| over the whole tensor. */
static void compare_norm(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
  double e = norm_error(gpu, cpu, n);
  bool ok = e <= tol; /* false for NaN */
  printf("%-28s norm rel err %.3g (tolerance %.0e)%s\n", what, e, tol, ok ? "" : "  FAILED");
  failures += !ok;
}

/* The gradients of the last forward from DLOGP and DVALUES, into GRADS. */
static void gradients(struct backend *be, const float *dlogp, const float *dvalues, float *grads) {
  be->ops->zero_grad(be);
  be->ops->backward(be, dlogp, dvalues);
  be->ops->read_grads(be, grads);
}

static float *floats(size_t n) {
  float *p = calloc(n ? n : 1, sizeof *p);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* Generation on a backend that does not train, with 3 rows of KV cache:
 * the GPU's prefill and decode logits against the CPU's (fp32), the
 * prefill's against the GPU's own next_logits, and the tokens that
 * generate() samples from each with one seed. */
static void check_generation(const struct gpt_config *cfg, const float *params) {
  enum { ROWS = 3, STEPS = 6 };
  int V = cfg->vocab;
  struct backend_spec spec = {.cfg = *cfg, .max_batch = ROWS, .max_seq = T, .gen_rows = ROWS,
                              .precision = PRECISION_FP32};
  char err[256];
  struct backend *cpu = cpu_backend_create(&spec, err, sizeof err);
  struct backend *gpu = cpu ? cuda_backend_create(&spec, err, sizeof err) : NULL;
  if (!cpu || !gpu) {
    printf("cannot create generation backends: %s  FAILED\n", err);
    failures++;
    backend_destroy(cpu);
    return;
  }
  cpu->ops->write_params(cpu, params);
  gpu->ops->write_params(gpu, params);
  struct rng r = rng_seed(23);
  const int prompt_len[ROWS] = {5, 1, 9};
  int32_t prompts[ROWS][9];
  float *lc = floats((size_t)ROWS * V), *lg = floats((size_t)ROWS * V), *ln = floats((size_t)V);
  double worst_prefill = 0, worst_next = 0;
  for (int row = 0; row < ROWS; row++) {
    for (int i = 0; i < prompt_len[row]; i++) prompts[row][i] = (int32_t)rng_below(&r, (uint64_t)V);
    cpu->ops->gen_prefill(cpu, row, prompts[row], prompt_len[row], lc);
    gpu->ops->gen_prefill(gpu, row, prompts[row], prompt_len[row], lg);
    worst_prefill = fmax(worst_prefill, max_rel(lg, lc, (size_t)V));
    gpu->ops->next_logits(gpu, prompts[row], 1, prompt_len[row], ln);
    worst_next = fmax(worst_next, max_rel(lg, ln, (size_t)V));
  }
  printf("%-28s max rel err %.3g (tolerance 1e-04)%s\n", "prefill logits", worst_prefill,
         worst_prefill <= 1e-4 ? "" : "  FAILED");
  printf("%-28s max rel err %.3g (tolerance 1e-05)%s\n", "prefill against next_logits", worst_next,
         worst_next <= 1e-5 ? "" : "  FAILED");
  failures += !(worst_prefill <= 1e-4) + !(worst_next <= 1e-5);
  /* decode: the rows in another order than they were filled */
  const int rows[ROWS] = {2, 0, 1};
  double worst_decode = 0;
  for (int step = 0; step < STEPS; step++) {
    int32_t tok[ROWS];
    for (int i = 0; i < ROWS; i++) tok[i] = (int32_t)rng_below(&r, (uint64_t)V);
    cpu->ops->gen_decode(cpu, rows, tok, ROWS, lc);
    gpu->ops->gen_decode(gpu, rows, tok, ROWS, lg);
    worst_decode = fmax(worst_decode, max_rel(lg, lc, (size_t)ROWS * V));
  }
  printf("%-28s max rel err %.3g (tolerance 1e-04)%s\n", "decode logits", worst_decode,
         worst_decode <= 1e-4 ? "" : "  FAILED");
  failures += !(worst_decode <= 1e-4);

  /* sampling at temperature 1 from both, one seed */
  struct generate_options opt = {.temperature = 1.0, .top_p = 1.0, .max_new_tokens = 12, .stop = -1, .seed = 5};
  int32_t out_c[ROWS][12], out_g[ROWS][12];
  struct completion cc[ROWS], cg[ROWS];
  for (int i = 0; i < ROWS; i++) {
    cc[i] = (struct completion){.prompt = prompts[i], .prompt_len = prompt_len[i], .tokens = out_c[i]};
    cg[i] = (struct completion){.prompt = prompts[i], .prompt_len = prompt_len[i], .tokens = out_g[i]};
  }
  bool ok = generate(cpu, cc, ROWS, &opt, err, sizeof err) && generate(gpu, cg, ROWS, &opt, err, sizeof err);
  for (int i = 0; ok && i < ROWS; i++)
    ok = cc[i].len == cg[i].len && memcmp(out_c[i], out_g[i], (size_t)cc[i].len * sizeof out_c[i][0]) == 0;
  printf("%-28s %s\n", "sampled tokens, one seed", ok ? "the same" : "DIFFER  FAILED");
  failures += !ok;
  free(lc), free(lg), free(ln);
  backend_destroy(gpu);
  backend_destroy(cpu);
}

/* The backend's other ways (struct cuda_options) in bf16: fused attention
 * (gpu/attention.h), cuBLASLt's epilogues, and both. On MODEL and 70
 * tokens (a partial second tile of fused attention): the forward and
 * every gradient against the CPU's fp32 within bf16's tolerances, a
 * step's bits the same twice, and generation's logits (its prefill
 * attends through the fused kernel) against the CPU's. NAME prefixes the
 * lines, and the backend's description must name each option set. */
static void check_options(const struct gpt_config *model, const struct cuda_options *opt, const char *name) {
  enum { FB = 2, FT = 70 };
  struct gpt_config cfg = *model;
  struct backend_spec spec = {.cfg = cfg, .max_batch = FB, .max_seq = FT, .train = true, .gen_rows = 2,
                              .precision = PRECISION_BF16};
  char err[256];
  struct backend *cpu = NULL, *gpu = NULL;
  struct backend_spec cpu_spec = spec;
  cpu_spec.precision = PRECISION_FP32;
  cpu = cpu_backend_create(&cpu_spec, err, sizeof err);
  if (cpu) gpu = cuda_backend_create_with(&spec, opt, err, sizeof err);
  if (!gpu || (opt->fused_attention && !strstr(gpu->description, "fused attention")) ||
      (opt->matmul_epilogues && !strstr(gpu->description, "cuBLASLt epilogues"))) {
    printf("cannot create a backend with %s: %s  FAILED\n", name, gpu ? gpu->description : err);
    failures++;
    backend_destroy(gpu);
    backend_destroy(cpu);
    return;
  }
  size_t P = cpu->n_params, N = (size_t)FB * FT;
  float *params = floats(P), *logp_c = floats(N), *logp_g = floats(N), *val_c = floats(N), *val_g = floats(N);
  float *grad_c = floats(P), *grad_g = floats(P), *dlogp = floats(N), *dvalues = floats(N);
  int32_t *tokens = calloc(N, sizeof *tokens), *targets = calloc(N, sizeof *targets);
  if (!tokens || !targets) exit(1);
  gpt_init(&cfg, params, 9);
  struct rng r = rng_seed(31);
  for (size_t i = 0; i < N; i++) {
    tokens[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
    targets[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
    dlogp[i] = (float)(rng_uniform(&r) - 0.5);
    dvalues[i] = (float)(rng_uniform(&r) - 0.5);
  }
  cpu->ops->write_params(cpu, params);
  gpu->ops->write_params(gpu, params);
  cpu->ops->forward(cpu, tokens, targets, FB, FT, logp_c, val_c);
  gpu->ops->forward(gpu, tokens, targets, FB, FT, logp_g, val_g);
  char what[96];
  snprintf(what, sizeof what, "%s forward logp", name);
  compare_norm(what, logp_g, logp_c, N, 3e-2);
  snprintf(what, sizeof what, "%s forward values", name);
  compare_norm(what, val_g, val_c, N, 3e-2);
  gradients(cpu, dlogp, dvalues, grad_c);
  gradients(gpu, dlogp, dvalues, grad_g);
  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(&cfg, offsets);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t n = gpt_tensor_size(&cfg, (enum gpt_tensor)t);
    snprintf(what, sizeof what, "%s gradient of %s", name, gpt_tensor_name((enum gpt_tensor)t));
    if (n) compare_norm(what, grad_g + offsets[t], grad_c + offsets[t], n, 6e-2);
  }
  /* a step twice from the same state */
  struct adamw_step s = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                         .grad_scale = 1.0f, .t = 1};
  float *after[2] = {floats(P), floats(P)}, *zeros = floats(P);
  for (int run = 0; run < 2; run++) {
    gpu->ops->write_params(gpu, params);
    gpu->ops->write_moments(gpu, zeros, zeros);
    gpu->ops->forward(gpu, tokens, targets, FB, FT, logp_g, val_g);
    gpu->ops->zero_grad(gpu);
    gpu->ops->backward(gpu, dlogp, dvalues);
    gpu->ops->step(gpu, &s);
    gpu->ops->read_params(gpu, after[run]);
  }
  bool same = memcmp(after[0], after[1], P * sizeof *after[0]) == 0;
  snprintf(what, sizeof what, "%s step twice, same bits", name);
  printf("%-28s %s\n", what, same ? "yes" : "NO  FAILED");
  failures += !same;
  /* generation: a prompt of 66 tokens, then 3 decode steps */
  gpu->ops->write_params(gpu, params);
  int V = cfg.vocab, rows[1] = {0};
  float *lc = floats((size_t)V), *lg = floats((size_t)V);
  cpu->ops->gen_prefill(cpu, 0, tokens, 66, lc);
  gpu->ops->gen_prefill(gpu, 0, tokens, 66, lg);
  snprintf(what, sizeof what, "%s prefill logits", name);
  compare_norm(what, lg, lc, (size_t)V, 3e-2);
  for (int step = 0; step < 3; step++) {
    cpu->ops->gen_decode(cpu, rows, tokens + 66 + step, 1, lc);
    gpu->ops->gen_decode(gpu, rows, tokens + 66 + step, 1, lg);
  }
  snprintf(what, sizeof what, "%s decode logits", name);
  compare_norm(what, lg, lc, (size_t)V, 3e-2);
  free(params), free(logp_c), free(logp_g), free(val_c), free(val_g), free(grad_c), free(grad_g), free(dlogp);
  free(dvalues), free(tokens), free(targets), free(after[0]), free(after[1]), free(zeros), free(lc), free(lg);
  backend_destroy(gpu);
  backend_destroy(cpu);
}

int main(void) {
  if (cuda_device_count() == 0) {
    char why[256];
    cuda_describe(why, sizeof why);
    printf("SKIP: %s\n", why);
    return 77;
  }
  struct gpt_config cfg = {.vocab = 300, .context = 32, .layers = 2, .heads = 4, .width = 64, .head = 1};
  struct backend_spec spec = {.cfg = cfg, .max_batch = B, .max_seq = T, .train = true, .precision = PRECISION_FP32};
  char err[256];
  struct backend *cpu = cpu_backend_create(&spec, err, sizeof err);
  struct backend *gpu = cpu ? cuda_backend_create(&spec, err, sizeof err) : NULL;
  if (!cpu || !gpu) {
    fprintf(stderr, "cannot create the backends: %s\n", err);
    return 1;
  }
  size_t P = cpu->n_params, N = (size_t)B * T;
  float *params = floats(P);
  gpt_init(&cfg, params, 7);
  struct rng r = rng_seed(11);
  /* the head starts small: give its bias a value too */
  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(&cfg, offsets);
  params[offsets[GPT_HEADB]] = 0.25f;
  int32_t tokens[B * T], targets[B * T];
  float dlogp[B * T], dvalues[B * T];
  for (size_t i = 0; i < N; i++) {
    tokens[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
    targets[i] = i % 5 == 0 ? -1 : (int32_t)rng_below(&r, (uint64_t)cfg.vocab);
    dlogp[i] = (float)(rng_uniform(&r) - 0.5);
    dvalues[i] = (float)(rng_uniform(&r) - 0.5);
  }
  cpu->ops->write_params(cpu, params);
  gpu->ops->write_params(gpu, params);

  /* forward */
  float *logp_c = floats(N), *logp_g = floats(N), *val_c = floats(N), *val_g = floats(N);
  cpu->ops->forward(cpu, tokens, targets, B, T, logp_c, val_c);
  gpu->ops->forward(gpu, tokens, targets, B, T, logp_g, val_g);
  compare("forward logp", logp_g, logp_c, N, 1e-4);
  compare("forward values", val_g, val_c, N, 1e-4);

  /* backward: every gradient */
  float *grad_c = floats(P), *grad_g = floats(P);
  gradients(cpu, dlogp, dvalues, grad_c);
  gradients(gpu, dlogp, dvalues, grad_g);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t n = gpt_tensor_size(&cfg, (enum gpt_tensor)t);
    char what[64];
    snprintf(what, sizeof what, "gradient of %s", gpt_tensor_name((enum gpt_tensor)t));
    if (n) compare(what, grad_g + offsets[t], grad_c + offsets[t], n, 1e-3);
  }
  double norm_c = cpu->ops->grad_norm(cpu, 1.0), norm_g = gpu->ops->grad_norm(gpu, 1.0);
  float nc = (float)norm_c, ng = (float)norm_g;
  compare("gradient norm", &ng, &nc, 1, 1e-4);

  /* one AdamW step */
  struct adamw_step s = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                         .grad_scale = 1.0f, .t = 1};
  gpu->ops->step(gpu, &s);
  float *after_g = floats(P);
  gpu->ops->read_params(gpu, after_g);
  /* AdamW's first step moves each weight by about lr sign(g), so a
   * gradient that is rounding noise on both sides (the key bias's, which
   * the softmax cancels) moves the CPU's and the GPU's weights apart by up
   * to lr whatever the kernels do. The step is therefore checked on the
   * GPU's own gradients, against the CPU's AdamW. */
  float *expected = floats(P), *m0 = floats(P), *v0 = floats(P);
  memcpy(expected, params, P * sizeof *expected);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t at = offsets[t], n = gpt_tensor_size(&cfg, (enum gpt_tensor)t);
    float decay = gpt_tensor_decays((enum gpt_tensor)t) ? s.weight_decay : 0.0f;
    adamw_update(expected + at, grad_g + at, m0 + at, v0 + at, n, s.lr, s.beta1, s.beta2, s.eps, decay, s.grad_scale,
                 s.t);
  }
  compare("weights after a step", after_g, expected, P, 1e-5);
  free(expected), free(m0), free(v0);

  /* the same step again from the same state: the same bits */
  float *again = floats(P);
  gpu->ops->write_params(gpu, params);
  float *zeros = floats(P);
  gpu->ops->write_moments(gpu, zeros, zeros);
  gpu->ops->forward(gpu, tokens, targets, B, T, logp_g, val_g);
  gpu->ops->zero_grad(gpu);
  gpu->ops->backward(gpu, dlogp, dvalues);
  gpu->ops->step(gpu, &s);
  gpu->ops->read_params(gpu, again);
  bool same = memcmp(again, after_g, P * sizeof *again) == 0;
  printf("%-28s %s\n", "a step twice, same bits", same ? "yes" : "NO  FAILED");
  failures += !same;

  /* a backend that does not train: its log-probabilities, 64 rows at a time */
  struct backend_spec frozen = spec;
  frozen.train = false;
  struct backend *gpu_frozen = cuda_backend_create(&frozen, err, sizeof err);
  if (!gpu_frozen) {
    fprintf(stderr, "cannot create a backend that does not train: %s\n", err);
    return 1;
  }
  gpu_frozen->ops->write_params(gpu_frozen, params);
  cpu->ops->write_params(cpu, params);
  cpu->ops->forward(cpu, tokens, targets, B, T, logp_c, val_c);
  gpu_frozen->ops->forward(gpu_frozen, tokens, targets, B, T, logp_g, NULL);
  compare("frozen forward logp", logp_g, logp_c, N, 1e-4);
  backend_destroy(gpu_frozen);

  /* tf32 and bf16 against the CPU's fp32 */
  gradients(cpu, dlogp, dvalues, grad_c);
  const struct {
    enum backend_precision precision;
    double out_tol, grad_tol;
  } modes[] = {{PRECISION_TF32, 3e-3, 1e-2}, {PRECISION_BF16, 3e-2, 6e-2}};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    struct backend_spec ms = spec;
    ms.precision = modes[m].precision;
    struct backend *g = cuda_backend_create(&ms, err, sizeof err);
    if (!g) {
      fprintf(stderr, "cannot create a %s backend: %s\n", backend_precision_name(ms.precision), err);
      return 1;
    }
    const char *name = backend_precision_name(ms.precision);
    char what[64];
    g->ops->write_params(g, params);
    g->ops->forward(g, tokens, targets, B, T, logp_g, val_g);
    gradients(g, dlogp, dvalues, grad_g);
    snprintf(what, sizeof what, "%s forward logp", name);
    compare_norm(what, logp_g, logp_c, N, modes[m].out_tol);
    snprintf(what, sizeof what, "%s forward values", name);
    compare_norm(what, val_g, val_c, N, modes[m].out_tol);
    for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
      size_t n = gpt_tensor_size(&cfg, (enum gpt_tensor)t);
      snprintf(what, sizeof what, "%s gradient of %s", name, gpt_tensor_name((enum gpt_tensor)t));
      if (n) compare_norm(what, grad_g + offsets[t], grad_c + offsets[t], n, modes[m].grad_tol);
    }
    backend_destroy(g);
  }

  /* a bf16 backend that does not train: its bf16 logits a few rows at a
   * time, against the CPU's fp32 */
  frozen.precision = PRECISION_BF16;
  gpu_frozen = cuda_backend_create(&frozen, err, sizeof err);
  if (!gpu_frozen) {
    fprintf(stderr, "cannot create a bf16 backend that does not train: %s\n", err);
    return 1;
  }
  gpu_frozen->ops->write_params(gpu_frozen, params);
  gpu_frozen->ops->forward(gpu_frozen, tokens, targets, B, T, logp_g, NULL);
  compare_norm("bf16 frozen forward logp", logp_g, logp_c, N, 3e-2);
  backend_destroy(gpu_frozen);

  check_generation(&cfg, params);
  struct gpt_config even = {.vocab = 300, .context = 80, .layers = 2, .heads = 2, .width = 128, .head = 1};
  /* Every tensor a multiple of 256 bytes in bf16 above; here most weights
   * and activations sit at offsets that are not, which cuBLASLt must be
   * told of. */
  struct gpt_config odd = {.vocab = 301, .context = 80, .layers = 2, .heads = 3, .width = 48, .head = 1};
  check_options(&even, &(struct cuda_options){.fused_attention = true}, "fused");
  check_options(&even, &(struct cuda_options){.matmul_epilogues = true}, "epilogues");
  check_options(&even, &(struct cuda_options){.fused_attention = true, .matmul_epilogues = true}, "fused, epilogues");
  check_options(&odd, &(struct cuda_options){.fused_attention = true, .matmul_epilogues = true}, "odd sizes");

  backend_destroy(gpu);
  backend_destroy(cpu);
  free(params), free(logp_c), free(logp_g), free(val_c), free(val_g), free(grad_c), free(grad_g);
  free(after_g), free(again), free(zeros);
  printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
