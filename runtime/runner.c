#include "runtime/runner.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grammar/arena.h"
#include "runtime/backend.h"
#include "runtime/batches.h"
#include "runtime/checkpoint.h"
#include "runtime/train.h"
#include "runtime/examples.h"
#include "runtime/pairs.h"
#include "runtime/preference.h"
#include "runtime/rl.h"
#include "runtime/stage_io.h"
#include "runtime/tokenizer.h"
#include "runtime/verifier.h"

/* The stage kinds this runtime trains, and how: next-token objectives on
 * batches of text, objectives on fixed preference data, or the RL loop. */
enum family { FAMILY_TOKENS, FAMILY_PREFERENCES, FAMILY_RL };

struct runnable {
  const char *kind;
  enum family family;
  const struct stage_objective *objective; /* FAMILY_TOKENS */
  const char *data_kind;
  bool head;                               /* the model carries a scalar head */
  const char *head_role;
};

static const struct runnable runnables[] = {
    {"pretrain", FAMILY_TOKENS, &next_token_objective, "corpus", false, NULL},
    {"midtrain", FAMILY_TOKENS, &next_token_objective, "corpus", false, NULL},
    {"sft", FAMILY_TOKENS, &masked_next_token_objective, "demonstrations", false, NULL},
    {"reward_model", FAMILY_PREFERENCES, NULL, "preferences", true, "reward"},
    {"dpo", FAMILY_PREFERENCES, NULL, "preferences", false, NULL},
    {"ipo", FAMILY_PREFERENCES, NULL, "preferences", false, NULL},
    {"simpo", FAMILY_PREFERENCES, NULL, "preferences", false, NULL},
    {"orpo", FAMILY_PREFERENCES, NULL, "preferences", false, NULL},
    {"kto", FAMILY_PREFERENCES, NULL, "feedback", false, NULL},
    {"grpo", FAMILY_RL, NULL, "prompts", false, NULL},
    {"ppo", FAMILY_RL, NULL, "prompts", true, "value"},
    {"online_dpo", FAMILY_RL, NULL, "prompts", false, NULL},
};

static const struct runnable *runnable_of(const char *kind) {
  for (size_t i = 0; i < sizeof runnables / sizeof runnables[0]; i++)
    if (strcmp(runnables[i].kind, kind) == 0) return &runnables[i];
  return NULL;
}

static const char *str(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

/* A setting's value ({value, source}) as a number; NAN when absent. */
static double setting(json_t *settings, const char *key) {
  json_t *v = json_object_get(json_object_get(settings, key), "value");
  return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *setting_text(json_t *settings, const char *key, const char *fallback) {
  const char *s = json_string_value(json_object_get(json_object_get(settings, key), "value"));
  return s ? s : fallback;
}

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = xmalloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static bool stage_done(const char *out, const char *stage) {
  char *dir = join(out, stage), *json = join(dir, "checkpoint.json");
  bool done = access(json, F_OK) == 0;
  free(dir);
  free(json);
  return done;
}

/* Weights of FROM's shape in TO's: the positions the model never saw and
 * a scalar head it never had get GPT-2's initialisation, everything else
 * keeps what it learnt; a head TO has no use for is dropped. */
static float *adapt_params(const struct gpt_config *from, const float *params, const struct gpt_config *to,
                           uint64_t seed) {
  float *out = xmalloc(gpt_param_count(to) * sizeof *out);
  gpt_init(to, out, seed);
  size_t a[GPT_TENSOR_COUNT], b[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(from, a);
  gpt_tensor_offsets(to, b);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t n = gpt_tensor_size(from, (enum gpt_tensor)t), m = gpt_tensor_size(to, (enum gpt_tensor)t);
    memcpy(out + b[t], params + a[t], (n < m ? n : m) * sizeof *out); /* wpe's rows: the old ones are a prefix */
  }
  return out;
}

static bool same_trunk(const struct gpt_config *a, const struct gpt_config *b) {
  return a->vocab == b->vocab && a->layers == b->layers && a->heads == b->heads && a->width == b->width;
}

/* The folder of the checkpoint NAME stands for when a stage refers to it
 * (a reference, a reward): a stage of the plan, which must have run into
 * the run folder, or a model that loads a checkpoint (the plan's
 * reference_checkpoint or reward_checkpoint).
 * Allocated; NULL with a reason in ERR. */
static char *checkpoint_of(json_t *plan, json_t *stage, const char *name, const struct run_options *opt,
                           const char *role, char *err, size_t err_size) {
  size_t i;
  json_t *st;
  json_array_foreach(json_object_get(plan, "stages"), i, st) {
    if (strcmp(str(st, "name"), name) != 0) continue;
    if (!stage_done(opt->out, name)) {
      snprintf(err, err_size, "stage '%s' uses '%s' as its %s, which has not run into %s: run it first",
               str(stage, "name"), name, role, opt->out);
      return NULL;
    }
    return join(opt->out, name);
  }
  const char *loaded = str(stage, strcmp(role, "reward") == 0 ? "reward_checkpoint" : "reference_checkpoint");
  if (loaded[0]) {
    char *dir = xmalloc(strlen(loaded) + 1);
    strcpy(dir, loaded);
    return dir;
  }
  snprintf(err, err_size, "stage '%s': its %s '%s' is neither a stage of the plan nor a loaded checkpoint",
           str(stage, "name"), role, name);
  return NULL;
}

/* A frozen model for scoring: the checkpoint in DIR on a backend that does
 * not train, for ROWS rows of up to SEQ tokens. With REWARD, the checkpoint
 * must carry a trained reward head. NULL with a reason in ERR. */
static struct backend *frozen_model(const char *dir, const struct gpt_config *policy, int rows, int seq, bool reward,
                                    int gen_rows, const struct run_options *opt, const char *what, char *err,
                                    size_t err_size) {
  struct checkpoint ck;
  if (!checkpoint_load(dir, &ck, false, err, err_size)) return NULL;
  struct backend *be = NULL;
  struct gpt_config cfg = ck.cfg;
  if (!same_trunk(&cfg, policy) && !reward) {
    snprintf(err, err_size, "%s in %s is a %d-layer, %d-head, width-%d model of vocab %d; the policy is %d, %d, %d, "
             "%d", what, dir, cfg.layers, cfg.heads, cfg.width, cfg.vocab, policy->layers, policy->heads, policy->width,
             policy->vocab);
    goto done;
  }
  if (reward && (!cfg.head || strcmp(ck.head, "reward") != 0 || ck.step < 1)) {
    snprintf(err, err_size, "%s in %s has %s: train it with a reward_model stage", what, dir,
             !cfg.head || strcmp(ck.head, "reward") != 0 ? "no reward head" : "a reward head that was never trained");
    goto done;
  }
  if (!reward) cfg.head = 0;
  if (seq > cfg.context) {
    snprintf(err, err_size, "%s in %s attends over %d tokens; the stage needs %d", what, dir, cfg.context, seq);
    goto done;
  }
  char backend_err[256];
  be = backend_create(opt->device, &(struct backend_spec){.cfg = cfg, .max_batch = rows, .max_seq = seq,
                                                         .threads = opt->threads, .gen_rows = gen_rows,
                                                         .precision = opt->precision},
                          backend_err, sizeof backend_err);
  if (!be) {
    snprintf(err, err_size, "%s: %s", what, backend_err);
    goto done;
  }
  float *params = cfg.head == ck.cfg.head ? ck.params : adapt_params(&ck.cfg, ck.params, &cfg, 0);
  be->ops->write_params(be, params);
  if (params != ck.params) free(params);
done:
  checkpoint_free(&ck);
  return be;
}

/* The checkpoint a stage starts from: the folder of the stage before it,
 * or the checkpoint its model loads; false with *FOUND false when it
 * starts from a fresh model. */
static bool starting_checkpoint(json_t *stage, const struct run_options *opt, struct checkpoint *ck, bool *found,
                                char *err, size_t err_size) {
  json_t *from = json_object_get(stage, "from"), *model = json_object_get(stage, "model");
  *found = false;
  if (strcmp(str(from, "is"), "stage") == 0) {
    if (!stage_done(opt->out, str(from, "name"))) {
      snprintf(err, err_size, "stage '%s' starts from '%s', which has not run into %s: run it first", str(stage, "name"),
               str(from, "name"), opt->out);
      return false;
    }
    char *dir = join(opt->out, str(from, "name"));
    *found = checkpoint_load(dir, ck, false, err, err_size);
    free(dir);
    return *found;
  }
  if (strcmp(str(model, "architecture"), "checkpoint") != 0) return true;
  *found = checkpoint_load(str(model, "checkpoint"), ck, false, err, err_size);
  return *found;
}

/* The starting weights of a stage, into BACKEND: CK's, adapted to the
 * backend's context and head, or GPT-2's initialisation when CK is NULL. */
static bool starting_weights(json_t *stage, const struct checkpoint *ck, struct backend *backend, uint64_t seed,
                             char *err, size_t err_size) {
  const struct gpt_config *cfg = &backend->spec.cfg;
  if (!ck) {
    float *p = xmalloc(backend->n_params * sizeof *p);
    gpt_init(cfg, p, seed);
    backend->ops->write_params(backend, p);
    free(p);
    return true;
  }
  if (!same_trunk(&ck->cfg, cfg)) {
    snprintf(err, err_size, "the checkpoint of '%s' is a %d-layer, %d-head, width-%d model of vocab %d, not the shape "
             "stage '%s' needs", str(json_object_get(stage, "from"), "name"), ck->cfg.layers, ck->cfg.heads,
             ck->cfg.width, ck->cfg.vocab, str(stage, "name"));
    return false;
  }
  if (ck->cfg.context != cfg->context || ck->cfg.head != cfg->head) {
    float *adapted = adapt_params(&ck->cfg, ck->params, cfg, seed);
    backend->ops->write_params(backend, adapted);
    free(adapted);
  } else {
    backend->ops->write_params(backend, ck->params);
  }
  return true;
}

/* What every stage kind resolves the same way. */
struct stage_common {
  json_t *plan, *stage, *settings, *optimizer;
  const char *name, *kind;
  const struct runnable *how;
  const char *tokenizer, *template;
  struct gpt_config cfg;
  int seq, batch, micro;
  long steps;
  uint64_t seed;
  const struct run_options *opt;
};

static struct schedule schedule_of(const struct stage_common *c) {
  struct schedule s = {.peak = setting(c->optimizer, "lr"), .min_lr = setting(c->optimizer, "min_lr"),
                       .warmup = (long)setting(c->optimizer, "warmup"), .total = c->steps};
  if (!schedule_kind_from_name(setting_text(c->optimizer, "schedule", "cosine"), &s.kind)) s.kind = SCHEDULE_COSINE;
  return s;
}

/* The stage's data sets as the plan resolved them. */
static struct data_part *data_parts(json_t *stage, size_t *n) {
  json_t *sets = json_object_get(stage, "data");
  *n = json_array_size(sets);
  struct data_part *parts = xmalloc((*n ? *n : 1) * sizeof *parts);
  for (size_t i = 0; i < *n; i++) {
    json_t *set = json_array_get(sets, i);
    parts[i] = (struct data_part){.name = str(set, "name"), .pattern = str(set, "resolved"),
                                  .share = json_number_value(json_object_get(set, "share")),
                                  .settings = json_object_get(set, "settings")};
  }
  return parts;
}

static void fill_stage_run(const struct stage_common *c, struct stage_run *run) {
  *run = (struct stage_run){
      .name = c->name, .kind = c->kind, .state = str(c->stage, "produces"), .head = c->how->head_role,
      .tokenizer = c->tokenizer, .template = c->template, .batch = c->batch, .micro_batch = c->micro,
      .context = c->seq, .steps = c->steps,
      .beta1 = (float)setting(c->optimizer, "beta1"), .beta2 = (float)setting(c->optimizer, "beta2"),
      .eps = (float)setting(c->optimizer, "eps"), .weight_decay = (float)setting(c->optimizer, "weight_decay"),
      .grad_clip = (float)setting(c->optimizer, "grad_clip"),
      .eval_every = (long)setting(c->settings, "eval_every"), .log_every = (long)setting(c->settings, "log_every"),
      .eval_batches = 8, .resume = c->opt->resume, .interrupted = c->opt->interrupted,
      .progress = c->opt->progress, .tty = c->opt->tty, .schedule = schedule_of(c),
  };
  run->checkpoint_every = run->eval_every > 0 ? run->eval_every : 100;
  if (run->log_every < 1) run->log_every = 1;
}

static bool run_token_stage(const struct stage_common *c, struct backend *backend, struct stage_result *result,
                            char *err, size_t err_size) {
  size_t n_parts;
  struct data_part *parts = data_parts(c->stage, &n_parts);
  struct data_spec spec = {.kind = c->how->data_kind, .parts = parts, .n_parts = n_parts, .context = c->seq,
                           .seed = c->seed, .tokenizer = c->tokenizer, .template = c->template,
                           .response_only = strcmp(setting_text(c->settings, "loss", "response"), "response") == 0,
                           .packing = json_is_true(json_object_get(json_object_get(c->settings, "packing"), "value"))};
  struct batch_source train = {0}, val = {0};
  bool ok = batches_open(&spec, &train, &val, err, err_size);
  if (ok) {
    struct stage_run run;
    fill_stage_run(c, &run);
    run.objective = c->how->objective == &masked_next_token_objective && !spec.response_only ? next_token_objective
                                                                                            : *c->how->objective;
    run.backend = backend;
    run.train = train;
    run.val = val;
    char *dir = join(c->opt->out, c->name);
    run.dir = dir;
    ok = stage_train(&run, result, err, err_size);
    free(dir);
  }
  batches_close(&train, &val);
  free(parts);
  return ok;
}

/* The stage's one data set of examples (preferences, feedback, prompts). */
static struct example_set *open_examples(const struct stage_common *c, enum example_kind kind, int context,
                                         const struct tokenizer *tok, char *err, size_t err_size) {
  size_t n_parts;
  struct data_part *parts = data_parts(c->stage, &n_parts);
  struct example_source *src = xmalloc((n_parts ? n_parts : 1) * sizeof *src);
  for (size_t i = 0; i < n_parts; i++) {
    double max_length = setting(parts[i].settings, "max_length"), val_split = setting(parts[i].settings, "val_split");
    src[i] = (struct example_source){.name = parts[i].name, .pattern = parts[i].pattern,
                                     .val_split = isnan(val_split) ? 0.01 : val_split,
                                     .max_length = isnan(max_length) ? 0 : (size_t)max_length};
  }
  enum chat_template template;
  struct example_set *set = NULL;
  if (n_parts == 0) snprintf(err, err_size, "stage '%s' names no data", c->name);
  else if (template_find(c->template, &template, err, err_size))
    set = examples_open(src, n_parts, &(struct example_options){.kind = kind, .tok = tok, .template = template,
                                                                .context = context, .seed = c->seed},
                        err, err_size);
  free(src);
  free(parts);
  return set;
}

static const char *note(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static const char *note(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return buf;
}

/* Bytes a backend that does not train holds: its weights and the
 * activations of one layer of a micro-batch (the layers share them), as
 * cpu_backend.c lays them out. */
static double frozen_bytes(const struct backend *be) {
  const struct gpt_config *g = &be->spec.cfg;
  double N = (double)be->spec.max_batch * be->spec.max_seq, C = g->width, H = g->heads, T = be->spec.max_seq;
  return 4 * ((double)be->n_params + 20 * N * C + be->spec.max_batch * H * T * T + 64.0 * g->vocab);
}

static bool run_preference_stage(const struct stage_common *c, struct backend *backend, struct stage_result *result,
                                 char *err, size_t err_size) {
  enum preference_kind kind;
  preference_kind_find(c->kind, &kind); /* the table lists only these */
  bool feedback = kind == PREF_KTO;
  bool whole = preference_uses_head(kind);
  struct tokenizer *tok = tokenizer_create(c->tokenizer, err, err_size);
  if (!tok) return false;
  /* whole rows hold every token as input: one fewer fits */
  struct example_set *set =
      open_examples(c, feedback ? EXAMPLES_FEEDBACK : EXAMPLES_PREFERENCES, whole ? c->seq - 1 : c->seq, tok, err,
                    err_size);
  bool ok = false;
  struct reference_sums ref_train = {0}, ref_val = {0};
  struct batch_source train = {0}, val = {0};
  struct preference_objective objective;
  bool have_objective = false;
  char notes[3][256];
  const char *note_lines[3];
  size_t n_notes = 0;
  if (!set) goto done;
  enum pair_layout layout = feedback ? PAIRS_FEEDBACK : PAIRS_PREFERENCES;
  int rows_per_example = feedback ? 1 : 2, pad = tokenizer_special(tok, SPECIAL_PAD);
  struct example_stats es;
  examples_stats(set, &es);
  note_lines[n_notes++] = note(notes[0], sizeof notes[0], "%zu %s (%zu held out), %zu dropped as longer than %d tokens",
                               es.kept, feedback ? "examples" : "pairs", es.val_kept, es.dropped_long, c->seq);
  if (preference_uses_reference(kind)) {
    const char *name = str(c->stage, "reference");
    char *dir = checkpoint_of(c->plan, c->stage, name, c->opt, "reference", err, err_size);
    if (!dir) goto done;
    struct backend *ref = frozen_model(dir, &c->cfg, c->micro * rows_per_example, c->seq, false, 0, c->opt,
                                       "the reference", err, err_size);
    free(dir);
    if (!ref) goto done;
    /* offline: the reference's log-probs of every example, once; its
     * memory is released before training starts */
    double started = stage_clock();
    reference_sums_compute(ref, set, false, layout, pad, c->seq, &ref_train);
    reference_sums_compute(ref, set, true, layout, pad, c->seq, &ref_val);
    note_lines[n_notes++] =
        note(notes[1], sizeof notes[1], "reference '%s' (frozen): %.1f MiB while its log-probs of %zu examples were "
             "computed, in %.1f s; released before training", name, frozen_bytes(ref) / 1048576.0,
             ref_train.n + ref_val.n, stage_clock() - started);
    backend_destroy(ref);
  }
  if (!pair_source_open(&(struct pair_source_spec){.set = set, .layout = layout, .whole = whole,
                                                   .ref = preference_uses_reference(kind) ? &ref_train : NULL,
                                                   .pad = pad, .context = c->seq},
                        &train, err, err_size) ||
      !pair_source_open(&(struct pair_source_spec){.set = set, .val = true, .layout = layout, .whole = whole,
                                                   .ref = preference_uses_reference(kind) ? &ref_val : NULL,
                                                   .pad = pad, .context = c->seq},
                        &val, err, err_size))
    goto done;
  struct stage_run run;
  fill_stage_run(c, &run);
  /* batch and micro_batch count examples; a pair is two rows */
  run.batch = c->batch * rows_per_example;
  run.micro_batch = c->micro * rows_per_example;
  preference_objective_init(&objective, kind, c->settings, run.micro_batch, c->seq, &run.objective);
  have_objective = true;
  run.backend = backend;
  run.train = train;
  run.val = val;
  run.eval_batches = 64;
  run.eval_at_start = true;
  run.notes = note_lines;
  run.n_notes = n_notes;
  char *out_dir = join(c->opt->out, c->name);
  run.dir = out_dir;
  ok = stage_train(&run, result, err, err_size);
  free(out_dir);
done:
  if (have_objective) preference_objective_free(&objective);
  pair_source_close(&train);
  pair_source_close(&val);
  reference_sums_free(&ref_train);
  reference_sums_free(&ref_val);
  examples_close(set);
  tokenizer_free(tok);
  return ok;
}

/* The verifier(...) of a stage, or the list of them whose rewards add up,
 * from the plan's settings. */
static struct verifier *stage_verifier(const struct stage_common *c, char *err, size_t err_size) {
  json_t *list = json_object_get(c->stage, "verifiers");
  size_t n = json_array_size(list);
  struct verifier_spec *specs = xmalloc((n ? n : 1) * sizeof *specs);
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(list, i);
    specs[i] = (struct verifier_spec){
        .match = setting_text(v, "match", ""), .against = setting_text(v, "against", ""),
        .compare = strcmp(setting_text(v, "compare", "exact"), "numeric") == 0 ? VERIFIER_NUMERIC : VERIFIER_EXACT,
        .tolerance = setting(v, "tolerance"), .format = setting_text(v, "format", NULL), .weight = setting(v, "weight")};
    if (isnan(specs[i].tolerance)) specs[i].tolerance = 1e-6;
    if (isnan(specs[i].weight)) specs[i].weight = 1;
  }
  char why[256];
  struct verifier *ver = n ? verifier_create(specs, n, why, sizeof why) : NULL;
  if (!ver) snprintf(err, err_size, "stage '%s': the verifier: %s", c->name, n ? why : "the plan gives none");
  free(specs);
  return ver;
}

static bool run_rl_stage(const struct stage_common *c, struct backend *policy, struct stage_result *result,
                         char *err, size_t err_size) {
  const char *kind = c->kind;
  enum rl_kind rk = strcmp(kind, "grpo") == 0 ? RL_GRPO : strcmp(kind, "ppo") == 0 ? RL_PPO : RL_ONLINE_DPO;
  int max_new = (int)setting(c->settings, "max_new_tokens");
  int group = rk == RL_GRPO ? (int)setting(c->settings, "group") : rk == RL_ONLINE_DPO ? 2 : 1;
  struct tokenizer *tok = tokenizer_create(c->tokenizer, err, err_size);
  if (!tok) return false;
  bool ok = false;
  struct backend *reference = NULL, *reward_model = NULL;
  struct verifier *verifier = NULL;
  char notes[3][256];
  const char *note_lines[3];
  size_t n_notes = 0;
  /* a prompt leaves room for its completion */
  struct example_set *set = NULL;
  if (max_new >= c->seq) {
    snprintf(err, err_size, "stage '%s': max_new_tokens = %d leaves no room for a prompt in a context of %d", c->name,
             max_new, c->seq);
    goto done;
  }
  set = open_examples(c, EXAMPLES_PROMPTS, c->seq - max_new, tok, err, err_size);
  if (!set) goto done;
  struct example_stats es;
  examples_stats(set, &es);
  note_lines[n_notes++] = note(notes[0], sizeof notes[0], "%zu prompts (%zu held out), %zu dropped as longer than %d "
                               "tokens", es.kept, es.val_kept, es.dropped_long, c->seq - max_new);
  int rows = c->batch; /* completions per step */
  const char *ref_name = str(c->stage, "reference");
  if (ref_name[0]) {
    char *dir = checkpoint_of(c->plan, c->stage, ref_name, c->opt, "reference", err, err_size);
    if (!dir) goto done;
    /* online DPO's win rate samples the reference too */
    reference = frozen_model(dir, &c->cfg, c->micro, c->seq, false, rk == RL_ONLINE_DPO ? c->batch : 0, c->opt,
                             "the reference", err, err_size);
    free(dir);
    if (!reference) goto done;
    note_lines[n_notes++] = note(notes[1], sizeof notes[1], "reference '%s' (frozen): %.1f MiB, no gradients or "
                                 "optimiser state", ref_name, frozen_bytes(reference) / 1048576.0);
  }
  const char *reward = str(c->stage, "reward");
  if (json_array_size(json_object_get(c->stage, "verifiers")) > 0) {
    if (!(verifier = stage_verifier(c, err, err_size))) goto done;
  } else if (reward[0]) {
    char *dir = checkpoint_of(c->plan, c->stage, reward, c->opt, "reward", err, err_size);
    if (!dir) goto done;
    reward_model = frozen_model(dir, &c->cfg, c->micro, c->seq, true, 0, c->opt, "the reward model", err,
                                err_size);
    free(dir);
    if (!reward_model) goto done;
    note_lines[n_notes++] = note(notes[2], sizeof notes[2], "reward model '%s' (frozen): %.1f MiB", reward,
                                 frozen_bytes(reward_model) / 1048576.0);
  } else {
    snprintf(err, err_size, "stage '%s' has no reward", c->name);
    goto done;
  }
  double patience = setting(c->settings, "constant_patience");
  struct rl_run run = {
      .name = c->name, .state = str(c->stage, "produces"), .tokenizer_name = c->tokenizer,
      .template_name = c->template, .kind = rk, .policy = policy, .reference = reference,
      .reward_model = reward_model, .verifier = verifier, .prompts = set, .tok = tok,
      .prompts_per_step = rows / group, .group = group, .micro_batch = c->micro, .context = c->seq,
      .max_new_tokens = max_new, .top_k = (int)setting(c->settings, "top_k"),
      .temperature = setting(c->settings, "temperature"), .top_p = setting(c->settings, "top_p"),
      .kl = setting(c->settings, "kl"), .clip = setting(c->settings, "clip"),
      .vf_coef = setting(c->settings, "vf_coef"), .gamma = setting(c->settings, "gamma"),
      .lambda = setting(c->settings, "gae_lambda"), .beta = setting(c->settings, "beta"),
      .ppo_epochs = (int)setting(c->settings, "ppo_epochs"), .rounds = (int)setting(c->settings, "rounds"),
      .steps = c->steps, .schedule = schedule_of(c),
      .beta1 = (float)setting(c->optimizer, "beta1"), .beta2 = (float)setting(c->optimizer, "beta2"),
      .eps = (float)setting(c->optimizer, "eps"), .weight_decay = (float)setting(c->optimizer, "weight_decay"),
      .grad_clip = (float)setting(c->optimizer, "grad_clip"),
      .eval_every = (long)setting(c->settings, "eval_every"), .log_every = (long)setting(c->settings, "log_every"),
      .constant_patience = isnan(patience) ? 20 : (long)patience, .seed = c->seed,
      .resume = c->opt->resume, .interrupted = c->opt->interrupted, .progress = c->opt->progress, .tty = c->opt->tty,
      .notes = note_lines, .n_notes = n_notes,
  };
  const char *normalize = setting_text(c->settings, "normalize", "sequence");
  run.normalize = strcmp(normalize, "token") == 0 ? GRPO_PER_TOKEN
                  : strcmp(normalize, "fixed") == 0 ? GRPO_FIXED : GRPO_PER_SEQUENCE;
  if (isnan(run.kl)) run.kl = 0;
  if (!reference) run.kl = 0;
  if (run.log_every < 1) run.log_every = 1;
  run.checkpoint_every = run.eval_every > 0 ? run.eval_every : 100;
  char *dir = join(c->opt->out, c->name);
  run.dir = dir;
  ok = rl_train(&run, result, err, err_size);
  free(dir);
done:
  backend_destroy(reference);
  backend_destroy(reward_model);
  verifier_free(verifier);
  examples_close(set);
  tokenizer_free(tok);
  return ok;
}

static bool run_stage(json_t *plan, json_t *stage, const struct run_options *opt, bool *interrupted,
                      json_t **summary, char *err, size_t err_size) {
  struct stage_common c = {.plan = plan, .stage = stage, .opt = opt, .name = str(stage, "name"),
                           .kind = str(stage, "kind"), .settings = json_object_get(stage, "settings"),
                           .optimizer = json_object_get(stage, "optimizer")};
  c.how = runnable_of(c.kind); /* run_plan has refused the kinds it cannot train */
  json_t *model = json_object_get(stage, "model");
  struct checkpoint start;
  bool have_start;
  if (!starting_checkpoint(stage, opt, &start, &have_start, err, err_size)) return false;
  c.tokenizer = json_is_string(json_object_get(model, "tokenizer")) ? str(model, "tokenizer") : NULL;
  c.template = json_is_string(json_object_get(model, "template")) ? str(model, "template") : NULL;
  double context = setting(c.settings, "context");
  c.cfg = (struct gpt_config){
      .vocab = (int)json_number_value(json_object_get(model, "vocab")),
      .context = (int)json_number_value(json_object_get(model, "context")),
      .layers = (int)json_number_value(json_object_get(model, "layers")),
      .heads = (int)json_number_value(json_object_get(model, "heads")),
      .width = (int)json_number_value(json_object_get(model, "width")),
  };
  if (have_start) {
    /* what the stage starts from says what the model is: a loaded
     * checkpoint's shape, tokenizer and template are in its files, and an
     * earlier stage may have grown the positions */
    int declared = c.cfg.context;
    c.cfg = start.cfg;
    if (declared > c.cfg.context) c.cfg.context = declared;
    if (!c.tokenizer && start.tokenizer[0]) c.tokenizer = start.tokenizer;
    if (!c.template && start.template[0]) c.template = start.template;
    if (isnan(context)) context = start.cfg.context;
  }
  c.cfg.head = c.how->head;
  if (!c.tokenizer) c.tokenizer = "bytes";
  if (!c.template) c.template = "turns";
  bool ok = false;
  struct backend *backend = NULL;
  struct stage_result result = {0};
  if (strcmp(c.tokenizer, "bytes") != 0) {
    snprintf(err, err_size, "stage '%s': the %s tokenizer is not available yet; use tokenizer = bytes", c.name,
             c.tokenizer);
    goto done;
  }
  if (isnan(context) || c.cfg.layers < 1) {
    snprintf(err, err_size, "stage '%s': the model's shape is not known", c.name);
    goto done;
  }
  /* The stage trains on sequences of its own length; the model keeps its
   * positions, and grows them where the stage's sequences are longer. */
  c.seq = (int)context;
  if (c.seq > c.cfg.context) c.cfg.context = c.seq;
  if (c.cfg.vocab < 261) { /* the byte tokenizer's 256 bytes and 5 special tokens */
    snprintf(err, err_size, "stage '%s': a vocab of %d is smaller than the byte tokenizer's 261 tokens", c.name,
             c.cfg.vocab);
    goto done;
  }
  c.batch = (int)setting(c.settings, "batch");
  c.micro = (int)setting(c.settings, "micro_batch");
  if (c.micro < 1 || c.micro > c.batch) c.micro = c.batch;
  c.steps = (long)setting(c.settings, "steps");
  if (opt->max_steps > 0 && c.steps > opt->max_steps) c.steps = opt->max_steps;
  c.seed = opt->has_seed ? opt->seed : (uint64_t)setting(c.settings, "seed");

  int rows = c.micro, gen_rows = 0;
  if (c.how->family == FAMILY_PREFERENCES) rows = c.micro * (strcmp(c.kind, "kto") == 0 ? 1 : 2);
  if (c.how->family == FAMILY_RL) gen_rows = c.batch;
  char backend_err[256];
  backend = backend_create(opt->device, &(struct backend_spec){.cfg = c.cfg, .max_batch = rows, .max_seq = c.seq,
                                                      .threads = opt->threads, .train = true, .gen_rows = gen_rows,
                                                      .precision = opt->precision},
                               backend_err, sizeof backend_err);
  if (!backend) {
    snprintf(err, err_size, "stage '%s': %s", c.name, backend_err);
    goto done;
  }
  if (!starting_weights(stage, have_start ? &start : NULL, backend, c.seed, err, err_size)) goto done;
  if (have_start) checkpoint_free(&start), have_start = false; /* in the backend now */
  switch (c.how->family) {
  case FAMILY_TOKENS: ok = run_token_stage(&c, backend, &result, err, err_size); break;
  case FAMILY_PREFERENCES: ok = run_preference_stage(&c, backend, &result, err, err_size); break;
  case FAMILY_RL: ok = run_rl_stage(&c, backend, &result, err, err_size); break;
  }
  if (ok && result.interrupted) *interrupted = true;
  *summary = result.summary;
done:
  if (have_start) checkpoint_free(&start);
  backend_destroy(backend);
  return ok;
}

/* ---- assertions ----------------------------------------------------------- */

/* The value of an assertion's expression over the stages' summaries; NAN
 * (with the reason in WHY) when a metric is missing. Booleans are 1 or 0. */
static double evaluate(json_t *e, const struct run_options *opt, json_t *seen, char *why, size_t why_size) {
  if (json_is_number(e)) return json_number_value(e);
  if (json_is_boolean(e)) return json_is_true(e);
  json_t *metric = json_object_get(e, "metric");
  if (metric) {
    const char *stage = json_string_value(json_array_get(metric, 0)), *name = json_string_value(json_array_get(metric, 1));
    char *dir = join(opt->out, stage ? stage : "");
    json_t *summary = stage_summary(dir);
    free(dir);
    json_t *v = json_object_get(summary, name ? name : "");
    double value = json_is_number(v) ? json_number_value(v) : NAN;
    if (isnan(value) && !why[0])
      snprintf(why, why_size, "stage '%s' logged no %s%s", stage, name, summary ? "" : " (it has no summary.json)");
    else {
      char key[256];
      snprintf(key, sizeof key, "%s.%s", stage, name);
      json_object_set_new(seen, key, json_real(value));
    }
    json_decref(summary);
    return value;
  }
  const char *op = json_string_value(json_object_get(e, "op"));
  double b = evaluate(json_object_get(e, "rhs"), opt, seen, why, why_size);
  if (!op) return NAN;
  if (strcmp(op, "neg") == 0) return -b;
  if (strcmp(op, "not") == 0) return !b;
  double a = evaluate(json_object_get(e, "lhs"), opt, seen, why, why_size);
  if (isnan(a) || isnan(b)) return NAN;
  switch (op[0]) {
  case '+': return a + b;
  case '-': return a - b;
  case '*': return a * b;
  case '/': return a / b;
  }
  if (strcmp(op, "<") == 0) return a < b;
  if (strcmp(op, "<=") == 0) return a <= b;
  if (strcmp(op, ">") == 0) return a > b;
  if (strcmp(op, ">=") == 0) return a >= b;
  if (strcmp(op, "==") == 0) return a == b;
  if (strcmp(op, "!=") == 0) return a != b;
  if (strcmp(op, "and") == 0) return a && b;
  if (strcmp(op, "or") == 0) return a || b;
  return NAN;
}

static bool names_in(json_t *list, const char *name) {
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
  return false;
}

/* Whether STAGE depends on a stage in BLOCKED: it starts from one, or uses
 * one as its reference or reward, directly or through stages of the plan
 * it depends on. */
static bool depends_on(json_t *plan, json_t *stage, json_t *blocked, int depth) {
  const char *refs[] = {str(json_object_get(stage, "from"), "name"), str(stage, "reference"), str(stage, "reward")};
  for (size_t r = 0; r < 3; r++) {
    if (!refs[r][0]) continue;
    if (names_in(blocked, refs[r])) return true;
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(plan, "stages"), i, st)
      if (depth < 1000 && strcmp(str(st, "name"), refs[r]) == 0 && depends_on(plan, st, blocked, depth + 1)) return true;
  }
  return false;
}

/* Evaluates the assertions that read stage RAN, which has just finished,
 * or that guard NEXT, the stage about to run, once their stages have all
 * finished and none is PENDING in this run (and that were not evaluated
 * yet: EVALUATED marks them); a failed one adds its stages to BLOCKED and
 * its message to FAILURES. */
static void check_gates(json_t *plan, const struct run_options *opt, const char *ran, json_t *next, bool *evaluated,
                        json_t *pending, json_t *blocked, json_t *failures) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(plan, "asserts"), i, a) {
    if (evaluated[i]) continue;
    json_t *stages = json_object_get(a, "stages");
    /* a gate matters to this run when one of its stages has just run, or
     * when the stage about to run depends on them */
    if (!(ran && names_in(stages, ran)) && !(next && depends_on(plan, next, stages, 0))) continue;
    bool ready = true;
    size_t k;
    json_t *st;
    /* a stage this run has still to (re)train is not finished, whatever
     * an earlier run left in its folder */
    json_array_foreach(stages, k, st) ready &= stage_done(opt->out, json_string_value(st)) &&
                                                !names_in(pending, json_string_value(st));
    if (!ready) continue;
    evaluated[i] = true;
    char why[256] = "";
    json_t *seen = json_object();
    double v = evaluate(json_object_get(a, "expr"), opt, seen, why, sizeof why);
    if (!isnan(v) && v != 0) {
      if (opt->progress) fprintf(opt->progress, "assert %s: passed\n", str(a, "text"));
      json_decref(seen);
      continue;
    }
    char values[256] = "";
    size_t at = 0;
    const char *key;
    json_t *val;
    json_object_foreach(seen, key, val) {
      int n = snprintf(values + at, sizeof values - at, "%s%s = %.4g", at ? ", " : "", key, json_number_value(val));
      if (n < 0 || (size_t)n >= sizeof values - at) break;
      at += (size_t)n;
    }
    json_decref(seen);
    char text[768];
    snprintf(text, sizeof text, "%s: assert %s failed: %s", str(a, "at"), str(a, "text"), why[0] ? why : values);
    if (opt->progress) fprintf(opt->progress, "assert %s: FAILED; the stages that depend on %s will not run\n",
                               str(a, "text"), json_array_size(stages) == 1 ? "that stage" : "those stages");
    json_array_append_new(failures, json_string(text));
    json_array_foreach(stages, k, st) if (!names_in(blocked, json_string_value(st))) json_array_append(blocked, st);
  }
}

bool run_plan(json_t *plan, const struct run_options *opt, bool *interrupted, char *err, size_t err_size) {
  *interrupted = false;
  if (mkdir(opt->out, 0777) != 0 && errno != EEXIST) {
    /* the parent may be missing too: runs/NAME */
    char *parent = xmalloc(strlen(opt->out) + 1);
    strcpy(parent, opt->out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = '\0', mkdir(parent, 0777);
    free(parent);
    if (mkdir(opt->out, 0777) != 0 && errno != EEXIST) {
      snprintf(err, err_size, "cannot create the run folder %s: %s", opt->out, strerror(errno));
      return false;
    }
  }
  json_t *stages = json_object_get(plan, "stages");
  const char *wanted[] = {opt->only, opt->from, opt->until};
  for (size_t w = 0; w < 3; w++) {
    if (!wanted[w]) continue;
    bool there = false;
    size_t k;
    json_t *st;
    json_array_foreach(stages, k, st) there |= strcmp(str(st, "name"), wanted[w]) == 0;
    if (!there) {
      snprintf(err, err_size, "no stage '%s' in the plan", wanted[w]);
      return false;
    }
  }
  size_t n_asserts = json_array_size(json_object_get(plan, "asserts"));
  bool *evaluated = calloc(n_asserts ? n_asserts : 1, sizeof *evaluated);
  json_t *blocked = json_array(), *failures = json_array(), *skipped = json_array(), *pending = json_array();
  bool ok = true;
  /* the names were checked above: every stage they pick is in the plan;
   * the picked stages are checked before any of them trains, so that a
   * stage kind this version cannot train fails the run at once */
  for (int pass = 0; pass < 2 && ok; pass++) {
    bool started = !opt->from;
    size_t i;
    json_t *stage;
    json_array_foreach(stages, i, stage) {
      const char *name = str(stage, "name");
      if (opt->from && strcmp(name, opt->from) == 0) started = true;
      if (opt->only && strcmp(name, opt->only) != 0) continue;
      if (!started) continue;
      if (pass == 0) {
        if (!runnable_of(str(stage, "kind"))) {
          snprintf(err, err_size, "stage '%s': this version cannot run %s stages", name, str(stage, "kind"));
          ok = false;
          break;
        }
        if (!(opt->resume && stage_done(opt->out, name))) json_array_append_new(pending, json_string(name));
        if (opt->until && strcmp(name, opt->until) == 0) break;
        continue;
      }
      check_gates(plan, opt, NULL, stage, evaluated, pending, blocked, failures);
      if (depends_on(plan, stage, blocked, 0)) {
        if (opt->progress) fprintf(opt->progress, "%s: not run: a gate before it failed\n", name);
        json_array_append_new(skipped, json_string(name));
        continue;
      }
      bool skip = opt->resume && stage_done(opt->out, name);
      if (skip && opt->progress) fprintf(opt->progress, "%s: done in an earlier run; kept\n", name);
      json_t *summary = NULL;
      if (!skip && !run_stage(plan, stage, opt, interrupted, &summary, err, err_size)) {
        ok = false;
        break;
      }
      json_decref(summary);
      if (*interrupted) break;
      for (size_t k = 0; k < json_array_size(pending); k++)
        if (strcmp(json_string_value(json_array_get(pending, k)), name) == 0) json_array_remove(pending, k--);
      if (!skip) check_gates(plan, opt, name, NULL, evaluated, pending, blocked, failures);
      if (opt->until && strcmp(name, opt->until) == 0) break;
    }
  }
  if (ok && json_array_size(failures) > 0) {
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(failures) && at < err_size; i++) {
      int n = snprintf(err + at, err_size - at, "%s%s", i ? "\n" : "", json_string_value(json_array_get(failures, i)));
      if (n < 0) break;
      at += (size_t)n;
    }
    if (json_array_size(skipped) > 0 && at < err_size) {
      int n = snprintf(err + at, err_size - at, "\nnot run, as they depend on it:");
      at += n > 0 ? (size_t)n : 0;
      for (size_t i = 0; i < json_array_size(skipped) && at < err_size; i++) {
        n = snprintf(err + at, err_size - at, " %s", json_string_value(json_array_get(skipped, i)));
        at += n > 0 ? (size_t)n : 0;
      }
    }
    ok = false;
  }
  free(evaluated);
  json_decref(blocked);
  json_decref(failures);
  json_decref(skipped);
  json_decref(pending);
  return ok;
}
