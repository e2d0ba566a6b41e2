/* The declarations of a program by name: models, data sets and stages share
 * one namespace across the main file and its imports. */
#ifndef TRAINPIPE_SYMBOLS_H
#define TRAINPIPE_SYMBOLS_H

#include "grammar/ast.h"

struct decl {
  struct item *item; /* ITEM_MODEL, ITEM_DATA or ITEM_STAGE */
  bool used;
  /* The abstract value of a model or a stage's output (check_stages.c). */
  unsigned char visit;  /* 0 not yet, 1 in progress, 2 done */
  bool known;           /* false where an error upstream leaves it open */
  unsigned char state;  /* enum model_state */
  unsigned history;     /* classes of the stages in its lineage */
  unsigned char order_visit; /* the walk over order constraints: 0, 1 on the path, 2 done */
  bool parent_known;         /* `parent` has been looked up */
  struct decl *parent;       /* a stage's FROM, once resolved; lineage walks follow it */
  size_t data_p99;           /* a data set's 99th-percentile example, in bytes (check_data.c) */
};

/* The declarations lie in one array in the order they were added, so that
 * the checks, which go through a file in order, touch them in order; the
 * hash index beside it is small enough to stay in cache on large files.
 * Pointers to declarations stay valid once every name has been added. */
struct symslot {
  uint32_t hash;  /* of the name: a probe rejects most other names without reading them */
  uint32_t index; /* into decls, plus one; 0 is an empty slot */
};

struct symtab {
  struct decl *decls;
  size_t n, decls_cap;
  struct symslot *slots; /* open addressing */
  size_t cap;
};

void symtab_init(struct symtab *tab);
void symtab_free(struct symtab *tab);
struct decl *symtab_find(const struct symtab *tab, const char *name, size_t len);
/* Adds item under its name; returns the earlier declaration if the name is
 * taken (and adds nothing). */
struct decl *symtab_add(struct symtab *tab, struct item *item);

#endif
