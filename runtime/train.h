/* One training stage's loop, for the next-token objectives (pre-training,
 * mid-training, SFT): micro-batches through the backend, the objective on
 * the host, gradient accumulation normalised by counted tokens, clipping,
 * AdamW on the schedule, evaluation on held-out data, metrics, periodic
 * checkpoints, and a clean stop on Ctrl-C that can be resumed.
 *
 * The loop does not know where batches come from: a batch_source hands
 * them out and can save and restore its position, so that a resumed stage
 * continues the same trajectory. */
#ifndef TRAINPIPE_TRAIN_H
#define TRAINPIPE_TRAIN_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/backend.h"
#include "runtime/schedule.h"

/* A micro-batch: B sequences of T tokens; targets < 0 and weights 0 are not
 * counted. */
struct batch {
  int32_t *tokens, *targets;
  float *weights;
  int B, T;
  size_t counted;
};

struct batch_source {
  void *ctx;
  /* Fills B at most MAX_B sequences; false with a reason in ERR. */
  bool (*next)(void *ctx, struct batch *b, int max_b, char *err, size_t err_size);
  /* The position, as JSON for checkpoints, and back. */
  json_t *(*save)(void *ctx);
  bool (*restore)(void *ctx, json_t *state, char *err, size_t err_size);
  /* Back to the start (evaluation passes). */
  void (*rewind)(void *ctx);
};

enum objective_kind { OBJECTIVE_NEXT_TOKEN, OBJECTIVE_MASKED_NEXT_TOKEN };

struct stage_run {
  const char *name, *kind;   /* the stage, and its kind, for logs */
  const char *state;         /* what its output is: "base", "instruct" */
  const char *tokenizer, *template;
  enum objective_kind objective;
  struct backend *backend;   /* created for micro_batch x context, training */
  int batch, micro_batch, context;
  long steps;                /* optimiser steps */
  struct schedule schedule;
  float beta1, beta2, eps, weight_decay, grad_clip;
  long eval_every, log_every, checkpoint_every;
  long eval_batches;         /* micro-batches per evaluation, at most */
  struct batch_source train, val; /* val.ctx NULL: no held-out data */
  const char *dir;           /* the stage's folder: metrics.jsonl, log.txt, the checkpoint */
  bool resume;               /* continue from DIR/resume if it is there */
  volatile sig_atomic_t *interrupted;
  FILE *progress;            /* a line per log step, or a live line on a terminal */
  bool tty;
};

struct stage_result {
  long steps;
  double tokens, loss, val_loss; /* the last logged loss, the last val_loss (NAN if none) */
  bool interrupted;              /* stopped by Ctrl-C after saving a checkpoint */
};

/* Trains; the backend holds the starting weights. False with a reason. */
bool stage_train(const struct stage_run *run, struct stage_result *result, char *err, size_t err_size);

/* Mean loss of the backend's current weights over SOURCE (at most MAX
 * micro-batches), under the stage's objective; NAN when it is empty. */
double stage_evaluate(const struct stage_run *run, struct batch_source *source, long max, char *err, size_t err_size);

#endif
