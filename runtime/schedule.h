/* The learning rate over a stage: linear warmup from 0 to the peak over
 * `warmup` steps, then cosine or linear decay to `min_lr` at the last step,
 * or constant. Gradient clipping: the factor that brings the global norm
 * down to `clip` (1 when it is below, or when clip is 0). */
#ifndef TRAINPIPE_SCHEDULE_H
#define TRAINPIPE_SCHEDULE_H

#include <stdbool.h>

enum schedule_kind { SCHEDULE_COSINE, SCHEDULE_LINEAR, SCHEDULE_CONSTANT };

struct schedule {
  enum schedule_kind kind;
  double peak, min_lr;
  long warmup, total; /* steps */
};

/* The rate at step STEP, counted from 0. */
double schedule_lr(const struct schedule *s, long step);

/* False when NAME is not a schedule ("cosine", "linear", "constant"). */
bool schedule_kind_from_name(const char *name, enum schedule_kind *kind);

double clip_factor(double norm, double clip);

#endif
