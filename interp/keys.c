#include "interp/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"

static const struct owner_spec owners[OWNER_COUNT] = {
#define OWNER(id, family, name, positional, doc) {OWNER_##id, FAMILY_##family, name, positional, doc},
#include "interp/keys.def"
#undef OWNER
};

const struct key_spec key_table[] = {
#define KEY(owners, name, type, min, max, range, def, unit, choices, doc) \
  {owners, name, type, min, max, range, def, unit, choices, doc},
#include "interp/keys.def"
#undef KEY
};

const size_t key_table_size = sizeof key_table / sizeof key_table[0];

const struct owner_spec *owner_spec(enum owner_id id) { return &owners[id]; }

const struct owner_spec *owner_find(enum owner_family family, const char *name, size_t len) {
  for (int i = 0; i < OWNER_COUNT; i++)
    if (owners[i].family == family && strlen(owners[i].name) == len &&
        memcmp(owners[i].name, name, len) == 0)
      return &owners[i];
  return NULL;
}

const char *family_name(enum owner_family family) {
  switch (family) {
  case FAMILY_ARCH: return "architecture";
  case FAMILY_LOADER: return "loader";
  case FAMILY_DATA: return "data kind";
  case FAMILY_STAGE: return "stage kind";
  case FAMILY_FUNCTION: return "function";
  }
  return "owner";
}

const char *value_type_name(enum value_type type) {
  switch (type) {
  case T_NONE: return "nothing";
  case T_INT: return "an integer";
  case T_NUMBER: return "a number";
  case T_SHARE: return "a share";
  case T_STRING: return "a string";
  case T_PATH: return "a path";
  case T_PATTERN: return "a regular expression";
  case T_BOOL: return "true or false";
  case T_ENUM: return "a choice";
  case T_DATA: return "a data set";
  case T_MODEL: return "a model or stage";
  case T_REFERENCE: return "frozen(model)";
  case T_REWARD: return "a reward model, a verifier(...) or a list of verifiers";
  case T_OPTIMIZER: return "an optimizer";
  }
  return "a value";
}

bool key_required(const struct key_spec *key) { return key->default_text[0] == '\0'; }

bool key_in_range(const struct key_spec *key, double v) {
  switch (key->range) {
  case R_ANY: return true;
  case R_CLOSED: return v >= key->min && v <= key->max;
  case R_OPEN_MIN: return v > key->min && v <= key->max;
  case R_OPEN_MAX: return v >= key->min && v < key->max;
  }
  return true;
}

static void format_bound(char *buf, size_t size, double v, bool share) {
  if (share) snprintf(buf, size, "%g%%", v * 100);
  else snprintf(buf, size, "%.10g", v);
}

/* Keys bounded only below (a max of KEY_UNBOUNDED or more) read as ">= 0". */
void key_range_text(const struct key_spec *key, char *buf, size_t size) {
  char lo[32], hi[32];
  bool share = key->type == T_SHARE;
  format_bound(lo, sizeof lo, key->min, share);
  format_bound(hi, sizeof hi, key->max, share);
  if (key->max >= KEY_UNBOUNDED) {
    snprintf(buf, size, "%s %s", key->range == R_OPEN_MIN ? ">" : ">=", lo);
    return;
  }
  snprintf(buf, size, "in %c%s, %s%c", key->range == R_OPEN_MIN ? '(' : '[', lo, hi,
           key->range == R_OPEN_MAX ? ')' : ']');
}

bool word_list_has(const char *list, const char *text, size_t len) {
  const char *p = list;
  while (*p) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && memcmp(p, text, len) == 0) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

bool key_choice_ok(const struct key_spec *key, const char *text, size_t len) {
  return word_list_has(key->choices, text, len);
}

void key_index_init(struct key_index *index) {
  memset(index, 0, sizeof *index);
  for (int o = 0; o < OWNER_COUNT; o++) {
    size_t n = 0;
    for (size_t k = 0; k < key_table_size; k++) n += (key_table[k].owners >> o) & 1;
    index->keys[o] = xmalloc((n ? n : 1) * sizeof *index->keys[o]);
    for (size_t k = 0; k < key_table_size; k++)
      if ((key_table[k].owners >> o) & 1) index->keys[o][index->n_keys[o]++] = &key_table[k];
  }
}

void key_index_free(struct key_index *index) {
  for (int o = 0; o < OWNER_COUNT; o++) free(index->keys[o]);
}

const struct key_spec *key_find(const struct key_index *index, enum owner_id owner, const char *name,
                                size_t len) {
  for (size_t i = 0; i < index->n_keys[owner]; i++) {
    const struct key_spec *k = index->keys[owner][i];
    if (k->name[0] == name[0] && strlen(k->name) == len && memcmp(k->name, name, len) == 0) return k;
  }
  return NULL;
}
