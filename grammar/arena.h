/* Arena allocation for everything a run keeps until it ends: sources, the
 * AST, diagnostics. Blocks are never freed one by one; arena_free releases
 * the whole arena. Out of memory is fatal: it prints one line and exits 2. */
#ifndef TRAINPIPE_ARENA_H
#define TRAINPIPE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_block;

struct arena {
  struct arena_block *head;
  size_t next_block; /* data bytes of the next standard block; 0 before the first */
};

void *arena_alloc(struct arena *arena, size_t size); /* zeroed, 16-aligned */
char *arena_strndup(struct arena *arena, const char *text, size_t len);
char *arena_printf(struct arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *arena, const char *fmt, va_list ap);
void arena_free(struct arena *arena);

void *xmalloc(size_t size);
void *xrealloc(void *ptr, size_t size);
void *xgrow(void *ptr, size_t *cap, size_t need, size_t elem_size);

#endif
