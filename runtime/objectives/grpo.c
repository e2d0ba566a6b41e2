/* GRPO, Group Relative Policy Optimization (Shao et al. 2024,
 * "DeepSeekMath"); TRL GRPOTrainer (_compute_loss, loss_type "grpo",
 * "bnpo" and "dr_grpo"; the group advantages of _generate_and_score).
 *
 * Several completions are sampled per prompt; a completion's advantage is
 * its reward standardised within its group, so no value model is needed.
 * Each completion token then carries PPO's clipped surrogate
 * -min(ratio A, clip(ratio) A), ratio = exp(logp - old_logp), plus beta
 * times the k3 estimate of KL(policy || reference),
 * k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman 2020, "Approximating
 * KL Divergence"), non-negative and unbiased.
 * Gradients: d ratio / d logp = ratio, so the unclipped surrogate gives
 * -ratio A (= -A at the sampling policy, where the ratio is 1). When the
 * clipped branch is strictly smaller it is a constant and the token gives
 * no policy gradient: that is the trust region. d k3 / d logp =
 * 1 - exp(ref - logp), zero where the policy agrees with the reference. */
#include "runtime/objectives/objectives.h"

#include <math.h>

size_t grpo_advantages(const double *rewards, size_t n_groups, size_t group, double *advantages) {
  size_t constant = 0;
  for (size_t g = 0; g < n_groups; g++) {
    const double *r = rewards + g * group;
    double *a = advantages + g * group;
    bool equal = true;
    for (size_t i = 1; i < group; i++) equal = equal && r[i] == r[0];
    if (equal) { /* also a group of one, whose torch.std is NaN */
      for (size_t i = 0; i < group; i++) a[i] = 0;
      constant += group > 0;
      continue;
    }
    double mean = 0, ss = 0;
    for (size_t i = 0; i < group; i++) mean += r[i];
    mean /= (double)group;
    for (size_t i = 0; i < group; i++) ss += (r[i] - mean) * (r[i] - mean);
    double std = sqrt(ss / (double)(group - 1));
    for (size_t i = 0; i < group; i++) a[i] = (r[i] - mean) / (std + 1e-4);
  }
  return constant;
}

double grpo_loss(const float *logp, const float *old_logp, const float *ref_logp, const float *mask,
                 const double *advantages, int B, int T, const struct grpo_options *opt, double norm, float *dlogp,
                 struct objective_stats *st) {
  double eps = opt->epsilon, beta = opt->beta, sum = 0;
  double fixed_len = opt->max_new_tokens > 0 ? opt->max_new_tokens : T;
  for (int b = 0; b < B; b++) {
    const float *m = mask + (size_t)b * T;
    double len = 0;
    for (int t = 0; t < T; t++) len += m[t];
    /* each token's weight in the returned share */
    double scale = opt->normalize == GRPO_PER_SEQUENCE ? 1 / (fmax(len, 1.0) * norm)
                   : opt->normalize == GRPO_FIXED      ? 1 / (fixed_len * norm)
                                                       : 1 / norm;
    double A = advantages[b];
    for (int t = 0; t < T; t++) {
      size_t i = (size_t)b * T + t;
      if (m[t] == 0) { /* padding may hold anything: not read */
        dlogp[i] = 0;
        continue;
      }
      double lp = logp[i], ratio = exp(lp - old_logp[i]);
      double clipped = fmin(fmax(ratio, 1 - eps), 1 + eps);
      /* the clipped branch is taken (strictly smaller) exactly when the
       * ratio left the window on the side the advantage pushes it */
      bool taken = (ratio < 1 - eps && A < 0) || (ratio > 1 + eps && A > 0);
      double l = -fmin(ratio * A, clipped * A), dl = taken ? 0 : -ratio * A;
      if (beta != 0) {
        double x = ref_logp[i] - lp, e = exp(x);
        l += beta * (e - x - 1);
        dl += beta * (1 - e);
      }
      double w = m[t] * scale;
      sum += w * l;
      dlogp[i] = (float)(w * dl);
      if (st != NULL) {
        st->tokens += m[t];
        st->kl += m[t] * (lp - ref_logp[i]);
        st->clipped += m[t] * taken;
      }
    }
  }
  if (st != NULL) st->sequences += B;
  return sum;
}
