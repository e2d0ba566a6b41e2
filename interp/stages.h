/* The stage table (stages.def) as C: for each stage kind, the model states
 * it trains, the state it produces, the data it consumes, and how it uses a
 * reference and a reward. */
#ifndef TRAINPIPE_STAGES_H
#define TRAINPIPE_STAGES_H

#include <stdbool.h>

#include "interp/diag.h"
#include "interp/keys.h"

enum model_state { STATE_UNTRAINED, STATE_BASE, STATE_INSTRUCT, STATE_ALIGNED, STATE_REWARD, STATE_COUNT };

enum stage_class {
  CLASS_PRETRAIN = 1 << 0,
  CLASS_MIDTRAIN = 1 << 1,
  CLASS_SFT = 1 << 2,
  CLASS_REWARD = 1 << 3,
  CLASS_PREFERENCE = 1 << 4,
  CLASS_RL = 1 << 5,
};

enum reference_use {
  REF_NONE,     /* the stage takes no reference key */
  REF_OPTIONAL, /* a KL anchor when given */
  REF_REQUIRED, /* the objective is defined against it */
  REF_UNUSED,   /* accepted, but the objective ignores it */
};

struct stage_row {
  enum owner_id owner;
  enum stage_class class;
  unsigned ok, warn; /* masks of 1 << state */
  enum diag_code warn_code, error_code;
  enum model_state produces;
  const char *data_key;
  enum owner_id data_kind;
  bool mix;
  enum reference_use reference;
  bool reward;
  unsigned warn_after; /* classes */
  const char *metrics; /* "a|b", besides loss and val_loss */
  const char *objective;
  unsigned replay; /* classes */
  bool extends_context;
  double default_lr;
};

/* The row of a stage kind; NULL for an owner that is not a stage kind. */
const struct stage_row *stage_row(enum owner_id owner);
const char *state_name(enum model_state state);
/* What a stage does with an input state: trains it silently, trains it
 * with a warning, or refuses it; *CODE is the warning's or the error's.
 * `untrained` is always E0401 unless the row trains it (pre-training comes
 * first), and a reward model is never a policy (E0428). */
enum input_verdict { INPUT_TRAINS, INPUT_WARNS, INPUT_REFUSED };
enum input_verdict stage_input_verdict(const struct stage_row *row, enum model_state state, enum diag_code *code);

/* Whether the stage logs `metric` (loss and val_loss are always there). */
bool stage_has_metric(const struct stage_row *row, const char *metric, size_t len);

#endif
