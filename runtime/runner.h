/* `trainpipe run`: a plan (interp/plan.h's JSON, built from a checked
 * pipeline or read from `plan -o FILE`) executed stage by stage into a run
 * folder, OUT/STAGE/ for each: model.safetensors and checkpoint.json when
 * it is done, metrics.jsonl, log.txt, and resume/ while it is not.
 *
 * A stage starts from its model's initialisation, from a loaded
 * checkpoint, or from the folder of the stage before it, which must have
 * run (in this run or an earlier one into the same folder); a frozen
 * reference or a reward model is read from the folder of the stage that
 * trained it, or from the checkpoint a model loads. Every stage kind runs,
 * on the CPU backend. After the stages an `assert` reads, it is checked:
 * a failed gate skips the stages that depend on them, and the run fails
 * with the assertion's place, text and values. */
#ifndef TRAINPIPE_RUNNER_H
#define TRAINPIPE_RUNNER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/backend.h"

struct run_options {
  const char *out;         /* the run folder */
  const char *only, *from; /* one stage; or this stage and the ones after it */
  const char *until;       /* the last stage to run */
  int threads;             /* 0: the library's default */
  enum backend_device device;
  enum backend_precision precision;
  bool has_seed;
  uint64_t seed;           /* replaces every stage's seed */
  long max_steps;          /* caps every stage's steps; 0: no cap */
  bool resume;             /* continue interrupted stages */
  volatile sig_atomic_t *interrupted;
  FILE *progress;
  bool tty;
};

/* Runs the stages of PLAN in its order. False with a reason in ERR; a run
 * stopped by Ctrl-C returns true with *INTERRUPTED set. */
bool run_plan(json_t *plan, const struct run_options *opt, bool *interrupted, char *err, size_t err_size);

#endif
