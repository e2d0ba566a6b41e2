/* SimPO, Simple Preference Optimization (Meng et al. 2024, "SimPO: Simple
 * Preference Optimization with a Reference-Free Reward"); TRL CPOTrainer
 * loss_type "simpo" with cpo_alpha 0.
 *
 * The reward is the length-normalised log-likelihood beta c/lc, with no
 * reference model; the Bradley-Terry likelihood asks the chosen reward to
 * beat the rejected one by a margin gamma: h = beta (c/lc - r/lr) - gamma,
 * loss = -log sigmoid(h). d loss / d h = -sigmoid(-h); h moves with the
 * chosen sum at slope beta/lc and with the rejected sum at -beta/lr. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

#include <math.h>

double simpo_loss(const struct pair_logps *in, size_t n, double beta, double gamma, double norm, double *d_chosen,
                  double *d_rejected, struct objective_stats *st) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    double lc = in->chosen_len[i], lr = in->rejected_len[i];
    double chosen = beta * in->chosen[i] / lc, rejected = beta * in->rejected[i] / lr;
    double h = chosen - rejected - gamma;
    sum -= log_sigmoid(h);
    double g = -sigmoid(-h) / norm; /* d loss / d h */
    d_chosen[i] = g * beta / lc;
    d_rejected[i] = -g * beta / lr;
    pair_stats_add(st, chosen, rejected);
  }
  return sum / norm;
}
