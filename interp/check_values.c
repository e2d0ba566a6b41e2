/* Keys and values: every block entry and named argument is looked up in the
 * key table and its value checked against the key's type and range; names in
 * values are resolved to the declarations they refer to. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "interp/checker.h"
#include "interp/suggest.h"

#define MAX_KEYS_SEEN 64

/* Keys given so far in one block or call, to find duplicates. */
struct seen_keys {
  const struct key_spec *key[MAX_KEYS_SEEN];
  struct span span[MAX_KEYS_SEEN];
  size_t n;
};

static void check_value(struct checker *c, const struct key_spec *key, struct expr *v);

static int span_len(struct span s) { return (int)(s.end - s.start); }

static const char *span_text(struct checker *c, struct span s) {
  return c->prog->sources.items[s.file]->text + s.start;
}

/* How a value looks in a message: its source text, shortened. */
static void describe(struct checker *c, const struct expr *v, char *buf, size_t size) {
  int len = span_len(v->span);
  const char *text = span_text(c, v->span);
  const char *what = "";
  switch (v->kind) {
  case EXPR_STRING: what = "the string "; break;
  case EXPR_CALL: what = "the call "; break;
  case EXPR_LIST: what = "the list "; break;
  case EXPR_NAME: what = "the name "; break;
  default: break;
  }
  const char *nl = memchr(text, '\n', (size_t)len);
  if (nl) len = (int)(nl - text);
  if (len <= 40) {
    snprintf(buf, size, "%s%.*s", what, len, text);
    return;
  }
  int cut = 37; /* at a character boundary */
  while (cut > 0 && !utf8_starts_char((unsigned char)text[cut])) cut--;
  snprintf(buf, size, "%s%.*s...", what, cut, text);
}

/* A verifier's pattern is compiled here, before any rollout: a pattern
 * that does not compile, or has no group where the answer is its first
 * group, would make every reward zero. */
static void check_pattern(struct checker *c, const struct key_spec *key, const struct expr *v) {
  int code;
  PCRE2_SIZE offset;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->u.string.text, v->u.string.len, PCRE2_UTF, &code, &offset, NULL);
  if (!re) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    struct diag *d = diag_emit(c->diags, E0208, v->span, "'%s' is not a regular expression PCRE2 compiles: %s",
                               key->name, (const char *)message);
    diag_note(c->diags, d, "at offset %zu of the pattern: %.*s<here>%s", (size_t)offset, (int)offset, v->u.string.text,
              v->u.string.text + offset);
    diag_help(c->diags, d, "fix the pattern (its syntax is in pcre2pattern(3)); in a raw string r\"...\" a backslash "
                           "is written once");
    return;
  }
  uint32_t groups = 0;
  pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
  pcre2_code_free(re);
  if (groups < (uint32_t)key->min) {
    struct diag *d = diag_emit(c->diags, E0208, v->span, "'%s' has no capture group", key->name);
    diag_note(c->diags, d, "%s: %s", key->name, key->doc);
    diag_help(c->diags, d, "put the answer in parentheses: r\"answer: (\\d+)\"");
  }
}

static void wrong_type(struct checker *c, const struct key_spec *key, const struct expr *v, const char *help) {
  char found[96];
  describe(c, v, found, sizeof found);
  struct diag *d;
  if (key->type == T_ENUM)
    d = diag_emit(c->diags, E0202, v->span, "'%s' expects one of %s, found %s", key->name, key->choices, found);
  else
    d = diag_emit(c->diags, E0202, v->span, "'%s' expects %s, found %s", key->name, value_type_name(key->type), found);
  diag_note(c->diags, d, "%s: %s", key->name, key->doc);
  if (help) diag_help(c->diags, d, "%s", help);
}

static void out_of_range(struct checker *c, const struct key_spec *key, const struct expr *v) {
  char range[80], found[96];
  if (key->max >= KEY_UNBOUNDED && v->kind == EXPR_NUMBER && v->u.number.value > key->max) {
    describe(c, v, found, sizeof found);
    diag_emit(c->diags, E0203, v->span, "'%s' is too large: %s is above %g", key->name, found, key->max);
    return;
  }
  key_range_text(key, range, sizeof range);
  describe(c, v, found, sizeof found);
  struct diag *d = diag_emit(c->diags, E0203, v->span, "'%s' must be %s, found %s", key->name, range, found);
  diag_note(c->diags, d, "%s: %s", key->name, key->doc);
}

static void unknown_function(struct checker *c, const struct ident *callee, enum owner_family family,
                             const char *expected) {
  struct diag *d = diag_emit(c->diags, E0204, callee->span, "unknown %s '%.*s'", family_name(family), (int)callee->len,
                             callee->text);
  struct suggest s;
  suggest_begin(&s, callee->text, callee->len);
  for (int o = 0; o < OWNER_COUNT; o++) {
    enum owner_family f = owner_spec(o)->family;
    /* a model is an architecture or a loader */
    if (f == family || (family == FAMILY_ARCH && f == FAMILY_LOADER))
      suggest_consider(&s, owner_spec(o)->name, strlen(owner_spec(o)->name));
  }
  size_t len;
  const char *best = suggest_result(&s, &len);
  if (best) diag_help(c->diags, d, "did you mean '%.*s'?", (int)len, best);
  else if (expected) diag_note(c->diags, d, "expected %s", expected);
}

/* The key list of an owner, for a note when no key is close enough. */
static const char *key_list(struct checker *c, enum owner_id owner) {
  size_t len = 1;
  for (size_t i = 0; i < c->keys.n_keys[owner]; i++) len += strlen(c->keys.keys[owner][i]->name) + 2;
  char *buf = arena_alloc(&c->prog->arena, len), *p = buf;
  for (size_t i = 0; i < c->keys.n_keys[owner]; i++)
    p += sprintf(p, "%s%s", i ? ", " : "", c->keys.keys[owner][i]->name);
  return buf;
}

/* One `key = value`, from a block or a named argument. */
static void check_entry(struct checker *c, enum owner_id owner, const struct ident *name, struct expr *value,
                        struct seen_keys *seen) {
  const struct owner_spec *os = owner_spec(owner);
  const struct key_spec *key = key_find(&c->keys, owner, name->text, name->len);
  if (!key) {
    struct diag *d = diag_emit(c->diags, E0201, name->span, "unknown key '%.*s' for %s %s", (int)name->len, name->text,
                               family_name(os->family), os->name);
    struct suggest s;
    suggest_begin(&s, name->text, name->len);
    for (size_t i = 0; i < c->keys.n_keys[owner]; i++)
      suggest_consider(&s, c->keys.keys[owner][i]->name, strlen(c->keys.keys[owner][i]->name));
    size_t len;
    const char *best = suggest_result(&s, &len);
    if (best) diag_help(c->diags, d, "did you mean '%.*s'?", (int)len, best);
    else if (c->keys.n_keys[owner]) diag_note(c->diags, d, "%s takes: %s", os->name, key_list(c, owner));
    else diag_note(c->diags, d, "%s takes no keys", os->name);
    return;
  }
  for (size_t i = 0; i < seen->n; i++) {
    if (seen->key[i] == key) {
      struct diag *d = diag_emit(c->diags, E0205, name->span, "'%s' is given twice", key->name);
      diag_label(c->diags, d, seen->span[i], "first given here");
      return;
    }
  }
  if (seen->n < MAX_KEYS_SEEN) {
    seen->key[seen->n] = key;
    seen->span[seen->n++] = name->span;
  }
  check_value(c, key, value);
}

static void check_required(struct checker *c, enum owner_id owner, const struct seen_keys *seen, struct span where,
                           const char *what) {
  for (size_t i = 0; i < c->keys.n_keys[owner]; i++) {
    const struct key_spec *key = c->keys.keys[owner][i];
    if (!key_required(key)) continue;
    bool given = false;
    for (size_t j = 0; j < seen->n && !given; j++) given = seen->key[j] == key;
    if (given) continue;
    struct diag *d = diag_emit(c->diags, E0206, where, "%s needs '%s'", what, key->name);
    diag_note(c->diags, d, "%s: %s", key->name, key->doc);
    diag_help(c->diags, d, "add %s = ... (%s)", key->name, value_type_name(key->type));
  }
}

static void check_block(struct checker *c, enum owner_id owner, const struct block *block, struct seen_keys *seen) {
  for (struct entry *e = block->entries; e; e = e->next) check_entry(c, owner, &e->key, e->value, seen);
}

/* The one positional argument some functions take: a path or a model. */
static void check_positional(struct checker *c, const struct owner_spec *os, struct expr *v) {
  switch (os->positional) {
  case T_PATH:
    if (v->kind != EXPR_STRING) {
      char found[96];
      describe(c, v, found, sizeof found);
      diag_emit(c->diags, E0207, v->span, "%s expects a path in quotes, found %s", os->name, found);
    } else if (v->u.string.len == 0) {
      diag_emit(c->diags, E0207, v->span, "%s expects a path, found an empty string", os->name);
    }
    break;
  case T_MODEL:
    if (v->kind != EXPR_NAME) {
      char found[96];
      describe(c, v, found, sizeof found);
      diag_emit(c->diags, E0207, v->span, "%s expects the name of a model or stage, found %s", os->name, found);
    } else {
      check_resolve(c, &v->u.name, WANT_MODEL_OR_STAGE);
    }
    break;
  default:
    break;
  }
}

/* A call to a known owner: positional argument first, then named ones. */
static void check_call_args(struct checker *c, const struct owner_spec *os, struct expr *call,
                            struct seen_keys *seen) {
  size_t positional = 0;
  for (struct arg *a = call->u.call.args; a; a = a->next) {
    if (a->name.text) {
      check_entry(c, os->id, &a->name, a->value, seen);
      continue;
    }
    positional++;
    if (os->positional == T_NONE) {
      struct diag *d = diag_emit(c->diags, E0207, a->span, "%s takes only named arguments", os->name);
      diag_help(c->diags, d, "write %s(key = value, ...)", os->name);
    } else if (positional > 1) {
      diag_emit(c->diags, E0207, a->span, "%s takes one positional argument", os->name);
    } else {
      check_positional(c, os, a->value);
    }
  }
  if (os->positional != T_NONE && positional == 0) {
    struct diag *d = diag_emit(c->diags, E0207, call->span, "%s needs %s", os->name,
                               os->positional == T_PATH ? "a path" : "a model or stage");
    diag_help(c->diags, d, "write %s(%s)", os->name,
              os->positional != T_PATH ? "NAME" : os->family == FAMILY_LOADER ? "\"DIR\"" : "\"FILES\"");
  }
}

/* A share in a mix: a percentage, or a fraction of 1. */
static void check_share(struct checker *c, const struct ident *data, struct expr *v) {
  if (v->invalid) return;
  double share;
  if (v->kind == EXPR_PERCENT) share = v->u.number.value / 100;
  else if (v->kind == EXPR_NUMBER) share = v->u.number.value;
  else {
    char found[96];
    describe(c, v, found, sizeof found);
    struct diag *d = diag_emit(c->diags, E0202, v->span, "the share of '%.*s' must be a percentage, found %s",
                               (int)data->len, data->text, found);
    diag_help(c->diags, d, "write mix(web = 70%%, code = 30%%)");
    return;
  }
  if (v->kind == EXPR_NUMBER && share > 1 && share <= 100) {
    struct diag *d = diag_emit(c->diags, E0203, v->span, "the share of '%.*s' is above 1: %.*s", (int)data->len,
                               data->text, span_len(v->span), span_text(c, v->span));
    diag_help(c->diags, d, "write it as a percentage: %.*s%%", span_len(v->span), span_text(c, v->span));
  } else if (share < 0 || share > 1) {
    diag_emit(c->diags, E0203, v->span, "the share of '%.*s' must be in [0%%, 100%%], found %.*s", (int)data->len,
              data->text, span_len(v->span), span_text(c, v->span));
  }
}

/* mix(web = 70%, code = 30%): names of data sets with their shares. */
static void check_mix(struct checker *c, struct expr *call) {
  for (struct arg *a = call->u.call.args; a; a = a->next) {
    if (!a->name.text) {
      struct diag *d = diag_emit(c->diags, E0207, a->span, "mix takes data sets with their shares");
      diag_help(c->diags, d, "write mix(web = 70%%, code = 30%%)");
      continue;
    }
    for (struct arg *b = call->u.call.args; b != a; b = b->next) {
      if (b->name.text && ident_eq(&a->name, &b->name)) {
        struct diag *d = diag_emit(c->diags, E0205, a->name.span, "'%.*s' is given twice", (int)a->name.len,
                                   a->name.text);
        diag_label(c->diags, d, b->name.span, "first given here");
        break;
      }
    }
    check_resolve(c, &a->name, WANT_DATA);
    check_share(c, &a->name, a->value);
  }
  if (!call->u.call.args) diag_emit(c->diags, E0207, call->span, "an empty mix");
}

/* A call in value position: the callee must be a function of the family the
 * key takes. */
static void check_function_value(struct checker *c, enum owner_id want, struct expr *v) {
  const struct owner_spec *os = owner_spec(want);
  const struct ident *callee = &v->u.call.callee;
  if (!ident_is(callee, os->name)) {
    const struct owner_spec *other = owner_find(FAMILY_FUNCTION, callee->text, callee->len);
    if (other) {
      diag_emit(c->diags, E0202, v->span, "expected %s(...) here, found %s(...)", os->name, other->name);
    } else {
      struct diag *d = diag_emit(c->diags, E0204, callee->span, "unknown function '%.*s'", (int)callee->len,
                                 callee->text);
      struct suggest s;
      suggest_begin(&s, callee->text, callee->len);
      suggest_consider(&s, os->name, strlen(os->name));
      size_t len;
      const char *best = suggest_result(&s, &len);
      if (best) diag_help(c->diags, d, "did you mean '%.*s'?", (int)len, best);
      else diag_note(c->diags, d, "expected %s(...)", os->name);
    }
    return;
  }
  struct seen_keys seen = {.n = 0};
  check_call_args(c, os, v, &seen);
  check_required(c, want, &seen, v->span, os->name);
}

static void check_number(struct checker *c, const struct key_spec *key, struct expr *v) {
  if (v->kind == EXPR_PERCENT) {
    wrong_type(c, key, v, NULL);
    return;
  }
  if (v->kind != EXPR_NUMBER) {
    wrong_type(c, key, v, NULL);
    return;
  }
  if (key->type == T_INT && !v->u.number.integer) {
    wrong_type(c, key, v, "write a whole number");
    return;
  }
  if (!key_in_range(key, v->u.number.value)) out_of_range(c, key, v);
}

static void check_value(struct checker *c, const struct key_spec *key, struct expr *v) {
  if (v->invalid) return;
  switch (key->type) {
  case T_INT:
  case T_NUMBER:
    check_number(c, key, v);
    return;
  case T_SHARE:
    if (v->kind == EXPR_PERCENT) {
      if (!key_in_range(key, v->u.number.value / 100)) out_of_range(c, key, v);
    } else if (v->kind == EXPR_NUMBER) {
      /* A share written as a fraction; above 1 it was meant as a percentage. */
      if (v->u.number.value > 1 && v->u.number.value <= 100) {
        struct diag *d = diag_emit(c->diags, E0203, v->span, "'%s' is a share, but %.*s is above 1", key->name,
                                   span_len(v->span), span_text(c, v->span));
        diag_help(c->diags, d, "write it as a percentage: %.*s%%", span_len(v->span), span_text(c, v->span));
      } else if (!key_in_range(key, v->u.number.value)) {
        out_of_range(c, key, v);
      }
    } else {
      wrong_type(c, key, v, "write a percentage such as 20%");
    }
    return;
  case T_PATTERN:
    if (v->kind != EXPR_STRING) wrong_type(c, key, v, "put it in double quotes, or write a raw string r\"...\"");
    else check_pattern(c, key, v);
    return;
  case T_STRING:
  case T_PATH:
    if (v->kind != EXPR_STRING) wrong_type(c, key, v, "put it in double quotes");
    else if (key->type == T_PATH && v->u.string.len == 0) diag_emit(c->diags, E0203, v->span, "'%s' is an empty path", key->name);
    return;
  case T_BOOL:
    if (v->kind != EXPR_BOOL) wrong_type(c, key, v, "write true or false");
    return;
  case T_ENUM: {
    const char *text = NULL;
    size_t len = 0;
    if (v->kind == EXPR_NAME) text = v->u.name.text, len = v->u.name.len;
    if (!text) {
      if (v->kind == EXPR_STRING && key_choice_ok(key, v->u.string.text, v->u.string.len)) {
        char help[96];
        snprintf(help, sizeof help, "write it without quotes: %s = %s", key->name, v->u.string.text);
        wrong_type(c, key, v, help);
      } else {
        wrong_type(c, key, v, NULL);
      }
      return;
    }
    if (key_choice_ok(key, text, len)) return;
    struct diag *d = diag_emit(c->diags, E0203, v->span, "'%s' must be one of %s, found %.*s", key->name, key->choices,
                               (int)len, text);
    struct suggest s;
    suggest_begin(&s, text, len);
    suggest_consider_list(&s, key->choices);
    size_t blen;
    const char *best = suggest_result(&s, &blen);
    if (best) diag_help(c->diags, d, "did you mean '%.*s'?", (int)blen, best);
    return;
  }
  case T_DATA:
    if (v->kind == EXPR_NAME) check_resolve(c, &v->u.name, WANT_DATA);
    else if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix")) check_mix(c, v);
    else wrong_type(c, key, v, "name a data set, or write mix(a = 70%, b = 30%)");
    return;
  case T_MODEL:
    if (v->kind == EXPR_NAME) check_resolve(c, &v->u.name, WANT_MODEL_OR_STAGE);
    else wrong_type(c, key, v, NULL);
    return;
  case T_REFERENCE:
    if (v->kind == EXPR_NAME) check_resolve(c, &v->u.name, WANT_MODEL_OR_STAGE);
    else if (v->kind == EXPR_CALL) check_function_value(c, OWNER_FROZEN, v);
    else wrong_type(c, key, v, "write frozen(NAME)");
    return;
  case T_REWARD:
    if (v->kind == EXPR_NAME) check_resolve(c, &v->u.name, WANT_MODEL_OR_STAGE);
    else if (v->kind == EXPR_CALL) check_function_value(c, OWNER_VERIFIER, v);
    else if (v->kind == EXPR_LIST && v->u.list.items) {
      /* verifiers whose rewards add up */
      for (const struct arg *a = v->u.list.items; a; a = a->next)
        if (a->value->kind == EXPR_CALL) check_function_value(c, OWNER_VERIFIER, a->value);
        else wrong_type(c, key, a->value, "a list holds verifier(...) calls, whose rewards add up");
    } else {
      wrong_type(c, key, v, "name a reward_model stage, or write verifier(match = \"...\", against = \"...\"), or a "
                            "list of verifiers whose rewards add up");
    }
    return;
  case T_OPTIMIZER:
    if (v->kind == EXPR_CALL) check_function_value(c, OWNER_ADAMW, v);
    else if (!(v->kind == EXPR_NAME && ident_is(&v->u.name, "adamw"))) wrong_type(c, key, v, "write adamw(lr = 3e-4)");
    return;
  case T_NONE:
    wrong_type(c, key, v, NULL);
    return;
  }
}

/* Where a block cannot be checked (its owner is unknown), the names in it
 * still refer to their declarations: they are not unused. */
static void mark_used(struct checker *c, const struct expr *v) {
  switch (v->kind) {
  case EXPR_NAME: {
    struct decl *d = symtab_find(&c->symbols, v->u.name.text, v->u.name.len);
    if (d) d->used = true;
    break;
  }
  case EXPR_CALL:
  case EXPR_LIST:
    for (const struct arg *a = v->kind == EXPR_CALL ? v->u.call.args : v->u.list.items; a; a = a->next) {
      if (a->name.text) {
        struct decl *d = symtab_find(&c->symbols, a->name.text, a->name.len);
        if (d) d->used = true;
      }
      mark_used(c, a->value);
    }
    break;
  default:
    break;
  }
}

/* A vocabulary smaller than the tokenizer's: token ids past its end have no
 * row in the embedding. */
static void check_vocab(struct checker *c, const struct item *model) {
  const struct entry *e = item_entry(model, "vocab");
  if (!e || e->value->kind != EXPR_NUMBER || e->value->invalid) return;
  struct shape s = model_shape(&c->keys, model);
  double need = word_is(s.tokenizer, "bytes") ? 261 : word_is(s.tokenizer, "bpe") ? 50257 : 0;
  if (e->value->u.number.value >= need) return;
  struct diag *d = diag_emit(c->diags, E0203, e->value->span, "a vocab of %g is smaller than the %.*s tokenizer's %g",
                             e->value->u.number.value, (int)s.tokenizer.len, s.tokenizer.text, need);
  diag_note(c->diags, d, "every token id the tokenizer makes needs a row of the embedding");
  diag_help(c->diags, d, "set vocab = %g, or leave it out: it defaults to the tokenizer's", need);
}

void check_model(struct checker *c, struct item *item) {
  struct expr *init = item->init;
  const struct owner_spec *os = NULL;
  struct seen_keys seen = {.n = 0};
  if (init->kind == EXPR_NAME) {
    os = owner_find(FAMILY_ARCH, init->u.name.text, init->u.name.len);
    if (!os) {
      if (owner_find(FAMILY_LOADER, init->u.name.text, init->u.name.len)) {
        struct diag *d = diag_emit(c->diags, E0207, init->span, "load needs a path");
        diag_help(c->diags, d, "write load(\"DIR\")");
      } else {
        unknown_function(c, &init->u.name, FAMILY_ARCH, "an architecture (gpt2) or load(\"DIR\")");
      }
      return;
    }
  } else {
    const struct ident *callee = &init->u.call.callee;
    os = owner_find(FAMILY_LOADER, callee->text, callee->len);
    if (!os) {
      if (owner_find(FAMILY_ARCH, callee->text, callee->len)) {
        struct diag *d = diag_emit(c->diags, E0207, init->span, "an architecture takes a block, not arguments");
        diag_help(c->diags, d, "write %.*s { layers = 4 ... }", (int)callee->len, callee->text);
      } else {
        unknown_function(c, callee, FAMILY_ARCH, "an architecture (gpt2) or load(\"DIR\")");
      }
      return;
    }
    check_call_args(c, os, init, &seen);
  }
  check_block(c, os->id, &item->block, &seen);
  check_vocab(c, item);
}

void check_data(struct checker *c, struct item *item) {
  struct expr *init = item->init;
  if (init->kind != EXPR_CALL) {
    struct diag *d = diag_emit(c->diags, E0204, init->span, "a data set needs a kind");
    diag_help(c->diags, d, "write corpus(\"FILES\"), demonstrations(\"FILES\"), preferences(\"FILES\"), "
                           "feedback(\"FILES\"), prompts(\"FILES\") or mix(...)");
    return;
  }
  const struct ident *callee = &init->u.call.callee;
  const struct owner_spec *os = owner_find(FAMILY_DATA, callee->text, callee->len);
  if (!os) {
    unknown_function(c, callee, FAMILY_DATA, NULL);
    mark_used(c, init);
    return;
  }
  struct seen_keys seen = {.n = 0};
  if (os->id == OWNER_MIX) check_mix(c, init);
  else check_call_args(c, os, init, &seen);
  check_block(c, os->id, &item->block, &seen);
}

void check_stage(struct checker *c, struct item *item) {
  const struct owner_spec *os = owner_find(FAMILY_STAGE, item->kind_name.text, item->kind_name.len);
  check_resolve(c, &item->from, WANT_MODEL_OR_STAGE);
  if (!os) {
    unknown_function(c, &item->kind_name, FAMILY_STAGE, NULL);
    for (struct entry *e = item->block.entries; e; e = e->next) mark_used(c, e->value);
    return;
  }
  struct seen_keys seen = {.n = 0};
  check_block(c, os->id, &item->block, &seen);
  char what[160];
  snprintf(what, sizeof what, "%s stage '%.*s'", os->name, (int)item->name.len, item->name.text);
  check_required(c, os->id, &seen, item->name.span, what);
}
