/* IPO, Identity Preference Optimisation (Azar et al. 2023, "A General
 * Theoretical Paradigm to Understand Learning from Human Preferences");
 * TRL DPOTrainer loss_type "ipo".
 *
 * Instead of a likelihood, IPO regresses the difference of the averaged
 * policy/reference log-ratios, h = (c - ref_c)/lc - (r - ref_r)/lr, onto
 * the target 1 / (2 beta): loss = (h - 1/(2 beta))^2. The square keeps the
 * margin from growing without bound (DPO's failure on deterministic
 * preferences). d loss / d h = 2 (h - 1/(2 beta)), and the averaged
 * log-probs are the sums over the counts, so the chosen sum gets it divided
 * by lc and the rejected sum its negation divided by lr. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

double ipo_loss(const struct pair_logps *in, size_t n, double beta, double norm, double *d_chosen, double *d_rejected,
                struct objective_stats *st) {
  double sum = 0, target = 1 / (2 * beta);
  for (size_t i = 0; i < n; i++) {
    double lc = in->chosen_len[i], lr = in->rejected_len[i];
    double chosen = (in->chosen[i] - in->ref_chosen[i]) / lc;
    double rejected = (in->rejected[i] - in->ref_rejected[i]) / lr;
    double h = chosen - rejected;
    sum += (h - target) * (h - target);
    double g = 2 * (h - target) / norm; /* d loss / d h */
    d_chosen[i] = g / lc;
    d_rejected[i] = -g / lr;
    pair_stats_add(st, beta * chosen, beta * rejected);
  }
  return sum / norm;
}
