/* The planner: execution order, effective settings and cost of every stage.
 *
 * Cost model (fp32 weights and optimiser state, as the runtime keeps them):
 *   - N, the parameters a token's matmuls touch: every parameter but the
 *     position embeddings (the token embedding is the tied LM head);
 *   - training a token costs 6N + 6·L·T·d FLOPs and a forward pass alone
 *     2N + 2·L·T·d (Kaplan et al. 2020: the attention term uses the full
 *     sequence length T);
 *   - memory: 4 bytes a parameter for weights, 4 for gradients, 8 for
 *     AdamW's two moments; activations of one micro-batch of S sequences
 *     as the CPU runtime lays them out, 4·(L·(16·S·T·d + 2·S·H·T²) + S·T·V)
 *     bytes (the last term is one micro-batch of logits, which the fused
 *     log-softmax needs while it runs); weights only for a frozen reference
 *     and a reward model; a KV cache of 2·L·S·T·d floats for sampling;
 *   - time: FLOPs over the device's peak times the assumed utilisation.
 * Tokens come from the data: corpus bytes, and for JSONL the fields each
 * example puts through the model (a preference pair is two sequences,
 * prompt + chosen and prompt + rejected), over 1 byte a token for the
 * byte tokenizer and about 4 for BPE. */
#include "interp/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "interp/decls.h"
#include "interp/json_line.h"
#include "interp/symbols.h"

/* ---- devices ------------------------------------------------------------ */

static const struct device_spec devices[] = {
    {"cpu", "this machine's cores: AVX2, two FMA units at 2.5 GHz, 80 GFLOP/s a core", "fp32", 80e9, 0, 0.30},
    {"a100", "NVIDIA A100 SXM 80 GB: 312 TFLOP/s bf16 dense", "bf16", 312e12, 80e9, 0.40},
    {"h100", "NVIDIA H100 SXM 80 GB: 989 TFLOP/s bf16 dense", "bf16", 989e12, 80e9, 0.40},
    {"h200", "NVIDIA H200 SXM 141 GB: 989 TFLOP/s bf16 dense", "bf16", 989e12, 141e9, 0.40},
    {"l4", "NVIDIA L4 24 GB: 121 TFLOP/s bf16 dense", "bf16", 121e12, 24e9, 0.40},
};

const struct device_spec *device_find(const char *name) {
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
    if (strcmp(devices[i].name, name) == 0) return &devices[i];
  return NULL;
}

void device_list(FILE *out) {
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
    fprintf(out, "%-5s  %-4s  %2.0f%% utilisation assumed  %s\n", devices[i].name, devices[i].precision,
            devices[i].utilization * 100, devices[i].description);
}

/* ---- data ----------------------------------------------------------------- */

/* What the files of one data set hold. */
struct data_stats {
  double files, bytes;
  double examples;
  double model_bytes;  /* text the model reads: the fields of every example, or the corpus */
  double prompt_bytes; /* prompts' share of it */
  bool read;           /* the files were looked at */
};

/* The bytes of an example that go through the model, by data kind. */
static double example_model_bytes(enum owner_id kind, const struct json_line *ex, double *prompt) {
  const size_t *b = ex->string_bytes;
  *prompt = (double)b[JSON_FIELD_PROMPT];
  switch (kind) {
  case OWNER_DEMOS: return (double)(b[JSON_FIELD_PROMPT] + b[JSON_FIELD_RESPONSE] + ex->message_bytes);
  case OWNER_PREFS: return (double)(2 * b[JSON_FIELD_PROMPT] + b[JSON_FIELD_CHOSEN] + b[JSON_FIELD_REJECTED]);
  case OWNER_FEEDBACK: return (double)(b[JSON_FIELD_PROMPT] + b[JSON_FIELD_COMPLETION]);
  default: return (double)b[JSON_FIELD_PROMPT];
  }
}

static void scan_examples(const char *path, enum owner_id kind, struct data_stats *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t cap = 1u << 20, have = 0;
  char *buf = xmalloc(cap);
  bool eof = false;
  while (!eof || have > 0) {
    if (!eof) {
      if (have == cap) buf = xrealloc(buf, cap *= 2);
      ssize_t n = read(fd, buf + have, cap - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) eof = true; /* the check has reported unreadable data */
      else have += (size_t)n;
    }
    size_t start = 0;
    for (;;) {
      char *nl = memchr(buf + start, '\n', have - start);
      if (!nl && !(eof && start < have)) break;
      size_t end = nl ? (size_t)(nl - buf) : have;
      struct json_line ex;
      char reason[8];
      if (json_line_read(buf + start, end - start, &ex, reason, sizeof reason)) {
        double prompt;
        st->model_bytes += example_model_bytes(kind, &ex, &prompt);
        st->prompt_bytes += prompt;
        st->examples++;
      }
      start = nl ? end + 1 : have;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  free(buf);
  close(fd);
}

static struct data_stats data_stats_of(struct program *prog, const struct item *data, enum owner_id kind) {
  struct data_stats st = {0};
  const struct arg *a = data->init->u.call.args;
  if (!a || a->value->kind != EXPR_STRING) return st;
  char *pattern = program_resolve_path(prog, data, a->value->u.string.text);
  glob_t g;
  if (glob(pattern, 0, NULL, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      struct stat s;
      if (stat(g.gl_pathv[i], &s) != 0 || !S_ISREG(s.st_mode)) continue;
      st.files++;
      st.bytes += (double)s.st_size;
      if (kind == OWNER_CORPUS) st.model_bytes += (double)s.st_size;
      else scan_examples(g.gl_pathv[i], kind, &st);
    }
  }
  globfree(&g);
  st.read = true;
  return st;
}

/* ---- the pipeline's graph --------------------------------------------------- */

struct planner {
  struct program *prog;
  const struct plan_options *opt;
  const struct device_spec *device;
  double cores; /* for the cpu */
  struct key_index keys;
  struct symtab names;
};

static const struct item *lookup(struct planner *p, const struct ident *name) {
  struct decl *d = symtab_find(&p->names, name->text, name->len);
  return d ? d->item : NULL;
}

static const struct item *lookup_stage(struct planner *p, const struct ident *name) {
  const struct item *it = lookup(p, name);
  return it && it->kind == ITEM_STAGE ? it : NULL;
}

/* The model a frozen(...) reference names, as written. */
static const struct ident *reference_name(const struct item *stage) {
  const struct entry *e = item_entry(stage, "reference");
  if (!e || e->value->kind != EXPR_CALL || !e->value->u.call.args) return NULL;
  const struct expr *v = e->value->u.call.args->value;
  return v->kind == EXPR_NAME ? &v->u.name : NULL;
}

static const struct ident *reward_name(const struct item *stage) {
  const struct entry *e = item_entry(stage, "reward");
  return e && e->value->kind == EXPR_NAME ? &e->value->u.name : NULL;
}

/* The stages a stage waits for, in a fixed order: its lineage, its
 * reference, its reward, then what `order` puts before it. */
static size_t stage_deps(struct planner *p, const struct item *stage, const struct item **deps, size_t max) {
  size_t n = 0;
  const struct item *d;
  if ((d = lookup_stage(p, &stage->from)) && n < max) deps[n++] = d;
  const struct ident *r = reference_name(stage);
  if (r && (d = lookup_stage(p, r)) && n < max) deps[n++] = d;
  r = reward_name(stage);
  if (r && (d = lookup_stage(p, r)) && n < max) deps[n++] = d;
  for (size_t f = 0; f < p->prog->n_files; f++)
    for (const struct item *it = p->prog->files[f]->items; it; it = it->next) {
      if (it->kind != ITEM_ORDER) continue;
      for (const struct name_list *a = it->order; a && a->next; a = a->next)
        if (ident_eq(&a->next->name, &stage->name) && (d = lookup_stage(p, &a->name)) && n < max) deps[n++] = d;
    }
  return n;
}

#define MAX_DEPS 64

/* Post-order over dependencies from each of the main file's stages in
 * source order, with an explicit stack: a topological order that stays in
 * source order where nothing constrains it. */
static const struct item **execution_order(struct planner *p, size_t *n_out) {
  size_t cap = 0, n = 0, stack_cap = 0, depth = 0;
  const struct item **order = NULL;
  struct frame {
    const struct item *stage;
    size_t next;
  } *stack = NULL;
  for (const struct item *root = p->prog->files[0]->items; root; root = root->next) {
    if (root->kind != ITEM_STAGE) continue;
    struct decl *rd = symtab_find(&p->names, root->name.text, root->name.len);
    if (!rd || rd->item != root || rd->visit) continue;
    rd->visit = 1;
    stack = xgrow(stack, &stack_cap, depth + 1, sizeof *stack);
    stack[depth++] = (struct frame){root, 0};
    while (depth > 0) {
      struct frame *top = &stack[depth - 1];
      const struct item *deps[MAX_DEPS];
      size_t n_deps = stage_deps(p, top->stage, deps, MAX_DEPS);
      if (top->next < n_deps) {
        const struct item *dep = deps[top->next++];
        struct decl *dd = symtab_find(&p->names, dep->name.text, dep->name.len);
        if (dd->visit) continue; /* done, or on the stack: the check refuses cycles */
        dd->visit = 1;
        stack = xgrow(stack, &stack_cap, depth + 1, sizeof *stack);
        stack[depth++] = (struct frame){dep, 0};
        continue;
      }
      order = xgrow(order, &cap, n + 1, sizeof *order);
      order[n++] = top->stage;
      depth--;
    }
  }
  free(stack);
  *n_out = n;
  return order;
}

/* The model declaration at the root of a stage's lineage. */
static const struct item *root_model(struct planner *p, const struct item *it) {
  for (size_t steps = p->names.n + 1; it && it->kind == ITEM_STAGE && steps-- > 0;) it = lookup(p, &it->from);
  return it && it->kind == ITEM_MODEL ? it : NULL;
}

/* The context a stage trains at: its own, else the last context-extending
 * stage's in its lineage, else its model's. */
static double stage_context_of(struct planner *p, const struct item *stage) {
  const struct item *it = stage;
  for (size_t steps = p->names.n + 1; it && it->kind == ITEM_STAGE && steps-- > 0; it = lookup(p, &it->from)) {
    const struct entry *e = item_entry(it, "context");
    const struct stage_row *r = decl_stage_row(it);
    if (e && e->value->kind == EXPR_NUMBER && (it == stage || (r && r->extends_context)))
      return e->value->u.number.value;
  }
  return it && it->kind == ITEM_MODEL ? model_shape(&p->keys, it).context : NAN;
}

/* A path that still names the same file from another working folder: a
 * plan file may be run from anywhere. */
static json_t *absolute_path_json(const char *path) {
  if (path[0] == '/') return json_string(path);
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return json_string(path);
  size_t n = strlen(cwd) + strlen(path) + 2;
  char *full = xmalloc(n);
  snprintf(full, n, "%s/%s", cwd, path);
  json_t *j = json_string(full);
  free(full);
  return j;
}

/* ---- JSON helpers --------------------------------------------------------- */

static json_t *number_json(double v) {
  if (isnan(v)) return json_null();
  if (v == floor(v) && fabs(v) < 9e15) return json_integer((json_int_t)v);
  return json_real(v);
}

static json_t *text_json(const char *text, size_t len) { return json_stringn(text, len); }

/* The value of an expression as the plan records it: numbers, shares as
 * fractions, strings, booleans, names as strings, calls as their text. */
static json_t *expr_json(struct planner *p, const struct expr *v) {
  switch (v->kind) {
  case EXPR_NUMBER: return number_json(v->u.number.value);
  case EXPR_PERCENT: return json_real(v->u.number.value / 100);
  case EXPR_STRING: return text_json(v->u.string.text, v->u.string.len);
  case EXPR_BOOL: return json_boolean(v->u.boolean);
  case EXPR_NAME: return text_json(v->u.name.text, v->u.name.len);
  default: {
    const struct source *src = p->prog->sources.items[v->span.file];
    return text_json(src->text + v->span.start, v->span.end - v->span.start);
  }
  }
}

/* A key's default as a JSON value of its type. */
static json_t *default_json(const struct key_spec *k) {
  switch (k->type) {
  case T_INT:
  case T_NUMBER:
  case T_SHARE: return number_json(strtod(k->default_text, NULL));
  case T_BOOL: return json_boolean(strcmp(k->default_text, "true") == 0);
  default: return json_string(k->default_text);
  }
}

/* {"value": V, "source": "given" | "default" | "derived"} */
static json_t *setting(json_t *value, const char *source) {
  json_t *s = json_object();
  json_object_set_new(s, "value", value);
  json_object_set_new(s, "source", json_string(source));
  return s;
}

/* Every key of OWNER but those the plan shows elsewhere: given values from
 * the entries (or arguments), then the table's defaults. */
static json_t *settings_json(struct planner *p, enum owner_id owner, const struct entry *entries,
                             const struct arg *args) {
  json_t *out = json_object();
  for (size_t i = 0; i < key_table_size; i++) {
    const struct key_spec *k = &key_table[i];
    if (!(k->owners & (UINT64_C(1) << owner))) continue;
    if (k->type == T_DATA || k->type == T_REFERENCE || k->type == T_REWARD || k->type == T_OPTIMIZER) continue;
    const struct expr *given = NULL;
    for (const struct entry *e = entries; e && !given; e = e->next)
      if (ident_is(&e->key, k->name)) given = e->value;
    for (const struct arg *a = args; a && !given; a = a->next)
      if (a->name.text && ident_is(&a->name, k->name)) given = a->value;
    if (given) json_object_set_new(out, k->name, setting(expr_json(p, given), "given"));
    else if (k->default_text[0] && strcmp(k->default_text, "-") != 0)
      json_object_set_new(out, k->name, setting(default_json(k), "default"));
  }
  return out;
}

static double setting_number(json_t *settings, const char *key) {
  json_t *v = json_object_get(json_object_get(settings, key), "value");
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- one stage ------------------------------------------------------------ */

struct model_cost {
  double params;       /* all of them */
  double matmul;       /* N: all but the position embeddings */
  double layers, width, heads, vocab;
};

static struct model_cost model_cost_of(struct planner *p, const struct item *model) {
  struct model_cost m = {NAN, NAN, NAN, NAN, NAN, NAN};
  if (!model) return m;
  struct shape s = model_shape(&p->keys, model);
  m.params = shape_parameters(&s);
  m.matmul = m.params - s.context * s.width;
  m.layers = s.layers;
  m.width = s.width;
  m.heads = s.heads;
  m.vocab = s.vocab;
  return m;
}

static double train_flops(const struct model_cost *m, double context, double tokens) {
  return (6 * m->matmul + 6 * m->layers * context * m->width) * tokens;
}

static double forward_flops(const struct model_cost *m, double context, double tokens) {
  return (2 * m->matmul + 2 * m->layers * context * m->width) * tokens;
}

static double activation_bytes(const struct model_cost *m, double sequences, double context) {
  return 4 * (m->layers * (16 * sequences * context * m->width + 2 * sequences * m->heads * context * context) +
              sequences * context * m->vocab);
}

/* The data sets a stage reads, with their shares: a name, a named mix, or
 * mix(...) in the stage. */
static json_t *stage_data_json(struct planner *p, const struct expr *v, double share, json_t *sets,
                               struct data_stats *total, int depth) {
  if (depth > 8) return sets;
  if (v->kind == EXPR_NAME) {
    const struct item *d = lookup(p, &v->u.name);
    if (!d || d->kind != ITEM_DATA || d->init->kind != EXPR_CALL) return sets;
    if (ident_is(&d->init->u.call.callee, "mix")) return stage_data_json(p, d->init, share, sets, total, depth + 1);
    const struct owner_spec *kind = owner_find(FAMILY_DATA, d->init->u.call.callee.text, d->init->u.call.callee.len);
    if (!kind) return sets;
    struct data_stats st = p->opt->data ? data_stats_of(p->prog, d, kind->id) : (struct data_stats){0};
    json_t *set = json_object();
    json_object_set_new(set, "name", text_json(d->name.text, d->name.len));
    json_object_set_new(set, "kind", json_string(kind->name));
    json_object_set_new(set, "path", expr_json(p, d->init->u.call.args->value));
    json_object_set_new(set, "resolved",
                        absolute_path_json(program_resolve_path(p->prog, d, d->init->u.call.args->value->u.string.text)));
    json_object_set_new(set, "share", json_real(share));
    if (st.read) {
      json_object_set_new(set, "files", number_json(st.files));
      json_object_set_new(set, "bytes", number_json(st.bytes));
      if (kind->id != OWNER_CORPUS) json_object_set_new(set, "examples", number_json(st.examples));
    }
    json_object_set_new(set, "settings", settings_json(p, kind->id, d->block.entries, d->init->u.call.args->next));
    json_array_append_new(sets, set);
    total->files += st.files;
    total->bytes += st.bytes;
    total->examples += st.examples;
    total->model_bytes += st.model_bytes;
    total->prompt_bytes += st.prompt_bytes;
    total->read |= st.read;
    return sets;
  }
  if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix")) {
    for (const struct arg *a = v->u.call.args; a; a = a->next) {
      if (!a->name.text) continue;
      double s = a->value->kind == EXPR_PERCENT ? a->value->u.number.value / 100 : a->value->u.number.value;
      struct expr name = {.kind = EXPR_NAME, .span = a->name.span};
      name.u.name = a->name;
      stage_data_json(p, &name, share * s, sets, total, depth + 1);
    }
  }
  return sets;
}

/* Memory of a stage, in bytes, by part; adds "peak". */
static json_t *memory_json(double params, double activations, double reference, double reward, double kv) {
  json_t *m = json_object();
  json_object_set_new(m, "parameters", number_json(4 * params));
  json_object_set_new(m, "gradients", number_json(4 * params));
  json_object_set_new(m, "adamw", number_json(8 * params));
  json_object_set_new(m, "activations", number_json(activations));
  if (reference > 0) json_object_set_new(m, "reference", number_json(reference));
  if (reward > 0) json_object_set_new(m, "reward_model", number_json(reward));
  if (kv > 0) json_object_set_new(m, "kv_cache", number_json(kv));
  double peak = 16 * params + activations + reference + reward + kv;
  json_object_set_new(m, "peak", number_json(peak));
  return m;
}

static json_t *stage_json(struct planner *p, const struct item *stage) {
  const struct stage_row *row = decl_stage_row(stage);
  const struct owner_spec *owner = owner_spec(row->owner);
  json_t *s = json_object();
  json_object_set_new(s, "name", text_json(stage->name.text, stage->name.len));
  json_object_set_new(s, "kind", json_string(owner->name));
  const struct item *from = lookup(p, &stage->from);
  enum model_state from_state = STATE_UNTRAINED;
  if (from && from->kind == ITEM_MODEL) from_state = model_initial_state(from);
  else if (from) from_state = decl_stage_row(from)->produces;
  json_t *fj = json_object();
  json_object_set_new(fj, "name", text_json(stage->from.text, stage->from.len));
  json_object_set_new(fj, "is", json_string(from && from->kind == ITEM_STAGE ? "stage" : "model"));
  json_object_set_new(fj, "state", json_string(state_name(from_state)));
  json_object_set_new(s, "from", fj);
  json_object_set_new(s, "produces", json_string(state_name(row->produces)));
  json_object_set_new(s, "objective", json_string(row->objective));

  /* the model */
  const struct item *model = root_model(p, stage);
  struct model_cost mc = model_cost_of(p, model);
  double context = stage_context_of(p, stage);
  json_t *mj = json_object();
  if (model) {
    struct shape sh = model_shape(&p->keys, model);
    json_object_set_new(mj, "declaration", text_json(model->name.text, model->name.len));
    json_object_set_new(mj, "architecture", json_string(model->init->kind == EXPR_CALL ? "checkpoint" : "gpt2"));
    const struct arg *where = model->init->kind == EXPR_CALL ? model->init->u.call.args : NULL;
    if (where && !where->name.text && where->value->kind == EXPR_STRING)
      json_object_set_new(mj, "checkpoint",
                          absolute_path_json(program_resolve_path(p->prog, model, where->value->u.string.text)));
    json_object_set_new(mj, "layers", number_json(sh.layers));
    json_object_set_new(mj, "heads", number_json(sh.heads));
    json_object_set_new(mj, "width", number_json(sh.width));
    json_object_set_new(mj, "vocab", number_json(sh.vocab));
    json_object_set_new(mj, "tokenizer", sh.tokenizer.text ? text_json(sh.tokenizer.text, sh.tokenizer.len) : json_null());
    json_object_set_new(mj, "template", sh.template.text ? text_json(sh.template.text, sh.template.len) : json_null());
    json_object_set_new(mj, "context", number_json(sh.context));
    json_object_set_new(mj, "parameters", number_json(mc.params));
  }
  json_object_set_new(s, "model", mj);

  /* data */
  struct data_stats data = {0};
  json_t *sets = json_array();
  const struct entry *de = item_entry(stage, row->data_key);
  if (de) stage_data_json(p, de->value, 1.0, sets, &data, 0);
  json_object_set_new(s, "data", sets);

  /* settings: the stage's keys, then derived ones */
  json_t *settings = settings_json(p, row->owner, stage->block.entries, NULL);
  double batch = setting_number(settings, "batch");
  if (!json_object_get(settings, "context")) json_object_set_new(settings, "context", setting(number_json(context), "derived"));
  if (!json_object_get(settings, "micro_batch"))
    json_object_set_new(settings, "micro_batch", setting(number_json(batch), "derived"));
  double micro = setting_number(settings, "micro_batch");
  const struct entry *oe = item_entry(stage, "optimizer");
  const struct arg *oargs = oe && oe->value->kind == EXPR_CALL ? oe->value->u.call.args : NULL;
  json_t *opt = json_object(), *rest = settings_json(p, OWNER_ADAMW, NULL, oargs);
  json_t *lr = json_object_get(rest, "lr");
  json_object_set(opt, "lr", lr ? lr : setting(number_json(row->default_lr), "default")); /* the stage kind's */
  if (!lr) json_decref(json_object_get(opt, "lr"));
  json_object_del(rest, "lr");
  json_object_update(opt, rest);
  json_decref(rest);
  json_object_set_new(s, "optimizer", opt);
  const struct ident *ref = reference_name(stage), *rew = reward_name(stage);
  if (ref) json_object_set_new(s, "reference", text_json(ref->text, ref->len));
  if (rew) json_object_set_new(s, "reward", text_json(rew->text, rew->len));
  /* a reference or reward that names a loaded model, not a stage: where
   * run finds its weights */
  const struct ident *named[] = {ref, rew};
  const char *keys[] = {"reference_checkpoint", "reward_checkpoint"};
  for (size_t i = 0; i < 2; i++) {
    const struct item *m = named[i] ? lookup(p, named[i]) : NULL;
    const struct arg *where = m && m->kind == ITEM_MODEL && m->init && m->init->kind == EXPR_CALL ? m->init->u.call.args
                                                                                                 : NULL;
    if (where && !where->name.text && where->value->kind == EXPR_STRING)
      json_object_set_new(s, keys[i], absolute_path_json(program_resolve_path(p->prog, m, where->value->u.string.text)));
  }
  if (!rew && item_entry(stage, "reward")) {
    /* one verifier, or a list of them whose rewards add up */
    const struct expr *rv = item_entry(stage, "reward")->value;
    json_t *verifiers = json_array();
    if (rv->kind == EXPR_CALL) json_array_append_new(verifiers, settings_json(p, OWNER_VERIFIER, NULL, rv->u.call.args));
    for (const struct arg *a = rv->kind == EXPR_LIST ? rv->u.list.items : NULL; a; a = a->next)
      if (a->value->kind == EXPR_CALL)
        json_array_append_new(verifiers, settings_json(p, OWNER_VERIFIER, NULL, a->value->u.call.args));
    json_object_set_new(s, "reward", json_string(json_array_size(verifiers) > 1 ? "verifiers" : "verifier"));
    json_object_set_new(s, "verifiers", verifiers);
  }

  /* work: tokens through the model, steps, FLOPs by part */
  double bpt = 4; /* BPE: about 4 bytes a token */
  if (model) {
    struct shape sh = model_shape(&p->keys, model);
    if (word_is(sh.tokenizer, "bytes")) bpt = 1;
  }
  double epochs = setting_number(settings, "epochs"), steps = setting_number(settings, "steps");
  if (isnan(epochs)) epochs = 1;
  double tokens = NAN, examples = data.read ? data.examples : NAN;
  json_t *flops = json_object();
  double ref_params = 0, rm_params = 0, kv = 0, sequences = micro;
  const struct item *ref_model = ref ? root_model(p, lookup(p, ref)) : NULL;
  const struct item *rm_stage = rew ? lookup_stage(p, rew) : NULL;
  bool ref_used = ref_model && row->reference != REF_UNUSED;
  if (ref_used) ref_params = model_cost_of(p, ref_model).params;
  if (rm_stage) rm_params = model_cost_of(p, root_model(p, rm_stage)).params;
  struct model_cost rc = model_cost_of(p, ref_model), rmc = model_cost_of(p, rm_stage ? root_model(p, rm_stage) : NULL);

  if (row->data_kind == OWNER_CORPUS) {
    double given = setting_number(settings, "tokens");
    tokens = !isnan(given) ? given : !isnan(steps) ? steps * batch * context : data.model_bytes / bpt;
    if (isnan(steps)) steps = ceil(tokens / (batch * context));
    if (data.model_bytes > 0) json_object_set_new(s, "passes_over_data", json_real(tokens / (data.model_bytes / bpt)));
    json_object_set_new(flops, "training", number_json(train_flops(&mc, context, tokens)));
  } else if (row->data_kind != OWNER_PROMPTS) {
    double per_example = examples > 0 ? data.model_bytes / bpt / examples : NAN;
    double seq_len = fmin(context, row->data_kind == OWNER_PREFS ? per_example / 2 : per_example);
    /* packed demonstrations share sequences: a step holds batch x context
     * tokens of them, not batch examples */
    bool packed = row->data_kind == OWNER_DEMOS &&
                  json_is_true(json_object_get(json_object_get(settings, "packing"), "value"));
    double per_step = packed ? batch * context / per_example : batch;
    if (isnan(steps)) steps = ceil(epochs * examples / per_step);
    else examples = steps * per_step / epochs;
    tokens = epochs * examples * per_example;
    if (row->data_kind == OWNER_PREFS) sequences = 2 * micro;
    json_object_set_new(flops, "training", number_json(train_flops(&mc, seq_len, tokens)));
    if (ref_used) {
      /* the reference's log-probs, computed once per example; KTO's z0 adds
       * a pass of policy and reference over mismatched pairs */
      json_object_set_new(flops, "reference", number_json(forward_flops(&rc, seq_len, tokens / epochs)));
      if (row->data_kind == OWNER_FEEDBACK)
        json_object_set_new(flops, "kl_estimate", number_json(forward_flops(&mc, seq_len, tokens) +
                                                              forward_flops(&rc, seq_len, tokens)));
    }
  } else {
    /* RL: prompts are answered by sampling, scored, and trained on */
    double prompt_tokens = examples > 0 ? data.prompt_bytes / bpt / examples : NAN;
    double new_tokens = setting_number(settings, "max_new_tokens");
    double group = setting_number(settings, "group"), rounds = setting_number(settings, "rounds");
    double passes = setting_number(settings, "ppo_epochs");
    if (isnan(group)) group = row->owner == OWNER_ONLINE_DPO ? 2 : 1; /* online DPO samples a pair */
    if (isnan(rounds)) rounds = 1;
    if (isnan(passes)) passes = 1;
    double seq_len = fmin(context, prompt_tokens + new_tokens);
    double completions_per_step = row->owner == OWNER_ONLINE_DPO || group == 1 ? batch * group : batch;
    double completions = rounds * epochs * examples * group;
    if (isnan(steps)) steps = ceil(completions / completions_per_step);
    else completions = steps * completions_per_step;
    double generated = completions * new_tokens, seq_tokens = completions * seq_len;
    tokens = seq_tokens;
    json_object_set_new(flops, "generation", number_json(forward_flops(&mc, seq_len, generated)));
    json_object_set_new(flops, "training", number_json(passes * train_flops(&mc, seq_len, seq_tokens)));
    if (ref_used) json_object_set_new(flops, "reference", number_json(forward_flops(&rc, seq_len, seq_tokens)));
    if (rm_stage) json_object_set_new(flops, "reward_model", number_json(forward_flops(&rmc, seq_len, seq_tokens)));
    kv = 4 * 2 * mc.layers * completions_per_step * seq_len * mc.width;
    sequences = fmin(micro, completions_per_step);
    json_object_set_new(s, "completions", number_json(completions));
    json_object_set_new(s, "generated_tokens", number_json(generated));
  }
  if (!json_object_get(settings, "steps")) json_object_set_new(settings, "steps", setting(number_json(steps), "derived"));
  json_object_set_new(s, "settings", settings);
  if (!isnan(examples) && row->data_kind != OWNER_CORPUS) json_object_set_new(s, "examples", number_json(examples));
  json_object_set_new(s, "tokens", number_json(round(tokens)));

  double total_flops = 0;
  const char *part;
  json_t *v;
  json_object_foreach(flops, part, v) total_flops += json_is_number(v) ? json_number_value(v) : NAN;
  json_object_set_new(flops, "total", number_json(isnan(total_flops) ? NAN : round(total_flops)));
  json_t *cost = json_object();
  json_object_set_new(cost, "flops", flops);
  json_object_set_new(cost, "memory", memory_json(mc.params, activation_bytes(&mc, sequences, context),
                                                  4 * ref_params, 4 * rm_params, kv));
  double peak = p->device->peak_flops * (strcmp(p->device->name, "cpu") == 0 ? p->cores : 1);
  double util = isnan(p->opt->utilization) ? p->device->utilization : p->opt->utilization;
  json_object_set_new(cost, "seconds", number_json(total_flops / (peak * util)));
  json_object_set_new(s, "cost", cost);
  if (row->class == CLASS_PRETRAIN && mc.params > 0)
    json_object_set_new(s, "tokens_per_parameter", json_real(tokens / mc.params));
  return s;
}

/* ---- the plan --------------------------------------------------------------- */

/* ---- assertions: gates evaluated by `run` ------------------------------- */

static const char *const op_names[] = {
    [OP_NEG] = "neg", [OP_NOT] = "not", [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
    [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=", [OP_EQ] = "==", [OP_NE] = "!=",
    [OP_AND] = "and", [OP_OR] = "or",
};

/* An assertion's expression as a tree the runner evaluates: numbers,
 * booleans, {"metric": [stage, name]} and {"op", "lhs", "rhs"}; the checker
 * has refused anything else. Adds the stages it reads to STAGES. */
static json_t *assert_expr_json(const struct expr *e, json_t *stages) {
  switch (e->kind) {
  case EXPR_NUMBER: return json_real(e->u.number.value);
  case EXPR_PERCENT: return json_real(e->u.number.value / 100);
  case EXPR_BOOL: return json_boolean(e->u.boolean);
  case EXPR_MEMBER: {
    if (e->u.member.object->kind != EXPR_NAME) return json_null();
    const struct ident *st = &e->u.member.object->u.name, *m = &e->u.member.member;
    json_t *stage = text_json(st->text, st->len), *pair = json_array();
    bool seen = false;
    size_t i;
    json_t *v;
    json_array_foreach(stages, i, v) seen |= json_equal(v, stage);
    if (!seen) json_array_append(stages, stage);
    json_array_append_new(pair, stage);
    json_array_append_new(pair, text_json(m->text, m->len));
    json_t *out = json_object();
    json_object_set_new(out, "metric", pair);
    return out;
  }
  case EXPR_UNARY:
  case EXPR_BINARY: {
    json_t *out = json_object();
    json_object_set_new(out, "op", json_string(op_names[e->u.op.op]));
    if (e->u.op.lhs) json_object_set_new(out, "lhs", assert_expr_json(e->u.op.lhs, stages));
    json_object_set_new(out, "rhs", assert_expr_json(e->u.op.rhs, stages));
    return out;
  }
  default: return json_null();
  }
}

static json_t *asserts_json(struct program *prog) {
  json_t *out = json_array();
  for (size_t f = 0; f < prog->n_files; f++) {
    if (!program_is_main(prog, prog->files[f]->file)) continue; /* an import's gates are its own pipeline's */
    for (const struct item *it = prog->files[f]->items; it; it = it->next) {
      if (it->kind != ITEM_ASSERT || !it->cond) continue;
      struct source *src = prog->sources.items[it->cond->span.file];
      json_t *a = json_object(), *stages = json_array();
      json_object_set_new(a, "text", text_json(src->text + it->cond->span.start, it->cond->span.end - it->cond->span.start));
      char at[512];
      snprintf(at, sizeof at, "%s:%u:%u", src->path, it->span.line, it->span.col);
      json_object_set_new(a, "at", json_string(at));
      json_object_set_new(a, "expr", assert_expr_json(it->cond, stages));
      json_object_set_new(a, "stages", stages);
      json_array_append_new(out, a);
    }
  }
  return out;
}

json_t *plan_build(struct program *prog, const struct plan_options *opt) {
  struct planner p = {.prog = prog, .opt = opt, .device = device_find(opt->device)};
  if (!p.device) p.device = &devices[0];
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  p.cores = cores > 0 ? (double)cores : 1;
  key_index_init(&p.keys);
  symtab_init(&p.names);
  for (size_t f = 0; f < prog->n_files; f++)
    for (struct item *it = prog->files[f]->items; it; it = it->next)
      if (it->kind == ITEM_MODEL || it->kind == ITEM_DATA || it->kind == ITEM_STAGE) symtab_add(&p.names, it);

  json_t *plan = json_object();
  json_object_set_new(plan, "trainpipe_plan", json_integer(1));
  const struct item *first = prog->files[0]->items;
  json_object_set_new(plan, "pipeline", first && first->kind == ITEM_PIPELINE ? text_json(first->name.text, first->name.len)
                                                                                : json_null());
  json_object_set_new(plan, "file", json_string(prog->sources.items[prog->files[0]->file]->path));
  json_t *dev = json_object();
  bool cpu = strcmp(p.device->name, "cpu") == 0;
  double peak = p.device->peak_flops * (cpu ? p.cores : 1);
  json_object_set_new(dev, "name", json_string(p.device->name));
  json_object_set_new(dev, "description", json_string(p.device->description));
  json_object_set_new(dev, "precision", json_string(p.device->precision));
  if (cpu) json_object_set_new(dev, "cores", number_json(p.cores));
  json_object_set_new(dev, "peak_flops", number_json(peak));
  double memory = p.device->memory;
  if (cpu) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    memory = pages > 0 && page > 0 ? (double)pages * (double)page : NAN;
  }
  json_object_set_new(dev, "memory", number_json(memory));
  json_object_set_new(dev, "utilization", json_real(isnan(opt->utilization) ? p.device->utilization : opt->utilization));
  json_object_set_new(plan, "device", dev);

  size_t n;
  const struct item **order = execution_order(&p, &n);
  json_t *stages = json_array();
  double flops = 0, seconds = 0, peak_memory = 0;
  const char *peak_stage = NULL;
  /* a stage whose cost is unknown (a checkpoint's shape is in its config)
   * leaves the totals unknown too, rather than quietly low */
  for (size_t i = 0; i < n; i++) {
    json_t *s = stage_json(&p, order[i]);
    json_t *cost = json_object_get(s, "cost");
    json_t *f = json_object_get(json_object_get(cost, "flops"), "total"), *t = json_object_get(cost, "seconds");
    json_t *m = json_object_get(json_object_get(cost, "memory"), "peak");
    flops += json_is_number(f) ? json_number_value(f) : NAN;
    seconds += json_is_number(t) ? json_number_value(t) : NAN;
    double bytes = json_is_number(m) ? json_number_value(m) : NAN;
    if (isnan(bytes)) peak_memory = NAN;
    else if (!peak_stage || bytes > peak_memory) peak_memory = bytes, peak_stage = json_string_value(json_object_get(s, "name"));
    json_array_append_new(stages, s);
  }
  free(order);
  json_object_set_new(plan, "stages", stages);
  json_object_set_new(plan, "asserts", asserts_json(prog));
  json_t *totals = json_object();
  json_object_set_new(totals, "stages", json_integer((json_int_t)n));
  json_object_set_new(totals, "flops", number_json(round(flops)));
  json_object_set_new(totals, "seconds", number_json(seconds));
  json_object_set_new(totals, "peak_memory", number_json(peak_memory));
  json_object_set_new(totals, "peak_memory_stage", peak_stage ? json_string(peak_stage) : json_null());
  json_object_set_new(totals, "fits", isnan(peak_memory) || isnan(memory) ? json_null() : json_boolean(peak_memory <= memory));
  json_object_set_new(plan, "totals", totals);
  symtab_free(&p.names);
  key_index_free(&p.keys);
  return plan;
}

/* ---- text ----------------------------------------------------------------- */

static double num(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* 1234567 -> "1,234,567" */
static const char *grouped(double v, char *buf, size_t size) {
  if (isnan(v)) return "unknown";
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", v);
  size_t len = strlen(digits), o = 0;
  for (size_t i = 0; i < len && o + 2 < size; i++) {
    if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

static const char *bytes_text(double v, char *buf, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (isnan(v)) return "unknown";
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) v /= 1024, u++;
  snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

static const char *rate_text(double v, char *buf, size_t size) {
  static const char *const units[] = {"", "k", "M", "G", "T", "P"};
  size_t u = 0;
  while (v >= 1000 && u + 1 < sizeof units / sizeof units[0]) v /= 1000, u++;
  snprintf(buf, size, "%.3g %sFLOP/s", v, units[u]);
  return buf;
}

static const char *duration_text(double s, char *buf, size_t size) {
  if (isnan(s)) snprintf(buf, size, "unknown");
  else if (s < 1) snprintf(buf, size, "%.2g s", s);
  else if (s < 120) snprintf(buf, size, "%.0f s", s);
  else if (s < 7200) snprintf(buf, size, "%.0f min", s / 60);
  else if (s < 172800) snprintf(buf, size, "%.1f h", s / 3600);
  else snprintf(buf, size, "%.1f days", s / 86400);
  return buf;
}

static void print_value(FILE *out, json_t *v) {
  if (json_is_string(v)) fputs(json_string_value(v), out);
  else if (json_is_integer(v)) fprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v)) fprintf(out, "%g", json_real_value(v));
  else if (json_is_boolean(v)) fputs(json_is_true(v) ? "true" : "false", out);
  else fputs("unknown", out);
}

/* key = value, a few to a line; defaults and derived values marked */
static void print_settings(FILE *out, const char *label, json_t *settings) {
  const char *key;
  json_t *s;
  int col = 0;
  fprintf(out, "   %-10s", label);
  json_object_foreach(settings, key, s) {
    char text[160];
    FILE *m = fmemopen(text, sizeof text, "w");
    if (!m) continue;
    fprintf(m, "%s = ", key);
    print_value(m, json_object_get(s, "value"));
    const char *source = json_string_value(json_object_get(s, "source"));
    if (source && strcmp(source, "given") != 0) fprintf(m, " (%s)", source);
    fclose(m);
    int len = (int)strlen(text);
    if (col > 0 && col + len + 3 > 64) {
      fprintf(out, "\n   %-10s", "");
      col = 0;
    }
    fprintf(out, "%s%s", col ? ",  " : " ", text);
    col += len + 3;
  }
  fputc('\n', out);
}

void plan_print_text(FILE *out, json_t *plan) {
  char a[64], b[64], c[64], d[64];
  json_t *dev = json_object_get(plan, "device"), *stages = json_object_get(plan, "stages");
  json_t *pipeline = json_object_get(plan, "pipeline");
  fprintf(out, "plan of %s (%s): %zu stage%s, in this order\n", json_is_string(pipeline) ? json_string_value(pipeline) : "a pipeline",
          json_string_value(json_object_get(plan, "file")), json_array_size(stages), json_array_size(stages) == 1 ? "" : "s");
  fprintf(out, "device: %s, %s at %s peak", json_string_value(json_object_get(dev, "name")),
          json_string_value(json_object_get(dev, "precision")), rate_text(num(dev, "peak_flops"), a, sizeof a));
  if (json_object_get(dev, "cores")) fprintf(out, " (%.0f cores)", num(dev, "cores"));
  fprintf(out, ", %.0f%% of it assumed; memory %s\n", 100 * num(dev, "utilization"), bytes_text(num(dev, "memory"), b, sizeof b));
  size_t i;
  json_t *s;
  json_array_foreach(stages, i, s) {
    json_t *from = json_object_get(s, "from"), *model = json_object_get(s, "model"), *cost = json_object_get(s, "cost");
    fprintf(out, "\n%zu. %s = %s(%s)   %s -> %s\n", i + 1, json_string_value(json_object_get(s, "name")),
            json_string_value(json_object_get(s, "kind")), json_string_value(json_object_get(from, "name")),
            json_string_value(json_object_get(from, "state")), json_string_value(json_object_get(s, "produces")));
    if (json_object_size(model)) {
      if (strcmp(json_string_value(json_object_get(model, "architecture")), "gpt2") == 0)
        fprintf(out, "   %-10s %s: gpt2, %.0f layers, %.0f heads, width %.0f, vocab %.0f, %s parameters\n", "model",
                json_string_value(json_object_get(model, "declaration")), num(model, "layers"), num(model, "heads"),
                num(model, "width"), num(model, "vocab"), grouped(num(model, "parameters"), a, sizeof a));
      else
        fprintf(out, "   %-10s %s: a checkpoint; its shape is in its config\n", "model",
                json_string_value(json_object_get(model, "declaration")));
    }
    size_t k;
    json_t *set;
    json_array_foreach(json_object_get(s, "data"), k, set) {
      fprintf(out, "   %-10s %s: %s %s, %.0f%%", k == 0 ? "data" : "", json_string_value(json_object_get(set, "name")),
              json_string_value(json_object_get(set, "kind")), json_string_value(json_object_get(set, "path")),
              100 * num(set, "share"));
      if (json_object_get(set, "files"))
        fprintf(out, ", %.0f file%s, %s", num(set, "files"), num(set, "files") == 1 ? "" : "s",
                bytes_text(num(set, "bytes"), a, sizeof a));
      if (json_object_get(set, "examples")) fprintf(out, ", %s examples", grouped(num(set, "examples"), b, sizeof b));
      fputc('\n', out);
    }
    fprintf(out, "   %-10s %s\n", "objective", json_string_value(json_object_get(s, "objective")));
    if (json_object_get(s, "reference"))
      fprintf(out, "   %-10s frozen(%s)\n", "reference", json_string_value(json_object_get(s, "reference")));
    if (json_object_get(s, "reward"))
      fprintf(out, "   %-10s %s\n", "reward", json_string_value(json_object_get(s, "reward")));
    print_settings(out, "settings", json_object_get(s, "settings"));
    print_settings(out, "adamw", json_object_get(s, "optimizer"));
    fprintf(out, "   %-10s %s tokens", "work", grouped(num(s, "tokens"), a, sizeof a));
    if (json_object_get(s, "passes_over_data")) fprintf(out, ", %.3g passes over the data", num(s, "passes_over_data"));
    if (json_object_get(s, "examples")) fprintf(out, " from %s examples", grouped(num(s, "examples"), b, sizeof b));
    if (json_object_get(s, "completions"))
      fprintf(out, ", %s sampled completions (%s new tokens at most)", grouped(num(s, "completions"), c, sizeof c),
              grouped(num(s, "generated_tokens"), d, sizeof d));
    fputc('\n', out);
    json_t *flops = json_object_get(cost, "flops"), *mem = json_object_get(cost, "memory");
    if (isnan(num(flops, "total"))) fprintf(out, "   %-10s unknown FLOPs (", "compute");
    else fprintf(out, "   %-10s %.3g FLOPs (", "compute", num(flops, "total"));
    const char *part;
    json_t *v;
    bool first = true;
    json_object_foreach(flops, part, v) {
      if (strcmp(part, "total") == 0) continue;
      if (json_is_number(v)) fprintf(out, "%s%s %.3g", first ? "" : ", ", part, json_number_value(v));
      else fprintf(out, "%s%s unknown", first ? "" : ", ", part);
      first = false;
    }
    fprintf(out, "), %s\n", duration_text(num(cost, "seconds"), a, sizeof a));
    fprintf(out, "   %-10s %s peak (", "memory", bytes_text(num(mem, "peak"), a, sizeof a));
    first = true;
    json_object_foreach(mem, part, v) {
      if (strcmp(part, "peak") == 0) continue;
      fprintf(out, "%s%s %s", first ? "" : ", ", part, bytes_text(json_is_number(v) ? json_number_value(v) : NAN, b, sizeof b));
      first = false;
    }
    fprintf(out, ")\n");
    if (json_object_get(s, "tokens_per_parameter"))
      fprintf(out, "   %-10s %.1f tokens per parameter (compute-optimal is about 20)\n", "chinchilla",
              num(s, "tokens_per_parameter"));
  }
  json_t *asserts = json_object_get(plan, "asserts");
  if (json_array_size(asserts) > 0) {
    fprintf(out, "\ngates, checked by run once their stages finish (a failed one stops the stages after them):\n");
    size_t k;
    json_t *gate;
    json_array_foreach(asserts, k, gate) fprintf(out, "   assert %s\n", json_string_value(json_object_get(gate, "text")));
  }
  json_t *t = json_object_get(plan, "totals");
  if (isnan(num(t, "flops"))) {
    fprintf(out, "\ntotal: unknown, as the cost of a stage above is: the shape of a loaded checkpoint is in its\n"
                 "config, which the plan does not read, and --no-data leaves the example counts out\n");
    return;
  }
  fprintf(out, "\ntotal: %.3g FLOPs, %s on %s; peak memory %s (stage %s)%s\n", num(t, "flops"),
          duration_text(num(t, "seconds"), a, sizeof a), json_string_value(json_object_get(dev, "name")),
          bytes_text(num(t, "peak_memory"), b, sizeof b),
          json_is_string(json_object_get(t, "peak_memory_stage")) ? json_string_value(json_object_get(t, "peak_memory_stage")) : "none",
          json_is_false(json_object_get(t, "fits")) ? ", more than the device has" : "");
}

/* ---- YAML ----------------------------------------------------------------- */

/* The shortest decimal that reads back as the same double. */
static void shortest_real(double v, char *buf, size_t size) {
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(buf, size, "%.*g", precision, v);
    if (strtod(buf, NULL) == v) break;
  }
  if (!strpbrk(buf, ".en")) strncat(buf, ".0", size - strlen(buf) - 1); /* stays a float, as in the JSON */
}

static int yaml_write(void *data, unsigned char *buffer, size_t size) {
  return fwrite(buffer, 1, size, data) == size;
}

static bool emit_scalar(yaml_emitter_t *e, const char *text, yaml_scalar_style_t style) {
  yaml_event_t ev;
  yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1, style);
  return yaml_emitter_emit(e, &ev);
}

static bool emit_json(yaml_emitter_t *e, json_t *v) {
  yaml_event_t ev;
  char buf[64];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    if (!yaml_emitter_emit(e, &ev)) return false;
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item) if (!emit_scalar(e, key, YAML_PLAIN_SCALAR_STYLE) || !emit_json(e, item)) return false;
    yaml_mapping_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
  }
  case JSON_ARRAY: {
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
    if (!yaml_emitter_emit(e, &ev)) return false;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) if (!emit_json(e, item)) return false;
    yaml_sequence_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
  }
  case JSON_STRING: return emit_scalar(e, json_string_value(v), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
  case JSON_INTEGER: snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
  case JSON_REAL: shortest_real(json_real_value(v), buf, sizeof buf); break;
  case JSON_TRUE: snprintf(buf, sizeof buf, "true"); break;
  case JSON_FALSE: snprintf(buf, sizeof buf, "false"); break;
  case JSON_NULL: snprintf(buf, sizeof buf, "null"); break;
  }
  return emit_scalar(e, buf, YAML_PLAIN_SCALAR_STYLE);
}

bool plan_print_yaml(FILE *out, json_t *plan) {
  yaml_emitter_t e;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&e)) return false;
  yaml_emitter_set_output(&e, yaml_write, out);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  bool ok = true;
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
  ok = ok && yaml_emitter_emit(&e, &ev);
  ok = ok && emit_json(&e, plan);
  yaml_document_end_event_initialize(&ev, 1);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_stream_end_event_initialize(&ev);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_emitter_delete(&e);
  return ok;
}
