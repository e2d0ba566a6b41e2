/* KTO, Kahneman-Tversky Optimization (Ethayarajh et al. 2024, "KTO: Model
 * Alignment as Prospect Theoretic Optimization"); TRL KTOTrainer.kto_loss.
 *
 * Unpaired feedback: each example is desirable or undesirable on its own.
 * Its implicit reward r = logp - ref_logp is judged against a reference
 * point z0, an estimate of the policy/reference KL taken on mismatched
 * prompt/completion pairs, clamped at 0 and detached (it sets the level, it
 * is not trained). The value function is a sigmoid: desirable examples
 * lose w_d (1 - sigmoid(beta (r - z0))), undesirable ones
 * w_u (1 - sigmoid(beta (z0 - r))). With s = sigmoid(x),
 * d(1 - s)/dx = -s (1 - s): the gradient is largest at the reference point
 * and fades on both sides (the saturation of prospect theory); x moves
 * with r at slope +beta for desirable and -beta for undesirable examples. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

#include <math.h>

double kto_reference_point(const double *policy_kl, const double *ref_kl, size_t n_kl) {
  if (n_kl == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < n_kl; i++) sum += policy_kl[i] - ref_kl[i];
  return fmax(0.0, sum / (double)n_kl);
}

double kto_loss(const double *logp, const double *ref_logp, const bool *desirable, size_t n, double z0, double beta,
                double desirable_weight, double undesirable_weight, double norm, double *d_logp,
                struct objective_stats *st) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    double r = logp[i] - ref_logp[i];
    double sign = desirable[i] ? 1.0 : -1.0, w = desirable[i] ? desirable_weight : undesirable_weight;
    double x = beta * sign * (r - z0);
    double s = sigmoid(x), s_neg = sigmoid(-x); /* 1 - s, without cancellation */
    sum += w * s_neg;
    d_logp[i] = -w * s * s_neg * beta * sign / norm;
    if (st != NULL) {
      st->pairs += 1;
      if (desirable[i]) {
        st->chosen += beta * r;
        st->desirable += 1;
        st->correct += r > z0 + OBJECTIVE_TIE;
      } else {
        st->rejected += beta * r;
        st->correct += r < z0 - OBJECTIVE_TIE;
      }
    }
  }
  return sum / norm;
}
