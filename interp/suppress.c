/* Suppression comments: `# trainpipe: allow W0103 -- reason` silences the
 * named warnings and notes in the declaration the comment is in (a trailing
 * comment, or one inside a block), or else in the declaration after it.
 * Several codes may be given, separated by commas or spaces; short names
 * (unused-name) work as well as codes. Errors cannot be silenced: a pipeline
 * with an error does not run, whatever a comment says. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "interp/checker.h"

#define MAX_BAD_PER_COMMENT 5

struct allow {
  uint32_t file, start, end; /* the declaration it covers */
  enum diag_code code;
  struct span at; /* the code in the comment */
  bool used;
};

struct allows {
  struct allow *v;
  size_t n, cap;
};

static const char *skip_space(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  return p;
}


static bool ends_before_line(struct checker *c, const struct item *it, uint32_t line) {
  uint32_t end_line, end_col;
  source_position(c->prog->sources.items[it->span.file], it->span.end, &end_line, &end_col);
  return end_line < line;
}

/* Comments of imported files apply their allows, but only the main file's
 * comments are reported on: an imported library is not the user's to fix. */
static void parse_comment(struct checker *c, const struct ast_file *tree, const struct comment *cm,
                          const struct item **next, struct allows *out) {
  bool report = program_is_main(c->prog, tree->file);
  static const char prefix[] = "trainpipe:";
  const char *p = skip_space(cm->text, cm->text + cm->len), *end = cm->text + cm->len;
  if ((size_t)(end - p) < sizeof prefix - 1 || memcmp(p, prefix, sizeof prefix - 1) != 0) return;
  p = skip_space(p + sizeof prefix - 1, end);
  if (end - p < 5 || memcmp(p, "allow", 5) != 0 || (end - p > 5 && p[5] != ' ' && p[5] != '\t')) return;
  p += 5;
  /* Items and comments are both in source order, so the search resumes:
   * the first item that does not end before the comment's line contains
   * the comment, ends on its line, or follows it. */
  while (*next && (*next)->span.end <= cm->span.start && ends_before_line(c, *next, cm->span.line))
    *next = (*next)->next;
  const struct item *target = *next;
  bool any = false;
  const char *counted = cm->text; /* columns are counted once, left to right */
  uint32_t col = cm->span.col + 1;
  /* One comment gets a few W0015s, then one note with the count. */
  struct diag *last_bad = NULL;
  size_t bad = 0;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    if (p >= end || (end - p >= 2 && p[0] == '-' && p[1] == '-')) break;
    const char *word = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '-' || *p == '_')) p++;
    if (p == word) break;
    struct span at = cm->span;
    at.start = (uint32_t)(cm->span.start + 1 + (word - cm->text));
    at.end = at.start + (uint32_t)(p - word);
    for (; counted < word; counted++) col += utf8_starts_char((unsigned char)*counted);
    at.col = col;
    enum diag_code code;
    bool known = diag_lookup(word, (size_t)(p - word), &code);
    if (!known || diag_info(code)->level == SEV_ERROR) {
      if (!report || ++bad > MAX_BAD_PER_COMMENT) continue;
      if (!known) {
        last_bad = diag_emit(c->diags, W0015, at, "unknown diagnostic code '%.*s'", (int)(p - word), word);
      } else {
        last_bad = diag_emit(c->diags, W0015, at, "%s is an error and cannot be suppressed", diag_info(code)->code);
        diag_note(c->diags, last_bad, "a pipeline with errors does not run; fix the cause instead");
      }
      continue;
    }
    any = true;
    if (!target) {
      if (report && !c->incomplete) diag_emit(c->diags, W0017, at, "no declaration follows this suppression of %s", diag_info(code)->code);
      continue;
    }
    out->v = xgrow(out->v, &out->cap, out->n + 1, sizeof *out->v);
    out->v[out->n++] = (struct allow){tree->file, target->span.start, target->span.end, code, at, false};
  }
  /* the reason: "-- why", with something after the dashes */
  const char *why = p < end && end - p >= 2 && p[0] == '-' && p[1] == '-' ? skip_space(p + 2, end) : end;
  if (report && any && why >= end) {
    struct diag *d = diag_emit(c->diags, W0016, cm->span, "a suppression without a reason");
    diag_note(c->diags, d, "the next reader needs to know why the warning does not apply here");
    diag_help(c->diags, d, "say why after '--': # trainpipe: allow CODE -- reason");
  }
  if (bad > MAX_BAD_PER_COMMENT)
    diag_note(c->diags, last_bad, "%zu more codes in this comment are unknown or errors", bad - MAX_BAD_PER_COMMENT);
}

static int compare_allows(const void *a, const void *b) {
  const struct allow *x = a, *y = b;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  if (x->code != y->code) return x->code < y->code ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Allows are sorted and unique by (file, code, declaration); the
 * declarations of one file do not overlap, so the last one starting at or
 * before the diagnostic is the only one that can contain it. */
static bool suppressed(const struct diag *d, void *ctx) {
  struct allows *a = ctx;
  if (d->severity == SEV_ERROR) return false;
  size_t lo = 0, hi = a->n;
  while (lo < hi) { /* first allow after (file, code, d->span.start) */
    size_t mid = lo + (hi - lo) / 2;
    const struct allow *m = &a->v[mid];
    int c = m->file != d->span.file ? (m->file < d->span.file ? -1 : 1)
            : m->code != d->code    ? (m->code < d->code ? -1 : 1)
                                    : (m->start <= d->span.start ? -1 : 1);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return false;
  struct allow *m = &a->v[lo - 1];
  bool hit = m->file == d->span.file && m->code == d->code && d->span.start >= m->start && d->span.start < m->end;
  m->used |= hit;
  return hit;
}

void check_suppressions(struct checker *c) {
  struct allows allows = {0};
  for (size_t f = 0; f < c->prog->n_files; f++) {
    const struct ast_file *tree = c->prog->files[f];
    const struct source *src = c->prog->sources.items[tree->file];
    const struct item *next = tree->items;
    for (size_t i = 0; i < src->n_comments; i++) parse_comment(c, tree, &src->comments[i], &next, &allows);
  }
  if (allows.n) {
    qsort(allows.v, allows.n, sizeof *allows.v, compare_allows);
    size_t k = 0;
    for (size_t i = 0; i < allows.n; i++)
      if (k == 0 || compare_allows(&allows.v[k - 1], &allows.v[i]) != 0) allows.v[k++] = allows.v[i];
    allows.n = k;
    diag_filter(c->diags, suppressed, &allows);
    for (size_t i = 0; i < allows.n; i++) {
      if (allows.v[i].used || c->incomplete || !program_is_main(c->prog, allows.v[i].file))
        continue; /* lost declarations make it unknowable; imports are not reported on */
      struct diag *d = diag_emit(c->diags, W0017, allows.v[i].at, "%s is not reported here; the suppression silences nothing",
                                 diag_info(allows.v[i].code)->code);
      diag_help(c->diags, d, "remove it, so that the warning is seen when it does apply");
    }
  }
  free(allows.v);
}
