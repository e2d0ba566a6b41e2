#include "runtime/rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/generate.h"
#include "runtime/rng.h"
#include "runtime/stage_io.h"

/* One step's rollouts: R = prompts x group completions, laid out as rows
 * of prompt + completion for the forward passes. */
struct rollouts {
  int R, T;                /* rows, and the width of this step's rows */
  int cap_T;               /* the widest row the buffers hold */
  const struct example **prompts; /* [R]: each row's prompt */
  struct completion *gen;  /* [R] */
  int32_t *tokens, *targets; /* [R * cap_T] */
  float *mask;             /* [R * cap_T]: 1 on completion tokens */
  double *score;           /* [R]: the reward */
  int *last;               /* [R]: the input position of the row's last token */
  float *logp, *old_logp, *ref_logp, *values, *old_values; /* [R * cap_T] */
  float *rewards, *advantages, *returns, *dlogp, *dvalues;
  double *seq_adv;         /* [R]: GRPO's advantages */
  bool *stopped;
};

static void rollouts_alloc(struct rollouts *r, int R, int T, int max_new) {
  size_t cells = (size_t)R * T;
  *r = (struct rollouts){.R = R, .cap_T = T};
  r->prompts = xmalloc((size_t)R * sizeof *r->prompts);
  r->gen = xmalloc((size_t)R * sizeof *r->gen);
  for (int i = 0; i < R; i++) r->gen[i] = (struct completion){.tokens = xmalloc((size_t)max_new * sizeof(int32_t))};
  r->tokens = xmalloc(cells * sizeof *r->tokens);
  r->targets = xmalloc(cells * sizeof *r->targets);
  float **floats[] = {&r->mask, &r->logp, &r->old_logp, &r->ref_logp, &r->values, &r->old_values, &r->rewards,
                      &r->advantages, &r->returns, &r->dlogp, &r->dvalues};
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) *floats[i] = calloc(cells, sizeof(float));
  r->score = xmalloc((size_t)R * sizeof *r->score);
  r->seq_adv = xmalloc((size_t)R * sizeof *r->seq_adv);
  r->last = xmalloc((size_t)R * sizeof *r->last);
  r->stopped = xmalloc((size_t)R * sizeof *r->stopped);
}

static void rollouts_free(struct rollouts *r) {
  for (int i = 0; i < r->R; i++) free(r->gen[i].tokens);
  free(r->gen);
  free(r->prompts);
  free(r->tokens);
  free(r->targets);
  float *floats[] = {r->mask, r->logp, r->old_logp, r->ref_logp, r->values, r->old_values, r->rewards,
                     r->advantages, r->returns, r->dlogp, r->dvalues};
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) free(floats[i]);
  free(r->score);
  free(r->seq_adv);
  free(r->last);
  free(r->stopped);
}

/* Rows of prompt + completion, shifted (inputs, next-token targets), the
 * mask on the completion's tokens; T the longest row of the step. */
static void lay_out(struct rollouts *r, int pad) {
  int T = 1;
  for (int i = 0; i < r->R; i++) {
    int len = r->gen[i].prompt_len + r->gen[i].len - 1;
    if (len > T) T = len;
  }
  r->T = T;
  for (int i = 0; i < r->R; i++) {
    const struct completion *c = &r->gen[i];
    int n = c->prompt_len + c->len; /* tokens in the sequence */
    int32_t *tok = r->tokens + (size_t)i * T, *tgt = r->targets + (size_t)i * T;
    float *m = r->mask + (size_t)i * T;
    for (int k = 0; k < T; k++) {
      int32_t here = k < c->prompt_len ? c->prompt[k] : k < n ? c->tokens[k - c->prompt_len] : pad;
      int next = k + 1;
      bool in_completion = next >= c->prompt_len && next < n;
      tok[k] = k < n - 1 ? here : pad;
      tgt[k] = in_completion ? c->tokens[next - c->prompt_len] : -1;
      m[k] = in_completion ? 1.0f : 0.0f;
    }
    r->last[i] = n - 2; /* the input position that predicts the last token */
    r->stopped[i] = c->stopped;
  }
}

/* Forward passes over the rows, M at a time: log-probs (and values) out. */
static void forward_rows(struct backend *be, const struct rollouts *r, int M, float *logp, float *values) {
  for (int first = 0; first < r->R; first += M) {
    int B = r->R - first < M ? r->R - first : M;
    size_t at = (size_t)first * r->T;
    be->ops->forward(be, r->tokens + at, r->targets + at, B, r->T, logp ? logp + at : NULL,
                     values && be->spec.cfg.head ? values + at : NULL);
  }
}

/* The scores of the completions: a verifier on their text, or a reward
 * model's head at the last token of prompt + completion. */
static bool score_rows(const struct rl_run *run, struct rollouts *r, size_t *limit_hits, char *err, size_t err_size) {
  if (run->verifier) {
    size_t cap = (size_t)run->max_new_tokens * 16 + 64;
    char *text = xmalloc(cap);
    for (int i = 0; i < r->R; i++) {
      const struct completion *c = &r->gen[i];
      int n = c->stopped ? c->len - 1 : c->len; /* the end-of-turn token is not text */
      size_t len = tokenizer_decode(run->tok, c->tokens, (size_t)n, text, cap);
      if (len >= cap) len = cap - 1;
      struct verifier_result vr;
      if (!verifier_score(run->verifier, text, len, r->prompts[i]->line, &vr, err, err_size)) {
        free(text);
        return false;
      }
      r->score[i] = vr.reward;
      *limit_hits += vr.limit_hits;
    }
    free(text);
    return true;
  }
  /* the reward model reads whole sequences: inputs are every token */
  struct backend *rm = run->reward_model;
  int M = rm->spec.max_batch, T = rm->spec.max_seq;
  int32_t *tokens = xmalloc((size_t)M * T * sizeof *tokens);
  float *values = xmalloc((size_t)M * T * sizeof *values);
  for (int first = 0; first < r->R; first += M) {
    int B = r->R - first < M ? r->R - first : M, width = 1;
    for (int b = 0; b < B; b++) {
      const struct completion *c = &r->gen[first + b];
      if (c->prompt_len + c->len > width) width = c->prompt_len + c->len;
    }
    if (width > T) width = T;
    for (int b = 0; b < B; b++) {
      const struct completion *c = &r->gen[first + b];
      for (int k = 0; k < width; k++) {
        int n = c->prompt_len + c->len;
        tokens[(size_t)b * width + k] = k < c->prompt_len ? c->prompt[k]
                                        : k < n           ? c->tokens[k - c->prompt_len]
                                                          : tokenizer_special(run->tok, SPECIAL_PAD);
      }
    }
    rm->ops->forward(rm, tokens, NULL, B, width, NULL, values);
    for (int b = 0; b < B; b++) {
      const struct completion *c = &r->gen[first + b];
      int last = c->prompt_len + c->len - 1;
      if (last >= width) last = width - 1;
      r->score[first + b] = values[(size_t)b * width + last];
    }
  }
  free(tokens);
  free(values);
  return true;
}

/* Completions of the prompts of R's rows, `group` per prompt. */
static bool sample(const struct rl_run *run, struct backend *model, struct rollouts *r, double temperature,
                   uint64_t seed, char *err, size_t err_size) {
  for (int i = 0; i < r->R; i++) {
    r->gen[i].prompt = r->prompts[i]->prompt.ids;
    r->gen[i].prompt_len = r->prompts[i]->prompt.len;
  }
  struct generate_options g = {.temperature = temperature, .top_k = run->top_k, .top_p = run->top_p,
                               .max_new_tokens = run->max_new_tokens,
                               .stop = tokenizer_special(run->tok, SPECIAL_EOS), .seed = seed};
  return generate(model, r->gen, r->R, &g, err, err_size);
}

static uint64_t step_seed(uint64_t seed, long step, uint64_t stream) {
  struct rng r = rng_seed(seed ^ (stream * 0xD1B54A32D192ED03ull) ^ ((uint64_t)step * 0x9E3779B97F4A7C15ull));
  return rng_next(&r);
}

/* Sums over one step, for its metric line. */
struct rl_stats {
  double reward, rows, length, tokens, kl, clipped, value_loss, equal_groups, groups, limit_hits;
  double ev_num, ev_den; /* explained variance: residual and total sums of squares */
  double pairs, skipped;
  double t_generate, t_score, t_reference, t_train; /* seconds spent on each part of the steps */
};

/* Scores of MODEL's completions of held-out prompts FIRST, FIRST + 1, ...
 * (without held-out prompts, of the first training ones), each answered
 * REPEATS times at the stage's temperature from a seed that does not
 * change between evaluations: the policy's expected reward, measured the
 * same way before and after training. *ROWS: how many were scored. */
static bool held_out_scores(const struct rl_run *run, struct backend *model, struct rollouts *r, size_t first,
                            int repeats, int *rows, char *err, size_t err_size) {
  size_t n_val = examples_val_count(run->prompts), n = n_val ? n_val : examples_train_count(run->prompts);
  int per = r->R / repeats;
  if (first >= n || per < 1) {
    *rows = 0;
    return true;
  }
  int k = (int)(n - first < (size_t)per ? n - first : (size_t)per), R = k * repeats, keep = r->R;
  r->R = R;
  for (int i = 0; i < R; i++) {
    size_t at = first + (size_t)(i / repeats);
    r->prompts[i] = n_val ? examples_val(run->prompts, at) : examples_train(run->prompts, at);
  }
  size_t hits = 0;
  bool ok = sample(run, model, r, run->temperature, step_seed(run->seed, (long)first, 2), err, err_size) &&
            score_rows(run, r, &hits, err, err_size);
  r->R = keep;
  *rows = R;
  return ok;
}

/* Evaluation: the policy's mean held-out reward; for online DPO also its
 * win rate against the reference's answers to the same prompts (ties count
 * half). At most MAX_PROMPTS prompts. */
/* A few held-out completions and their scores, into the log only: what a
 * reader checks a verifier's pattern against. */
static void log_samples(const struct rl_run *run, const struct stage_io *io, const struct rollouts *r, int rows) {
  if (!io->log) return;
  char text[512];
  for (int i = 0; i < rows && i < 4 * run->group; i += run->group) {
    const struct completion *c = &r->gen[i];
    size_t n = tokenizer_decode(run->tok, c->tokens, (size_t)c->len, text, sizeof text);
    fprintf(io->log, "  sample %d: score %.3g: %.*s\n", i / run->group, r->score[i], (int)(n < sizeof text ? n : sizeof text - 1), text);
  }
  fflush(io->log);
}

static bool evaluate(const struct rl_run *run, const struct stage_io *io, struct rollouts *r, long max_prompts,
                     double *reward, double *win_rate, char *err, size_t err_size) {
  double sum = 0, n = 0, wins = 0;
  /* a few answers to each prompt: one sample a prompt is too noisy a
   * figure to compare before and after */
  int repeats = run->group > 4 ? run->group : 4;
  if (repeats > r->R) repeats = r->R;
  double *mine = xmalloc((size_t)r->R * sizeof *mine);
  bool ok = true;
  for (size_t first = 0; (long)first < max_prompts;) {
    int rows;
    if (!(ok = held_out_scores(run, run->policy, r, first, repeats, &rows, err, err_size)) || rows == 0) break;
    for (int i = 0; i < rows; i++) sum += r->score[i], mine[i] = r->score[i];
    if (first == 0) log_samples(run, io, r, rows);
    if (win_rate && run->reference) {
      if (!(ok = held_out_scores(run, run->reference, r, first, repeats, &rows, err, err_size))) break;
      for (int i = 0; i < rows; i++) wins += mine[i] > r->score[i] ? 1 : mine[i] == r->score[i] ? 0.5 : 0;
    }
    n += rows;
    first += (size_t)(rows / repeats);
  }
  free(mine);
  *reward = n > 0 ? sum / n : NAN;
  if (win_rate) *win_rate = n > 0 && run->reference ? wins / n : NAN;
  return ok;
}

/* The AdamW step of the optimiser step STEP (0-based) of the schedule. */
static void optimizer_step(const struct rl_run *run, long step, long t, double *lr_out, double *norm_out) {
  struct backend *be = run->policy;
  double norm = be->ops->grad_norm(be, 1.0), lr = schedule_lr(&run->schedule, step);
  struct adamw_step s = {.lr = (float)lr, .beta1 = run->beta1, .beta2 = run->beta2, .eps = run->eps,
                         .weight_decay = run->weight_decay, .grad_scale = (float)clip_factor(norm, run->grad_clip),
                         .t = (int)t};
  be->ops->step(be, &s);
  *lr_out = lr;
  *norm_out = norm;
}

static double completion_tokens(const struct rollouts *r) {
  double n = 0;
  for (size_t k = 0; k < (size_t)r->R * r->T; k++) n += r->mask[k];
  return n;
}

static void kl_and_length(const struct rollouts *r, bool have_ref, struct rl_stats *s) {
  for (int i = 0; i < r->R; i++) {
    s->length += r->gen[i].len;
    for (int t = 0; t < r->T; t++) {
      size_t k = (size_t)i * r->T + t;
      if (r->mask[k] == 0) continue;
      s->tokens += 1;
      if (have_ref) s->kl += (double)r->logp[k] - r->ref_logp[k];
    }
  }
}

/* GRPO: group-normalised advantages, one optimiser step. */
static void grpo_step(const struct rl_run *run, struct rollouts *r, struct rl_stats *s) {
  struct backend *be = run->policy;
  int M = run->micro_batch;
  s->equal_groups += (double)grpo_advantages(r->score, (size_t)(r->R / run->group), (size_t)run->group, r->seq_adv);
  s->groups += r->R / run->group;
  struct grpo_options opt = {.epsilon = run->clip, .beta = run->reference ? run->kl : 0,
                             .normalize = run->normalize, .max_new_tokens = run->max_new_tokens};
  double norm = run->normalize == GRPO_PER_TOKEN ? completion_tokens(r) : r->R;
  if (norm <= 0) norm = 1;
  struct objective_stats st = {0};
  be->ops->zero_grad(be);
  for (int first = 0; first < r->R; first += M) {
    int B = r->R - first < M ? r->R - first : M;
    size_t at = (size_t)first * r->T;
    be->ops->forward(be, r->tokens + at, r->targets + at, B, r->T, r->logp + at, NULL);
    /* one update per generation: the sampling policy is this one, so the
     * ratio is 1 and only its gradient matters */
    memcpy(r->old_logp + at, r->logp + at, (size_t)B * r->T * sizeof(float));
    grpo_loss(r->logp + at, r->old_logp + at, r->ref_logp + at, r->mask + at, r->seq_adv + first, B, r->T, &opt, norm,
              r->dlogp + at, &st);
    be->ops->backward(be, r->dlogp + at, NULL);
  }
  s->clipped += st.clipped;
}

/* PPO: the rollout's log-probs, values and rewards, GAE, then ppo_epochs
 * optimiser steps over the whole rollout batch. */
static void ppo_step(const struct rl_run *run, struct rollouts *r, long step, long *t, struct rl_stats *s,
                     double *lr, double *grad_norm) {
  struct backend *be = run->policy;
  int M = run->micro_batch;
  forward_rows(be, r, M, r->old_logp, r->old_values);
  memcpy(r->logp, r->old_logp, (size_t)r->R * r->T * sizeof(float)); /* for the KL metric */
  const float *ref = run->reference ? r->ref_logp : r->old_logp; /* no reference: no penalty */
  ppo_rewards(r->old_logp, ref, r->mask, r->score, r->R, r->T, run->reference ? run->kl : 0, r->rewards);
  ppo_gae(r->rewards, r->old_values, r->mask, r->R, r->T, run->gamma, run->lambda, r->advantages, r->returns);
  /* explained variance of the values for the returns */
  double n = 0, mean = 0;
  for (size_t k = 0; k < (size_t)r->R * r->T; k++)
    if (r->mask[k] != 0) n += 1, mean += r->returns[k];
  mean = n > 0 ? mean / n : 0;
  for (size_t k = 0; k < (size_t)r->R * r->T; k++)
    if (r->mask[k] != 0) {
      double e = r->returns[k] - r->old_values[k], d = r->returns[k] - mean;
      s->ev_num += e * e, s->ev_den += d * d;
    }
  struct ppo_options opt = {.clip = run->clip, .clip_value = 0.2, .vf_coef = run->vf_coef};
  double norm = completion_tokens(r);
  if (norm <= 0) norm = 1;
  for (int epoch = 0; epoch < run->ppo_epochs; epoch++) {
    struct objective_stats st = {0};
    be->ops->zero_grad(be);
    for (int first = 0; first < r->R; first += M) {
      int B = r->R - first < M ? r->R - first : M;
      size_t at = (size_t)first * r->T;
      be->ops->forward(be, r->tokens + at, r->targets + at, B, r->T, r->logp + at, r->values + at);
      ppo_loss(r->logp + at, r->old_logp + at, r->advantages + at, r->values + at, r->old_values + at,
               r->returns + at, r->mask + at, B, r->T, &opt, norm, r->dlogp + at, r->dvalues + at, &st);
      be->ops->backward(be, r->dlogp + at, r->dvalues + at);
    }
    *t += 1;
    optimizer_step(run, step, *t, lr, grad_norm);
    if (epoch == run->ppo_epochs - 1) s->clipped += st.clipped, s->value_loss += st.value_loss;
  }
  memcpy(r->logp, r->old_logp, (size_t)r->R * r->T * sizeof(float));
}

/* Online DPO: of each prompt's two completions the better-scored one is
 * chosen (ties teach nothing and are skipped); one DPO step on the pairs. */
static void online_dpo_step(const struct rl_run *run, struct rollouts *r, struct rl_stats *s) {
  struct backend *be = run->policy;
  int M = run->micro_batch - run->micro_batch % 2;
  if (M < 2) M = 2;
  int pairs = r->R / 2;
  double *c = xmalloc((size_t)pairs * sizeof *c), *rj = xmalloc((size_t)pairs * sizeof *rj);
  double *rc = xmalloc((size_t)pairs * sizeof *rc), *rr = xmalloc((size_t)pairs * sizeof *rr);
  double *lc = xmalloc((size_t)pairs * sizeof *lc), *lr = xmalloc((size_t)pairs * sizeof *lr);
  double *dc = xmalloc((size_t)pairs * sizeof *dc), *dr = xmalloc((size_t)pairs * sizeof *dr);
  bool *keep = xmalloc((size_t)pairs * sizeof *keep);
  /* row sums of every row under the policy (with the gradient kept per
   * micro-batch below) and the reference */
  double norm = 0;
  for (int i = 0; i < pairs; i++) {
    keep[i] = r->score[2 * i] != r->score[2 * i + 1];
    norm += keep[i];
  }
  s->pairs += norm;
  s->skipped += pairs - norm;
  struct objective_stats st = {0};
  be->ops->zero_grad(be);
  if (norm > 0) {
    for (int first = 0; first < r->R; first += M) {
      int B = r->R - first < M ? r->R - first : M;
      size_t at = (size_t)first * r->T;
      be->ops->forward(be, r->tokens + at, r->targets + at, B, r->T, r->logp + at, NULL);
      int n = 0;
      int map[B / 2 > 0 ? B / 2 : 1];
      for (int j = 0; j < B / 2; j++) {
        int i = first / 2 + j;
        if (!keep[i]) continue;
        int w = r->score[2 * i] > r->score[2 * i + 1] ? 2 * i : 2 * i + 1, l = w ^ 1;
        double sw = 0, sl = 0, qw = 0, ql = 0, nw = 0, nl = 0;
        for (int t = 0; t < r->T; t++) {
          size_t kw = (size_t)w * r->T + t, kl = (size_t)l * r->T + t;
          if (r->mask[kw] != 0) sw += r->logp[kw], qw += r->ref_logp[kw], nw += 1;
          if (r->mask[kl] != 0) sl += r->logp[kl], ql += r->ref_logp[kl], nl += 1;
        }
        c[n] = sw, rj[n] = sl, rc[n] = qw, rr[n] = ql, lc[n] = fmax(nw, 1), lr[n] = fmax(nl, 1);
        map[n++] = j;
      }
      struct pair_logps in = {.chosen = c, .rejected = rj, .ref_chosen = rc, .ref_rejected = rr,
                              .chosen_len = lc, .rejected_len = lr};
      dpo_loss(&in, (size_t)n, run->beta, 0, norm, dc, dr, &st);
      memset(r->dlogp + at, 0, (size_t)B * r->T * sizeof(float));
      for (int q = 0; q < n; q++) {
        int i = first / 2 + map[q];
        int w = r->score[2 * i] > r->score[2 * i + 1] ? 2 * i : 2 * i + 1, l = w ^ 1;
        for (int t = 0; t < r->T; t++) {
          size_t kw = (size_t)w * r->T + t, kl = (size_t)l * r->T + t;
          if (r->mask[kw] != 0) r->dlogp[kw] = (float)dc[q];
          if (r->mask[kl] != 0) r->dlogp[kl] = (float)dr[q];
        }
      }
      be->ops->backward(be, r->dlogp + at, NULL);
    }
  } else {
    forward_rows(be, r, M, r->logp, NULL); /* for the KL metric */
  }
  s->clipped += st.correct; /* online DPO reports its preference accuracy in place of a clip fraction */
  free(c), free(rj), free(rc), free(rr), free(lc), free(lr), free(dc), free(dr), free(keep);
}

/* What a resumed stage needs besides the weights and the moments. */
static json_t *resume_state(const struct rl_run *run, long constant, long adam_steps, double reward_before) {
  json_t *state = json_object();
  if (!isnan(reward_before)) json_object_set_new(state, "reward_before", json_real(reward_before));
  json_object_set_new(state, "prompts", examples_state(run->prompts));
  json_object_set_new(state, "constant", json_integer(constant));
  json_object_set_new(state, "adam_steps", json_integer(adam_steps));
  return state;
}

bool rl_train(const struct rl_run *run, struct stage_result *result, char *err, size_t err_size) {
  struct backend *be = run->policy;
  *result = (struct stage_result){.val_loss = NAN, .loss = NAN};
  struct stage_io io = {.name = run->name, .state = run->state, .tokenizer = run->tokenizer_name,
                        .template = run->template_name, .head = run->kind == RL_PPO ? "value" : "", .dir = run->dir,
                        .progress = run->progress, .tty = run->tty};
  long step;
  double tokens;
  json_t *state;
  if (!stage_io_open(&io, be, run->resume, &step, &tokens, &state, err, err_size)) {
    stage_io_close(&io);
    return false;
  }
  bool ok = true;
  long constant = 0, t_adam = 0;
  json_t *prompts_state = json_object_get(state, "prompts");
  if (prompts_state && !examples_restore(run->prompts, prompts_state, err, err_size)) ok = false;
  if (json_is_integer(json_object_get(state, "constant"))) constant = (long)json_integer_value(json_object_get(state, "constant"));
  if (json_is_integer(json_object_get(state, "adam_steps"))) t_adam = (long)json_integer_value(json_object_get(state, "adam_steps"));
  double reward_before = NAN;
  if (json_is_number(json_object_get(state, "reward_before")))
    reward_before = json_number_value(json_object_get(state, "reward_before"));
  json_decref(state);
  if (!ok) {
    stage_io_close(&io);
    return false;
  }
  if (step > 0) stage_log(&io, true, "%s: resuming at step %ld of %ld", run->name, step, run->steps);
  for (size_t i = 0; i < run->n_notes; i++) stage_log(&io, true, "%s: %s", run->name, run->notes[i]);

  int R = run->prompts_per_step * run->group;
  struct rollouts r;
  rollouts_alloc(&r, R, run->context, run->max_new_tokens);
  int pad = tokenizer_special(run->tok, SPECIAL_PAD);
  long per_round = run->kind == RL_ONLINE_DPO && run->rounds > 1 ? (run->steps + run->rounds - 1) / run->rounds : 0;
  long eval_prompts = 64;
  double started = stage_clock(), last_reward = NAN, last_val = NAN, last_win = NAN;
  double last_kl = NAN;
  long first_step = step;
  struct rl_stats window = {0};

  if (step == 0) {
    /* where the policy starts: the figure training should raise */
    double win;
    if (!evaluate(run, &io, &r, eval_prompts, &reward_before, NULL, err, err_size)) ok = false;
    else {
      (void)win;
      json_t *m = json_object();
      json_object_set_new(m, "step", json_integer(0));
      json_object_set_new(m, "val_reward", json_real(reward_before));
      stage_metrics(&io, m);
      stage_log(&io, true, "%s  step 0/%ld  val_reward %.3f (before training)", run->name, run->steps, reward_before);
    }
  }

  for (; ok && step < run->steps; step++) {
    if (run->interrupted && *run->interrupted) {
      json_t *resume = resume_state(run, constant, t_adam, reward_before);
      if (!stage_save(&io, be, io.resume_dir, step, tokens, resume, err, err_size)) {
        ok = false;
        break;
      }
      stage_log(&io, true, "%s: interrupted at step %ld; saved; continue with: trainpipe run --resume", run->name,
                step);
      result->interrupted = true;
      break;
    }
    /* rollouts: prompts, completions, scores, the reference's log-probs */
    for (int p = 0; p < run->prompts_per_step; p++) {
      const struct example *e = examples_train(run->prompts, examples_next(run->prompts));
      for (int g = 0; g < run->group; g++) r.prompts[p * run->group + g] = e;
    }
    struct rl_stats s = {0};
    size_t hits = 0;
    double t0 = stage_clock();
    if (!sample(run, be, &r, run->temperature, step_seed(run->seed, step, 1), err, err_size)) {
      ok = false;
      break;
    }
    double t1 = stage_clock();
    if (!score_rows(run, &r, &hits, err, err_size)) {
      ok = false;
      break;
    }
    double t2 = stage_clock();
    s.limit_hits = (double)hits;
    lay_out(&r, pad);
    if (run->reference) forward_rows(run->reference, &r, run->reference->spec.max_batch, r.ref_logp, NULL);
    double t3 = stage_clock();
    double lr = 0, grad_norm = 0;
    switch (run->kind) {
    case RL_GRPO:
      grpo_step(run, &r, &s);
      optimizer_step(run, step, ++t_adam, &lr, &grad_norm);
      break;
    case RL_PPO: ppo_step(run, &r, step, &t_adam, &s, &lr, &grad_norm); break;
    case RL_ONLINE_DPO:
      online_dpo_step(run, &r, &s);
      if (s.pairs > 0) optimizer_step(run, step, ++t_adam, &lr, &grad_norm);
      break;
    }
    s.t_generate = t1 - t0, s.t_score = t2 - t1, s.t_reference = t3 - t2, s.t_train = stage_clock() - t3;
    for (int i = 0; i < R; i++) s.reward += r.score[i];
    s.rows = R;
    kl_and_length(&r, run->reference != NULL, &s);
    tokens += (double)R * r.T;

    /* a verifier that scores every completion of every group alike gives
     * GRPO nothing to learn from */
    if (run->kind == RL_GRPO) {
      constant = s.equal_groups == s.groups ? constant + 1 : 0;
      if (run->constant_patience > 0 && constant >= run->constant_patience) {
        snprintf(err, err_size, "stage '%s': for %ld steps in a row every completion of every group scored the same "
                 "(%.4g): the reward gives no signal, so GRPO learns nothing; check the verifier's pattern and the "
                 "'%s' field against sampled completions (trainpipe sample), or train the model to answer in the "
                 "expected format first", run->name, constant, r.score[0], "against");
        ok = false;
        break;
      }
    }
    window.reward += s.reward, window.rows += s.rows, window.length += s.length, window.tokens += s.tokens;
    window.kl += s.kl, window.clipped += s.clipped, window.value_loss += s.value_loss;
    window.ev_num += s.ev_num, window.ev_den += s.ev_den, window.limit_hits += s.limit_hits;
    window.pairs += s.pairs, window.skipped += s.skipped;
    window.t_generate += s.t_generate, window.t_score += s.t_score, window.t_reference += s.t_reference;
    window.t_train += s.t_train;
    last_reward = s.reward / s.rows;
    last_kl = s.tokens > 0 ? s.kl / s.tokens : NAN;

    long done = step + 1;
    bool last = done == run->steps;
    bool round_end = per_round > 0 && (done % per_round == 0 || last);
    bool evaluate_now = (run->eval_every > 0 && done % run->eval_every == 0) || last || round_end;
    double val_reward = NAN, win = NAN;
    if (evaluate_now) {
      if (!evaluate(run, &io, &r, eval_prompts, &val_reward, run->kind == RL_ONLINE_DPO ? &win : NULL, err, err_size)) {
        ok = false;
        break;
      }
      last_val = val_reward;
      if (!isnan(win)) last_win = win;
    }
    bool log_now = done % run->log_every == 0 || last || evaluate_now;
    if (log_now) {
      double now = stage_clock(), n = window.rows > 0 ? window.rows : 1, tok = window.tokens > 0 ? window.tokens : 1;
      json_t *m = json_object();
      json_object_set_new(m, "step", json_integer(done));
      json_object_set_new(m, "tokens", json_real(tokens));
      json_object_set_new(m, "reward", json_real(window.reward / n));
      if (run->reference) json_object_set_new(m, "kl", json_real(window.kl / tok));
      if (run->kind == RL_ONLINE_DPO) {
        if (window.pairs > 0) json_object_set_new(m, "accuracy", json_real(window.clipped / window.pairs));
        json_object_set_new(m, "tied_pairs", json_real(window.skipped));
      } else {
        json_object_set_new(m, "clip_fraction", json_real(window.clipped / tok));
      }
      json_object_set_new(m, "response_length", json_real(window.length / n));
      if (run->kind == RL_PPO) {
        json_object_set_new(m, "value_loss", json_real(window.value_loss / tok));
        if (window.ev_den > 0) json_object_set_new(m, "explained_variance", json_real(1 - window.ev_num / window.ev_den));
      }
      if (window.limit_hits > 0) json_object_set_new(m, "verifier_limit_hits", json_real(window.limit_hits));
      json_object_set_new(m, "lr", json_real(lr));
      json_object_set_new(m, "grad_norm", json_real(grad_norm));
      /* where a step's time goes (the last window's steps, evaluations not counted) */
      json_t *split = json_object();
      json_object_set_new(split, "generate", json_real(window.t_generate));
      json_object_set_new(split, "score", json_real(window.t_score));
      json_object_set_new(split, "reference", json_real(window.t_reference));
      json_object_set_new(split, "train", json_real(window.t_train));
      json_object_set_new(m, "seconds", split);
      if (!isnan(val_reward)) json_object_set_new(m, "val_reward", json_real(val_reward));
      if (round_end) json_object_set_new(m, "round", json_integer(done / per_round + (done % per_round != 0)));
      if (!isnan(win)) json_object_set_new(m, "win_rate", json_real(win));
      stage_metrics(&io, m);
      char eta[32], extra[96] = "";
      stage_eta((double)(run->steps - done) * (now - started) / (double)(done - first_step), eta, sizeof eta);
      int at = 0;
      if (run->reference) at += snprintf(extra + at, sizeof extra - at, "  kl %.4f", window.kl / tok);
      if (!isnan(val_reward)) at += snprintf(extra + at, sizeof extra - at, "  val_reward %.3f", val_reward);
      if (!isnan(win) && at < (int)sizeof extra) snprintf(extra + at, sizeof extra - at, "  win_rate %.3f", win);
      stage_log(&io, last, "%s  step %ld/%ld  reward %.3f%s  length %.1f  ETA %s", run->name, done, run->steps,
                window.reward / n, extra, window.length / n, eta);
      window = (struct rl_stats){0};
    }
    if (run->checkpoint_every > 0 && done % run->checkpoint_every == 0 && !last) {
      json_t *resume = resume_state(run, constant, t_adam, reward_before);
      if (!stage_save(&io, be, io.resume_dir, done, tokens, resume, err, err_size)) {
        ok = false;
        break;
      }
    }
  }
  if (ok && !result->interrupted) {
    json_t *summary = json_object();
    json_object_set_new(summary, "steps", json_integer(step));
    /* the held-out reward where there is one: what a gate should read */
    double reward = !isnan(last_val) ? last_val : last_reward;
    if (!isnan(reward)) json_object_set_new(summary, "reward", json_real(reward));
    if (!isnan(last_reward)) json_object_set_new(summary, "train_reward", json_real(last_reward));
    if (!isnan(last_kl)) json_object_set_new(summary, "kl", json_real(last_kl));
    if (!isnan(last_win)) json_object_set_new(summary, "win_rate", json_real(last_win));
    if (!isnan(reward_before)) json_object_set_new(summary, "reward_before", json_real(reward_before));
    result->summary = json_incref(summary);
    ok = stage_finish(&io, be, step, tokens, summary, err, err_size);
  }
  result->steps = step;
  result->tokens = tokens;
  rollouts_free(&r);
  stage_io_close(&io);
  return ok;
}
