#include "runtime/schedule.h"

#include <math.h>
#include <string.h>

double schedule_lr(const struct schedule *s, long step) {
  if (step < s->warmup) return s->peak * (double)(step + 1) / (double)s->warmup;
  if (s->kind == SCHEDULE_CONSTANT || s->total <= s->warmup + 1) return s->peak;
  double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup - 1);
  if (progress > 1) progress = 1;
  double shape = s->kind == SCHEDULE_COSINE ? 0.5 * (1 + cos(M_PI * progress)) : 1 - progress;
  return s->min_lr + (s->peak - s->min_lr) * shape;
}

bool schedule_kind_from_name(const char *name, enum schedule_kind *kind) {
  if (strcmp(name, "cosine") == 0) *kind = SCHEDULE_COSINE;
  else if (strcmp(name, "linear") == 0) *kind = SCHEDULE_LINEAR;
  else if (strcmp(name, "constant") == 0) *kind = SCHEDULE_CONSTANT;
  else return false;
  return true;
}

double clip_factor(double norm, double clip) { return clip > 0 && norm > clip ? clip / norm : 1.0; }
