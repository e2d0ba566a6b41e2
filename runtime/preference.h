/* The objectives of the stages trained on fixed preference data (the
 * reward model, DPO, IPO, KTO, SimPO, ORPO) as train.h's stage_objective:
 * per-sequence sums of the rows pairs.h lays out, the objective of
 * runtime/objectives/ on them, its gradient spread back over the counted
 * tokens (or onto the scalar head at each row's last token), and the
 * metrics the stage logs.
 *
 * Metrics (per pair, or per example for KTO): accuracy (the chosen reward
 * above the rejected one), margin (their mean difference), chosen_reward
 * and rejected_reward (means); with a reference, chosen_logratio and
 * rejected_logratio (log pi - log pi_ref, the rewards over beta); ORPO,
 * nll (per chosen token). */
#ifndef TRAINPIPE_PREFERENCE_H
#define TRAINPIPE_PREFERENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/train.h"

enum preference_kind { PREF_REWARD_MODEL, PREF_DPO, PREF_IPO, PREF_KTO, PREF_SIMPO, PREF_ORPO };

struct preference_objective {
  enum preference_kind kind;
  double beta, label_smoothing, gamma, lambda, desirable_weight, undesirable_weight;
  bool use_margin;
  /* scratch, for MAX_ROWS rows */
  int max_rows;
  double *sums, *ref, *lens, *d_a, *d_b, *a, *b, *c, *e;
  bool *flags;
  double z0; /* KTO: the reference point of the micro-batch being trained */
  float *kl_logp;
};

/* The kind called NAME ("dpo"); false when NAME is not one of them. */
bool preference_kind_find(const char *name, enum preference_kind *out);

/* Whether the kind reads a scalar head (the reward model) rather than
 * log-probs, and whether it needs a frozen reference. */
bool preference_uses_head(enum preference_kind kind);
bool preference_uses_reference(enum preference_kind kind);

/* Sets P up from the stage's SETTINGS ({key: {value, source}}) for
 * micro-batches of at most MAX_ROWS rows of CONTEXT tokens, and OUT to it. */
void preference_objective_init(struct preference_objective *p, enum preference_kind kind, json_t *settings,
                               int max_rows, int context, struct stage_objective *out);
void preference_objective_free(struct preference_objective *p);

#endif
