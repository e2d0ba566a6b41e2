/* The loop of the stages that learn from their own samples: GRPO, PPO and
 * online DPO. A step draws prompts, samples completions from the policy
 * through its KV cache (generate.h), scores them with the reward (a reward
 * model's scalar head at the last token, or a verifier), takes the frozen
 * reference's log-probs of them, and trains:
 *
 *   grpo: `group` completions per prompt, advantages normalised within the
 *     group, one optimiser step on the clipped surrogate plus k3 KL;
 *   ppo: one completion per prompt, per-token rewards with the KL penalty,
 *     GAE over the policy's value head, `ppo_epochs` optimiser steps on
 *     the clipped policy and value losses;
 *   online_dpo: two completions per prompt, the better-scored one chosen
 *     (ties skipped), a DPO step against the reference; `rounds` splits
 *     the steps, and each round ends with its win rate: how often the
 *     policy's answer to a held-out prompt outscores the reference's.
 *
 * Every step logs the mean reward, the KL to the reference (per completion
 * token, log pi - log pi_ref), the clip fraction and the response length;
 * PPO adds the value loss and the explained variance. A GRPO stage whose
 * groups all score the same for `constant_patience` steps in a row stops
 * with an error: its verifier gives no signal to learn from. */
#ifndef TRAINPIPE_RL_H
#define TRAINPIPE_RL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/backend.h"
#include "runtime/examples.h"
#include "runtime/objectives/objectives.h"
#include "runtime/schedule.h"
#include "runtime/tokenizer.h"
#include "runtime/train.h"
#include "runtime/verifier.h"

enum rl_kind { RL_GRPO, RL_PPO, RL_ONLINE_DPO };

struct rl_run {
  const char *name, *state, *tokenizer_name, *template_name;
  enum rl_kind kind;
  struct backend *policy;     /* trains; gen_rows >= completions per step; PPO: with a value head */
  struct backend *reference;  /* does not train; NULL: no KL term */
  struct backend *reward_model; /* does not train, with a reward head; or NULL and: */
  const struct verifier *verifier;
  struct example_set *prompts;
  const struct tokenizer *tok;
  int prompts_per_step;       /* grpo: batch / group; ppo, online_dpo: batch */
  int group;                  /* completions per prompt: grpo's group, 1 for ppo, 2 for online_dpo */
  int micro_batch;            /* rows per forward */
  int context;                /* the longest prompt + completion */
  int max_new_tokens, top_k;
  double temperature, top_p;
  double kl, clip, vf_coef, gamma, lambda, beta;
  enum grpo_normalize normalize;
  int ppo_epochs, rounds;
  long steps;
  struct schedule schedule;
  float beta1, beta2, eps, weight_decay, grad_clip;
  long eval_every, log_every, checkpoint_every;
  long constant_patience;     /* grpo: steps of all-equal groups before stopping */
  uint64_t seed;
  const char *dir;
  bool resume;
  volatile sig_atomic_t *interrupted;
  FILE *progress;
  bool tty;
  const char **notes;
  size_t n_notes;
};

bool rl_train(const struct rl_run *run, struct stage_result *result, char *err, size_t err_size);

#endif
