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

struct backend_spec {
  struct gpt_config cfg;
  int max_batch;   /* sequences per forward */
  int max_seq;     /* tokens per sequence, at most cfg.context */
  int threads;     /* 0: the library's default */
  bool train;      /* keep activations, gradients and AdamW moments */
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
  /* tokens, targets [B, T]; logp [B, T] out. A target < 0 gives logp 0. */
  void (*forward)(struct backend *, const int32_t *tokens, const int32_t *targets, int B, int T, float *logp);
  /* tokens [B, T]: the logits of the token after each row's last one,
   * logits [B, V] out (sampling). Overwrites the activations. */
  void (*next_logits)(struct backend *, const int32_t *tokens, int B, int T, float *logits);
  /* dlogp [B, T] of the last forward; adds into the gradients. */
  void (*backward)(struct backend *, const float *dlogp);
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
  struct backend_spec spec;
  size_t n_params;
};

/* The CPU backend (OpenBLAS + OpenMP); NULL with a reason in ERR. */
struct backend *cpu_backend_create(const struct backend_spec *spec, char *err, size_t err_size);

static inline void backend_destroy(struct backend *b) {
  if (b) b->ops->destroy(b);
}

#endif
