#include "interp/render.h"

#include <stdlib.h>
#include <string.h>

#define RESET "\033[0m"
#define BOLD "\033[1m"
#define BLUE "\033[1;34m"

static const char *severity_color(enum severity sev) {
  switch (sev) {
  case SEV_ERROR: return "\033[1;31m";
  case SEV_WARNING: return "\033[1;33m";
  case SEV_NOTE: return "\033[1;36m";
  }
  return "";
}

struct style {
  bool on;
};

static const char *sty(const struct style *s, const char *code) { return s->on ? code : ""; }

static struct source *source_of(struct program *prog, struct span span) { return prog->sources.items[span.file]; }

/* Prints source text as it would appear in a terminal: tabs become four
 * spaces, control characters and invalid bytes a replacement mark. Returns
 * the number of columns written. */
static size_t put_source_text(FILE *out, const char *text, size_t len) {
  size_t cols = 0;
  const unsigned char *p = (const unsigned char *)text;
  for (size_t i = 0; i < len;) {
    if (p[i] == '\t') {
      fputs("    ", out);
      cols += 4;
      i++;
      continue;
    }
    size_t n = utf8_sequence_length(p + i, len - i);
    if (n == 0 || p[i] < 0x20 || p[i] == 0x7F) {
      fputs("\xEF\xBF\xBD", out);
      n = n ? n : 1;
    } else {
      fwrite(p + i, 1, n, out);
    }
    cols++;
    i += n;
  }
  return cols;
}

/* Display columns of text[0..len), counted as put_source_text prints them. */
static size_t display_width(const char *text, size_t len) {
  size_t cols = 0;
  const unsigned char *p = (const unsigned char *)text;
  for (size_t i = 0; i < len;) {
    if (p[i] == '\t') {
      cols += 4;
      i++;
      continue;
    }
    size_t n = utf8_sequence_length(p + i, len - i);
    cols++;
    i += n ? n : 1;
  }
  return cols;
}

struct mark {
  struct span span;
  const char *text; /* NULL for the primary span */
};

static int digits(uint32_t n) {
  int d = 1;
  while (n >= 10) n /= 10, d++;
  return d;
}

static void put_repeat(FILE *out, char c, size_t n) {
  for (size_t i = 0; i < n; i++) fputc(c, out);
}

/* Long lines (generated files, minified ones) are shown as a window around
 * the first mark, so that a diagnostic costs the same on any line. */
#define WINDOW_BEFORE 60
#define WINDOW_BYTES 200

struct window {
  const char *line; /* the whole line */
  size_t line_len;
  size_t from, to;  /* the bytes shown */
  uint32_t offset;  /* of the line in the file */
};

static size_t back_to_char(const char *line, size_t at) {
  while (at > 0 && !utf8_starts_char((unsigned char)line[at])) at--;
  return at;
}

static struct window window_for(const char *line, size_t len, uint32_t line_offset, uint32_t anchor) {
  struct window w = {line, len, 0, len, line_offset};
  if (len <= WINDOW_BYTES) return w;
  size_t at = anchor > line_offset ? anchor - line_offset : 0;
  if (at > len) at = len;
  w.from = at > WINDOW_BEFORE ? back_to_char(line, at - WINDOW_BEFORE) : 0;
  w.to = w.from + WINDOW_BYTES < len ? back_to_char(line, w.from + WINDOW_BYTES) : len;
  return w;
}

static void put_window(FILE *out, const struct window *w) {
  if (w->from > 0) fputs("...", out);
  put_source_text(out, w->line + w->from, w->to - w->from);
  if (w->to < w->line_len) fputs("...", out);
}

/* One underline row: the mark's span within the window, '^' for the primary
 * span and '-' with the label's text for a secondary one. */
static void put_underline(FILE *out, const struct style *st, const char *color, const struct mark *m,
                          const struct window *w, int gutter) {
  size_t from = m->span.start - w->offset, to = m->span.end - w->offset;
  if (from < w->from) from = w->from;
  if (from > w->to) from = w->to;
  if (to > w->to) to = w->to;
  size_t width = to > from ? display_width(w->line + from, to - from) : 1;
  fprintf(out, "%s%*s |%s ", sty(st, BLUE), gutter, "", sty(st, RESET));
  put_repeat(out, ' ', (w->from > 0 ? 3 : 0) + display_width(w->line + w->from, from - w->from));
  fputs(sty(st, m->text ? BLUE : color), out);
  put_repeat(out, m->text ? '-' : '^', width);
  if (m->text) fprintf(out, " %s", m->text);
  fprintf(out, "%s\n", sty(st, RESET));
}

/* A source line and, under it, one row per mark that starts on it, the
 * primary span first, so that each label sits beside its own underline. */
static void put_snippet_line(FILE *out, struct program *prog, const struct style *st, const char *color,
                             struct mark *marks, size_t n_marks, uint32_t file, uint32_t line, int gutter) {
  struct source *src = prog->sources.items[file];
  size_t len;
  const char *text = source_line(src, line, &len);
  uint32_t line_offset = (uint32_t)(text - src->text);
  uint32_t anchor = UINT32_MAX;
  for (size_t i = 0; i < n_marks; i++)
    if (marks[i].span.file == file && marks[i].span.line == line && marks[i].span.start < anchor)
      anchor = marks[i].span.start;
  struct window w = window_for(text, len, line_offset, anchor);
  fprintf(out, "%s%*u |%s ", sty(st, BLUE), gutter, line, sty(st, RESET));
  put_window(out, &w);
  fputc('\n', out);
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n_marks; i++)
      if (marks[i].span.file == file && marks[i].span.line == line && (marks[i].text != NULL) == (pass == 1))
        put_underline(out, st, color, &marks[i], &w, gutter);
}

static int compare_marks(const void *a, const void *b) {
  const struct mark *x = a, *y = b;
  if (x->span.line != y->span.line) return x->span.line < y->span.line ? -1 : 1;
  return x->span.start < y->span.start ? -1 : x->span.start > y->span.start;
}

static void render_one(FILE *out, struct program *prog, const struct diag *d, const struct style *st) {
  const struct diag_info *info = diag_info(d->code);
  const char *color = severity_color(d->severity);
  fprintf(out, "%s%s[%s]%s%s: %s%s\n", sty(st, color), severity_name(d->severity), info->code, sty(st, RESET),
          sty(st, BOLD), d->message, sty(st, RESET));
  struct source *src = source_of(prog, d->span);
  if (d->span.line == 0) { /* the file as a whole */
    fprintf(out, "  %s-->%s %s\n", sty(st, BLUE), sty(st, RESET), src->path);
  } else {
    size_t n = 1;
    for (struct diag_label *l = d->labels; l; l = l->next) n++;
    struct mark *marks = xmalloc(n * sizeof *marks);
    marks[0] = (struct mark){d->span, NULL};
    size_t k = 1;
    uint32_t max_line = d->span.line;
    for (struct diag_label *l = d->labels; l; l = l->next) {
      marks[k++] = (struct mark){l->span, l->text};
      if (l->span.line > max_line) max_line = l->span.line;
    }
    int gutter = digits(max_line);
    fprintf(out, "%*s%s-->%s %s:%u:%u\n", gutter, "", sty(st, BLUE), sty(st, RESET), src->path, d->span.line,
            d->span.col);
    fprintf(out, "%s%*s |%s\n", sty(st, BLUE), gutter, "", sty(st, RESET));
    /* Lines of the primary file first, in order; then each other file. */
    qsort(marks, n, sizeof *marks, compare_marks);
    uint32_t last_line = 0;
    for (size_t i = 0; i < n; i++) {
      if (marks[i].span.file != d->span.file || marks[i].span.line == last_line) continue;
      if (last_line && marks[i].span.line > last_line + 1)
        fprintf(out, "%s%*s...%s\n", sty(st, BLUE), gutter > 1 ? gutter - 1 : 0, "", sty(st, RESET));
      put_snippet_line(out, prog, st, color, marks, n, d->span.file, marks[i].span.line, gutter);
      last_line = marks[i].span.line;
    }
    for (size_t i = 0; i < n; i++) {
      if (marks[i].span.file == d->span.file) continue;
      struct source *other = source_of(prog, marks[i].span);
      fprintf(out, "%*s%s:::%s %s:%u:%u\n", gutter, "", sty(st, BLUE), sty(st, RESET), other->path,
              marks[i].span.line, marks[i].span.col);
      fprintf(out, "%s%*s |%s\n", sty(st, BLUE), gutter, "", sty(st, RESET));
      put_snippet_line(out, prog, st, color, &marks[i], 1, marks[i].span.file, marks[i].span.line, gutter);
    }
    free(marks);
    if (d->notes || d->help) fprintf(out, "%s%*s |%s\n", sty(st, BLUE), gutter, "", sty(st, RESET));
  }
  for (struct diag_line *n = d->notes; n; n = n->next)
    fprintf(out, "   %s=%s %snote:%s %s\n", sty(st, BLUE), sty(st, RESET), sty(st, BOLD), sty(st, RESET), n->text);
  if (d->help)
    fprintf(out, "   %s=%s %shelp:%s %s\n", sty(st, BLUE), sty(st, RESET), sty(st, BOLD), sty(st, RESET), d->help);
  fputc('\n', out);
}

void render_text(FILE *out, struct program *prog, bool color) {
  struct style st = {color};
  for (const struct diag *d = prog->diags.head; d; d = d->next) render_one(out, prog, d, &st);
}

void render_gcc(FILE *out, struct program *prog) {
  for (const struct diag *d = prog->diags.head; d; d = d->next) {
    struct source *src = source_of(prog, d->span);
    if (d->span.line == 0) fprintf(out, "%s: ", src->path);
    else fprintf(out, "%s:%u:%u: ", src->path, d->span.line, d->span.col);
    fprintf(out, "%s: %s [%s]\n", severity_name(d->severity), d->message, diag_info(d->code)->code);
  }
}

/* JSON strings must be UTF-8; paths and messages are made valid by
 * replacing stray bytes, never by dropping a field. */
json_t *render_json_string(const char *text) {
  size_t len = strlen(text);
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    size_t n = utf8_sequence_length(p + i, len - i);
    if (n == 0) break;
    i += n;
  }
  if (i == len) return json_stringn(text, len);
  char *buf = xmalloc(len * 3 + 1), *o = buf;
  for (i = 0; i < len;) {
    size_t n = utf8_sequence_length(p + i, len - i);
    if (n == 0) {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(o, p + i, n);
      o += n;
      i += n;
    }
  }
  json_t *j = json_stringn(buf, (size_t)(o - buf));
  free(buf);
  return j;
}

static json_t *json_position(uint32_t offset, uint32_t line, uint32_t col) {
  return json_pack("{s:I, s:I, s:I}", "offset", (json_int_t)offset, "line", (json_int_t)line, "column",
                   (json_int_t)col);
}

static json_t *json_span(struct program *prog, struct span span) {
  struct source *src = source_of(prog, span);
  if (span.line == 0) return json_pack("{s:o, s:n, s:n}", "file", render_json_string(src->path), "start", "end");
  uint32_t end_line = span.line, end_col = span.col;
  const char *text = src->text;
  bool one_line = !memchr(text + span.start, '\n', span.end - span.start);
  if (one_line) /* count from the start, which the span knows */
    for (uint32_t i = span.start; i < span.end; i++) end_col += utf8_starts_char((unsigned char)text[i]);
  else
    source_position(src, span.end, &end_line, &end_col);
  return json_pack("{s:o, s:o, s:o}", "file", render_json_string(src->path), "start", json_position(span.start, span.line, span.col),
                   "end", json_position(span.end, end_line, end_col));
}

void render_json_append(json_t *array, struct program *prog) {
  for (const struct diag *d = prog->diags.head; d; d = d->next) {
    const struct diag_info *info = diag_info(d->code);
    json_t *labels = json_array(), *notes = json_array();
    for (struct diag_label *l = d->labels; l; l = l->next)
      json_array_append_new(labels, json_pack("{s:o, s:o}", "span", json_span(prog, l->span), "message", render_json_string(l->text)));
    for (struct diag_line *n = d->notes; n; n = n->next) json_array_append_new(notes, render_json_string(n->text));
    json_t *obj = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "code", info->code, "severity",
                            severity_name(d->severity), "name", info->name, "message", render_json_string(d->message), "span",
                            json_span(prog, d->span), "labels", labels, "notes", notes);
    json_object_set_new(obj, "help", d->help ? render_json_string(d->help) : json_null());
    json_array_append_new(array, obj);
  }
}

json_t *render_json_document(json_t *diagnostics) {
  size_t count[3] = {0};
  size_t i;
  json_t *d;
  json_array_foreach(diagnostics, i, d) {
    const char *sev = json_string_value(json_object_get(d, "severity"));
    count[strcmp(sev, "error") == 0 ? SEV_ERROR : strcmp(sev, "warning") == 0 ? SEV_WARNING : SEV_NOTE]++;
  }
  return json_pack("{s:i, s:o, s:{s:I, s:I, s:I}}", "version", RENDER_JSON_VERSION, "diagnostics", diagnostics,
                   "summary", "errors", (json_int_t)count[SEV_ERROR], "warnings", (json_int_t)count[SEV_WARNING],
                   "notes", (json_int_t)count[SEV_NOTE]);
}
