/* What declarations say, read the same way by the checker and the planner:
 * entries and arguments by key, numbers with the key table's defaults, a
 * model's shape and parameter count, and the state a model declaration
 * starts in. Nothing here reports: callers run on checked trees or skip
 * what does not resolve (NAN, NULL). */
#ifndef TRAINPIPE_DECLS_H
#define TRAINPIPE_DECLS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "grammar/ast.h"
#include "interp/keys.h"
#include "interp/stages.h"

const struct entry *item_entry(const struct item *it, const char *key);
const struct arg *call_arg(const struct expr *call, const char *key);

/* The key's default as text; NULL when it is required or absent unless given. */
const char *key_default(const struct key_index *keys, enum owner_id owner, const char *key);

/* A stage key's number: given, else the key's default; NAN if neither or
 * if the value is not a number. */
double stage_number(const struct key_index *keys, const struct item *stage, enum owner_id owner, const char *key);

/* A word of text, not NUL-terminated: a choice such as a tokenizer. */
struct word {
  const char *text; /* NULL when unknown */
  size_t len;
};

static inline bool words_differ(struct word a, struct word b) {
  return a.text && b.text && (a.len != b.len || memcmp(a.text, b.text, a.len) != 0);
}

static inline bool word_is(struct word w, const char *text) {
  return w.text && w.len == strlen(text) && memcmp(w.text, text, w.len) == 0;
}

/* What a model declaration says of its shape; NAN and unknown words where
 * a checkpoint leaves it to its config. The byte tokenizer's vocabulary is
 * 256 bytes and 5 special tokens; BPE's is GPT-2's 50257. */
struct shape {
  double layers, heads, width, vocab, context;
  struct word tokenizer, template;
};

struct shape model_shape(const struct key_index *keys, const struct item *model);

/* Parameters of a GPT-2 shape: token and position embeddings (the LM head
 * is tied to the first), and per block attention (4d^2 + 4d), MLP
 * (8d^2 + 5d) and two LayerNorms (4d); the final LayerNorm (2d). */
double shape_parameters(const struct shape *s);

/* The state of a `model` declaration: an architecture is untrained; a
 * checkpoint is base unless its `state` says otherwise. */
enum model_state model_initial_state(const struct item *model);

/* The stage row of a stage declaration; NULL for an unknown kind. */
const struct stage_row *decl_stage_row(const struct item *stage);

#endif
