#include "interp/diag.h"

#include <stdlib.h>
#include <string.h>

static const struct diag_info infos[DIAG_COUNT] = {
#define DIAG(code, level, name, summary) {#code, SEV_##level, name, summary},
#include "interp/diag_codes.def"
#undef DIAG
};

const struct diag_info *diag_info(enum diag_code code) { return &infos[code]; }

bool diag_lookup(const char *text, size_t len, enum diag_code *code) {
  for (int i = 0; i < DIAG_COUNT; i++) {
    if ((strlen(infos[i].code) == len && strncmp(infos[i].code, text, len) == 0) ||
        (strlen(infos[i].name) == len && strncmp(infos[i].name, text, len) == 0)) {
      *code = (enum diag_code)i;
      return true;
    }
  }
  return false;
}

const char *severity_name(enum severity sev) {
  switch (sev) {
  case SEV_ERROR: return "error";
  case SEV_WARNING: return "warning";
  case SEV_NOTE: return "note";
  }
  return "error";
}

void diag_list_init(struct diag_list *list, struct arena *arena) {
  memset(list, 0, sizeof *list);
  list->arena = arena;
}

struct diag *diag_emit(struct diag_list *list, enum diag_code code, struct span span,
                       const char *fmt, ...) {
  struct diag *d = arena_alloc(list->arena, sizeof *d);
  d->code = code;
  d->severity = infos[code].level;
  d->span = span;
  va_list ap;
  va_start(ap, fmt);
  d->message = arena_vprintf(list->arena, fmt, ap);
  va_end(ap);
  if (list->tail) list->tail->next = d;
  else list->head = d;
  list->tail = d;
  list->count[d->severity]++;
  return d;
}

void diag_label(struct diag_list *list, struct diag *d, struct span span, const char *fmt, ...) {
  struct diag_label *l = arena_alloc(list->arena, sizeof *l);
  l->span = span;
  va_list ap;
  va_start(ap, fmt);
  l->text = arena_vprintf(list->arena, fmt, ap);
  va_end(ap);
  struct diag_label **p = &d->labels;
  while (*p) p = &(*p)->next;
  *p = l;
}

static void append_line(struct diag_list *list, struct diag_line **head, const char *fmt,
                        va_list ap) {
  struct diag_line *n = arena_alloc(list->arena, sizeof *n);
  n->text = arena_vprintf(list->arena, fmt, ap);
  while (*head) head = &(*head)->next;
  *head = n;
}

void diag_note(struct diag_list *list, struct diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  append_line(list, &d->notes, fmt, ap);
  va_end(ap);
}

void diag_help(struct diag_list *list, struct diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  d->help = arena_vprintf(list->arena, fmt, ap);
  va_end(ap);
}

void diag_filter(struct diag_list *list, bool (*drop)(const struct diag *, void *), void *ctx) {
  struct diag **p = &list->head;
  list->tail = NULL;
  memset(list->count, 0, sizeof list->count);
  while (*p) {
    if (drop(*p, ctx)) {
      *p = (*p)->next;
      continue;
    }
    list->count[(*p)->severity]++;
    list->tail = *p;
    p = &(*p)->next;
  }
}

static int compare_position(const void *a, const void *b) {
  const struct diag *x = *(struct diag *const *)a, *y = *(struct diag *const *)b;
  if (x->span.file != y->span.file) return x->span.file < y->span.file ? -1 : 1;
  if (x->span.start != y->span.start) return x->span.start < y->span.start ? -1 : 1;
  return 0;
}

/* A stable merge sort: records of equal position keep their emission order. */
void diag_sort(struct diag_list *list) {
  size_t n = 0;
  for (struct diag *d = list->head; d; d = d->next) n++;
  if (n < 2) return;
  struct diag **v = xmalloc(n * sizeof *v), **tmp = xmalloc(n * sizeof *tmp);
  size_t i = 0;
  for (struct diag *d = list->head; d; d = d->next) v[i++] = d;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n;
      size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t a = lo, b = mid, k = lo;
      while (a < mid && b < hi) tmp[k++] = compare_position(&v[b], &v[a]) < 0 ? v[b++] : v[a++];
      while (a < mid) tmp[k++] = v[a++];
      while (b < hi) tmp[k++] = v[b++];
    }
    struct diag **swap = v;
    v = tmp;
    tmp = swap;
  }
  for (i = 0; i + 1 < n; i++) v[i]->next = v[i + 1];
  v[n - 1]->next = NULL;
  list->head = v[0];
  list->tail = v[n - 1];
  free(v);
  free(tmp);
}
