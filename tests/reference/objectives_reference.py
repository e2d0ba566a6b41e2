#!/usr/bin/env python3
"""Reference values for the objectives of runtime/objectives/objectives.h, from TRL.

Pinned: TRL 0.25.1 (with transformers 4.57.1, accelerate 1.15.0, datasets
4.4.1 so that it imports) and PyTorch 2.15.0. 0.25.1 is the last release
that has every objective below in trl/trainer/: later ones move CPO, ORPO,
KTO and PPO to trl.experimental, and from 0.29 DPOTrainer.dpo_loss and
KTOTrainer.kto_loss are gone. In 0.26.2 the functions used here are the
same code (under trl/experimental/ for CPO, ORPO, KTO, PPO), except
GRPOTrainer._compute_loss, which is reorganised around new loss types but
computes "grpo", "bnpo" and "dr_grpo" the same way. The script
refuses to run with another TRL version: the stand-ins below carry exactly
the attributes these versions of the methods read.

Every value is computed in float64 by TRL's own code where TRL has a
function for it, called unbound on a stand-in `self` (a SimpleNamespace, so
an attribute the method reads and the stand-in lacks raises), and the
gradients come from torch autograd. Where TRL computes inline in a training
loop, the lines are transcribed, citing the file and lines of TRL 0.25.1:

  DPO     DPOTrainer.dpo_loss, loss_type "sigmoid"          (dpo_trainer.py:1024), called
  IPO     DPOTrainer.dpo_loss, loss_type "ipo", on log-probs averaged over
          tokens as concatenated_forward does for "ipo"     (dpo_trainer.py:1679), called
  SimPO   CPOTrainer.cpo_loss, loss_type "simpo", averaged log-probs
          (cpo_trainer.py:843), loss = losses.mean() + cpo_alpha * nll with
          cpo_alpha 0                                       (cpo_trainer.py:668, 884), called
  ORPO    ORPOTrainer.odds_ratio_loss on averaged log-probs (orpo_trainer.py:654), called;
          loss = policy_nll_loss - losses.mean()            (orpo_trainer.py:834), transcribed, with
          policy_nll_loss the mean of -logp over every chosen token (TRL's
          nn.CrossEntropyLoss over the chosen sequences, orpo_trainer.py:785)
  KTO     KTOTrainer.kto_loss, loss_type "kto", calculate_KL (kto_trainer.py:1124), called;
          loss = losses.nanmean()                           (kto_trainer.py:1476)
  BT      RewardTrainer.compute_loss with a stand-in model returning the
          rewards as logits                                 (reward_trainer.py:530), called
  GRPO    advantages: the group mean / std lines of
          GRPOTrainer._generate_and_score_completions, scale_rewards "group"
                                                            (grpo_trainer.py:1600-1620), transcribed;
          loss: GRPOTrainer._compute_loss, loss_type "grpo", "bnpo", "dr_grpo",
          with _get_per_token_logps_and_entropies standing in for the model
                                                            (grpo_trainer.py:1763), called
  PPO     PPOTrainer.train's rewards (k1), GAE and whitening
                                                            (ppo_trainer.py:587-621), transcribed;
          its policy and value loss                         (ppo_trainer.py:652-677), transcribed;
          both with TRL's own masked_mean / masked_whiten   (ppo_trainer.py:79, 106), imported

The C contract normalises by NORM, the units of the whole optimiser step,
and returns sum / NORM; TRL takes means over the batch. Each case is one
batch with NORM = its size (pairs, examples, sequences or tokens), which
makes the two the same.

Inputs are drawn from fixed torch generators and written into the header
with full precision (%.17g), so the C test needs no formula. The GRPO and
PPO functions take float inputs: their inputs are rounded to float32 here
first and the reference is float64 arithmetic on those values. The PPO
stages are chained the same way: the GAE is fed the float32 rounding of the
rewards the header records, and the loss the float32 rounding of the
advantages and returns.

Two places where the C contract and TRL are not the same computation, and
what the cases do about them:

- PPO: for a response shorter than the padded width, TRL adds the score one
  token after the last response token (the first padding slot,
  `actual_end = sequence_lengths_p1`, ppo_trainer.py:601; see
  huggingface/trl issues #1893 and #3750) and keeps the value there in the
  GAE and in the value loss (`padding_mask_p1`). The contract puts the score
  on the last masked token and stops the GAE there. The two agree when every
  response fills its row, so in the PPO case every row's masked span has the
  same length, TRL runs on those spans without padding, and the C layout
  puts each span at a different offset of a wider row (unmasked junk on
  both sides), which checks the C masking against TRL all the same.
- ORPO: TRL's NLL counts the prompt tokens of the chosen sequence too
  (nn.CrossEntropyLoss over the whole concatenated chosen input); the
  contract's NLL is over the tokens the caller counts. The reference takes
  the NLL over the counted tokens, sum(-chosen) / sum(chosen_len).

Statistics: each case records those with a TRL counterpart (computed from
the rewards, accuracies, margins, clip fractions and losses that TRL
returns or logs, turned from means into sums) and, marked as such, the few
the contract defines that TRL does not log (computed here from the inputs).

Usage, from the source root, in an environment with the pinned versions:

    TRL_EXPERIMENTAL_SILENCE=1 python3 tests/reference/objectives_reference.py [OUTPUT]

OUTPUT defaults to objective_values.h beside this script. The output is
the same byte for byte on a rerun.
"""

import math
import os
import sys
import types
from collections import defaultdict

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import trl  # noqa: E402
from trl.trainer.cpo_trainer import CPOTrainer  # noqa: E402
from trl.trainer.dpo_config import FDivergenceConstants, FDivergenceType  # noqa: E402
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402
from trl.trainer.orpo_trainer import ORPOTrainer  # noqa: E402
from trl.trainer.ppo_trainer import masked_mean, masked_whiten  # noqa: E402
from trl.trainer.reward_trainer import RewardTrainer  # noqa: E402

TRL_VERSION = "0.25.1"
D = torch.float64

# ----------------------------------------------------------------------------
# Stand-ins


class Accelerator:
    """What the methods use of accelerate.Accelerator, on one CPU process."""

    device = torch.device("cpu")
    num_processes = 1
    process_index = 0

    @staticmethod
    def gather_for_metrics(t):
        return t

    @staticmethod
    def gather(t):
        return t.reshape(1) if t.dim() == 0 else t


def stand_in(**attrs):
    return types.SimpleNamespace(accelerator=Accelerator(), **attrs)


def leaf(values):
    return torch.tensor(values, dtype=D, requires_grad=True)


def count(x):
    """A count that TRL logs as a float32 fraction, times its denominator."""
    assert abs(x - round(x)) < 1e-4, x
    return float(round(x))


def grad_of(loss, *leaves):
    gs = torch.autograd.grad(loss, leaves)
    return [g.tolist() for g in gs]


# ----------------------------------------------------------------------------
# Inputs


def uniform(gen, n, lo, hi):
    return (lo + (hi - lo) * torch.rand(n, dtype=D, generator=gen)).tolist()


def normal(gen, n, scale):
    return (scale * torch.randn(n, dtype=D, generator=gen)).tolist()


def randint(gen, n, lo, hi):
    """n integers in [lo, hi]."""
    return torch.randint(lo, hi + 1, (n,), generator=gen).tolist()


def f32(values):
    return torch.tensor(values, dtype=D).to(torch.float32).to(D).tolist()


N_PAIRS = 5


def pair_inputs():
    """Log-prob sums and counted tokens of N_PAIRS preference pairs; the last
    pair's chosen and rejected responses are the same (a reward tie)."""
    g = torch.Generator().manual_seed(1201)
    lc = [float(x) for x in randint(g, N_PAIRS, 2, 16)]
    lr = [float(x) for x in randint(g, N_PAIRS, 2, 16)]
    ac = uniform(g, N_PAIRS, -2.0, -0.15)
    ar = uniform(g, N_PAIRS, -2.5, -0.2)
    c = [a * n for a, n in zip(ac, lc)]
    r = [a * n for a, n in zip(ar, lr)]
    rc = [x + e for x, e in zip(c, normal(g, N_PAIRS, 2.0))]
    rr = [x + e for x, e in zip(r, normal(g, N_PAIRS, 2.0))]
    t = N_PAIRS - 1
    r[t], lr[t], rr[t] = c[t], lc[t], rc[t]
    return {"chosen": c, "rejected": r, "ref_chosen": rc, "ref_rejected": rr, "chosen_len": lc, "rejected_len": lr}


N_BT = 6


def bt_inputs():
    """Reward-model outputs for N_BT pairs and margins; the last pair ties."""
    g = torch.Generator().manual_seed(1202)
    rc = normal(g, N_BT, 1.5)
    rr = normal(g, N_BT, 1.5)
    margin = uniform(g, N_BT, 0.0, 1.0)
    rr[N_BT - 1] = rc[N_BT - 1]
    return {"chosen": rc, "rejected": rr, "margin": margin}


N_KTO = 6
KTO_DESIRABLE = [1, 0, 1, 1, 0, 0]


def kto_inputs():
    """N_KTO examples (desirable or not, in mixed order) and two sets of
    mismatched-pair sums: one whose mean policy - reference gap is positive,
    one where it is negative (z0 clamps to 0)."""
    g = torch.Generator().manual_seed(1203)
    n = [float(x) for x in randint(g, N_KTO, 3, 14)]
    logp = [a * k for a, k in zip(uniform(g, N_KTO, -2.0, -0.2), n)]
    ref = [x + e for x, e in zip(logp, normal(g, N_KTO, 3.0))]
    kl_pol = [a * k for a, k in zip(uniform(g, N_KTO, -3.0, -0.5), [float(x) for x in randint(g, N_KTO, 3, 14)])]
    gap_pos = [1.5 + e for e in normal(g, N_KTO, 1.0)]
    gap_neg = [-0.8 + e for e in normal(g, N_KTO, 0.5)]
    kl_ref = [[p - d for p, d in zip(kl_pol, gap)] for gap in (gap_pos, gap_neg)]
    assert sum(gap_pos) > 0 and sum(gap_neg) < 0
    return {"logp": logp, "ref_logp": ref, "kl_policy": kl_pol, "kl_ref": kl_ref}


GRPO_GROUPS, GRPO_GROUP, GRPO_T = 3, 4, 6
GRPO_B = GRPO_GROUPS * GRPO_GROUP


def grpo_inputs():
    """Rewards of 3 groups of 4 (continuous; binary; all equal), and per-token
    float32 log-probs of B x T completions: the completion mask is one run
    of 1 per row, some starting late; old_logp differs from logp enough
    that some ratios leave [0.8, 1.2]. Positions off the mask hold junk."""
    g = torch.Generator().manual_seed(1204)
    rewards = uniform(g, GRPO_GROUP, 0.0, 1.0) + [1.0, 0.0, 0.0, 1.0] + [1.0] * GRPO_GROUP
    lens = randint(g, GRPO_B, 1, GRPO_T)
    lens[0] = GRPO_T
    offs = [randint(g, 1, 0, GRPO_T - k)[0] for k in lens]
    mask = [1.0 if o <= t < o + k else 0.0 for k, o in zip(lens, offs) for t in range(GRPO_T)]
    n = GRPO_B * GRPO_T
    logp = f32(uniform(g, n, -3.0, -0.01))
    old = f32([x + e for x, e in zip(logp, normal(g, n, 0.25))])
    ref = f32([x + e for x, e in zip(logp, normal(g, n, 0.3))])
    return {"rewards": rewards, "logp": logp, "old_logp": old, "ref_logp": ref, "mask": mask}


PPO_B, PPO_T, PPO_L = 3, 8, 5
PPO_OFFSETS = [0, 2, 3]


def ppo_inputs():
    """B rows of T; row b's masked span is [PPO_OFFSETS[b], + PPO_L). Float32
    rollout log-probs, reference log-probs, values, the current log-probs
    and value predictions, and a score per row."""
    g = torch.Generator().manual_seed(1209)
    n = PPO_B * PPO_T
    mask = [1.0 if o <= t < o + PPO_L else 0.0 for o in PPO_OFFSETS for t in range(PPO_T)]
    old = f32(uniform(g, n, -3.0, -0.01))
    ref = f32([x + e for x, e in zip(old, normal(g, n, 0.3))])
    values = f32(normal(g, n, 0.5))
    score = f32(normal(g, PPO_B, 1.0))
    logp = f32([x + e for x, e in zip(old, normal(g, n, 0.3))])
    vpred = f32([x + e for x, e in zip(values, normal(g, n, 0.3))])
    return {"old_logp": old, "ref_logp": ref, "values": values, "score": score, "logp": logp, "vpred": vpred,
            "mask": mask}


# ----------------------------------------------------------------------------
# Objectives


def pair_stats(chosen_rewards, rejected_rewards, n):
    return {
        "pairs": float(n),
        "correct": float((chosen_rewards > rejected_rewards).float().sum()),
        "margin": float((chosen_rewards - rejected_rewards).sum()),
        "chosen": float(chosen_rewards.sum()),
        "rejected": float(rejected_rewards.sum()),
        "nll": 0.0,
    }


def dpo_like(p, loss_type, beta, label_smoothing):
    """DPOTrainer.dpo_loss; "ipo" on averaged log-probs (policy and reference,
    as concatenated_forward averages both for "ipo")."""
    self = stand_in(beta=beta, label_smoothing=label_smoothing, reference_free=False,
                    f_divergence_type=FDivergenceType.REVERSE_KL,
                    f_divergence_params={FDivergenceConstants.ALPHA_DIVERGENCE_COEF_KEY: 1.0})
    c, r = leaf(p["chosen"]), leaf(p["rejected"])
    rc, rr = torch.tensor(p["ref_chosen"], dtype=D), torch.tensor(p["ref_rejected"], dtype=D)
    if loss_type == "ipo":
        lc, lr = torch.tensor(p["chosen_len"], dtype=D), torch.tensor(p["rejected_len"], dtype=D)
        args = (c / lc, r / lr, rc / lc, rr / lr)
    else:
        args = (c, r, rc, rr)
    losses, cr, rjr = DPOTrainer.dpo_loss(self, *args, loss_type=loss_type)
    loss = losses.mean()
    dc, dr = grad_of(loss, c, r)
    return loss.item(), dc, dr, pair_stats(cr, rjr, len(p["chosen"]))


def simpo(p, beta, gamma):
    self = stand_in(beta=beta, label_smoothing=0.0, loss_type="simpo", simpo_gamma=gamma, alpha=0.0)
    c, r = leaf(p["chosen"]), leaf(p["rejected"])
    lc, lr = torch.tensor(p["chosen_len"], dtype=D), torch.tensor(p["rejected_len"], dtype=D)
    losses, cr, rjr = CPOTrainer.cpo_loss(self, c / lc, r / lr)
    cpo_alpha, policy_nll_loss = 0.0, torch.zeros((), dtype=D)
    loss = losses.mean() + cpo_alpha * policy_nll_loss  # cpo_trainer.py:884
    dc, dr = grad_of(loss, c, r)
    return loss.item(), dc, dr, pair_stats(cr, rjr, len(p["chosen"]))


def orpo(p, lam):
    self = stand_in(beta=lam)
    c, r = leaf(p["chosen"]), leaf(p["rejected"])
    lc, lr = torch.tensor(p["chosen_len"], dtype=D), torch.tensor(p["rejected_len"], dtype=D)
    losses, cr, rjr, _, _ = ORPOTrainer.odds_ratio_loss(self, c / lc, r / lr)
    policy_nll_loss = (-c).sum() / lc.sum()  # the mean of -logp over every chosen token
    loss = policy_nll_loss - losses.mean()  # orpo_trainer.py:834
    dc, dr = grad_of(loss, c, r)
    st = pair_stats(cr, rjr, len(p["chosen"]))
    st["nll"] = (policy_nll_loss * lc.sum()).item()
    return loss.item(), dc, dr, st, float(lc.sum())


def kto(k, kl_set, beta, wd, wu):
    self = stand_in(calculate_KL=True, loss_type="kto", beta=beta, desirable_weight=wd, undesirable_weight=wu)
    logp = leaf(k["logp"])
    ref = torch.tensor(k["ref_logp"], dtype=D)
    des = torch.tensor(KTO_DESIRABLE, dtype=torch.bool)
    pol_kl = torch.tensor(k["kl_policy"], dtype=D)
    ref_kl = torch.tensor(k["kl_ref"][kl_set], dtype=D)
    losses, cr, rjr, kl = KTOTrainer.kto_loss(self, logp[des], logp[~des], pol_kl, ref[des], ref[~des], ref_kl)
    loss = losses.nanmean()  # kto_trainer.py:1476
    (d,) = grad_of(loss, logp)
    z0 = float(kl)
    rew = [x - y for x, y in zip(k["logp"], k["ref_logp"])]
    st = {
        "pairs": float(N_KTO),
        "chosen": float(cr.sum()),  # TRL logs rewards/chosen_sum
        "rejected": float(rjr.sum()),  # and rewards/rejected_sum
        # contract only: desirable with r > z0 plus undesirable with r < z0
        "correct": float(sum(1 for x, dz in zip(rew, KTO_DESIRABLE) if (x > z0 if dz else x < z0))),
    }
    return loss.item(), d, z0, st


def bradley_terry(b, with_margin):
    rc, rr = leaf(b["chosen"]), leaf(b["rejected"])
    logits = torch.cat([rc, rr]).unsqueeze(-1)
    model = lambda **inputs: types.SimpleNamespace(logits=logits)  # noqa: E731
    metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    self = stand_in(model=types.SimpleNamespace(training=True),
                    args=types.SimpleNamespace(center_rewards_coefficient=None),
                    _total_train_tokens=0, _metrics=metrics)
    inputs = {"attention_mask": torch.ones(2 * N_BT, 3, dtype=torch.long)}
    if with_margin:
        inputs["margin"] = torch.tensor(b["margin"], dtype=D)
    loss = RewardTrainer.compute_loss(self, model, inputs)
    dc, dr = grad_of(loss, rc, rr)
    m = metrics["train"]
    st = {
        "pairs": float(N_BT),
        "correct": count(m["accuracy"][-1] * N_BT),  # TRL's accuracy and margin, means over the pairs
        "margin": m["margin"][-1] * N_BT,
        # contract only: the sums of the rewards
        "chosen": float(sum(b["chosen"])),
        "rejected": float(sum(b["rejected"])),
    }
    return loss.item(), dc, dr, st


def grpo_advantages(rewards):
    """grpo_trainer.py:1600-1620 (scale_rewards "group"), transcribed."""
    num_generations = GRPO_GROUP
    rewards = torch.tensor(rewards, dtype=D)
    mean_grouped_rewards = rewards.view(-1, num_generations).mean(dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    advantages = rewards - mean_grouped_rewards
    std_rewards = rewards.view(-1, num_generations).std(dim=1)
    std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
    is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    advantages = advantages / (std_rewards + 1e-4)
    # frac_reward_zero_std (grpo_trainer.py:1638) is over completions; groups are equal in size
    zero_std_groups = is_std_zero.float().mean().item() * GRPO_GROUPS
    return advantages.tolist(), int(count(zero_std_groups))


def grpo_loss(gi, advantages, loss_type, beta, epsilon, max_completion_length):
    B, T = GRPO_B, GRPO_T
    logp = leaf(gi["logp"])
    per_token_logps = logp.view(B, T)
    metrics = {"train": defaultdict(list), "eval": defaultdict(list)}

    def get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        assert logits_to_keep == T
        return per_token_logps, torch.zeros(B, T, dtype=D)

    self = stand_in(
        _get_per_token_logps_and_entropies=get_per_token_logps_and_entropies,
        top_entropy_quantile=1.0, beta=beta, epsilon_low=epsilon, epsilon_high=epsilon,
        importance_sampling_level="token", args=types.SimpleNamespace(delta=None),
        use_vllm=False, vllm_importance_sampling_correction=False, loss_type=loss_type,
        current_gradient_accumulation_steps=1, max_completion_length=max_completion_length,
        model=types.SimpleNamespace(training=True), _metrics=metrics)
    mask = torch.tensor(gi["mask"], dtype=D).view(B, T)
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
        "advantages": torch.tensor(advantages, dtype=D),
        "old_per_token_logps": torch.tensor(gi["old_logp"], dtype=D).view(B, T),
    }
    if beta != 0.0:
        inputs["ref_per_token_logps"] = torch.tensor(gi["ref_logp"], dtype=D).view(B, T)
    loss = GRPOTrainer._compute_loss(self, None, inputs)
    (d,) = grad_of(loss, logp)
    m = metrics["train"]
    tokens = float(mask.sum())

    # The size of the terms the loss adds up (for the C test's tolerance): the
    # same normalisation applied to |per-token loss|.
    with torch.no_grad():
        lp = per_token_logps
        ratio = torch.exp(lp - inputs["old_per_token_logps"])
        adv = inputs["advantages"].unsqueeze(1)
        term = torch.maximum((ratio * adv).abs(), (torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv).abs())
        if beta != 0.0:
            ref = inputs["ref_per_token_logps"]
            term = term + beta * (torch.exp(ref - lp) - (ref - lp) - 1)
        term = term * mask
        if loss_type == "grpo":
            scale = float((term.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean())
        elif loss_type == "bnpo":
            scale = float(term.sum() / tokens)
        else:
            scale = float(term.sum() / (B * max_completion_length))
        kl_sum = float(((lp - torch.tensor(gi["ref_logp"], dtype=D).view(B, T)) * mask).sum())

    st = {
        "sequences": float(B),
        "tokens": tokens,
        "clipped": count(m["clip_ratio/region_mean"][-1] * tokens),  # TRL's clip ratio, a mean over tokens
        "kl": kl_sum,  # contract only: sum of logp - ref_logp (TRL logs the k3 mean below)
        "kl_k3_mean": m["kl"][-1] if beta != 0.0 else 0.0,
    }
    norm = {"grpo": float(B), "bnpo": tokens, "dr_grpo": float(B)}[loss_type]
    return loss.item(), d, st, scale, norm


def ppo_rollout(pi, kl_coef, gamma, lam):
    """ppo_trainer.py:587-621, transcribed, on the masked spans (equal in
    length, no padding: padding_mask is all False). Returns per-row-major
    lists over the spans: rewards, and (fed the float32 rounding of those
    rewards) advantages and returns."""
    B, T, L = PPO_B, PPO_T, PPO_L

    def span(values):
        return torch.tensor([[values[b * T + o + t] for t in range(L)] for b, o in enumerate(PPO_OFFSETS)], dtype=D)

    logprobs, ref_logprobs, values = span(pi["old_logp"]), span(pi["ref_logp"]), span(pi["values"])
    scores = torch.tensor(pi["score"], dtype=D)
    INVALID_LOGPROB = 1.0
    sequence_lengths = torch.full((B,), L - 1)  # responses without padding
    response_idxs = torch.arange(L).repeat(B, 1)
    padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
    logprobs = torch.masked_fill(logprobs, padding_mask, INVALID_LOGPROB)
    ref_logprobs = torch.masked_fill(ref_logprobs, padding_mask, INVALID_LOGPROB)
    sequence_lengths_p1 = sequence_lengths + 1
    padding_mask_p1 = response_idxs > (sequence_lengths_p1.unsqueeze(1))
    values = torch.masked_fill(values, padding_mask_p1, 0)

    logr = ref_logprobs - logprobs
    kl = -logr  # kl_estimator "k1"
    non_score_reward = -kl_coef * kl
    rewards = non_score_reward.clone()
    actual_start = torch.arange(rewards.size(0))
    actual_end = torch.where(sequence_lengths_p1 < rewards.size(1), sequence_lengths_p1, sequence_lengths)
    rewards[actual_start, actual_end] += scores
    rewards_exact = rewards.clone()

    # The C GAE is given the float rewards.
    rewards = rewards.to(torch.float32).to(D)
    lastgaelam = 0
    advantages_reversed = []
    gen_length = L
    for t in reversed(range(gen_length)):
        nextvalues = values[:, t + 1] if t < gen_length - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], axis=1)
    returns = advantages + values
    advantages = masked_whiten(advantages, ~padding_mask)
    advantages = torch.masked_fill(advantages, padding_mask, 0)
    return rewards_exact, advantages, returns


def ppo_loss(pi, adv_rows, ret_rows, cliprange, cliprange_value, vf_coef):
    """ppo_trainer.py:652-677, transcribed, on the spans; mb_advantage and
    mb_return are the float32 rounding of the rollout's advantages and
    returns (what the C loss is given)."""
    B, T, L = PPO_B, PPO_T, PPO_L
    idx = [b * T + o + t for b, o in enumerate(PPO_OFFSETS) for t in range(L)]
    logp_all, vpred_all = leaf(pi["logp"]), leaf(pi["vpred"])
    new_logprobs = logp_all[idx].view(B, L)
    vpred = vpred_all[idx].view(B, L)

    def rows(values):
        return torch.tensor([values[i] for i in idx], dtype=D).view(B, L)

    mb_logprobs, mb_values = rows(pi["old_logp"]), rows(pi["values"])
    mb_advantage = adv_rows.to(torch.float32).to(D)
    mb_return = ret_rows.to(torch.float32).to(D)
    padding_mask = torch.zeros(B, L, dtype=torch.bool)
    padding_mask_p1 = padding_mask

    vpredclipped = torch.clamp(vpred, mb_values - cliprange_value, mb_values + cliprange_value)
    vf_losses1 = torch.square(vpred - mb_return)
    vf_losses2 = torch.square(vpredclipped - mb_return)
    vf_loss_max = torch.max(vf_losses1, vf_losses2)
    vf_loss = 0.5 * masked_mean(vf_loss_max, ~padding_mask_p1)
    vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).float(), ~padding_mask_p1)
    logprobs_diff = new_logprobs - mb_logprobs
    ratio = torch.exp(logprobs_diff)
    pg_losses = -mb_advantage * ratio
    pg_losses2 = -mb_advantage * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss_max = torch.max(pg_losses, pg_losses2)
    pg_loss = masked_mean(pg_loss_max, ~padding_mask)
    loss = pg_loss + vf_coef * vf_loss
    pg_clipfrac = masked_mean((pg_losses2 > pg_losses).float(), ~padding_mask)

    dlogp, dvalues = grad_of(loss, logp_all, vpred_all)
    tokens = float(B * L)
    with torch.no_grad():
        scale = float((pg_loss_max.abs().sum() + vf_coef * 0.5 * vf_loss_max.sum()) / tokens)
    st = {
        "tokens": tokens,
        "clipped": count(float(pg_clipfrac) * tokens),  # TRL's policy/clipfrac, a mean over tokens
        "value_loss": vf_loss.item() * tokens,  # TRL's loss/value, a mean over tokens
    }
    del vf_clipfrac  # TRL's val/clipfrac: the contract keeps no counterpart
    return loss.item(), dlogp, dvalues, st, scale


def spread(rows):
    """[B, L] span values back to the [B, T] layout, 0 off the mask."""
    out = [0.0] * (PPO_B * PPO_T)
    for b, o in enumerate(PPO_OFFSETS):
        for t in range(PPO_L):
            out[b * PPO_T + o + t] = float(rows[b, t])
    return out


# ----------------------------------------------------------------------------
# Output


def c_double(x):
    x = float(x)
    assert math.isfinite(x)
    s = format(x, ".17g")
    return s if ("e" in s or "." in s) else s + ".0"


def c_array(name, values, ctype="double", per_line=4):
    fmt = {"double": c_double, "bool": lambda v: "true" if v else "false"}.get(ctype, str)
    items = [fmt(v) for v in values]
    lines = [f"static const {ctype} {name}[{len(items)}] = {{"]
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")
    lines.append("};")
    return lines


def c_inline(values, per_line=3, indent="     "):
    items = [c_double(v) for v in values]
    return "\n".join(indent + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line))


def main():
    if trl.__version__ != TRL_VERSION:
        sys.exit(f"objectives_reference.py: TRL {TRL_VERSION} is pinned, found {trl.__version__} "
                 f"(pip install trl=={TRL_VERSION} transformers==4.57.1 accelerate==1.15.0 datasets==4.4.1)")
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "objective_values.h")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    body = []

    # -- preference pairs --------------------------------------------------
    p = pair_inputs()
    body.append(f"/* Preference pairs ({N_PAIRS}): policy and reference log-prob sums and counted tokens. The last")
    body.append(" * pair's chosen and rejected responses are the same (a reward tie). */")
    body.append(f"#define OBJREF_PAIRS {N_PAIRS}")
    for key in ("chosen", "rejected", "ref_chosen", "ref_rejected", "chosen_len", "rejected_len"):
        body += c_array(f"objref_pair_{key}", p[key])
    body.append("")

    pair_cases = []  # (objective, name, beta, ls, gamma, norm, token_norm, loss, dc, dr, stats)
    for beta in (0.1, 0.5):
        for ls in (0.0, 0.1):
            loss, dc, dr, st = dpo_like(p, "sigmoid", beta, ls)
            pair_cases.append(("dpo", f"dpo beta {beta} ls {ls}", beta, ls, 0.0, N_PAIRS, 0.0, loss, dc, dr, st))
    for beta in (0.1, 0.5):
        loss, dc, dr, st = dpo_like(p, "ipo", beta, 0.0)
        pair_cases.append(("ipo", f"ipo beta {beta}", beta, 0.0, 0.0, N_PAIRS, 0.0, loss, dc, dr, st))
    loss, dc, dr, st = simpo(p, 2.5, 1.375)
    pair_cases.append(("simpo", "simpo beta 2.5 gamma 1.375", 2.5, 0.0, 1.375, N_PAIRS, 0.0, loss, dc, dr, st))
    loss, dc, dr, st, tok = orpo(p, 0.1)
    pair_cases.append(("orpo", "orpo lambda 0.1", 0.1, 0.0, 0.0, N_PAIRS, tok, loss, dc, dr, st))

    body.append("static const struct objref_pair_case objref_pair_cases[] = {")
    for obj, name, beta, ls, gamma, norm, tok, loss, dc, dr, st in pair_cases:
        print(f"{name}: loss {loss:.12g}, correct {st['correct']:g}")
        body.append(f"  {{OBJREF_{obj.upper()}, \"{name}\", {c_double(beta)}, {c_double(ls)}, {c_double(gamma)}, "
                    f"{c_double(norm)}, {c_double(tok)}, {c_double(loss)},")
        body.append("   {\n" + c_inline(dc) + "\n   },")
        body.append("   {\n" + c_inline(dr) + "\n   },")
        body.append(f"   {c_double(st['pairs'])}, {c_double(st['correct'])}, {c_double(st['margin'])}, "
                    f"{c_double(st['chosen'])}, {c_double(st['rejected'])}, {c_double(st['nll'])}}},")
    body.append("};")
    body.append("#define OBJREF_PAIR_CASES (sizeof objref_pair_cases / sizeof objref_pair_cases[0])")
    body.append("")

    # -- Bradley-Terry -------------------------------------------------------
    b = bt_inputs()
    body.append(f"/* Bradley-Terry: reward-model outputs of {N_BT} pairs and margins; the last pair ties. */")
    body.append(f"#define OBJREF_BT {N_BT}")
    for key in ("chosen", "rejected", "margin"):
        body += c_array(f"objref_bt_{key}", b[key])
    body.append("static const struct objref_bt_case objref_bt_cases[] = {")
    for with_margin in (False, True):
        loss, dc, dr, st = bradley_terry(b, with_margin)
        name = "bradley-terry margin" if with_margin else "bradley-terry"
        print(f"{name}: loss {loss:.12g}, correct {st['correct']:g}")
        body.append(f"  {{\"{name}\", {int(with_margin)}, {c_double(N_BT)}, {c_double(loss)},")
        body.append("   {\n" + c_inline(dc) + "\n   },")
        body.append("   {\n" + c_inline(dr) + "\n   },")
        body.append(f"   {c_double(st['pairs'])}, {c_double(st['correct'])}, {c_double(st['margin'])}, "
                    f"{c_double(st['chosen'])}, {c_double(st['rejected'])}}},")
    body.append("};")
    body.append("#define OBJREF_BT_CASES (sizeof objref_bt_cases / sizeof objref_bt_cases[0])")
    body.append("")

    # -- KTO -----------------------------------------------------------------
    k = kto_inputs()
    body.append(f"/* KTO: {N_KTO} examples (log-prob sums, desirable or not) and two sets of {N_KTO} mismatched-pair")
    body.append(" * sums (policy, reference): set 0's mean gap is positive, set 1's negative (z0 = 0). */")
    body.append(f"#define OBJREF_KTO {N_KTO}")
    body += c_array("objref_kto_logp", k["logp"])
    body += c_array("objref_kto_ref_logp", k["ref_logp"])
    body += c_array("objref_kto_desirable", KTO_DESIRABLE, ctype="bool", per_line=8)
    body += c_array("objref_kto_kl_policy", k["kl_policy"])
    body.append(f"static const double objref_kto_kl_ref[2][{N_KTO}] = {{")
    for s in k["kl_ref"]:
        body.append("  {\n" + c_inline(s, 4, "    ") + "\n  },")
    body.append("};")
    body.append("static const struct objref_kto_case objref_kto_cases[] = {")
    for kl_set, beta, wd, wu in ((0, 0.1, 1.0, 1.33), (1, 0.1, 1.0, 1.33), (0, 0.5, 1.33, 1.0)):
        loss, d, z0, st = kto(k, kl_set, beta, wd, wu)
        name = f"kto set {kl_set} beta {beta} weights {wd}/{wu}"
        print(f"{name}: z0 {z0:.12g}, loss {loss:.12g}")
        body.append(f"  {{\"{name}\", {kl_set}, {c_double(beta)}, {c_double(wd)}, {c_double(wu)}, {c_double(N_KTO)}, "
                    f"{c_double(z0)}, {c_double(loss)},")
        body.append("   {\n" + c_inline(d) + "\n   },")
        body.append(f"   {c_double(st['pairs'])}, {c_double(st['chosen'])}, {c_double(st['rejected'])}, "
                    f"{c_double(st['correct'])}}},")
    body.append("};")
    body.append("#define OBJREF_KTO_CASES (sizeof objref_kto_cases / sizeof objref_kto_cases[0])")
    body.append("")

    # -- GRPO ----------------------------------------------------------------
    gi = grpo_inputs()
    adv, zero_groups = grpo_advantages(gi["rewards"])
    body.append(f"/* GRPO: rewards of {GRPO_GROUPS} groups of {GRPO_GROUP} and their advantages (scale_rewards")
    body.append(f" * \"group\"); {GRPO_B} completions of {GRPO_T} positions: float32 values (logp, old_logp,")
    body.append(" * ref_logp; junk off the mask) and the completion mask. */")
    body.append(f"#define OBJREF_GRPO_GROUPS {GRPO_GROUPS}")
    body.append(f"#define OBJREF_GRPO_GROUP {GRPO_GROUP}")
    body.append(f"#define OBJREF_GRPO_B {GRPO_B}")
    body.append(f"#define OBJREF_GRPO_T {GRPO_T}")
    body.append(f"#define OBJREF_GRPO_ZERO_STD_GROUPS {zero_groups}")
    body += c_array("objref_grpo_rewards", gi["rewards"])
    body += c_array("objref_grpo_advantages", adv)
    for key in ("logp", "old_logp", "ref_logp", "mask"):
        body += c_array(f"objref_grpo_{key}", gi[key], per_line=GRPO_T if key == "mask" else 3)
    body.append("static const struct objref_grpo_case objref_grpo_cases[] = {")
    enum = {"grpo": "GRPO_PER_SEQUENCE", "bnpo": "GRPO_PER_TOKEN", "dr_grpo": "GRPO_FIXED"}
    for loss_type, beta in (("grpo", 0.04), ("bnpo", 0.04), ("dr_grpo", 0.04), ("grpo", 0.0)):
        eps, max_new = 0.2, 8
        loss, d, st, scale, norm = grpo_loss(gi, adv, loss_type, beta, eps, max_new)
        name = f"{loss_type} beta {beta}"
        print(f"{name}: loss {loss:.12g}, clipped {st['clipped']:g} of {st['tokens']:g}")
        body.append(f"  {{\"{name}\", {enum[loss_type]}, {c_double(beta)}, {c_double(eps)}, {max_new}, "
                    f"{c_double(norm)}, {c_double(loss)}, {c_double(scale)},")
        body.append("   {\n" + c_inline(d, GRPO_T) + "\n   },")
        body.append(f"   {c_double(st['sequences'])}, {c_double(st['tokens'])}, {c_double(st['clipped'])}, "
                    f"{c_double(st['kl'])}, {c_double(st['kl_k3_mean'])}}},")
    body.append("};")
    body.append("#define OBJREF_GRPO_CASES (sizeof objref_grpo_cases / sizeof objref_grpo_cases[0])")
    body.append("")

    # -- PPO -----------------------------------------------------------------
    pi = ppo_inputs()
    kl_coef, gamma, lam = 0.05, 0.99, 0.95
    cliprange, cliprange_value, vf_coef = 0.2, 0.2, 0.1
    rew_rows, adv_rows, ret_rows = ppo_rollout(pi, kl_coef, gamma, lam)
    loss, dlogp, dvalues, st, scale = ppo_loss(pi, adv_rows, ret_rows, cliprange, cliprange_value, vf_coef)
    print(f"ppo: loss {loss:.12g}, clipped {st['clipped']:g} of {st['tokens']:g}, value loss {st['value_loss']:.12g}")
    body.append(f"/* PPO: {PPO_B} rows of {PPO_T}; row b's masked span starts at {PPO_OFFSETS} and is {PPO_L} long.")
    body.append(" * Float32 inputs (junk off the mask): the rollout's old_logp, ref_logp and values, the score")
    body.append(" * per row; the current logp and value predictions (vpred). Expected: the rewards, then (from")
    body.append(" * the float rewards) advantages and returns, then (from the float advantages and returns)")
    body.append(" * the loss and its gradients. */")
    body.append(f"#define OBJREF_PPO_B {PPO_B}")
    body.append(f"#define OBJREF_PPO_T {PPO_T}")
    for name, v in (("kl_coef", kl_coef), ("gamma", gamma), ("lambda", lam), ("clip", cliprange),
                    ("clip_value", cliprange_value), ("vf_coef", vf_coef)):
        body.append(f"#define OBJREF_PPO_{name.upper()} {c_double(v)}")
    for key in ("old_logp", "ref_logp", "values", "logp", "vpred", "mask", "score"):
        body += c_array(f"objref_ppo_{key}", pi[key], per_line=PPO_T if key == "mask" else 4)
    body += c_array("objref_ppo_rewards", spread(rew_rows))
    body += c_array("objref_ppo_advantages", spread(adv_rows))
    body += c_array("objref_ppo_returns", spread(ret_rows))
    body += c_array("objref_ppo_dlogp", dlogp)
    body += c_array("objref_ppo_dvalues", dvalues)
    body.append(f"#define OBJREF_PPO_NORM {c_double(st['tokens'])}")
    body.append(f"#define OBJREF_PPO_LOSS {c_double(loss)}")
    body.append(f"#define OBJREF_PPO_LOSS_SCALE {c_double(scale)}")
    body.append(f"#define OBJREF_PPO_TOKENS {c_double(st['tokens'])}")
    body.append(f"#define OBJREF_PPO_CLIPPED {c_double(st['clipped'])}")
    body.append(f"#define OBJREF_PPO_VALUE_LOSS {c_double(st['value_loss'])}")
    body.append("")

    head = f"""/* Reference values for tests/unit/test_objective_reference.c: the objectives
 * of runtime/objectives/objectives.h computed by TRL {trl.__version__} itself (PyTorch
 * {torch.__version__.split('+')[0]}, float64, CPU), gradients by torch autograd.
 * Generated by
 *     TRL_EXPERIMENTAL_SILENCE=1 python3 tests/reference/objectives_reference.py
 * which says which TRL function or lines give each value (see also
 * tests/reference/README.md); do not edit by hand.
 *
 * Every case is one batch whose NORM is its size (pairs, examples, sequences
 * or tokens), so the contract's sum / NORM is TRL's mean. Gradients are with
 * respect to the policy log-prob sums (pairs, KTO), the rewards (Bradley-
 * Terry), or each token's log-prob and value prediction (GRPO, PPO; 0 off
 * the mask). Statistics are sums, as struct objective_stats holds them; each
 * field says whether TRL logs it (as a mean, turned into a sum here) or only
 * the contract defines it (computed by the script from the inputs). GRPO
 * and PPO inputs are float32 values, written as doubles. */
#ifndef TRAINPIPE_TESTS_REFERENCE_OBJECTIVE_VALUES_H
#define TRAINPIPE_TESTS_REFERENCE_OBJECTIVE_VALUES_H

#include <stdbool.h>

#include "runtime/objectives/objectives.h"

enum objref_objective {{ OBJREF_DPO, OBJREF_IPO, OBJREF_SIMPO, OBJREF_ORPO }};

/* DPO (beta, label_smoothing), IPO (beta), SimPO (beta, gamma), ORPO (beta
 * is lambda) on the objref_pair_* inputs. */
struct objref_pair_case {{
  enum objref_objective objective;
  const char *name;
  double beta, label_smoothing, gamma;
  double norm;       /* pairs */
  double token_norm; /* ORPO: chosen tokens */
  double loss;
  double d_chosen[{N_PAIRS}], d_rejected[{N_PAIRS}];
  /* TRL: pairs; correct = sum of rewards/accuracies, margin, chosen and
   * rejected = sums of the rewards dpo_loss / cpo_loss / odds_ratio_loss
   * return; nll (ORPO) = nll_loss times the chosen tokens. */
  double pairs, correct, margin, chosen, rejected, nll;
}};

struct objref_bt_case {{
  const char *name;
  bool with_margin;
  double norm, loss;
  double d_chosen[{N_BT}], d_rejected[{N_BT}];
  /* TRL: pairs, correct (accuracy x pairs), margin (margin x pairs);
   * contract only: chosen, rejected (sums of the rewards). */
  double pairs, correct, margin, chosen, rejected;
}};

struct objref_kto_case {{
  const char *name;
  int kl_set; /* which objref_kto_kl_ref row */
  double beta, desirable_weight, undesirable_weight, norm;
  double z0; /* TRL's kl, clamped at 0 */
  double loss;
  double d_logp[{N_KTO}];
  /* TRL: pairs (examples), chosen and rejected (rewards/chosen_sum,
   * rewards/rejected_sum); contract only: correct. */
  double pairs, chosen, rejected, correct;
}};

struct objref_grpo_case {{
  const char *name;
  enum grpo_normalize normalize;
  double beta, epsilon;
  int max_new_tokens;
  double norm, loss;
  double loss_scale; /* the same normalisation of |per-token terms|: the loss's tolerance scale */
  double dlogp[{GRPO_B * GRPO_T}];
  /* TRL: sequences, tokens, clipped (clip_ratio/region_mean x tokens);
   * contract only: kl (sum of logp - ref_logp); informational: TRL's kl
   * metric (the mean k3 estimate), which the contract does not keep. */
  double sequences, tokens, clipped, kl, kl_k3_mean;
}};

"""
    tail = ["#endif", ""]
    with open(out_path, "w") as f:
        f.write(head + "\n".join(body) + "\n" + "\n".join(tail))
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
