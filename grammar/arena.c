#include "grammar/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Blocks start small, for the many small files, and double up to a size
 * where the kernel can back them with huge pages: a large file's tree then
 * costs a few hundred page faults instead of tens of thousands. */
#define ARENA_BLOCK_SIZE (64 * 1024)
#define ARENA_BLOCK_MAX (4 * 1024 * 1024)
#define HUGE_PAGE (2 * 1024 * 1024)

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

/* A block with room for at least DATA bytes; sizes of a huge page and up
 * are aligned to it and offered to the kernel for huge pages. */
static struct arena_block *new_block(size_t data) {
  if (data > SIZE_MAX - sizeof(struct arena_block) - HUGE_PAGE) out_of_memory(data);
  size_t total = sizeof(struct arena_block) + data;
  struct arena_block *b;
#ifdef MADV_HUGEPAGE
  if (total >= HUGE_PAGE) {
    total = (total + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
    void *mem;
    if (posix_memalign(&mem, HUGE_PAGE, total) != 0) out_of_memory(total);
    (void)madvise(mem, total, MADV_HUGEPAGE); /* advice only: without it, small pages */
    b = mem;
  } else
#endif
    b = xmalloc(total);
  b->used = 0;
  b->size = total - sizeof *b;
  return b;
}

void *arena_alloc(struct arena *arena, size_t size) {
  size = (size + 15) & ~(size_t)15;
  struct arena_block *b = arena->head;
  if (!b || b->size - b->used < size) {
    size_t standard = arena->next_block ? arena->next_block : ARENA_BLOCK_SIZE;
    if (size > standard / 4 && arena->head) {
      /* A large allocation gets its own block behind the current one, so
       * the free space of the current block is not wasted. */
      b = new_block(size);
      b->next = arena->head->next;
      arena->head->next = b;
    } else {
      b = new_block(size > standard ? size : standard);
      b->next = arena->head;
      arena->head = b;
      arena->next_block = standard < ARENA_BLOCK_MAX ? standard * 2 : ARENA_BLOCK_MAX;
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
  arena->next_block = 0;
}
