/* The key table (keys.def) as C: owners (architectures, loaders, data kinds,
 * stage kinds, functions) and the keys each takes, with type, range,
 * default, unit and a one-line doc. A key_index answers lookups by name in
 * time proportional to the owner's own keys. */
#ifndef TRAINPIPE_KEYS_H
#define TRAINPIPE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum owner_id {
#define OWNER(id, family, name, positional, doc) OWNER_##id,
#include "interp/keys.def"
#undef OWNER
  OWNER_COUNT
};

enum owner_family { FAMILY_ARCH, FAMILY_LOADER, FAMILY_DATA, FAMILY_STAGE, FAMILY_FUNCTION };

enum value_type {
  T_NONE,
  T_INT,       /* a whole number; K/M/B suffixes allowed */
  T_NUMBER,    /* any number */
  T_SHARE,     /* 20% or 0.2 */
  T_STRING,
  T_PATH,      /* a string naming a file or glob */
  T_PATTERN,   /* a string holding a PCRE2 pattern with at least `min` capture groups */
  T_BOOL,
  T_ENUM,      /* one of the key's choices, written as a name */
  T_DATA,      /* a data set's name, or mix(...) */
  T_MODEL,     /* a model's or a stage's name */
  T_REFERENCE, /* frozen(model or stage) */
  T_REWARD,    /* a reward_model stage or verifier(...) */
  T_OPTIMIZER, /* adamw(...) */
};

enum range_kind { R_ANY, R_CLOSED, R_OPEN_MIN, R_OPEN_MAX };

struct owner_spec {
  enum owner_id id;
  enum owner_family family;
  const char *name;
  enum value_type positional;
  const char *doc;
};

struct key_spec {
  uint64_t owners;
  const char *name;
  enum value_type type;
  double min, max;
  enum range_kind range;
  const char *default_text; /* "" required, "-" absent unless given */
  const char *unit;
  const char *choices;      /* "a|b|c" for T_ENUM */
  const char *doc;
};

const struct owner_spec *owner_spec(enum owner_id id);
const struct owner_spec *owner_find(enum owner_family family, const char *name, size_t len);
const char *family_name(enum owner_family family);
const char *value_type_name(enum value_type type);
bool key_required(const struct key_spec *key);
bool key_in_range(const struct key_spec *key, double value);
/* Large enough to mean "no upper bound" in the table. */
#define KEY_UNBOUNDED 1e15
/* "in (0, 10]", "in [1, 1024]", ">= 0" */
void key_range_text(const struct key_spec *key, char *buf, size_t size);
/* Whether `text` is one of the words of a "a|b|c" list (choices, metrics). */
bool word_list_has(const char *list, const char *text, size_t len);
/* Whether `text` is one of the key's choices. */
bool key_choice_ok(const struct key_spec *key, const char *text, size_t len);

extern const struct key_spec key_table[];
extern const size_t key_table_size;

struct key_index {
  const struct key_spec **keys[OWNER_COUNT];
  size_t n_keys[OWNER_COUNT];
};

void key_index_init(struct key_index *index);
void key_index_free(struct key_index *index);
const struct key_spec *key_find(const struct key_index *index, enum owner_id owner, const char *name,
                                size_t len);

#endif
