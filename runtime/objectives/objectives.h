/* Objectives: each turns what a forward pass gave (per-token
 * log-probabilities, per-sequence sums of them, scalar head outputs) into
 * its share of the loss and the gradient of that share, on the host, the
 * same for every backend (DESIGN.md, "The runtime"). Formulas and defaults
 * follow TRL's implementations; tests/reference/objectives_reference.py
 * checks them against TRL itself.
 *
 * Gradient accumulation: every objective takes NORM, the units of the
 * whole optimiser step (counted tokens, pairs, examples or sequences, as
 * each says), and returns sum-over-its-micro-batch / NORM, so that the
 * shares of a step's micro-batches add up to the step's mean loss. Every
 * gradient output is OVERWRITTEN (not added to).
 *
 * Sequence objectives take, for each sequence, the SUM of the log-probs of
 * its counted (response) tokens and their COUNT, and return the gradient
 * with respect to that sum: the caller spreads it over the counted tokens
 * (d logp_t = d sum for every counted t), which is exact because the sum is
 * linear in them. Averaged log-probs (IPO, SimPO, ORPO) are sum / count
 * inside the objective.
 *
 * Statistics are ADDED into a struct objective_stats, so a step or an
 * evaluation pass accumulates over micro-batches; see objective_stats_*
 * for what is logged. */
#ifndef TRAINPIPE_OBJECTIVES_H
#define TRAINPIPE_OBJECTIVES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rewards closer than this are a tie, which `correct` does not count: a
 * policy and its frozen reference run on batches of other shapes differ by
 * rounding (about 1e-7 of a log-prob sum), and that noise must not read
 * as a preference, so that a policy equal to its reference scores 0. */
#define OBJECTIVE_TIE 1e-5

/* Sums over the examples, sequences or tokens of a step or pass. */
struct objective_stats {
  double pairs;          /* preference pairs (or KTO examples) seen */
  double correct;        /* pairs whose chosen reward > rejected reward + OBJECTIVE_TIE (ties: 0) */
  double margin;         /* sum of chosen reward - rejected reward */
  double chosen;         /* sum of chosen rewards (DPO family: beta * log-ratio) */
  double rejected;       /* sum of rejected rewards */
  double sequences;      /* RL: sequences seen */
  double tokens;         /* RL: completion tokens seen */
  double kl;             /* RL: sum over completion tokens of logp - ref_logp (the k1 estimate; GRPO's loss
                          * uses k3, but k1 is what the logs compare across stages) */
  double clipped;        /* RL: tokens (weighted by the mask) whose clipped branch was strictly taken: ratio
                          * < 1 - eps with A < 0, or ratio > 1 + eps with A > 0 (TRL's clip ratio, pg_clipfrac) */
  double value_loss;     /* PPO: sum over tokens of the value loss term */
  double nll;            /* ORPO: sum of -logp over chosen tokens */
  double desirable;      /* KTO: desirable examples seen (the rest of `pairs` are undesirable) */
};

/* Next-token prediction on every token whose target is >= 0 (pre-training,
 * mid-training): returns -sum(logp) / norm over those tokens and writes
 * dlogp (-1 / norm there, 0 elsewhere). NORM: counted tokens. */
double next_token_loss(const float *logp, const int32_t *targets, size_t n, double norm, float *dlogp);

/* Masked next-token prediction (SFT): the same over the tokens whose weight
 * is 1 (the response tokens, the end-of-turn token included); prompt
 * positions get exactly zero gradient. NORM: counted tokens. */
double masked_next_token_loss(const float *logp, const float *weights, size_t n, double norm, float *dlogp);

/* Bradley-Terry reward model loss (TRL RewardTrainer): for each of N pairs,
 * -log sigmoid(r_chosen - r_rejected - margin), margin 0 when MARGIN is
 * NULL. NORM: pairs. Writes d_chosen, d_rejected [N] (d loss / d r).
 * Stats: pairs, correct (r_c > r_r), margin (r_c - r_r), chosen, rejected. */
double bradley_terry_loss(const double *r_chosen, const double *r_rejected, const double *margin, size_t n,
                          double norm, double *d_chosen, double *d_rejected, struct objective_stats *st);

/* Per pair: log-prob sums of the chosen and rejected responses under the
 * policy and the frozen reference, and their counted tokens. */
struct pair_logps {
  const double *chosen, *rejected;         /* policy */
  const double *ref_chosen, *ref_rejected; /* reference (unused by SimPO and ORPO: may be NULL) */
  const double *chosen_len, *rejected_len; /* counted tokens, >= 1 */
};

/* DPO, sigmoid loss with label smoothing (TRL loss_type "sigmoid"):
 * h = beta * ((c - ref_c) - (r - ref_r)),
 * loss = -(1 - ls) log sigmoid(h) - ls log sigmoid(-h). NORM: pairs.
 * Writes d_chosen, d_rejected [N] with respect to the policy sums.
 * Stats: chosen/rejected rewards beta * (logp - ref_logp), correct when the
 * chosen reward is greater, margin their difference. */
double dpo_loss(const struct pair_logps *in, size_t n, double beta, double label_smoothing, double norm,
                double *d_chosen, double *d_rejected, struct objective_stats *st);

/* IPO (TRL loss_type "ipo"): on log-probs averaged over tokens,
 * h = (c/lc - ref_c/lc) - (r/lr - ref_r/lr), loss = (h - 1 / (2 beta))^2.
 * NORM: pairs. Stats as DPO's (pairs, correct, margin, rewards), the
 * rewards beta * averaged log-ratios. */
double ipo_loss(const struct pair_logps *in, size_t n, double beta, double norm, double *d_chosen,
                double *d_rejected, struct objective_stats *st);

/* SimPO (TRL CPOTrainer loss_type "simpo", cpo_alpha 0): on averaged
 * log-probs, no reference: h = beta (c/lc - r/lr) - gamma,
 * loss = -log sigmoid(h). NORM: pairs. Stats as DPO's, the rewards
 * beta * averaged log-probs. */
double simpo_loss(const struct pair_logps *in, size_t n, double beta, double gamma, double norm, double *d_chosen,
                  double *d_rejected, struct objective_stats *st);

/* ORPO (TRL ORPOTrainer): NLL of the chosen responses plus the odds-ratio
 * term, no reference. With averaged log-probs a = c/lc, b = r/lr:
 * log_odds = (a - b) - (log(1 - e^a) - log(1 - e^b)),
 * loss = sum(-c) / TOKEN_NORM - lambda * sum(log sigmoid(log_odds)) / PAIR_NORM
 * (TOKEN_NORM: chosen tokens counted in the step; PAIR_NORM: pairs).
 * Stats as DPO's, the rewards lambda * averaged log-probs; nll and
 * tokens (the chosen ones). */
double orpo_loss(const struct pair_logps *in, size_t n, double lambda, double token_norm, double pair_norm,
                 double *d_chosen, double *d_rejected, struct objective_stats *st);

/* KTO (TRL KTOTrainer): the reference point z0 from mismatched pairs
 * (prompt i with the completion of another example), detached:
 * z0 = max(0, mean(policy_kl - ref_kl)) over N_KL sums; 0 when N_KL is 0. */
double kto_reference_point(const double *policy_kl, const double *ref_kl, size_t n_kl);

/* Per example, r = logp - ref_logp (sums); desirable:
 * loss = w_d (1 - sigmoid(beta (r - z0))); undesirable:
 * loss = w_u (1 - sigmoid(beta (z0 - r))). NORM: examples. Writes d_logp
 * [N] with respect to the policy sum. Stats: chosen/rejected sums of the
 * rewards beta * r of the desirable/undesirable examples, pairs += N,
 * desirable += their count, correct: desirable with r > z0 plus
 * undesirable with r < z0; margin is not touched. */
double kto_loss(const double *logp, const double *ref_logp, const bool *desirable, size_t n, double z0, double beta,
                double desirable_weight, double undesirable_weight, double norm, double *d_logp,
                struct objective_stats *st);

/* GRPO (TRL GRPOTrainer).
 *
 * Advantages: rewards [n_groups * group], consecutive groups; each becomes
 * (r - mean of its group) / (std of its group + 1e-4), the std unbiased
 * (n - 1), as torch.std. Returns the number of groups whose rewards were
 * all exactly equal (a group of one included): their advantages are
 * exactly 0. */
size_t grpo_advantages(const double *rewards, size_t n_groups, size_t group, double *advantages);

enum grpo_normalize {
  GRPO_PER_SEQUENCE, /* TRL "grpo": each sequence's token mean, then the mean over sequences; NORM: sequences */
  GRPO_PER_TOKEN,    /* TRL "bnpo": the sum over every token / tokens; NORM: completion tokens */
  GRPO_FIXED,        /* TRL "dr_grpo": the sum over every token / (sequences x max_new_tokens); NORM: sequences */
};

struct grpo_options {
  double epsilon;      /* clip range: ratio in [1 - epsilon, 1 + epsilon] */
  double beta;         /* the KL coefficient (0: no KL term) */
  enum grpo_normalize normalize;
  int max_new_tokens;  /* GRPO_FIXED's length */
};

/* Per token t of B rows of T: logp (policy, with gradient), old_logp (the
 * policy that sampled), ref_logp, mask (1 on completion tokens),
 * advantages [B]. Per token:
 * l = -min(ratio A, clip(ratio, 1 - eps, 1 + eps) A) + beta k3, with
 * ratio = exp(logp - old), k3 = exp(ref - logp) - (ref - logp) - 1.
 * GRPO_PER_SEQUENCE divides a row by max(1, its tokens), as TRL's clamp.
 * Writes dlogp [B*T] (0 off the mask, which is never read). Stats:
 * sequences (B), tokens, kl (sum of logp - ref), clipped. */
double grpo_loss(const float *logp, const float *old_logp, const float *ref_logp, const float *mask,
                 const double *advantages, int B, int T, const struct grpo_options *opt, double norm, float *dlogp,
                 struct objective_stats *st);

/* PPO (TRL PPOTrainer).
 *
 * Rewards per token of B rows of T: -kl_coef (old_logp - ref_logp) on every
 * masked token, plus SCORE[b] on the row's last masked token. Writes
 * rewards [B*T] (0 off the mask). */
void ppo_rewards(const float *old_logp, const float *ref_logp, const float *mask, const double *score, int B, int T,
                 double kl_coef, float *rewards);

/* GAE over each row's masked tokens (which are contiguous): delta_t =
 * r_t + gamma V_{t+1} - V_t (V past the last token is 0), A_t = delta_t +
 * gamma lambda A_{t+1}; returns_t = A_t + V_t. Then the advantages are
 * whitened over every masked token of the batch (mean 0, variance 1 with
 * the unbiased variance and 1e-8 added, as TRL's masked_whiten; a single
 * masked token whitens to 0). The returns use the advantages before
 * whitening. Writes advantages and returns [B*T] (0 off the mask). */
void ppo_gae(const float *rewards, const float *values, const float *mask, int B, int T, double gamma, double lambda,
             float *advantages, float *returns);

struct ppo_options {
  double clip;        /* policy ratio clip range */
  double clip_value;  /* value clip range around the rollout's values (TRL cliprange_value 0.2) */
  double vf_coef;     /* weight of the value loss */
};

/* Per masked token: pg = max(-A ratio, -A clip(ratio, 1 - clip, 1 + clip)),
 * ratio = exp(logp - old_logp); vf = 0.5 max((v - R)^2, (clip(v, v_old -
 * clip_value, v_old + clip_value) - R)^2); loss = sum(pg + vf_coef vf) /
 * NORM (masked tokens of the step; TRL's value mean counts one more token
 * per row). At an exact tie of a max's branches the gradient goes through
 * the unclipped one. Writes dlogp and dvalues [B*T]. Stats: tokens,
 * clipped (policy), value_loss (sum of vf). */
double ppo_loss(const float *logp, const float *old_logp, const float *advantages, const float *values,
                const float *old_values, const float *returns, const float *mask, int B, int T,
                const struct ppo_options *opt, double norm, float *dlogp, float *dvalues, struct objective_stats *st);

#endif
