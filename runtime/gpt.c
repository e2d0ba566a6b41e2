#include "runtime/gpt.h"

#include <math.h>
#include <string.h>

#include "runtime/rng.h"

const char *gpt_tensor_name(enum gpt_tensor t) {
  static const char *const names[] = {
#define X(id, name) name,
      GPT_TENSORS(X)
#undef X
  };
  return names[t];
}

int gpt_tensor_shape(const struct gpt_config *cfg, enum gpt_tensor t, size_t shape[3]) {
  size_t V = (size_t)cfg->vocab, T = (size_t)cfg->context, L = (size_t)cfg->layers, C = (size_t)cfg->width;
  size_t head = cfg->head ? 1 : 0;
  switch (t) {
  case GPT_WTE: shape[0] = V, shape[1] = C; return 2;
  case GPT_WPE: shape[0] = T, shape[1] = C; return 2;
  case GPT_LN1W: case GPT_LN1B: case GPT_ATTPROJB: case GPT_LN2W: case GPT_LN2B: case GPT_FCPROJB:
    shape[0] = L, shape[1] = C; return 2;
  case GPT_QKVW: shape[0] = L, shape[1] = 3 * C, shape[2] = C; return 3;
  case GPT_QKVB: shape[0] = L, shape[1] = 3 * C; return 2;
  case GPT_ATTPROJW: shape[0] = L, shape[1] = C, shape[2] = C; return 3;
  case GPT_FCW: shape[0] = L, shape[1] = 4 * C, shape[2] = C; return 3;
  case GPT_FCB: shape[0] = L, shape[1] = 4 * C; return 2;
  case GPT_FCPROJW: shape[0] = L, shape[1] = C, shape[2] = 4 * C; return 3;
  case GPT_LNFW: case GPT_LNFB: shape[0] = C; return 1;
  case GPT_HEADW: shape[0] = head * C; return 1;
  case GPT_HEADB: shape[0] = head; return 1;
  case GPT_TENSOR_COUNT: break;
  }
  return 0;
}

size_t gpt_tensor_size(const struct gpt_config *cfg, enum gpt_tensor t) {
  size_t shape[3];
  int dims = gpt_tensor_shape(cfg, t, shape);
  size_t n = 1;
  for (int i = 0; i < dims; i++) n *= shape[i];
  return n;
}

size_t gpt_param_count(const struct gpt_config *cfg) {
  size_t n = 0;
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) n += gpt_tensor_size(cfg, (enum gpt_tensor)t);
  return n;
}

void gpt_tensor_offsets(const struct gpt_config *cfg, size_t offsets[GPT_TENSOR_COUNT]) {
  size_t at = 0;
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    offsets[t] = at;
    at += gpt_tensor_size(cfg, (enum gpt_tensor)t);
  }
}

bool gpt_tensor_decays(enum gpt_tensor t) {
  return t == GPT_QKVW || t == GPT_ATTPROJW || t == GPT_FCW || t == GPT_FCPROJW || t == GPT_HEADW;
}

const char *gpt_config_problem(const struct gpt_config *cfg) {
  if (cfg->vocab < 1 || cfg->context < 1 || cfg->layers < 1 || cfg->heads < 1 || cfg->width < 1)
    return "every dimension must be at least 1";
  if (cfg->width % cfg->heads != 0) return "heads must divide width";
  if (cfg->head != 0 && cfg->head != 1) return "head must be 0 (none) or 1 (a scalar head)";
  return NULL;
}

void gpt_init(const struct gpt_config *cfg, float *params, uint64_t seed) {
  size_t offsets[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(cfg, offsets);
  struct rng r = rng_seed(seed);
  double residual_std = 0.02 / sqrt(2.0 * cfg->layers);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    float *p = params + offsets[t];
    size_t n = gpt_tensor_size(cfg, (enum gpt_tensor)t);
    switch ((enum gpt_tensor)t) {
    case GPT_LN1W: case GPT_LN2W: case GPT_LNFW:
      for (size_t i = 0; i < n; i++) p[i] = 1.0f;
      break;
    case GPT_LN1B: case GPT_LN2B: case GPT_LNFB: case GPT_QKVB: case GPT_ATTPROJB: case GPT_FCB: case GPT_FCPROJB:
    case GPT_HEADB:
      memset(p, 0, n * sizeof *p);
      break;
    case GPT_ATTPROJW: case GPT_FCPROJW:
      for (size_t i = 0; i < n; i++) p[i] = (float)(residual_std * rng_normal(&r));
      break;
    default: /* wte, wpe, qkvw, fcw and headw: headw is last, so a head draws after every other tensor */
      for (size_t i = 0; i < n; i++) p[i] = (float)(0.02 * rng_normal(&r));
    }
  }
}
