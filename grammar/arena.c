#include "grammar/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_SIZE (64 * 1024)

struct arena_block {
  struct arena_block *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
};

static _Noreturn void out_of_memory(size_t size) {
  fprintf(stderr, "trainpipe: out of memory (allocating %zu bytes)\n", size);
  exit(2);
}

void *xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) out_of_memory(size);
  return p;
}

void *xrealloc(void *ptr, size_t size) {
  void *p = realloc(ptr, size ? size : 1);
  if (!p) out_of_memory(size);
  return p;
}

/* Grows an array so that it holds at least `need` elements, doubling. */
void *xgrow(void *ptr, size_t *cap, size_t need, size_t elem_size) {
  if (need <= *cap) return ptr;
  size_t n = *cap ? *cap : 8;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem_size) out_of_memory(SIZE_MAX);
    n *= 2;
  }
  *cap = n;
  return xrealloc(ptr, n * elem_size);
}

void *arena_alloc(struct arena *arena, size_t size) {
  size = (size + 15) & ~(size_t)15;
  struct arena_block *b = arena->head;
  if (!b || b->size - b->used < size) {
    size_t block = size > ARENA_BLOCK_SIZE / 4 ? size : ARENA_BLOCK_SIZE;
    if (block > SIZE_MAX - sizeof *b) out_of_memory(size);
    b = xmalloc(sizeof *b + block);
    b->used = 0;
    b->size = block;
    /* A large allocation gets its own block behind the current one, so the
     * free space of the current block is not wasted. */
    if (block != ARENA_BLOCK_SIZE && arena->head) {
      b->next = arena->head->next;
      arena->head->next = b;
    } else {
      b->next = arena->head;
      arena->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char *arena_strndup(struct arena *arena, const char *text, size_t len) {
  char *s = arena_alloc(arena, len + 1);
  memcpy(s, text, len);
  s[len] = '\0';
  return s;
}

char *arena_vprintf(struct arena *arena, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) n = 0;
  char *s = arena_alloc(arena, (size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *arena_printf(struct arena *arena, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = arena_vprintf(arena, fmt, ap);
  va_end(ap);
  return s;
}

void arena_free(struct arena *arena) {
  struct arena_block *b = arena->head;
  while (b) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  arena->head = NULL;
}
