/* Bradley-Terry reward-model loss (Ouyang et al. 2022, "Training language
 * models to follow instructions with human feedback"; TRL RewardTrainer).
 *
 * The reward head scores the chosen and the rejected response of a pair;
 * the model of preference P(chosen > rejected) = sigmoid(r_c - r_r - m) is
 * fitted by maximum likelihood, loss -log sigmoid(x) with x = r_c - r_r - m.
 * Its derivative is -sigmoid(-x): the pull on the two scores is the
 * probability the model still gives to the wrong order, +1 on the chosen
 * score and -1 on the rejected one, vanishing once the pair is well
 * separated. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

#include <math.h>

/* log sigmoid(x), without overflow on either side */
double bradley_terry_loss(const double *r_chosen, const double *r_rejected, const double *margin, size_t n, double norm,
                          double *d_chosen, double *d_rejected, struct objective_stats *st) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    double diff = r_chosen[i] - r_rejected[i];
    double x = diff - (margin != NULL ? margin[i] : 0.0);
    sum -= log_sigmoid(x);
    double g = -sigmoid(-x) / norm; /* d loss / d x */
    d_chosen[i] = g;
    d_rejected[i] = -g;
    pair_stats_add(st, r_chosen[i], r_rejected[i]);
  }
  return sum / norm;
}
