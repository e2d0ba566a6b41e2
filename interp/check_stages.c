/* The stage graph, interpreted abstractly: every model value carries a state
 * (untrained, base, instruct, aligned, reward) and the classes of the stages
 * that produced it. Stages are visited in lineage order; each reads its row
 * of the stage table to decide what it accepts, what it needs and what it
 * produces. No rule here names a stage kind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/checker.h"
#include "interp/decls.h"
#include "interp/stages.h"
#include "interp/suggest.h"

static void check_compatible(struct checker *c, const struct item *it, const struct ident *other_name,
                             const struct decl *policy, const struct decl *other, bool same_architecture);

static struct decl *find(struct checker *c, const struct ident *name) {
  return symtab_find(&c->symbols, name->text, name->len);
}

static void value_of_model(struct decl *d) {
  d->visit = 2;
  d->known = true;
  d->history = 0;
  d->state = (unsigned char)model_initial_state(d->item);
}

/* The model or stage a stage starts from, if it resolves. */
static struct decl *from_of(struct checker *c, const struct item *stage) {
  struct decl *d = find(c, &stage->from);
  return d && (d->item->kind == ITEM_MODEL || d->item->kind == ITEM_STAGE) ? d : NULL;
}

/* The same, remembered in the declaration: lineage walks run for every
 * stage, and a pointer costs less than a hash lookup. */
static struct decl *parent(struct checker *c, const struct decl *d) {
  struct decl *m = (struct decl *)d;
  if (d->item->kind != ITEM_STAGE) return NULL;
  if (!m->parent_known) {
    m->parent = from_of(c, d->item);
    m->parent_known = true;
  }
  return m->parent;
}

/* Whether `ancestor` is in the lineage of `stage` (or is the stage). */
static bool in_lineage(struct checker *c, const struct decl *stage, const struct decl *ancestor) {
  size_t steps = c->symbols.n + 1; /* a lineage cycle is reported elsewhere */
  for (const struct decl *d = stage; d && steps-- > 0; d = parent(c, d))
    if (d == ancestor) return true;
  return false;
}

static const char *class_names(unsigned classes) {
  if (classes & CLASS_RL) return "reinforcement learning";
  if (classes & CLASS_PREFERENCE) return "preference optimisation";
  return "an earlier stage";
}

/* Input state against the row: untrained needs pre-training first; other
 * states are trained, warned about or refused as the row says. */
static void check_input(struct checker *c, const struct item *it, const struct stage_row *row, const struct decl *from) {
  const char *kind = owner_spec(row->owner)->name;
  const char *state = state_name((enum model_state)from->state);
  struct diag *d;
  enum diag_code code;
  enum input_verdict verdict = stage_input_verdict(row, (enum model_state)from->state, &code);
  if (verdict == INPUT_TRAINS) {
  } else if (code == E0401) {
    d = diag_emit(c->diags, E0401, it->from.span, "%s starts from '%.*s', an untrained model", kind, (int)it->from.len,
                  it->from.text);
    diag_note(c->diags, d, "only pre-training starts from random weights; %s cannot inject the world knowledge "
                           "that pre-training gives", kind);
    diag_help(c->diags, d, "pre-train first: stage base = pretrain(%.*s) { data = ... }, then %s(base)",
              (int)it->from.len, it->from.text, kind);
  } else if (verdict == INPUT_WARNS) {
    d = diag_emit(c->diags, code, it->from.span, "%s starts from '%.*s', a %s model", kind,
                  (int)it->from.len, it->from.text, state);
    if (code == W0408) {
      diag_note(c->diags, d, "%s compares responses; a base model writes continuations, so the pairs it is "
                             "pushed between are far from what it would produce", kind);
      diag_help(c->diags, d, "run sft first, or use orpo, which does SFT and preference learning in one stage");
    } else {
      diag_note(c->diags, d, "a reward model judges responses; one initialised from a base model starts without "
                             "knowing what a response is");
      diag_help(c->diags, d, "initialise the reward model from the SFT model");
    }
  } else {
    d = diag_emit(c->diags, code, it->from.span, "%s cannot start from '%.*s', a %s model", kind,
                  (int)it->from.len, it->from.text, state);
    if (code == E0406) {
      diag_note(c->diags, d, "rollouts of a model that never went through SFT are continuations, not responses: "
                             "the reward has nothing to rank");
      diag_help(c->diags, d, "start from an sft or orpo stage");
    } else {
      diag_note(c->diags, d, "%s trains models in these states: %s%s%s%s%s", kind,
                row->ok & (1u << STATE_UNTRAINED) ? "untrained " : "", row->ok & (1u << STATE_BASE) ? "base " : "",
                row->ok & (1u << STATE_INSTRUCT) ? "instruct " : "", row->ok & (1u << STATE_ALIGNED) ? "aligned " : "",
                row->ok & (1u << STATE_REWARD) ? "reward " : "");
    }
  }
  if (row->warn_after & from->history) {
    d = diag_emit(c->diags, W0407, it->kind_name.span, "%s after %s in the lineage of '%.*s'", kind,
                  class_names(row->warn_after & from->history), (int)it->name.len, it->name.text);
    diag_note(c->diags, d, "supervised fine-tuning after alignment pulls the model back toward the demonstrations "
                           "and undoes much of what alignment taught (alignment tax reversal)");
    diag_help(c->diags, d, "put the SFT stage before the preference or RL stages");
  }
}

/* The share a mix argument carries, as a fraction; NAN when invalid. */
static double share_of(const struct expr *v) {
  if (v->invalid) return NAN;
  if (v->kind == EXPR_PERCENT) return v->u.number.value / 100;
  if (v->kind == EXPR_NUMBER) return v->u.number.value;
  return NAN;
}

static void check_mix_sum(struct checker *c, const struct expr *mix) {
  double sum = 0;
  for (const struct arg *a = mix->u.call.args; a; a = a->next) {
    double s = share_of(a->value);
    if (isnan(s) || s < 0 || s > 1) return; /* already reported */
    sum += s;
  }
  if (!mix->u.call.args || fabs(sum - 1) < 1e-9) return;
  struct diag *d = diag_emit(c->diags, E0410, mix->span, "the shares of this mix add up to %g%%, not 100%%", sum * 100);
  diag_note(c->diags, d, "a mix says what share of the training tokens each data set gives");
  diag_help(c->diags, d, "make the shares add up to 100%%");
}

/* The data kind of a data declaration, or OWNER_MIX. */
static const struct owner_spec *data_kind(const struct item *data) {
  if (data->init->kind != EXPR_CALL) return NULL;
  return owner_find(FAMILY_DATA, data->init->u.call.callee.text, data->init->u.call.callee.len);
}

static void check_mix_members(struct checker *c, const struct expr *mix) {
  for (const struct arg *a = mix->u.call.args; a; a = a->next) {
    if (!a->name.text) continue;
    struct decl *d = find(c, &a->name);
    if (!d || d->item->kind != ITEM_DATA) continue;
    const struct owner_spec *kind = data_kind(d->item);
    if (kind && kind->id != OWNER_CORPUS) {
      struct diag *diag = diag_emit(c->diags, E0411, a->name.span, "'%.*s' is %s data, but a mix draws from corpora",
                                    (int)a->name.len, a->name.text, kind->name);
      diag_label(c->diags, diag, d->item->name.span, "declared as %s here", kind->name);
    }
  }
}

static void check_data_kind(struct checker *c, const struct item *it, const struct stage_row *row) {
  const struct entry *e = item_entry(it, row->data_key);
  if (!e) return; /* a missing key is reported with the keys */
  const char *kind = owner_spec(row->owner)->name, *wanted = owner_spec(row->data_kind)->name;
  const struct expr *v = e->value;
  const struct expr *mix = NULL;
  if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix")) {
    mix = v;
  } else if (v->kind == EXPR_NAME) {
    struct decl *d = find(c, &v->u.name);
    if (!d || d->item->kind != ITEM_DATA) return;
    const struct owner_spec *got = data_kind(d->item);
    if (!got) return;
    if (got->id == OWNER_MIX) {
      mix = d->item->init;
    } else if (got->id != row->data_kind) {
      struct diag *diag = diag_emit(c->diags, E0419, v->span, "%s needs %s data, but '%.*s' is %s data", kind,
                                    wanted, (int)v->u.name.len, v->u.name.text, got->name);
      diag_label(c->diags, diag, d->item->init->span, "declared as %s here", got->name);
      diag_note(c->diags, diag, "%s: %s", wanted, owner_spec(row->data_kind)->doc);
      return;
    }
  }
  if (mix && !row->mix) {
    struct diag *diag = diag_emit(c->diags, E0411, v->span, "%s takes %s data, not a mix of corpora", kind, wanted);
    diag_help(c->diags, diag, "mixes are for pretrain and midtrain; give %s a %s data set", kind, wanted);
  }
}

static void check_reference(struct checker *c, struct decl *self, const struct stage_row *row) {
  const struct item *it = self->item;
  const struct entry *e = item_entry(it, "reference");
  const char *kind = owner_spec(row->owner)->name;
  if (!e) {
    if (row->reference == REF_REQUIRED) {
      struct diag *d = diag_emit(c->diags, E0402, it->name.span, "%s stage '%.*s' has no reference", kind,
                                 (int)it->name.len, it->name.text);
      diag_note(c->diags, d, "the %s objective measures the policy against a frozen copy of the model it starts "
                             "from; without it the loss is undefined", kind);
      diag_help(c->diags, d, "add reference = frozen(%.*s)", (int)it->from.len, it->from.text);
    }
    return;
  }
  if (row->reference == REF_UNUSED) {
    struct diag *d = diag_emit(c->diags, W0418, e->key.span, "%s does not use a reference", kind);
    diag_note(c->diags, d, "the %s objective has no reference term; the frozen copy would only cost memory", kind);
    diag_help(c->diags, d, "remove reference");
    return;
  }
  const struct expr *v = e->value;
  const struct ident *target = NULL;
  if (v->kind == EXPR_NAME) {
    target = &v->u.name;
    struct diag *d = diag_emit(c->diags, E0403, v->span, "the reference is not frozen");
    diag_note(c->diags, d, "a reference that trains along with the policy measures nothing");
    diag_help(c->diags, d, "write reference = frozen(%.*s)", (int)target->len, target->text);
  } else if (v->kind == EXPR_CALL && v->u.call.args && !v->u.call.args->name.text &&
             v->u.call.args->value->kind == EXPR_NAME) {
    target = &v->u.call.args->value->u.name;
  }
  if (!target) return;
  struct decl *t = find(c, target);
  if (!t || (t->item->kind != ITEM_STAGE && t->item->kind != ITEM_MODEL)) return;
  if (t->item->kind == ITEM_STAGE && in_lineage(c, t, self)) {
    struct diag *d = t == self ? diag_emit(c->diags, E0404, target->span, "'%.*s' is its own reference",
                                           (int)target->len, target->text)
                               : diag_emit(c->diags, E0404, target->span, "'%.*s' is not trained yet when '%.*s' runs",
                                           (int)target->len, target->text, (int)it->name.len, it->name.text);
    diag_note(c->diags, d, "the reference must be a snapshot taken before the stage; this one is the stage itself "
                           "or comes after it");
    diag_help(c->diags, d, "use the model the stage starts from: frozen(%.*s)", (int)it->from.len, it->from.text);
    return;
  }
  check_compatible(c, it, target, self, t, true);
  if (!ident_eq(target, &it->from) && parent(c, self)) {
    struct diag *d = diag_emit(c->diags, W0405, target->span, "the reference is '%.*s', but '%.*s' starts from '%.*s'",
                               (int)target->len, target->text, (int)it->name.len, it->name.text, (int)it->from.len,
                               it->from.text);
    diag_note(c->diags, d, "the objective is defined against the policy's own starting point (pi_SFT); another "
                           "reference pulls the policy toward a different model");
    diag_help(c->diags, d, "write reference = frozen(%.*s), or suppress this if it is meant", (int)it->from.len,
              it->from.text);
  }
}

static void check_reward(struct checker *c, const struct decl *self, const struct stage_row *row) {
  const struct item *it = self->item;
  const struct entry *e = item_entry(it, "reward");
  const char *kind = owner_spec(row->owner)->name;
  if (!e) {
    struct diag *d = diag_emit(c->diags, E0412, it->name.span, "%s stage '%.*s' has no reward", kind,
                               (int)it->name.len, it->name.text);
    diag_note(c->diags, d, "%s learns from rewards of its own samples; nothing scores them", kind);
    diag_help(c->diags, d, "add reward = NAME of a reward_model stage, or reward = verifier(match = \"...\", "
                           "against = \"...\")");
    return;
  }
  if (e->value->kind != EXPR_NAME) return;
  struct decl *d = find(c, &e->value->u.name);
  if (!d || (d->item->kind != ITEM_STAGE && d->item->kind != ITEM_MODEL)) return;
  /* What a declaration produces does not depend on its input. */
  if (d->item->kind == ITEM_STAGE) {
    const struct stage_row *r = decl_stage_row(d->item);
    if (!r) return;
    if (r->produces == STATE_REWARD) {
      check_compatible(c, it, &e->value->u.name, self, d, false);
      return;
    }
  } else {
    if (d->visit != 2) value_of_model(d);
    if (d->state == STATE_REWARD) {
      check_compatible(c, it, &e->value->u.name, self, d, false);
      return;
    }
  }
  struct diag *diag = diag_emit(c->diags, E0413, e->value->span, "'%.*s' is not a reward model",
                                (int)e->value->u.name.len, e->value->u.name.text);
  diag_label(c->diags, diag, d->item->name.span, "declared here");
  diag_note(c->diags, diag, "a reward is a scalar score; a policy produces text, not scores");
  diag_help(c->diags, diag, "train one with reward_model(...), or use verifier(...)");
}

/* Group-relative advantages need a group to be relative to. */
static void check_group(struct checker *c, const struct item *it, const struct stage_row *row) {
  if (!key_find(&c->keys, row->owner, "group", 5)) return;
  double group = stage_number(&c->keys, it, row->owner, "group"), batch = stage_number(&c->keys, it, row->owner, "batch");
  const struct entry *ge = item_entry(it, "group");
  if (group == 1) { /* below 1 is out of the key's range */
    struct diag *d = diag_emit(c->diags, E0415, ge ? ge->value->span : it->name.span, "a group of 1 sample");
    diag_note(c->diags, d, "the advantage is a reward minus its group's mean; in a group of one it is always zero "
                           "and nothing is learnt");
    diag_help(c->diags, d, "sample at least 2 completions per prompt (8 is usual)");
    return;
  }
  if (isnan(group) || isnan(batch) || group < 1 || fmod(batch, group) == 0) return;
  const struct entry *be = item_entry(it, "batch");
  struct diag *d = diag_emit(c->diags, E0416, be ? be->value->span : (ge ? ge->value->span : it->name.span),
                             "a batch of %g%s is not a whole number of groups of %g", batch, be ? "" : " (the default)",
                             group);
  diag_note(c->diags, d, "every prompt's group must fit in one batch for its advantages to be computed");
  diag_help(c->diags, d, "make batch a multiple of group");
}

/* The model declaration at the root of a lineage, if it resolves. */
static const struct item *root_model(struct checker *c, const struct decl *d) {
  size_t steps = c->symbols.n + 1;
  while (d && d->item->kind == ITEM_STAGE && steps-- > 0) d = parent(c, d);
  return d && d->item->kind == ITEM_MODEL ? d->item : NULL;
}

static bool differs(double a, double b) { return !isnan(a) && !isnan(b) && a != b; }

/* Reports a policy and another model that disagree on a setting both
 * must share; true when they do. */
static bool setting_mismatch(struct checker *c, const struct item *it, const struct ident *other_name,
                             const struct item *other_model, const char *what, struct word mine, struct word theirs,
                             const char *note, const char *help) {
  if (!words_differ(mine, theirs)) return false;
  struct diag *d = diag_emit(c->diags, E0420, other_name->span, "'%.*s' uses the %.*s %s, '%.*s' the %.*s one",
                             (int)other_name->len, other_name->text, (int)theirs.len, theirs.text, what,
                             (int)it->name.len, it->name.text, (int)mine.len, mine.text);
  diag_label(c->diags, d, other_model->name.span, "'%.*s' descends from this model", (int)other_name->len,
             other_name->text);
  diag_note(c->diags, d, "%s", note);
  diag_help(c->diags, d, "%s", help);
  return true;
}

/* A policy and the model it is measured against (or scored by) must read
 * the same token ids; a reference must also have the same shape. */
static void check_compatible(struct checker *c, const struct item *it, const struct ident *other_name,
                             const struct decl *policy, const struct decl *other, bool same_architecture) {
  const struct item *pm = root_model(c, policy), *om = root_model(c, other);
  if (!pm || !om || pm == om) return;
  struct shape p = model_shape(&c->keys, pm), o = model_shape(&c->keys, om);
  if (setting_mismatch(c, it, other_name, om, "tokenizer", p.tokenizer, o.tokenizer,
                       "the same text becomes different token ids, so log-probabilities and rewards of one cannot "
                       "be read against the other",
                       "derive both from models with one tokenizer") ||
      setting_mismatch(c, it, other_name, om, "chat template", p.template, o.template,
                       "the same conversation is laid out as different text, so the scores of one do not apply to "
                       "the responses of the other",
                       "use one template for the policy, its reference and its reward model"))
    return;
  if (same_architecture && (differs(p.layers, o.layers) || differs(p.heads, o.heads) || differs(p.width, o.width) ||
                            differs(p.vocab, o.vocab))) {
    struct diag *d = diag_emit(c->diags, E0421, other_name->span, "'%.*s' has another architecture than '%.*s'",
                               (int)other_name->len, other_name->text, (int)it->name.len, it->name.text);
    diag_label(c->diags, d, om->name.span, "'%.*s' descends from this model", (int)other_name->len, other_name->text);
    diag_label(c->diags, d, pm->name.span, "'%.*s' from this one", (int)it->name.len, it->name.text);
    diag_note(c->diags, d, "a reference is a snapshot of the policy's own starting point; another shape cannot be one");
  }
}

/* The data sets a stage trains on: a name, or the members of a mix. */
static size_t data_names(struct checker *c, const struct item *stage, const char *key, const struct ident **out,
                         size_t max) {
  const struct entry *e = item_entry(stage, key);
  if (!e) return 0;
  const struct expr *v = e->value;
  if (v->kind == EXPR_NAME) {
    struct decl *d = find(c, &v->u.name);
    if (!d || d->item->kind != ITEM_DATA) return 0;
    if (d->item->init->kind == EXPR_CALL && ident_is(&d->item->init->u.call.callee, "mix")) v = d->item->init;
    else return max ? (out[0] = &v->u.name, 1) : 0;
  }
  size_t n = 0;
  if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix"))
    for (const struct arg *a = v->u.call.args; a && n < max; a = a->next)
      if (a->name.text) out[n++] = &a->name;
  return n;
}

#define MAX_CORPORA 64

/* Mid-training on new data alone forgets the old: the lineage's pre-training
 * corpora should keep a share. */
static void check_replay(struct checker *c, const struct decl *self, const struct stage_row *row) {
  const struct ident *mine[MAX_CORPORA], *old[MAX_CORPORA];
  size_t n_mine = data_names(c, self->item, row->data_key, mine, MAX_CORPORA), n_old = 0;
  if (n_mine == 0) return;
  size_t steps = c->symbols.n + 1;
  for (const struct decl *d = parent(c, self); d && d->item->kind == ITEM_STAGE && steps-- > 0; d = parent(c, d)) {
    const struct stage_row *r = decl_stage_row(d->item);
    if (r && (r->class & row->replay)) n_old += data_names(c, d->item, r->data_key, old + n_old, MAX_CORPORA - n_old);
  }
  if (n_old == 0) return;
  for (size_t i = 0; i < n_mine; i++)
    for (size_t j = 0; j < n_old; j++)
      if (ident_eq(mine[i], old[j])) return;
  const struct entry *e = item_entry(self->item, row->data_key);
  struct diag *d = diag_emit(c->diags, W0409, e->value->span, "%s stage '%.*s' keeps no share of '%.*s', which its "
                             "model was pre-trained on", owner_spec(row->owner)->name, (int)self->item->name.len,
                             self->item->name.text, (int)old[0]->len, old[0]->text);
  diag_note(c->diags, d, "training on new data alone overwrites what the model knew (catastrophic forgetting)");
  diag_help(c->diags, d, "replay some of it: data = mix(%.*s = 80%%, %.*s = 20%%)", (int)mine[0]->len, mine[0]->text,
            (int)old[0]->len, old[0]->text);
}

/* Pre-training is compute-optimal near 20 tokens per parameter (Hoffmann et
 * al., 2022); far from it, the note says by how much. */
static void check_chinchilla(struct checker *c, const struct decl *self) {
  const struct entry *e = item_entry(self->item, "tokens");
  const struct item *m = root_model(c, self);
  if (!e || !m || e->value->kind != EXPR_NUMBER || e->value->invalid) return;
  struct shape s = model_shape(&c->keys, m);
  double params = shape_parameters(&s), tokens = e->value->u.number.value;
  if (isnan(params) || params <= 0 || tokens < 1) return; /* below 1 is out of range */
  double ratio = tokens / params;
  if (ratio >= 2 && ratio <= 200) return; /* within a factor of 10 */
  struct diag *d = diag_emit(c->diags, N0424, e->value->span, "%.3g tokens for %.3g parameters: %.2g tokens per "
                             "parameter", tokens, params, ratio);
  diag_note(c->diags, d, "compute-optimal pre-training is about 20 tokens per parameter: %.3g tokens here%s",
            20 * params, ratio > 200 ? "; training longer than that is a choice for cheaper inference" : "");
}

/* Positions past the model's context were never trained; a stage that may
 * extend the context (mid-training) must come first. */
/* The context the model a stage starts from was trained at: the last
 * context-extending stage of its lineage, else its model's. */
static double lineage_context(struct checker *c, const struct item *stage) {
  size_t steps = c->symbols.n + 1;
  const struct decl *self = find(c, &stage->name);
  const struct decl *d = self && self->item == stage ? parent(c, self) : from_of(c, stage);
  for (; d && d->item->kind == ITEM_STAGE && steps-- > 0; d = parent(c, d)) {
    const struct stage_row *r = decl_stage_row(d->item);
    const struct entry *x = item_entry(d->item, "context");
    if (r && r->extends_context && x && x->value->kind == EXPR_NUMBER) return x->value->u.number.value;
  }
  return d && d->item->kind == ITEM_MODEL ? model_shape(&c->keys, d->item).context : NAN;
}

double stage_context(struct checker *c, const struct item *stage) {
  const struct entry *e = item_entry(stage, "context");
  if (e && e->value->kind == EXPR_NUMBER) return e->value->u.number.value;
  return lineage_context(c, stage);
}

bool stage_uses_byte_tokens(struct checker *c, const struct item *stage) {
  struct decl *d = find(c, &stage->name);
  const struct item *m = d ? root_model(c, d) : NULL;
  if (!m) return false;
  return word_is(model_shape(&c->keys, m).tokenizer, "bytes");
}

static void check_context(struct checker *c, const struct decl *self, const struct stage_row *row) {
  const struct entry *e = item_entry(self->item, "context");
  if (!e || row->extends_context || e->value->kind != EXPR_NUMBER) return;
  double context = lineage_context(c, self->item);
  if (isnan(context) || e->value->u.number.value <= context) return;
  struct diag *d2 = diag_emit(c->diags, W0425, e->value->span, "a context of %g, longer than the model's %g",
                              e->value->u.number.value, context);
  diag_note(c->diags, d2, "positions past %g were never trained; the model has not learnt to use them", context);
  diag_help(c->diags, d2, "extend the context in a midtrain stage first (long documents, context = %g)",
            e->value->u.number.value);
}

/* The stage's learning rate: adamw(lr = ...), else its row's default. */
static double learning_rate(const struct item *stage, const struct stage_row *row) {
  const struct entry *e = item_entry(stage, "optimizer");
  if (e && e->value->kind == EXPR_CALL) {
    const struct arg *a = call_arg(e->value, "lr");
    if (a) return a->value->kind == EXPR_NUMBER && !a->value->invalid ? a->value->u.number.value : NAN;
  }
  return row->default_lr;
}

/* Preference and RL stages move the policy a little; a learning rate above
 * the SFT one moves it a lot. */
static void check_learning_rate(struct checker *c, const struct decl *self, const struct stage_row *row) {
  if (!(row->class & (CLASS_PREFERENCE | CLASS_RL))) return;
  size_t steps = c->symbols.n + 1;
  for (const struct decl *d = parent(c, self); d && d->item->kind == ITEM_STAGE && steps-- > 0; d = parent(c, d)) {
    const struct stage_row *r = decl_stage_row(d->item);
    if (!r || !(r->class & CLASS_SFT)) continue;
    double mine = learning_rate(self->item, row), sft = learning_rate(d->item, r);
    if (isnan(mine) || isnan(sft) || mine <= sft) return;
    const struct entry *e = item_entry(self->item, "optimizer");
    struct diag *diag = diag_emit(c->diags, W0426, e ? e->value->span : self->item->name.span,
                                  "a learning rate of %g, above the %g of SFT stage '%.*s'", mine, sft,
                                  (int)d->item->name.len, d->item->name.text);
    diag_note(c->diags, diag, "%s only nudges the SFT policy; TRL's defaults are 10 to 100 times below SFT's",
              owner_spec(row->owner)->name);
    diag_help(c->diags, diag, "use a learning rate below %g, e.g. %g", sft, sft / 10);
    return;
  }
}

static void check_kl(struct checker *c, const struct item *it) {
  const struct entry *e = item_entry(it, "kl");
  if (!e || e->value->kind != EXPR_NUMBER || e->value->u.number.value != 0) return;
  struct diag *d = diag_emit(c->diags, W0417, e->value->span, "a KL coefficient of 0");
  diag_note(c->diags, d, "without a KL penalty the policy is free to drift to whatever the reward over-rates: "
                         "reward hacking and mode collapse");
  diag_help(c->diags, d, "keep a small penalty, e.g. kl = 0.05");
}

/* Visits the stages after the stages they start from, iteratively, so a
 * chain of any length is fine, and reports lineage cycles. */
static void visit_stage(struct checker *c, struct decl *start, struct decl ***stack, size_t *cap) {
  size_t n = 0;
  *stack = xgrow(*stack, cap, 1, sizeof **stack);
  (*stack)[n++] = start;
  while (n > 0) {
    struct decl *d = (*stack)[n - 1];
    struct decl *from = parent(c, d);
    if (d->visit == 0) {
      d->visit = 1;
      if (from && from->item->kind == ITEM_STAGE && from->visit == 0) {
        *stack = xgrow(*stack, cap, n + 1, sizeof **stack);
        (*stack)[n++] = from;
        continue;
      }
      if (from && from->visit == 1) { /* `from` is on the stack: a cycle */
        size_t k = n;
        while (k > 0 && (*stack)[k - 1] != from) k--;
        size_t len = 64;
        for (size_t i = k - 1; i < n; i++) len += (*stack)[i]->item->name.len + 4;
        char *chain = arena_alloc(&c->prog->arena, len), *p = chain;
        for (size_t i = n; i-- > k - 1;)
          p += sprintf(p, "%.*s <- ", (int)(*stack)[i]->item->name.len, (*stack)[i]->item->name.text);
        sprintf(p, "%.*s", (int)d->item->name.len, d->item->name.text);
        struct diag *diag = diag_emit(c->diags, E0423, d->item->from.span, "stages start from each other in a cycle: %s", chain);
        diag_help(c->diags, diag, "one of them must start from a model declaration or an earlier stage");
      }
    }
    /* d's input is settled: evaluate it */
    n--;
    d->visit = 2;
    d->known = false;
    const struct stage_row *row = decl_stage_row(d->item);
    if (!row) continue;
    if (from && from->item->kind == ITEM_MODEL && from->visit != 2) value_of_model(from);
    if (from && from->known && from->visit == 2 && from != d) {
      check_input(c, d->item, row, from);
      d->history = from->history | row->class;
    } else {
      d->history = row->class;
    }
    d->known = from && from->known;
    d->state = (unsigned char)row->produces;
    check_data_kind(c, d->item, row);
    if (row->reference != REF_NONE) check_reference(c, d, row);
    if (row->reward) check_reward(c, d, row);
    check_group(c, d->item, row);
    check_kl(c, d->item);
    if (row->replay) check_replay(c, d, row);
    if (row->class & CLASS_PRETRAIN) check_chinchilla(c, d);
    check_context(c, d, row);
    check_learning_rate(c, d, row);
  }
}

static void check_order_item(struct checker *c, const struct item *it) {
  for (const struct name_list *a = it->order; a && a->next; a = a->next) {
    const struct name_list *b = a->next;
    struct decl *da = find(c, &a->name), *db = find(c, &b->name);
    if (!da || !db || da->item->kind != ITEM_STAGE || db->item->kind != ITEM_STAGE) continue;
    if (!in_lineage(c, da, db)) continue;
    struct diag *d = diag_emit(c->diags, E0422, b->name.span, "'%.*s' cannot come after '%.*s': '%.*s' starts from it",
                               (int)b->name.len, b->name.text, (int)a->name.len, a->name.text, (int)a->name.len,
                               a->name.text);
    diag_label(c->diags, d, da->item->from.span, "'%.*s' is in the lineage of '%.*s'", (int)b->name.len, b->name.text,
               (int)a->name.len, a->name.text);
    diag_help(c->diags, d, "write order %.*s < %.*s", (int)b->name.len, b->name.text, (int)a->name.len, a->name.text);
  }
}

struct order_edge {
  struct decl *from, *to;
  const struct ident *at; /* the name that closes the edge */
};

static int compare_edges(const void *x, const void *y) {
  const struct order_edge *a = x, *b = y;
  return a->from < b->from ? -1 : a->from > b->from;
}

/* Order constraints that contradict each other (a < b < a): a cycle in the
 * graph of constraints, found by one walk with an explicit stack. */
static void check_order_cycles(struct checker *c, const struct item *const *orders, size_t n_orders) {
  struct order_edge *edges = NULL;
  size_t n = 0, cap = 0;
  for (size_t i = 0; i < n_orders; i++)
    for (const struct name_list *a = orders[i]->order; a && a->next; a = a->next) {
      struct decl *da = find(c, &a->name), *db = find(c, &a->next->name);
      if (!da || !db || da->item->kind != ITEM_STAGE || db->item->kind != ITEM_STAGE) continue;
      if (in_lineage(c, da, db)) continue; /* the lineage contradicts it: reported as such */
      edges = xgrow(edges, &cap, n + 1, sizeof *edges);
      edges[n++] = (struct order_edge){da, db, &a->next->name};
    }
  if (n == 0) return;
  qsort(edges, n, sizeof *edges, compare_edges);
  struct frame {
    struct decl *node;
    size_t next; /* the next edge to follow */
  } *stack = xmalloc(n * 2 * sizeof *stack + sizeof *stack);
  for (size_t s = 0; s < n; s++) {
    if (edges[s].from->order_visit) continue;
    size_t depth = 0;
    stack[depth++] = (struct frame){edges[s].from, s};
    edges[s].from->order_visit = 1;
    while (depth > 0) {
      struct frame *top = &stack[depth - 1];
      size_t e = top->next;
      if (e < n && edges[e].from == top->node) {
        top->next++;
        struct decl *to = edges[e].to;
        if (to->order_visit == 1) {
          struct diag *d = diag_emit(c->diags, E0422, edges[e].at->span, "order constraints contradict each other: "
                                     "'%.*s' is already after '%.*s'", (int)top->node->item->name.len,
                                     top->node->item->name.text, (int)to->item->name.len, to->item->name.text);
          diag_help(c->diags, d, "remove one of the constraints in the cycle");
        } else if (to->order_visit == 0) {
          size_t lo = 0, hi = n; /* the first edge leaving `to` */
          while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (edges[mid].from < to) lo = mid + 1;
            else hi = mid;
          }
          to->order_visit = 1;
          stack[depth++] = (struct frame){to, lo};
        }
        continue;
      }
      top->node->order_visit = 2;
      depth--;
    }
  }
  free(stack);
  free(edges);
}

static void check_mix(struct checker *c, const struct expr *mix) {
  check_mix_sum(c, mix);
  check_mix_members(c, mix);
}

void check_stages(struct checker *c) {
  /* One walk over the items gathers what the passes below need: on a large
   * file each walk of the item list is a chain of cache misses. */
  struct item **stages = NULL;
  const struct item **orders = NULL;
  const struct expr **mixes = NULL;
  size_t n_stages = 0, stages_cap = 0, n_orders = 0, orders_cap = 0, n_mixes = 0, mixes_cap = 0;
  for (size_t f = 0; f < c->prog->n_files; f++) {
    for (struct item *it = c->prog->files[f]->items; it; it = it->next) {
      if (it->kind == ITEM_STAGE) {
        stages = xgrow(stages, &stages_cap, n_stages + 1, sizeof *stages);
        stages[n_stages++] = it;
        for (const struct entry *e = it->block.entries; e; e = e->next)
          if (e->value->kind == EXPR_CALL && ident_is(&e->value->u.call.callee, "mix")) {
            mixes = xgrow(mixes, &mixes_cap, n_mixes + 1, sizeof *mixes);
            mixes[n_mixes++] = e->value;
          }
      } else if (it->kind == ITEM_ORDER) {
        orders = xgrow(orders, &orders_cap, n_orders + 1, sizeof *orders);
        orders[n_orders++] = it;
      } else if (it->kind == ITEM_DATA && it->init->kind == EXPR_CALL && ident_is(&it->init->u.call.callee, "mix")) {
        mixes = xgrow(mixes, &mixes_cap, n_mixes + 1, sizeof *mixes);
        mixes[n_mixes++] = it->init;
      }
    }
  }
  /* In source order, which keeps a large file's walk through memory
   * sequential; a stage's lineage is visited first whatever the order. */
  struct decl **stack = NULL;
  size_t cap = 0;
  for (size_t i = 0; i < n_stages; i++) {
    struct decl *d = find(c, &stages[i]->name);
    if (d && d->item == stages[i] && d->visit == 0) visit_stage(c, d, &stack, &cap);
  }
  free(stack);
  check_order_cycles(c, orders, n_orders);
  for (size_t i = 0; i < n_orders; i++) check_order_item(c, orders[i]);
  for (size_t i = 0; i < n_mixes; i++) check_mix(c, mixes[i]);
  free(stages);
  free(orders);
  free(mixes);
}
