/* State shared by the checker's passes (check.c, check_values.c,
 * suppress.c). Private to interp/. */
#ifndef TRAINPIPE_CHECKER_H
#define TRAINPIPE_CHECKER_H

#include "interp/decls.h"
#include "interp/keys.h"
#include "interp/program.h"
#include "interp/symbols.h"

struct checker {
  struct program *prog;
  struct diag_list *diags;
  struct key_index keys;
  struct symtab symbols;
  bool incomplete; /* a syntax error or a failed import may have lost declarations */
  size_t suggest_budget; /* did-you-mean comparisons left for undefined names */
};

/* What a name in a given position may refer to. */
enum name_want { WANT_MODEL_OR_STAGE, WANT_DATA, WANT_STAGE };

/* Resolves a reference, marks the declaration used, and reports undefined
 * names and names of the wrong kind. NULL when it does not resolve. */
struct decl *check_resolve(struct checker *c, const struct ident *name, enum name_want want);

void check_model(struct checker *c, struct item *item);
void check_data(struct checker *c, struct item *item);
void check_stage(struct checker *c, struct item *item);
void check_suppressions(struct checker *c);
/* The stage graph: states along the lineage and every ordering rule. */
void check_stages(struct checker *c);
/* Data files: paths resolve, JSONL lines parse and carry their fields. */
void check_data_files(struct checker *c);
/* The sequence length a stage trains at (its context key, else its
 * model's as extended along the lineage); NAN when unknown. */
double stage_context(struct checker *c, const struct item *stage);
/* Whether the stage's model reads bytes, one token per byte. */
bool stage_uses_byte_tokens(struct checker *c, const struct item *stage);

#endif
