/* One training stage's loop, for every objective computed on given
 * sequences (pre-training, mid-training, SFT, the reward model and the
 * offline preference objectives): micro-batches through the backend, the objective on
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
#include "runtime/objectives/objectives.h"
#include "runtime/schedule.h"

/* What a stage knows of each row of a micro-batch besides its tokens. */
struct batch_row {
  int last;        /* the input position of the row's last token: a scalar head reads there */
  double counted;  /* its counted (response) tokens */
  double ref;      /* the frozen reference's log-prob sum over them (offline objectives) */
  double margin;   /* preferences: the pair's margin, on the chosen row */
  bool desirable;  /* feedback: the label */
};

/* A micro-batch: B sequences of T tokens; targets < 0 and weights 0 are not
 * counted. Pairs are rows 2i (chosen) and 2i + 1 (rejected). KL: KTO's
 * mismatched rows, owned by the source, or NULL. */
struct batch {
  int32_t *tokens, *targets;
  float *weights;
  int B, T;
  size_t counted;
  struct batch_row *rows;
  const struct batch *kl;
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

/* What a stage trains: a micro-batch's forward outputs into its share of
 * the loss and the gradients (runtime/objectives/ does the arithmetic). */
struct stage_objective {
  void *ctx;
  bool logp, values;   /* what the forward must compute: the LM head's log-probs, the scalar head */
  /* The units B adds to the step's normalisers (tokens, pairs...: an
   * objective may need two, as ORPO does); NULL: its counted tokens. */
  void (*units)(void *ctx, const struct batch *b, double units[2]);
  /* Before B's forward (KTO's reference point needs forwards of its own); NULL: nothing. */
  void (*prepare)(void *ctx, struct backend *be, const struct batch *b);
  double (*loss)(void *ctx, const struct batch *b, const float *logp, const float *values, const double norm[2],
                 float *dlogp, float *dvalues, struct objective_stats *st);
  /* Adds the metrics ST shows (accuracy, margins...) to OUT; NULL: none.
   * Held-out ones are logged with a "val_" prefix. */
  void (*metrics)(void *ctx, const struct objective_stats *st, json_t *out);
};

/* Next-token prediction over every counted target, or over the tokens of
 * weight 1 (SFT's responses). */
extern const struct stage_objective next_token_objective, masked_next_token_objective;

struct stage_run {
  const char *name, *kind;   /* the stage, and its kind, for logs */
  const char *state;         /* what its output is: "base", "instruct" */
  const char *head;          /* the role of the model's scalar head ("reward"), or NULL */
  const char **notes;        /* lines logged when the stage starts (data, reference memory) */
  size_t n_notes;
  const char *tokenizer, *template;
  struct stage_objective objective;
  struct backend *backend;   /* created for micro_batch x context, training */
  int batch, micro_batch, context;
  long steps;                /* optimiser steps */
  struct schedule schedule;
  float beta1, beta2, eps, weight_decay, grad_clip;
  long eval_every, log_every, checkpoint_every;
  long eval_batches;         /* micro-batches per evaluation, at most */
  bool eval_at_start;        /* also evaluate before the first step: where the held-out metrics start from */
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
  json_t *summary;               /* the stage's final metrics (held out where there is held-out data), owned;
                                  * also written to the stage's summary.json */
};

/* Trains; the backend holds the starting weights. False with a reason. */
bool stage_train(const struct stage_run *run, struct stage_result *result, char *err, size_t err_size);

/* Mean loss of the backend's current weights over SOURCE (at most MAX
 * micro-batches), under the stage's objective, its statistics added to ST
 * (may be NULL); NAN when it is empty. */
double stage_evaluate(const struct stage_run *run, struct batch_source *source, long max, struct objective_stats *st,
                      char *err, size_t err_size);

#endif
