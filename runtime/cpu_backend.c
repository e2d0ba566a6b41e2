/* The CPU backend: the GPT-2 forward and backward passes composed from the
 * kernels of cpu_kernels.h, as llm.c lays them out. Every buffer is
 * allocated once, at creation, for the largest micro-batch; a forward keeps
 * the activations its backward needs, and the backward walks the layers in
 * reverse with one running gradient of the residual stream. A backend that
 * does not train (a frozen reference, a reward model) keeps one layer's
 * activations, which every layer reuses.
 *
 * Generation has buffers of its own (struct gen_state), so that sampling
 * between a forward and its backward leaves what the backward needs: a
 * KV cache of gen_rows rows, and scratch for one prompt of max_seq tokens
 * or one new token of every row. A prefill runs exactly the kernels a
 * forward of one sequence runs, so its logits are next_logits' bit for
 * bit; a decode step runs each weight once over all its rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/activations.h"
#include "runtime/backend.h"
#include "runtime/cpu_kernels.h"

/* Without training, logits are computed for this many rows at a time and
 * never kept whole: a frozen reference of a large vocabulary needs only
 * LOGIT_ROWS x V floats for them. */
#define LOGIT_ROWS 64

/* The KV cache and generation's scratch, for R = gen_rows rows of S =
 * max_seq positions; P = max(R, S) positions are computed at a time (a
 * prompt, or one token of every row). */
struct gen_state {
  float *k, *v;  /* [L, R, S, C]: the keys and values of every position each row holds */
  int *len;      /* [R]: the positions each row holds */
  int *keys;     /* [R]: the keys each token of a decode step attends to */
  struct gen_scratch s;
  float *memory; /* the scratch, one allocation */
};

struct cpu_backend {
  struct backend base;
  size_t offsets[GPT_TENSOR_COUNT];
  float *params, *grads, *m, *v;
  struct activations act;
  int32_t *tokens, *targets; /* of the last forward */
  int B, T;                  /* of the last forward */
  bool lm_head;              /* whether the last forward computed log-probabilities */
  float *memory;             /* the activations, one allocation */
  struct gen_state gen;      /* all NULL without generation rows */
};

static float *tensor(float *base, const struct cpu_backend *b, enum gpt_tensor t) { return base + b->offsets[t]; }

/* The LM head is skipped without TARGETS or LOGP (a reward model, or
 * next_logits, which wants the logits of a few rows only). */
static void cpu_forward(struct backend *be, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp,
                        float *values) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, V = cfg->vocab, L = cfg->layers;
  size_t N = (size_t)B * T;
  float *p = b->params;
  memcpy(b->tokens, tokens, N * sizeof *tokens);
  b->lm_head = targets && logp;
  if (b->lm_head) memcpy(b->targets, targets, N * sizeof *targets);
  b->B = B;
  b->T = T;
  encoder_forward(b->act.encoded, tokens, tensor(p, b, GPT_WTE), tensor(p, b, GPT_WPE), B, T, C);
  const float *x = b->act.encoded;
  for (int l = 0; l < L; l++) {
    struct layer_acts *a = &b->act.layers[l];
    size_t c = (size_t)l * C;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, tensor(p, b, GPT_LN1W) + c, tensor(p, b, GPT_LN1B) + c,
                      (int)N, C);
    matmul_forward(a->qkv, a->ln1, tensor(p, b, GPT_QKVW) + c * 3 * C, tensor(p, b, GPT_QKVB) + 3 * c, (int)N, C,
                   3 * C);
    attention_forward(a->atty, a->att, a->qkv, B, T, C, H);
    matmul_forward(a->attproj, a->atty, tensor(p, b, GPT_ATTPROJW) + c * C, tensor(p, b, GPT_ATTPROJB) + c, (int)N, C,
                   C);
    residual_forward(a->residual2, x, a->attproj, N * C);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, tensor(p, b, GPT_LN2W) + c,
                      tensor(p, b, GPT_LN2B) + c, (int)N, C);
    matmul_forward(a->fch, a->ln2, tensor(p, b, GPT_FCW) + c * 4 * C, tensor(p, b, GPT_FCB) + 4 * c, (int)N, C, 4 * C);
    gelu_forward(a->fch_gelu, a->fch, N * 4 * C);
    matmul_forward(a->fcproj, a->fch_gelu, tensor(p, b, GPT_FCPROJW) + c * 4 * C, tensor(p, b, GPT_FCPROJB) + c,
                   (int)N, 4 * C, C);
    residual_forward(a->residual3, a->residual2, a->fcproj, N * C);
    x = a->residual3;
  }
  layernorm_forward(b->act.lnf, b->act.lnf_mean, b->act.lnf_rstd, x, tensor(p, b, GPT_LNFW), tensor(p, b, GPT_LNFB),
                    (int)N, C);
  if (values && cfg->head)
    scalar_head_forward(values, b->act.lnf, tensor(p, b, GPT_HEADW), tensor(p, b, GPT_HEADB), (int)N, C);
  if (!b->lm_head) return;
  if (be->spec.train) {
    logprob_forward(logp, b->act.lse, b->act.logits, b->act.lnf, tensor(p, b, GPT_WTE), targets, (int)N, C, V);
    return;
  }
  /* only log-probabilities are wanted: the logits of a few rows at a time */
  for (size_t r = 0; r < N; r += LOGIT_ROWS) {
    int rows = (int)(N - r < LOGIT_ROWS ? N - r : LOGIT_ROWS);
    logprob_forward(logp + r, b->act.lse + r, b->act.logits, b->act.lnf + r * C, tensor(p, b, GPT_WTE), targets + r,
                    rows, C, V);
  }
}

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof *x); }

static void cpu_next_logits(struct backend *be, const int32_t *tokens, int B, int T, float *logits) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  int C = be->spec.cfg.width, V = be->spec.cfg.vocab;
  cpu_forward(be, tokens, NULL, B, T, NULL, NULL);
  for (int r = 0; r < B; r++)
    matmul_forward(logits + (size_t)r * V, b->act.lnf + ((size_t)r * T + T - 1) * C, tensor(b->params, b, GPT_WTE),
                   NULL, 1, C, V);
}

/* A dlogp after a forward that skipped the LM head has nothing to flow
 * through and is ignored, as is dvalues without a scalar head. */
static void cpu_backward(struct backend *be, const float *dlogp, const float *dvalues) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, V = cfg->vocab, L = cfg->layers, B = b->B, T = b->T;
  size_t N = (size_t)B * T;
  float *p = b->params, *g = b->grads;
  const float *x_last = L > 0 ? b->act.layers[L - 1].residual3 : b->act.encoded;
  bool from_logp = dlogp && b->lm_head, from_values = dvalues && cfg->head;
  if (!g || (!from_logp && !from_values)) return;

  zero(b->act.dlnf, N * C);
  if (from_logp)
    logprob_backward(b->act.dlnf, tensor(g, b, GPT_WTE), b->act.logits, b->act.lse, dlogp, b->act.lnf,
                     tensor(p, b, GPT_WTE), b->targets, (int)N, C, V);
  if (from_values)
    scalar_head_backward(b->act.dlnf, tensor(g, b, GPT_HEADW), tensor(g, b, GPT_HEADB), dvalues, b->act.lnf,
                         tensor(p, b, GPT_HEADW), (int)N, C);
  zero(b->act.dx, N * C);
  layernorm_backward(b->act.dx, tensor(g, b, GPT_LNFW), tensor(g, b, GPT_LNFB), b->act.dlnf, x_last,
                     tensor(p, b, GPT_LNFW), b->act.lnf_mean, b->act.lnf_rstd, (int)N, C);
  /* b->act.dx is the gradient of the residual stream; a residual add passes it
   * through unchanged to both of its inputs */
  for (int l = L - 1; l >= 0; l--) {
    struct layer_acts *a = &b->act.layers[l];
    const float *x = l > 0 ? b->act.layers[l - 1].residual3 : b->act.encoded;
    size_t c = (size_t)l * C;
    zero(b->act.dfch_gelu, N * 4 * C);
    matmul_backward(b->act.dfch_gelu, tensor(g, b, GPT_FCPROJW) + c * 4 * C, tensor(g, b, GPT_FCPROJB) + c, b->act.dx,
                    a->fch_gelu, tensor(p, b, GPT_FCPROJW) + c * 4 * C, (int)N, 4 * C, C);
    zero(b->act.dfch, N * 4 * C);
    gelu_backward(b->act.dfch, a->fch, b->act.dfch_gelu, N * 4 * C);
    zero(b->act.dln, N * C);
    matmul_backward(b->act.dln, tensor(g, b, GPT_FCW) + c * 4 * C, tensor(g, b, GPT_FCB) + 4 * c, b->act.dfch, a->ln2,
                    tensor(p, b, GPT_FCW) + c * 4 * C, (int)N, C, 4 * C);
    layernorm_backward(b->act.dx, tensor(g, b, GPT_LN2W) + c, tensor(g, b, GPT_LN2B) + c, b->act.dln, a->residual2,
                       tensor(p, b, GPT_LN2W) + c, a->ln2_mean, a->ln2_rstd, (int)N, C);
    zero(b->act.datty, N * C);
    matmul_backward(b->act.datty, tensor(g, b, GPT_ATTPROJW) + c * C, tensor(g, b, GPT_ATTPROJB) + c, b->act.dx,
                    a->atty, tensor(p, b, GPT_ATTPROJW) + c * C, (int)N, C, C);
    zero(b->act.dqkv, N * 3 * C);
    attention_backward(b->act.dqkv, b->act.datt, b->act.datty, a->qkv, a->att, B, T, C, H);
    zero(b->act.dln, N * C);
    matmul_backward(b->act.dln, tensor(g, b, GPT_QKVW) + c * 3 * C, tensor(g, b, GPT_QKVB) + 3 * c, b->act.dqkv, a->ln1,
                    tensor(p, b, GPT_QKVW) + c * 3 * C, (int)N, C, 3 * C);
    layernorm_backward(b->act.dx, tensor(g, b, GPT_LN1W) + c, tensor(g, b, GPT_LN1B) + c, b->act.dln, x,
                       tensor(p, b, GPT_LN1W) + c, a->ln1_mean, a->ln1_rstd, (int)N, C);
  }
  encoder_backward(tensor(g, b, GPT_WTE), tensor(g, b, GPT_WPE), b->act.dx, b->tokens, B, T, C);
}

/* ------------------------------------------------------------------------
 * Generation over the KV cache */

/* Where layer l's keys (or values) of ROW's position POS live. */
static float *cache_at(const struct cpu_backend *b, float *cache, int l, int row, int pos) {
  const struct backend_spec *s = &b->base.spec;
  size_t C = (size_t)s->cfg.width;
  return cache + (((size_t)l * s->gen_rows + row) * s->max_seq + pos) * C;
}

/* Keeps the keys and values of qkv [n, 3C] in ROW's positions FIRST on. */
static void cache_store(struct cpu_backend *b, int l, const float *qkv, int n, int row, int first) {
  struct gen_state *g = &b->gen;
  size_t C = (size_t)b->base.spec.cfg.width;
  for (int i = 0; i < n; i++) {
    const float *kv = qkv + (size_t)i * 3 * C;
    memcpy(cache_at(b, g->k, l, row, first + i), kv + C, C * sizeof *kv);
    memcpy(cache_at(b, g->v, l, row, first + i), kv + 2 * C, C * sizeof *kv);
  }
}

/* The rest of layer l once s->atty holds its attention's output: the
 * projection, the residual, the MLP and its residual, over n rows of s->x. */
static void gen_layer_tail(struct cpu_backend *b, int l, int n) {
  struct gen_scratch *s = &b->gen.s;
  int C = b->base.spec.cfg.width;
  float *p = b->params;
  size_t c = (size_t)l * C;
  matmul_forward(s->proj, s->atty, tensor(p, b, GPT_ATTPROJW) + c * C, tensor(p, b, GPT_ATTPROJB) + c, n, C, C);
  residual_forward(s->x, s->x, s->proj, (size_t)n * C);
  layernorm_forward(s->ln, s->mean, s->rstd, s->x, tensor(p, b, GPT_LN2W) + c, tensor(p, b, GPT_LN2B) + c, n, C);
  matmul_forward(s->fch, s->ln, tensor(p, b, GPT_FCW) + c * 4 * C, tensor(p, b, GPT_FCB) + 4 * c, n, C, 4 * C);
  gelu_forward(s->fch_gelu, s->fch, (size_t)n * 4 * C);
  matmul_forward(s->proj, s->fch_gelu, tensor(p, b, GPT_FCPROJW) + c * 4 * C, tensor(p, b, GPT_FCPROJB) + c, n, 4 * C,
                 C);
  residual_forward(s->x, s->x, s->proj, (size_t)n * C);
}

/* Layer l's LayerNorm and qkv over n rows of s->x, into s->qkv. */
static void gen_layer_qkv(struct cpu_backend *b, int l, int n) {
  struct gen_scratch *s = &b->gen.s;
  int C = b->base.spec.cfg.width;
  float *p = b->params;
  size_t c = (size_t)l * C;
  layernorm_forward(s->ln, s->mean, s->rstd, s->x, tensor(p, b, GPT_LN1W) + c, tensor(p, b, GPT_LN1B) + c, n, C);
  matmul_forward(s->qkv, s->ln, tensor(p, b, GPT_QKVW) + c * 3 * C, tensor(p, b, GPT_QKVB) + 3 * c, n, C, 3 * C);
}

/* The final LayerNorm of n rows of X and their logits [n, V]. */
static void gen_logits(struct cpu_backend *b, const float *x, int n, float *logits) {
  struct gen_scratch *s = &b->gen.s;
  const struct gpt_config *cfg = &b->base.spec.cfg;
  float *p = b->params;
  layernorm_forward(s->ln, s->mean, s->rstd, x, tensor(p, b, GPT_LNFW), tensor(p, b, GPT_LNFB), n, cfg->width);
  matmul_forward(logits, s->ln, tensor(p, b, GPT_WTE), NULL, n, cfg->width, cfg->vocab);
}

static void gen_misuse(const char *what) {
  fprintf(stderr, "trainpipe: internal error: %s\n", what);
  abort();
}

/* The prompt runs as a forward of one sequence would: the same kernels on
 * the same shapes, so the logits are next_logits' to the bit. */
static void cpu_gen_prefill(struct backend *be, int row, const int32_t *prompt, int n, float *logits) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  struct gen_state *g = &b->gen;
  struct gen_scratch *s = &g->s;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads;
  if (row < 0 || row >= be->spec.gen_rows || n < 1 || n > be->spec.max_seq)
    gen_misuse("gen_prefill: no such row, or the prompt does not fit it");
  g->len[row] = 0;
  encoder_forward(s->x, prompt, tensor(b->params, b, GPT_WTE), tensor(b->params, b, GPT_WPE), 1, n, C);
  for (int l = 0; l < cfg->layers; l++) {
    gen_layer_qkv(b, l, n);
    cache_store(b, l, s->qkv, n, row, 0);
    attention_forward(s->atty, s->att, s->qkv, 1, n, C, H);
    gen_layer_tail(b, l, n);
  }
  gen_logits(b, s->x + (size_t)(n - 1) * C, 1, logits);
  g->len[row] = n;
}

static void cpu_gen_decode(struct backend *be, const int *rows, const int32_t *tokens, int n, float *logits) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  struct gen_state *g = &b->gen;
  struct gen_scratch *s = &g->s;
  const struct gpt_config *cfg = &be->spec.cfg;
  int C = cfg->width, H = cfg->heads, S = be->spec.max_seq;
  if (n < 0 || n > be->spec.gen_rows) gen_misuse("gen_decode: more tokens than rows");
  if (n == 0) return;
  const float *wte = tensor(b->params, b, GPT_WTE), *wpe = tensor(b->params, b, GPT_WPE);
  for (int i = 0; i < n; i++) {
    int r = rows[i];
    if (r < 0 || r >= be->spec.gen_rows || g->len[r] < 1 || g->len[r] >= S)
      gen_misuse("gen_decode: a row that is empty, full or not there");
    g->keys[i] = g->len[r] + 1; /* the token's own key is stored before attention reads it */
    const float *we = wte + (size_t)tokens[i] * C, *pe = wpe + (size_t)g->len[r] * C;
    float *x = s->x + (size_t)i * C;
    for (int c = 0; c < C; c++) x[c] = we[c] + pe[c];
  }
  for (int l = 0; l < cfg->layers; l++) {
    gen_layer_qkv(b, l, n);
    for (int i = 0; i < n; i++) cache_store(b, l, s->qkv + (size_t)i * 3 * C, 1, rows[i], g->keys[i] - 1);
    size_t layer = (size_t)l * be->spec.gen_rows * S * C;
    attention_cached_forward(s->atty, s->scores, s->qkv, g->k + layer, g->v + layer, rows, g->keys, n, S, C, H);
    gen_layer_tail(b, l, n);
  }
  gen_logits(b, s->x, n, logits);
  for (int i = 0; i < n; i++) g->len[rows[i]]++;
}

static void cpu_zero_grad(struct backend *be) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  if (b->grads) zero(b->grads, be->n_params);
}

static double cpu_grad_norm(struct backend *be, double scale) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  return b->grads ? sqrt(sum_squares(b->grads, be->n_params)) * scale : 0;
}

static void cpu_step(struct backend *be, const struct adamw_step *s) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  if (!b->grads) return;
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t at = b->offsets[t], n = gpt_tensor_size(&be->spec.cfg, (enum gpt_tensor)t);
    float decay = gpt_tensor_decays((enum gpt_tensor)t) ? s->weight_decay : 0.0f;
    adamw_update(b->params + at, b->grads + at, b->m + at, b->v + at, n, s->lr, s->beta1, s->beta2, s->eps, decay,
                 s->grad_scale, s->t);
  }
}

static void cpu_read_params(struct backend *be, float *params) {
  memcpy(params, ((struct cpu_backend *)be)->params, be->n_params * sizeof *params);
}

static void cpu_write_params(struct backend *be, const float *params) {
  memcpy(((struct cpu_backend *)be)->params, params, be->n_params * sizeof *params);
}

static bool cpu_read_moments(struct backend *be, float *m, float *v) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  if (!b->m) return false;
  memcpy(m, b->m, be->n_params * sizeof *m);
  memcpy(v, b->v, be->n_params * sizeof *v);
  return true;
}

static bool cpu_write_moments(struct backend *be, const float *m, const float *v) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  if (!b->m) return false;
  memcpy(b->m, m, be->n_params * sizeof *m);
  memcpy(b->v, v, be->n_params * sizeof *v);
  return true;
}

static void cpu_read_grads(struct backend *be, float *grads) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  if (b->grads) memcpy(grads, b->grads, be->n_params * sizeof *grads);
  else zero(grads, be->n_params);
}

static void cpu_destroy(struct backend *be) {
  struct cpu_backend *b = (struct cpu_backend *)be;
  free(b->params);
  free(b->grads);
  free(b->m);
  free(b->v);
  free(b->memory);
  free(b->act.layers);
  free(b->tokens);
  free(b->targets);
  free(b->gen.k);
  free(b->gen.v);
  free(b->gen.len);
  free(b->gen.keys);
  free(b->gen.memory);
  free(b);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .forward = cpu_forward,
    .next_logits = cpu_next_logits,
    .backward = cpu_backward,
    .gen_prefill = cpu_gen_prefill,
    .gen_decode = cpu_gen_decode,
    .zero_grad = cpu_zero_grad,
    .grad_norm = cpu_grad_norm,
    .step = cpu_step,
    .read_params = cpu_read_params,
    .write_params = cpu_write_params,
    .read_moments = cpu_read_moments,
    .write_moments = cpu_write_moments,
    .read_grads = cpu_read_grads,
    .destroy = cpu_destroy,
};

/* Pieces of the activations' allocations start 64 bytes apart at least. */
#define ALIGN_FLOATS 16

static void *calloc_or_null(size_t n, size_t size) { return n ? calloc(n, size) : NULL; }

/* The KV cache and generation's scratch (see struct gen_state); NULL, or
 * what went wrong. */
static const char *gen_allocate(struct cpu_backend *b) {
  const struct backend_spec *spec = &b->base.spec;
  struct gen_state *g = &b->gen;
  size_t R = (size_t)spec->gen_rows, S = (size_t)spec->max_seq, C = (size_t)spec->cfg.width;
  size_t L = (size_t)spec->cfg.layers;
  g->k = calloc(L * R * S * C, sizeof *g->k);
  g->v = calloc(L * R * S * C, sizeof *g->v);
  g->len = calloc(R, sizeof *g->len);
  g->keys = calloc(R, sizeof *g->keys);
  struct layout count = {.align = ALIGN_FLOATS};
  gen_scratch_layout(&g->s, &count, spec);
  g->memory = calloc(count.used, sizeof *g->memory);
  if (!g->k || !g->v || !g->len || !g->keys || !g->memory) return "out of memory for the KV cache";
  struct layout place = {.base = g->memory, .align = ALIGN_FLOATS};
  gen_scratch_layout(&g->s, &place, spec);
  return NULL;
}

struct backend *cpu_backend_create(const struct backend_spec *spec, char *err, size_t err_size) {
  const struct gpt_config *cfg = &spec->cfg;
  if (backend_spec_problem(spec, err, err_size)) return NULL;
  if (spec->precision != PRECISION_AUTO && spec->precision != PRECISION_FP32) {
    snprintf(err, err_size, "the CPU backend computes in fp32 only, not %s (use --device=cuda, or --precision=fp32)",
             backend_precision_name(spec->precision));
    return NULL;
  }
#ifdef _OPENMP
  if (spec->threads > 0) omp_set_num_threads(spec->threads);
  int threads = spec->threads > 0 ? spec->threads : omp_get_max_threads();
#else
  int threads = 1;
#endif
  struct cpu_backend *b = calloc(1, sizeof *b);
  if (!b) goto out_of_memory;
  b->base.ops = &cpu_ops;
  b->base.spec = *spec;
  b->base.spec.precision = PRECISION_FP32;
  snprintf(b->base.description, sizeof b->base.description, "cpu, %d thread%s, fp32", threads,
           threads == 1 ? "" : "s");
  b->base.n_params = gpt_param_count(cfg);
  gpt_tensor_offsets(cfg, b->offsets);
  size_t P = b->base.n_params;
  size_t L = (size_t)cfg->layers, N = (size_t)spec->max_batch * spec->max_seq;
  b->params = calloc(P, sizeof *b->params);
  if (spec->train) {
    b->grads = calloc(P, sizeof *b->grads);
    b->m = calloc(P, sizeof *b->m);
    b->v = calloc(P, sizeof *b->v);
  }
  b->act.layers = calloc(L ? L : 1, sizeof *b->act.layers);
  b->tokens = calloc_or_null(N, sizeof *b->tokens);
  b->targets = calloc_or_null(N, sizeof *b->targets);
  if (!b->params || (spec->train && (!b->grads || !b->m || !b->v)) || !b->act.layers || !b->tokens || !b->targets)
    goto out_of_memory;
  size_t logit_rows = spec->train || N < LOGIT_ROWS ? N : LOGIT_ROWS;
  size_t att = N * (size_t)cfg->heads * spec->max_seq; /* [B, H, T, T] */
  struct layout count = {.align = ALIGN_FLOATS};
  activations_layout(&b->act, &count, spec, logit_rows, att, 0);
  b->memory = calloc(count.used, sizeof *b->memory);
  if (!b->memory) goto out_of_memory;
  struct layout place = {.base = b->memory, .align = ALIGN_FLOATS};
  activations_layout(&b->act, &place, spec, logit_rows, att, 0);
  const char *gen_problem = spec->gen_rows > 0 ? gen_allocate(b) : NULL;
  if (gen_problem) {
    snprintf(err, err_size, "%s (%d rows of %d tokens)", gen_problem, spec->gen_rows, spec->max_seq);
    cpu_destroy(&b->base);
    return NULL;
  }
  return &b->base;

out_of_memory:
  snprintf(err, err_size, "out of memory for a model of %zu parameters and a micro-batch of %d x %d",
           gpt_param_count(cfg), spec->max_batch, spec->max_seq);
  if (b) cpu_destroy(&b->base);
  return NULL;
}
