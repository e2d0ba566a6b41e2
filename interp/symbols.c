#include "interp/symbols.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

void symtab_init(struct symtab *tab) { memset(tab, 0, sizeof *tab); }

void symtab_free(struct symtab *tab) {
  free(tab->slots);
  memset(tab, 0, sizeof *tab);
}

static struct decl *probe(struct decl *slots, size_t cap, uint64_t hash, const char *name, size_t len) {
  size_t i = hash & (cap - 1);
  for (;;) {
    struct decl *d = &slots[i];
    if (!d->item ||
        (d->hash == hash && d->item->name.len == len && memcmp(d->item->name.text, name, len) == 0))
      return d;
    i = (i + 1) & (cap - 1);
  }
}

struct decl *symtab_find(const struct symtab *tab, const char *name, size_t len) {
  if (!tab->cap) return NULL;
  struct decl *d = probe(tab->slots, tab->cap, hash_name(name, len), name, len);
  return d->item ? d : NULL;
}

static void grow(struct symtab *tab) {
  size_t cap = tab->cap ? tab->cap * 2 : 64;
  struct decl *slots = xmalloc(cap * sizeof *slots);
  memset(slots, 0, cap * sizeof *slots);
  for (size_t i = 0; i < tab->cap; i++)
    if (tab->slots[i].item) {
      const struct ident *n = &tab->slots[i].item->name;
      *probe(slots, cap, tab->slots[i].hash, n->text, n->len) = tab->slots[i];
    }
  free(tab->slots);
  tab->slots = slots;
  tab->cap = cap;
}

struct decl *symtab_add(struct symtab *tab, struct item *item) {
  if ((tab->n + 1) * 2 > tab->cap) grow(tab);
  uint64_t hash = hash_name(item->name.text, item->name.len);
  struct decl *d = probe(tab->slots, tab->cap, hash, item->name.text, item->name.len);
  if (d->item) return d;
  *d = (struct decl){.item = item, .hash = hash};
  tab->n++;
  return NULL;
}
