/* The backend interface: everything a stage needs from the hardware.
 *
 * Every objective is a function of the per-token log-probabilities of given
 * target tokens, so a backend only computes those (forward), takes their
 * gradient back (backward), and updates the parameters (step). The
 * objectives themselves run on the host (runtime/objectives/), the same for
 * every backend. A backend owns its buffers, allocated once at creation
 * for the largest micro-batch and sequence it will see.
 *
 * Parameters follow runtime/gpt.h's layout; read_params/write_params copy
 * them (and the AdamW moments) between the backend and the host, for
 * checkpoints and tests. */
#ifndef TRAINPIPE_BACKEND_H
#define TRAINPIPE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/gpt.h"

/* What a backend's matmuls compute in. Everything else (LayerNorm, softmax,
 * the log-probabilities, gradients, AdamW and its fp32 master weights) is
 * fp32 whatever the choice. AUTO is bf16 on a CUDA device and fp32 on the
 * CPU, which computes in fp32 alone. TF32: fp32 operands rounded to tf32 on
 * the tensor cores; BF16: the Linear layers' and the LM head's operands in
 * bf16 with fp32 accumulation, attention's batched matmuls in tf32. */
enum backend_precision { PRECISION_AUTO, PRECISION_FP32, PRECISION_TF32, PRECISION_BF16 };

struct backend_spec {
  struct gpt_config cfg;
  int max_batch;   /* sequences per forward */
  int max_seq;     /* tokens per sequence, at most cfg.context */
  int threads;     /* 0: the library's default */
  bool train;      /* keep activations, gradients and AdamW moments */
  int gen_rows;    /* rows of the KV cache for generation, each of max_seq tokens (0: none) */
  enum backend_precision precision;
};

struct adamw_step {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_scale; /* multiplies every gradient first: the clip factor (the objectives already divide by
                     * the step's counted tokens) */
  int t;            /* 1-based step, for the bias corrections */
};

struct backend;

struct backend_ops {
  const char *name;
  /* tokens, targets [B, T]; logp [B, T] out. A target < 0 gives logp 0.
   * TARGETS and LOGP NULL: the LM head is skipped (a reward model).
   * VALUES [B, T] out: the scalar head (cfg.head) at every position, when
   * the model has one and VALUES is not NULL. */
  void (*forward)(struct backend *, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp,
                  float *values);
  /* tokens [B, T]: the logits of the token after each row's last one,
   * logits [B, V] out (sampling). Overwrites the activations. */
  void (*next_logits)(struct backend *, const int32_t *tokens, int B, int T, float *logits);
  /* dlogp [B, T] and dvalues [B, T] of the last forward (either NULL: no
   * gradient from that output); adds into the gradients. */
  void (*backward)(struct backend *, const float *dlogp, const float *dvalues);
  /* Generation with a KV cache of spec.gen_rows independent rows, each
   * holding at most max_seq tokens; it does not touch what a forward kept
   * for its backward, so a policy can sample between training steps.
   * gen_prefill empties row ROW, runs PROMPT (N >= 1 tokens) through it and
   * writes the logits [V] of the token after it. gen_decode appends
   * TOKENS[i] to row ROWS[i] for i < N (distinct rows) and writes the
   * logits [N, V] of the tokens after them. The logits equal next_logits'
   * on the whole sequence, to rounding. */
  void (*gen_prefill)(struct backend *, int row, const int32_t *prompt, int n, float *logits);
  void (*gen_decode)(struct backend *, const int *rows, const int32_t *tokens, int n, float *logits);
  void (*zero_grad)(struct backend *);
  /* The L2 norm of all gradients, times SCALE. */
  double (*grad_norm)(struct backend *, double scale);
  void (*step)(struct backend *, const struct adamw_step *);
  void (*read_params)(struct backend *, float *params);
  void (*write_params)(struct backend *, const float *params);
  /* The AdamW moments; false when the backend does not train. */
  bool (*read_moments)(struct backend *, float *m, float *v);
  bool (*write_moments)(struct backend *, const float *m, const float *v);
  /* Copies the gradients out (tests). */
  void (*read_grads)(struct backend *, float *grads);
  void (*destroy)(struct backend *);
};

struct backend {
  const struct backend_ops *ops;
  struct backend_spec spec; /* precision as resolved: never AUTO */
  size_t n_params;
  char description[128];    /* "cpu, 2 threads, fp32", "cuda, NVIDIA H100 80GB HBM3, bf16": for logs */
};

/* What every backend refuses in SPEC (a model gpt_config_problem refuses,
 * a micro-batch that does not fit the context, negative generation rows),
 * written into ERR; false when SPEC is fine. */
bool backend_spec_problem(const struct backend_spec *spec, char *err, size_t err_size);

/* The CPU backend (OpenBLAS + OpenMP); NULL with a reason in ERR. */
struct backend *cpu_backend_create(const struct backend_spec *spec, char *err, size_t err_size);

/* Where a run trains: the CPU, a CUDA device (gpu/), or AUTO: the CUDA
 * device when this build has the CUDA backend and a device is present,
 * else the CPU. */
enum backend_device { DEVICE_CPU, DEVICE_CUDA, DEVICE_AUTO };

/* The device or precision called NAME ("cpu", "cuda", "auto"; "auto",
 * "fp32", "tf32", "bf16"); false when none is. */
bool backend_device_find(const char *name, enum backend_device *out);
bool backend_precision_find(const char *name, enum backend_precision *out);
const char *backend_precision_name(enum backend_precision p);

/* The backend of DEVICE for SPEC; NULL with a reason in ERR (a build
 * without the CUDA backend, no device, what the backend refuses). */
struct backend *backend_create(enum backend_device device, const struct backend_spec *spec, char *err,
                               size_t err_size);

static inline void backend_destroy(struct backend *b) {
  if (b) b->ops->destroy(b);
}

#endif
