/* Diagnostics as data. A record keeps its code, severity, message, primary
 * span, labelled secondary spans, notes and help apart; renderers
 * (render.c) decide how they look. Records live in the list's arena. */
#ifndef TRAINPIPE_DIAG_H
#define TRAINPIPE_DIAG_H

#include <stdbool.h>
#include <stddef.h>

#include "grammar/arena.h"
#include "grammar/source.h"

enum severity { SEV_NOTE, SEV_WARNING, SEV_ERROR };

enum diag_code {
#define DIAG(code, level, name, summary) code,
#include "interp/diag_codes.def"
#undef DIAG
  DIAG_COUNT
};

struct diag_info {
  const char *code; /* "E0102" */
  enum severity level;
  const char *name; /* "undefined-name" */
  const char *summary;
};

const struct diag_info *diag_info(enum diag_code code);
/* Looks a code up by its text ("E0102") or short name; false if unknown. */
bool diag_lookup(const char *text, size_t len, enum diag_code *code);
const char *severity_name(enum severity sev);

struct diag_label {
  struct span span;
  const char *text;
  struct diag_label *next;
};

struct diag_line {
  const char *text;
  struct diag_line *next;
};

struct diag {
  enum diag_code code;
  enum severity severity;
  const char *message;
  struct span span;
  struct diag_label *labels;
  struct diag_line *notes;
  const char *help;
  struct diag *next;
};

struct diag_list {
  struct arena *arena;
  struct diag *head, *tail;
  size_t count[3]; /* by severity */
};

void diag_list_init(struct diag_list *list, struct arena *arena);

struct diag *diag_emit(struct diag_list *list, enum diag_code code, struct span span,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void diag_label(struct diag_list *list, struct diag *d, struct span span, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_note(struct diag_list *list, struct diag *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_help(struct diag_list *list, struct diag *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Removes the records for which drop() returns true and recounts. */
void diag_filter(struct diag_list *list, bool (*drop)(const struct diag *, void *), void *ctx);
/* Orders records by file, then position; stable for equal positions. */
void diag_sort(struct diag_list *list);

#endif
