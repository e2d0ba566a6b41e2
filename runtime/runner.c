#include "runtime/runner.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grammar/arena.h"
#include "runtime/backend.h"
#include "runtime/batches.h"
#include "runtime/checkpoint.h"
#include "runtime/train.h"

/* The stage kinds this runtime trains, and how. */
struct runnable {
  const char *kind;
  enum objective_kind objective;
  const char *data_kind;
};

static const struct runnable runnables[] = {
    {"pretrain", OBJECTIVE_NEXT_TOKEN, "corpus"},
    {"midtrain", OBJECTIVE_NEXT_TOKEN, "corpus"},
    {"sft", OBJECTIVE_MASKED_NEXT_TOKEN, "demonstrations"},
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

/* Weights grown to a longer context: the positions the model never saw
 * get GPT-2's initialisation, the others keep what they learnt. */
static float *grow_context(const struct gpt_config *from, const float *params, const struct gpt_config *to,
                           uint64_t seed) {
  float *out = xmalloc(gpt_param_count(to) * sizeof *out);
  gpt_init(to, out, seed);
  size_t a[GPT_TENSOR_COUNT], b[GPT_TENSOR_COUNT];
  gpt_tensor_offsets(from, a);
  gpt_tensor_offsets(to, b);
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t n = gpt_tensor_size(from, (enum gpt_tensor)t); /* wpe's rows come first: the old ones are a prefix */
    memcpy(out + b[t], params + a[t], n * sizeof *out);
  }
  return out;
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

/* The starting weights of a stage, into BACKEND: CK's, grown to the
 * backend's context where the stage extends it, or GPT-2's initialisation
 * when CK is NULL. */
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
  if (ck->cfg.vocab != cfg->vocab || ck->cfg.layers != cfg->layers || ck->cfg.heads != cfg->heads ||
      ck->cfg.width != cfg->width) {
    snprintf(err, err_size, "the checkpoint of '%s' is a %d-layer, %d-head, width-%d model of vocab %d, not the shape "
             "stage '%s' needs", str(json_object_get(stage, "from"), "name"), ck->cfg.layers, ck->cfg.heads,
             ck->cfg.width, ck->cfg.vocab, str(stage, "name"));
    return false;
  }
  if (ck->cfg.context < cfg->context) {
    float *grown = grow_context(&ck->cfg, ck->params, cfg, seed);
    backend->ops->write_params(backend, grown);
    free(grown);
  } else {
    backend->ops->write_params(backend, ck->params);
  }
  return true;
}

static bool run_stage(json_t *stage, const struct run_options *opt, bool *interrupted, char *err, size_t err_size) {
  const char *name = str(stage, "name"), *kind = str(stage, "kind");
  const struct runnable *how = runnable_of(kind); /* run_plan has refused the kinds it cannot train */
  json_t *model = json_object_get(stage, "model"), *settings = json_object_get(stage, "settings");
  json_t *optimizer = json_object_get(stage, "optimizer");
  struct checkpoint start;
  bool have_start;
  if (!starting_checkpoint(stage, opt, &start, &have_start, err, err_size)) return false;
  const char *tokenizer = json_is_string(json_object_get(model, "tokenizer")) ? str(model, "tokenizer") : NULL;
  const char *template = json_is_string(json_object_get(model, "template")) ? str(model, "template") : NULL;
  double context = setting(settings, "context");
  struct gpt_config cfg = {
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
    int declared = cfg.context;
    cfg = start.cfg;
    if (declared > cfg.context) cfg.context = declared;
    if (!tokenizer && start.tokenizer[0]) tokenizer = start.tokenizer;
    if (!template && start.template[0]) template = start.template;
    if (isnan(context)) context = start.cfg.context;
  }
  if (!tokenizer) tokenizer = "bytes";
  if (!template) template = "turns";
  bool ok = false;
  struct backend *backend = NULL;
  struct batch_source train = {0}, val = {0};
  struct data_part *parts = NULL;
  if (strcmp(tokenizer, "bytes") != 0) {
    snprintf(err, err_size, "stage '%s': the %s tokenizer is not available yet; use tokenizer = bytes", name, tokenizer);
    goto done;
  }
  if (isnan(context) || cfg.layers < 1) {
    snprintf(err, err_size, "stage '%s': the model's shape is not known", name);
    goto done;
  }
  /* The stage trains on sequences of its own length; the model keeps its
   * positions, and grows them where the stage's sequences are longer. */
  int seq = (int)context;
  if (seq > cfg.context) cfg.context = seq;
  if (cfg.vocab < 261) { /* the byte tokenizer's 256 bytes and 5 special tokens */
    snprintf(err, err_size, "stage '%s': a vocab of %d is smaller than the byte tokenizer's 261 tokens", name,
             cfg.vocab);
    goto done;
  }
  int batch = (int)setting(settings, "batch"), micro = (int)setting(settings, "micro_batch");
  if (micro < 1 || micro > batch) micro = batch;
  long steps = (long)setting(settings, "steps");
  if (opt->max_steps > 0 && steps > opt->max_steps) steps = opt->max_steps;
  uint64_t seed = opt->has_seed ? opt->seed : (uint64_t)setting(settings, "seed");

  char backend_err[256];
  backend = cpu_backend_create(&(struct backend_spec){.cfg = cfg, .max_batch = micro, .max_seq = seq,
                                                      .threads = opt->threads, .train = true},
                               backend_err, sizeof backend_err);
  if (!backend) {
    snprintf(err, err_size, "stage '%s': %s", name, backend_err);
    goto done;
  }
  json_t *sets = json_object_get(stage, "data");
  size_t n_parts = json_array_size(sets);
  parts = xmalloc((n_parts ? n_parts : 1) * sizeof *parts);
  for (size_t i = 0; i < n_parts; i++) {
    json_t *set = json_array_get(sets, i);
    parts[i] = (struct data_part){.name = str(set, "name"), .pattern = str(set, "resolved"),
                                  .share = json_number_value(json_object_get(set, "share")),
                                  .settings = json_object_get(set, "settings")};
  }
  struct data_spec spec = {.kind = how->data_kind, .parts = parts, .n_parts = n_parts, .context = seq,
                           .seed = seed, .tokenizer = tokenizer, .template = template,
                           .response_only = strcmp(setting_text(settings, "loss", "response"), "response") == 0,
                           .packing = json_is_true(json_object_get(json_object_get(settings, "packing"), "value"))};
  if (!starting_weights(stage, have_start ? &start : NULL, backend, seed, err, err_size)) goto done;
  if (have_start) checkpoint_free(&start), have_start = false; /* in the backend now */
  if (!batches_open(&spec, &train, &val, err, err_size)) goto done;

  struct stage_run run = {
      .name = name, .kind = kind, .state = str(stage, "produces"), .tokenizer = tokenizer, .template = template,
      .objective = how->objective == OBJECTIVE_MASKED_NEXT_TOKEN && !spec.response_only ? OBJECTIVE_NEXT_TOKEN
                                                                                         : how->objective,
      .backend = backend, .batch = batch, .micro_batch = micro, .context = seq, .steps = steps,
      .beta1 = (float)setting(optimizer, "beta1"), .beta2 = (float)setting(optimizer, "beta2"),
      .eps = (float)setting(optimizer, "eps"), .weight_decay = (float)setting(optimizer, "weight_decay"),
      .grad_clip = (float)setting(optimizer, "grad_clip"),
      .eval_every = (long)setting(settings, "eval_every"), .log_every = (long)setting(settings, "log_every"),
      .eval_batches = 8, .train = train, .val = val, .resume = opt->resume, .interrupted = opt->interrupted,
      .progress = opt->progress, .tty = opt->tty,
  };
  run.checkpoint_every = run.eval_every > 0 ? run.eval_every : 100;
  if (run.log_every < 1) run.log_every = 1;
  run.schedule = (struct schedule){.peak = setting(optimizer, "lr"), .min_lr = setting(optimizer, "min_lr"),
                                   .warmup = (long)setting(optimizer, "warmup"), .total = steps};
  if (!schedule_kind_from_name(setting_text(optimizer, "schedule", "cosine"), &run.schedule.kind))
    run.schedule.kind = SCHEDULE_COSINE;
  char *dir = join(opt->out, name);
  run.dir = dir;
  struct stage_result result;
  ok = stage_train(&run, &result, err, err_size);
  free(dir);
  if (ok && result.interrupted) *interrupted = true;
done:
  if (have_start) checkpoint_free(&start);
  batches_close(&train, &val);
  free(parts);
  backend_destroy(backend);
  return ok;
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
  /* the names were checked above: every stage they pick is in the plan;
   * the picked stages are checked before any of them trains, so that a
   * stage kind this version cannot train fails the run at once */
  for (int pass = 0; pass < 2; pass++) {
    bool started = !opt->from;
    size_t i;
    json_t *stage;
    json_array_foreach(stages, i, stage) {
      const char *name = str(stage, "name");
      if (opt->from && strcmp(name, opt->from) == 0) started = true;
      if (opt->only && strcmp(name, opt->only) != 0) continue;
      if (!started) continue;
      if (pass == 0 && !runnable_of(str(stage, "kind"))) {
        snprintf(err, err_size, "stage '%s': this version runs pretrain, midtrain and sft stages; %s is not supported "
                 "yet (--until picks the stages before it)", name, str(stage, "kind"));
        return false;
      }
      bool skip = pass == 0 || (opt->resume && stage_done(opt->out, name));
      if (pass == 1 && skip && opt->progress) fprintf(opt->progress, "%s: done in an earlier run; kept\n", name);
      if (!skip && !run_stage(stage, opt, interrupted, err, err_size)) return false;
      if (*interrupted) return true;
      if (opt->until && strcmp(name, opt->until) == 0) break;
    }
  }
  return true;
}
