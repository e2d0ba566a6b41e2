/* DPO, Direct Preference Optimization (Rafailov et al. 2023), the sigmoid
 * loss with conservative label smoothing (Mitchell 2023, "cDPO"); TRL
 * DPOTrainer loss_type "sigmoid".
 *
 * The implicit reward of a response is beta times its policy/reference
 * log-ratio; the pair's margin h = beta ((c - ref_c) - (r - ref_r)) goes
 * through the Bradley-Terry likelihood, with probability ls that the label
 * is flipped: loss = -(1 - ls) log sigmoid(h) - ls log sigmoid(-h).
 * d loss / d h = -(1 - ls) sigmoid(-h) + ls sigmoid(h), and h is linear in
 * the two policy sums with slopes +beta and -beta, so the chosen and the
 * rejected sums get equal and opposite gradients. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

#include <math.h>

double dpo_loss(const struct pair_logps *in, size_t n, double beta, double label_smoothing, double norm,
                double *d_chosen, double *d_rejected, struct objective_stats *st) {
  double sum = 0, ls = label_smoothing;
  for (size_t i = 0; i < n; i++) {
    double chosen = beta * (in->chosen[i] - in->ref_chosen[i]);
    double rejected = beta * (in->rejected[i] - in->ref_rejected[i]);
    double h = chosen - rejected;
    sum += -(1 - ls) * log_sigmoid(h) - ls * log_sigmoid(-h);
    double g = (-(1 - ls) * sigmoid(-h) + ls * sigmoid(h)) / norm; /* d loss / d h */
    d_chosen[i] = g * beta;
    d_rejected[i] = -g * beta;
    pair_stats_add(st, chosen, rejected);
  }
  return sum / norm;
}
