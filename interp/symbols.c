#include "interp/symbols.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

void symtab_init(struct symtab *tab) { memset(tab, 0, sizeof *tab); }

void symtab_free(struct symtab *tab) {
  free(tab->decls);
  free(tab->slots);
  memset(tab, 0, sizeof *tab);
}

/* The slot of NAME: its declaration's, or the empty one where it would go. */
static struct symslot *probe(const struct symtab *tab, uint32_t hash, const char *name, size_t len) {
  size_t i = hash & (tab->cap - 1);
  for (;;) {
    struct symslot *s = &tab->slots[i];
    if (!s->index) return s;
    if (s->hash == hash) {
      const struct ident *n = &tab->decls[s->index - 1].item->name;
      if (n->len == len && memcmp(n->text, name, len) == 0) return s;
    }
    i = (i + 1) & (tab->cap - 1);
  }
}

struct decl *symtab_find(const struct symtab *tab, const char *name, size_t len) {
  if (!tab->cap) return NULL;
  struct symslot *s = probe(tab, (uint32_t)hash_name(name, len), name, len);
  return s->index ? &tab->decls[s->index - 1] : NULL;
}

static void grow(struct symtab *tab) {
  size_t cap = tab->cap ? tab->cap * 2 : 64;
  struct symslot *old = tab->slots;
  size_t old_cap = tab->cap;
  tab->slots = xmalloc(cap * sizeof *tab->slots);
  memset(tab->slots, 0, cap * sizeof *tab->slots);
  tab->cap = cap;
  for (size_t i = 0; i < old_cap; i++) {
    if (!old[i].index) continue;
    size_t j = old[i].hash & (cap - 1);
    while (tab->slots[j].index) j = (j + 1) & (cap - 1);
    tab->slots[j] = old[i];
  }
  free(old);
}

struct decl *symtab_add(struct symtab *tab, struct item *item) {
  if ((tab->n + 1) * 2 > tab->cap) grow(tab);
  uint32_t hash = (uint32_t)hash_name(item->name.text, item->name.len);
  struct symslot *s = probe(tab, hash, item->name.text, item->name.len);
  if (s->index) return &tab->decls[s->index - 1];
  if (tab->n >= UINT32_MAX - 1) { /* a 32-bit index keeps slots small; no file comes near */
    fprintf(stderr, "trainpipe: more than %u declarations\n", UINT32_MAX - 2);
    exit(2);
  }
  if (tab->n == tab->decls_cap) {
    tab->decls_cap = tab->decls_cap ? tab->decls_cap * 2 : 64;
    tab->decls = xrealloc(tab->decls, tab->decls_cap * sizeof *tab->decls);
  }
  tab->decls[tab->n] = (struct decl){.item = item};
  *s = (struct symslot){.hash = hash, .index = (uint32_t)++tab->n};
  return NULL;
}
