/* PPO, Proximal Policy Optimization (Schulman et al. 2017) as used for RLHF
 * (Ziegler et al. 2019; Ouyang et al. 2022); TRL PPOTrainer: the per-token
 * rewards with a KL penalty, GAE with masked_whiten, and the clipped policy
 * and value losses.
 *
 * The reward model's score arrives on the last response token, every token
 * pays -kl_coef (old_logp - ref_logp) for drifting from the reference.
 * Generalised advantage estimation (Schulman et al. 2016) turns rewards and
 * the value head's estimates into advantages and returns.
 * Gradients: the policy term is the clipped surrogate max(-A ratio,
 * -A clip(ratio)); d ratio / d logp = ratio, so the unclipped branch gives
 * -A ratio and a strictly larger clipped branch, constant in logp, gives 0.
 * The value term 0.5 max((v - R)^2, (clip(v, v_old +- c) - R)^2) gives
 * v - R through whichever branch is larger: the clipped branch is larger
 * only when v is outside the window, where the clamp's derivative is 0. */
#include "runtime/objectives/objectives.h"

#include <math.h>

void ppo_rewards(const float *old_logp, const float *ref_logp, const float *mask, const double *score, int B, int T,
                 double kl_coef, float *rewards) {
  for (int b = 0; b < B; b++) {
    int last = -1;
    for (int t = 0; t < T; t++)
      if (mask[(size_t)b * T + t] != 0) last = t;
    for (int t = 0; t < T; t++) {
      size_t i = (size_t)b * T + t;
      if (mask[i] == 0) {
        rewards[i] = 0;
        continue;
      }
      double r = -kl_coef * ((double)old_logp[i] - ref_logp[i]);
      if (t == last) r += score[b];
      rewards[i] = (float)r;
    }
  }
}

/* The masked count, mean and M2 (sum of squared deviations) of the
 * advantages, accumulated with Welford's update (weights: the mask), and
 * the whitening factor computed from them. */
struct moments {
  double n, mean, m2, scale;
};

/* The GAE recursion over every row, backwards: V past the row's last
 * masked token is 0 and the recursion restarts at every unmasked position.
 * Without WHITEN it writes the returns and accumulates the advantages'
 * moments into M; with it, it writes the advantages whitened with M. */
static void gae(const float *rewards, const float *values, const float *mask, int B, int T, double gamma, double lambda,
                struct moments *m, bool whiten, float *advantages, float *returns) {
  for (int b = 0; b < B; b++) {
    double next_value = 0, last = 0;
    for (int t = T - 1; t >= 0; t--) {
      size_t i = (size_t)b * T + t;
      if (mask[i] == 0) {
        next_value = last = 0;
        if (whiten)
          advantages[i] = 0;
        else
          returns[i] = 0;
        continue;
      }
      double v = values[i];
      double delta = rewards[i] + gamma * next_value - v;
      last = delta + gamma * lambda * last;
      next_value = v;
      if (whiten) {
        advantages[i] = (float)((last - m->mean) * m->scale);
      } else {
        returns[i] = (float)(last + v);
        double w = mask[i], d = last - m->mean;
        m->n += w;
        m->mean += w / m->n * d;
        m->m2 += w * d * (last - m->mean);
      }
    }
  }
}

void ppo_gae(const float *rewards, const float *values, const float *mask, int B, int T, double gamma, double lambda,
             float *advantages, float *returns) {
  struct moments m = {0, 0, 0, 0};
  gae(rewards, values, mask, B, T, gamma, lambda, &m, false, advantages, returns);
  /* TRL's masked_var with Bessel's correction; a single token (where TRL
   * raises) has variance 0 and whitens to 0 */
  double var = m.n > 1 ? m.m2 / (m.n - 1) : 0;
  m.scale = 1 / sqrt(var + 1e-8);
  gae(rewards, values, mask, B, T, gamma, lambda, &m, true, advantages, returns);
}

double ppo_loss(const float *logp, const float *old_logp, const float *advantages, const float *values,
                const float *old_values, const float *returns, const float *mask, int B, int T,
                const struct ppo_options *opt, double norm, float *dlogp, float *dvalues, struct objective_stats *st) {
  double sum = 0, eps = opt->clip, cv = opt->clip_value;
  size_t n = (size_t)B * T;
  for (size_t i = 0; i < n; i++) {
    double m = mask[i];
    if (m == 0) { /* padding may hold anything: not read */
      dlogp[i] = dvalues[i] = 0;
      continue;
    }
    double A = advantages[i], ratio = exp((double)logp[i] - old_logp[i]);
    double pg1 = -A * ratio, pg2 = -A * fmin(fmax(ratio, 1 - eps), 1 + eps);
    bool pg_clipped = pg2 > pg1;
    double v = values[i], R = returns[i], vo = old_values[i];
    double vc = fmin(fmax(v, vo - cv), vo + cv);
    double vf1 = (v - R) * (v - R), vf2 = (vc - R) * (vc - R);
    bool vf_clipped = vf2 > vf1;
    double pg = pg_clipped ? pg2 : pg1, vf = 0.5 * (vf_clipped ? vf2 : vf1);
    sum += m * (pg + opt->vf_coef * vf);
    dlogp[i] = (float)(pg_clipped ? 0 : m * -A * ratio / norm);
    dvalues[i] = (float)(vf_clipped ? 0 : m * opt->vf_coef * (v - R) / norm);
    if (st != NULL) {
      st->tokens += m;
      st->clipped += m * pg_clipped;
      st->value_loss += m * vf;
    }
  }
  return sum / norm;
}
