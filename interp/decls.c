#include "interp/decls.h"

#include <math.h>
#include <stdlib.h>

const struct entry *item_entry(const struct item *it, const char *key) {
  for (const struct entry *e = it->block.entries; e; e = e->next)
    if (ident_is(&e->key, key)) return e;
  return NULL;
}

const struct arg *call_arg(const struct expr *call, const char *key) {
  for (const struct arg *a = call->u.call.args; a; a = a->next)
    if (a->name.text && ident_is(&a->name, key)) return a;
  return NULL;
}

const char *key_default(const struct key_index *keys, enum owner_id owner, const char *key) {
  const struct key_spec *k = key_find(keys, owner, key, strlen(key));
  return !k || k->default_text[0] == '\0' || strcmp(k->default_text, "-") == 0 ? NULL : k->default_text;
}

double stage_number(const struct key_index *keys, const struct item *stage, enum owner_id owner, const char *key) {
  const struct entry *e = item_entry(stage, key);
  if (e) return e->value->kind == EXPR_NUMBER && !e->value->invalid ? e->value->u.number.value : NAN;
  const char *def = key_default(keys, owner, key);
  return def ? strtod(def, NULL) : NAN;
}

/* The value a model declaration gives a key, in its block or its call. */
static const struct expr *model_value(const struct item *m, const char *key) {
  const struct entry *e = item_entry(m, key);
  if (e) return e->value;
  const struct arg *a = m->init->kind == EXPR_CALL ? call_arg(m->init, key) : NULL;
  return a ? a->value : NULL;
}

static double model_number(const struct key_index *keys, const struct item *m, enum owner_id owner,
                           const char *key) {
  const struct expr *v = model_value(m, key);
  if (v) return v->kind == EXPR_NUMBER && !v->invalid ? v->u.number.value : NAN;
  const char *def = key_default(keys, owner, key);
  return def ? strtod(def, NULL) : NAN;
}

static struct word model_choice(const struct key_index *keys, const struct item *m, enum owner_id owner,
                                const char *key) {
  const struct expr *v = model_value(m, key);
  if (v) return v->kind == EXPR_NAME ? (struct word){v->u.name.text, v->u.name.len} : (struct word){NULL, 0};
  const char *def = key_default(keys, owner, key);
  return (struct word){def, def ? strlen(def) : 0};
}

struct shape model_shape(const struct key_index *keys, const struct item *m) {
  struct shape s = {NAN, NAN, NAN, NAN, NAN, {NULL, 0}, {NULL, 0}};
  enum owner_id owner = m->init->kind == EXPR_CALL ? OWNER_LOAD : OWNER_GPT2;
  if (owner == OWNER_GPT2 && !ident_is(&m->init->u.name, "gpt2")) return s;
  s.layers = model_number(keys, m, owner, "layers");
  s.heads = model_number(keys, m, owner, "heads");
  s.width = model_number(keys, m, owner, "width");
  s.context = model_number(keys, m, owner, "context");
  s.vocab = model_number(keys, m, owner, "vocab");
  s.tokenizer = model_choice(keys, m, owner, "tokenizer");
  s.template = model_choice(keys, m, owner, "template");
  if (isnan(s.vocab) && word_is(s.tokenizer, "bytes")) s.vocab = 261;
  if (isnan(s.vocab) && word_is(s.tokenizer, "bpe")) s.vocab = 50257;
  return s;
}

double shape_parameters(const struct shape *s) {
  double d = s->width;
  return s->vocab * d + s->context * d + s->layers * (12 * d * d + 13 * d) + 2 * d;
}

enum model_state model_initial_state(const struct item *m) {
  const struct expr *init = m->init;
  if (init->kind != EXPR_CALL) return STATE_UNTRAINED;
  const struct arg *a = call_arg(init, "state");
  const struct expr *v = a ? a->value : NULL;
  const struct entry *e = item_entry(m, "state");
  if (e) v = e->value;
  if (v && v->kind == EXPR_NAME)
    for (int s = 0; s < STATE_COUNT; s++)
      if (ident_is(&v->u.name, state_name((enum model_state)s))) return (enum model_state)s;
  return STATE_BASE;
}

const struct stage_row *decl_stage_row(const struct item *stage) {
  const struct owner_spec *os = owner_find(FAMILY_STAGE, stage->kind_name.text, stage->kind_name.len);
  return os ? stage_row(os->id) : NULL;
}
