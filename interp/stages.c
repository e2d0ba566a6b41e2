#include "interp/stages.h"


#define CORPUS OWNER_CORPUS
#define DEMOS OWNER_DEMOS
#define PREFS OWNER_PREFS
#define FEEDBACK OWNER_FEEDBACK
#define PROMPTS OWNER_PROMPTS

static const struct stage_row rows[] = {
#define STAGE(owner, class, ok, warn, warn_code, error_code, produces, data_key, data_kind, mix, reference, reward, \
              warn_after, metrics, objective, replay, extends_context, lr)                                        \
  {OWNER_##owner, class, ok, warn, warn_code, error_code, produces, data_key, data_kind, mix, reference, reward,    \
   warn_after, metrics, objective, replay, extends_context, lr},
#include "interp/stages.def"
#undef STAGE
};

const struct stage_row *stage_row(enum owner_id owner) {
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (rows[i].owner == owner) return &rows[i];
  return NULL;
}

const char *state_name(enum model_state state) {
  static const char *const names[STATE_COUNT] = {"untrained", "base", "instruct", "aligned", "reward"};
  return state < STATE_COUNT ? names[state] : "unknown";
}

bool stage_has_metric(const struct stage_row *row, const char *metric, size_t len) {
  return word_list_has("loss|val_loss", metric, len) || word_list_has(row->metrics, metric, len);
}

enum input_verdict stage_input_verdict(const struct stage_row *row, enum model_state state, enum diag_code *code) {
  unsigned bit = 1u << state;
  if (row->ok & bit) return INPUT_TRAINS;
  if (state == STATE_UNTRAINED) {
    *code = E0401;
  } else if (row->warn & bit) {
    *code = row->warn_code;
    return INPUT_WARNS;
  } else {
    *code = state == STATE_REWARD ? E0428 : row->error_code;
  }
  return INPUT_REFUSED;
}
