#include "runtime/backend.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#ifdef HAVE_CUDA
#include "gpu/cuda_backend.h"
#include "gpu/device.h"
#endif

bool backend_device_find(const char *name, enum backend_device *out) {
  static const char *const names[] = {[DEVICE_CPU] = "cpu", [DEVICE_CUDA] = "cuda", [DEVICE_AUTO] = "auto"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(names[i], name) == 0) {
      *out = (enum backend_device)i;
      return true;
    }
  return false;
}

bool backend_spec_problem(const struct backend_spec *spec, char *err, size_t err_size) {
  const struct gpt_config *cfg = &spec->cfg;
  const char *problem = gpt_config_problem(cfg);
  if (problem) {
    snprintf(err, err_size, "cannot build the model: %s", problem);
    return true;
  }
  if (spec->max_batch < 1 || spec->max_seq < 1 || spec->max_seq > cfg->context) {
    snprintf(err, err_size, "a micro-batch of %d sequences of %d tokens does not fit a context of %d",
             spec->max_batch, spec->max_seq, cfg->context);
    return true;
  }
  if (spec->gen_rows < 0) {
    snprintf(err, err_size, "%d rows of generation: the count cannot be negative", spec->gen_rows);
    return true;
  }
  return false;
}

static const char *const precision_names[] = {
    [PRECISION_AUTO] = "auto", [PRECISION_FP32] = "fp32", [PRECISION_TF32] = "tf32", [PRECISION_BF16] = "bf16"};

bool backend_precision_find(const char *name, enum backend_precision *out) {
  for (size_t i = 0; i < sizeof precision_names / sizeof precision_names[0]; i++)
    if (strcmp(precision_names[i], name) == 0) {
      *out = (enum backend_precision)i;
      return true;
    }
  return false;
}

const char *backend_precision_name(enum backend_precision p) {
  return (size_t)p < sizeof precision_names / sizeof precision_names[0] ? precision_names[p] : "?";
}

struct backend *backend_create(enum backend_device device, const struct backend_spec *spec, char *err,
                               size_t err_size) {
#ifdef HAVE_CUDA
  if (device == DEVICE_AUTO) device = cuda_device_count() > 0 ? DEVICE_CUDA : DEVICE_CPU;
  if (device == DEVICE_CUDA) return cuda_backend_create(spec, err, err_size);
#else
  if (device == DEVICE_CUDA) {
    snprintf(err, err_size, "this build has no CUDA backend (configure found no nvcc); use --device=cpu");
    return NULL;
  }
#endif
  return cpu_backend_create(spec, err, err_size);
}
