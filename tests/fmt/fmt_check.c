/* Properties of `trainpipe fmt` on real files.
 *
 *   fmt_check [--allow-errors] FILE...
 *
 * For each FILE: parse it, format it, parse the canonical text, and require
 *   (a) the same tree: every declaration, name, value, string (text and
 *       spelling), number (value and spelling) and comment text, in order,
 *       spans aside. The trees are compared as text dumps written here, on
 *       their own, and fmt_same_tree() must agree with that comparison;
 *   (b) a fixed point: formatting the canonical text gives the same bytes;
 *   (c) the plain properties of the layout: LF line endings, a final
 *       newline, no trailing white space, no tab in indentation, no byte
 *       order mark, no run of blank lines, no blank first or last line.
 * A FILE that does not parse fails, or with --allow-errors is skipped.
 * Prints TAP result lines without numbers, for fmt.test to number:
 * "ok - FILE", "ok - FILE # SKIP why" or "not ok - FILE: why" followed by
 * "# " lines. Exits 0 when no file fails.
 *
 *   fmt_check --compare A B
 *
 * Tests the comparison itself: exits 0 when A and B have the same tree, 1
 * when they differ (and says where), 2 when a file does not parse or the
 * dumps and fmt_same_tree() disagree.
 *
 *   fmt_check --dump FILE
 *
 * Prints the dump of FILE's tree. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/parse.h"
#include "interp/fmt.h"

/* --- a growable string ---------------------------------------------------------- */

struct str {
  char *p;
  size_t len, cap;
};

static void str_add(struct str *s, const char *text, size_t n) {
  s->p = xgrow(s->p, &s->cap, s->len + n + 1, 1);
  memcpy(s->p + s->len, text, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static void str_printf(struct str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_printf(struct str *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    str_add(s, small, (size_t)n);
    return;
  }
  char *big = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  str_add(s, big, (size_t)n);
  free(big);
}

/* Bytes as a quoted string, anything but printable ASCII as \xHH, so that
 * dumps compare byte for byte and show what differs. */
static void str_quoted(struct str *s, const char *text, size_t n) {
  str_add(s, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') str_printf(s, "\\%c", c);
    else if (c >= 0x20 && c < 0x7F) str_add(s, (const char *)&c, 1);
    else str_printf(s, "\\x%02X", c);
  }
  str_add(s, "\"", 1);
}

/* --- dumping a tree ---------------------------------------------------------------- */

/* The files given here are small, so the dump may recurse. */
struct dumper {
  const struct source *src;
  struct str out;
};

static void dump_ident(struct dumper *d, const struct ident *id) {
  if (id->text) str_add(&d->out, id->text, id->len);
  else str_add(&d->out, "<none>", 6);
}

/* The literal as written: its token, after a minus and whatever white space
 * or comments stand between them. */
static void dump_spelling(struct dumper *d, const struct expr *e) {
  const char *t = d->src->text;
  uint32_t at = e->span.start, end = e->span.end;
  str_add(&d->out, " spelled ", 9);
  if ((e->kind == EXPR_NUMBER || e->kind == EXPR_PERCENT) && t[at] == '-') {
    str_add(&d->out, "-", 1);
    at++;
    for (;;) {
      if (at < end && strchr(" \t\r\n", t[at])) {
        at++;
      } else if (at < end && t[at] == '#') {
        while (at < end && t[at] != '\n') at++;
      } else {
        break;
      }
    }
  }
  str_quoted(&d->out, t + at, end - at);
}

static const char *op_name(enum expr_op op) {
  static const char *const names[] = {"neg", "not", "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "and", "or"};
  return (size_t)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

static void dump_expr(struct dumper *d, const struct expr *e);

static void dump_args(struct dumper *d, const struct arg *a) {
  for (; a; a = a->next) {
    str_add(&d->out, " ", 1);
    if (a->name.text) {
      str_add(&d->out, "(= ", 3);
      dump_ident(d, &a->name);
      str_add(&d->out, " ", 1);
    }
    dump_expr(d, a->value);
    if (a->name.text) str_add(&d->out, ")", 1);
  }
}

static void dump_expr(struct dumper *d, const struct expr *e) {
  if (!e) {
    str_add(&d->out, "<null>", 6);
    return;
  }
  if (e->invalid) str_add(&d->out, "<invalid>", 9);
  switch (e->kind) {
  case EXPR_NUMBER:
  case EXPR_PERCENT:
    str_printf(&d->out, "(%s %s%.17g%s", e->kind == EXPR_NUMBER ? "number" : "percent",
               signbit(e->u.number.value) ? "sign:-" : "", fabs(e->u.number.value), e->u.number.integer ? " integer" : "");
    dump_spelling(d, e);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_STRING:
    str_add(&d->out, "(string ", 8);
    str_quoted(&d->out, e->u.string.text, e->u.string.len);
    dump_spelling(d, e);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_BOOL:
    str_add(&d->out, e->u.boolean ? "true" : "false", e->u.boolean ? 4 : 5);
    break;
  case EXPR_NAME:
    str_add(&d->out, "(name ", 6);
    dump_ident(d, &e->u.name);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_MEMBER:
    str_add(&d->out, "(member ", 8);
    dump_expr(d, e->u.member.object);
    str_add(&d->out, " ", 1);
    dump_ident(d, &e->u.member.member);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_CALL:
    str_add(&d->out, "(call ", 6);
    dump_ident(d, &e->u.call.callee);
    dump_args(d, e->u.call.args);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_LIST:
    str_add(&d->out, "(list", 5);
    dump_args(d, e->u.list.items);
    str_add(&d->out, ")", 1);
    break;
  case EXPR_UNARY:
  case EXPR_BINARY:
    str_printf(&d->out, "(%s ", op_name(e->u.op.op));
    if (e->kind == EXPR_BINARY) {
      dump_expr(d, e->u.op.lhs);
      str_add(&d->out, " ", 1);
    }
    dump_expr(d, e->u.op.rhs);
    str_add(&d->out, ")", 1);
    break;
  }
}

static void dump_block(struct dumper *d, const struct block *b) {
  if (!b->present) return;
  str_add(&d->out, " {", 2);
  for (const struct entry *e = b->entries; e; e = e->next) {
    str_add(&d->out, "\n  ", 3);
    dump_ident(d, &e->key);
    str_add(&d->out, " = ", 3);
    dump_expr(d, e->value);
  }
  str_add(&d->out, "\n}", 2);
}

static void dump_item(struct dumper *d, const struct item *it) {
  static const char *const kinds[] = {"pipeline", "import", "model", "data", "stage", "order", "assert"};
  str_printf(&d->out, "(%s", kinds[it->kind]);
  switch (it->kind) {
  case ITEM_PIPELINE:
    str_add(&d->out, " ", 1);
    dump_ident(d, &it->name);
    break;
  case ITEM_IMPORT:
    str_add(&d->out, " ", 1);
    dump_expr(d, it->path);
    break;
  case ITEM_MODEL:
  case ITEM_DATA:
    str_add(&d->out, " ", 1);
    dump_ident(d, &it->name);
    str_add(&d->out, " ", 1);
    dump_expr(d, it->init);
    dump_block(d, &it->block);
    break;
  case ITEM_STAGE:
    str_add(&d->out, " ", 1);
    dump_ident(d, &it->name);
    str_add(&d->out, " ", 1);
    dump_ident(d, &it->kind_name);
    str_add(&d->out, " ", 1);
    dump_ident(d, &it->from);
    dump_block(d, &it->block);
    break;
  case ITEM_ORDER:
    for (const struct name_list *n = it->order; n; n = n->next) {
      str_add(&d->out, " ", 1);
      dump_ident(d, &n->name);
    }
    break;
  case ITEM_ASSERT:
    str_add(&d->out, " ", 1);
    dump_expr(d, it->cond);
    break;
  }
  str_add(&d->out, ")\n", 2);
}

/* Comments are compared without their trailing white space: the layout
 * drops it, and a CRLF file's comments end in CR. */
static char *dump_tree(const struct source *src, const struct ast_file *tree) {
  struct dumper d = {.src = src};
  str_add(&d.out, "", 0);
  for (const struct item *it = tree->items; it; it = it->next) dump_item(&d, it);
  for (size_t i = 0; i < src->n_comments; i++) {
    const struct comment *c = &src->comments[i];
    size_t n = c->len;
    while (n > 0 && strchr(" \t\r", c->text[n - 1])) n--;
    str_add(&d.out, "(comment ", 9);
    str_quoted(&d.out, c->text, n);
    str_add(&d.out, ")\n", 2);
  }
  return d.out.p;
}

/* --- parsing -------------------------------------------------------------------------- */

struct parsed {
  struct source_set sources;
  struct arena arena;
  struct diag_list diags;
  struct source *src;
  struct ast_file *tree;
  const char *refused; /* why the text was not parsed, or NULL */
};

static void parse_source(struct parsed *p, struct source_result r) {
  p->src = p->sources.items[r.id];
  p->refused = r.status == SOURCE_OK ? NULL : "cannot be read as UTF-8 text";
  if (!p->refused) p->tree = parse_file(&p->sources, r.id, &p->arena, &p->diags);
}

static void parsed_init(struct parsed *p) {
  memset(p, 0, sizeof *p);
  diag_list_init(&p->diags, &p->arena);
}

static void parse_path(struct parsed *p, const char *path) {
  parsed_init(p);
  parse_source(p, source_read(&p->sources, path, false));
}

static void parse_text(struct parsed *p, const char *name, const char *text, size_t len) {
  parsed_init(p);
  parse_source(p, source_add(&p->sources, name, text, len));
}

static bool parsed_cleanly(const struct parsed *p) {
  return !p->refused && !p->tree->syntax_errors && p->diags.count[SEV_ERROR] == 0;
}

static void parsed_free(struct parsed *p) {
  source_set_free(&p->sources);
  arena_free(&p->arena);
}

/* The first error, as "line:col: message". */
static void print_first_error(struct parsed *p) {
  if (p->refused) {
    printf("#   %s\n", p->refused);
    return;
  }
  for (const struct diag *d = p->diags.head; d; d = d->next) {
    if (d->severity != SEV_ERROR) continue;
    printf("#   %u:%u: %s\n", d->span.line, d->span.col, d->message);
    return;
  }
  printf("#   (syntax errors)\n");
}

/* --- reporting differences ----------------------------------------------------------- */

/* Prints the first line where two texts differ, as "-" and "+" lines. */
static void print_first_difference(const char *label, const char *a, size_t a_len, const char *b, size_t b_len) {
  size_t i = 0, line = 1, line_start = 0;
  while (i < a_len && i < b_len && a[i] == b[i]) {
    if (a[i] == '\n') line++, line_start = i + 1;
    i++;
  }
  const char *ae = memchr(a + line_start, '\n', a_len - line_start), *be = memchr(b + line_start, '\n', b_len - line_start);
  size_t an = ae ? (size_t)(ae - a) - line_start : a_len - line_start;
  size_t bn = be ? (size_t)(be - b) - line_start : b_len - line_start;
  struct str s = {0};
  str_quoted(&s, a + line_start, an > 200 ? 200 : an);
  printf("#   %s, line %zu:\n#   - %s\n", label, line, s.p);
  s.len = 0;
  str_quoted(&s, b + line_start, bn > 200 ? 200 : bn);
  printf("#   + %s\n", s.p);
  free(s.p);
}

static void print_position(const char *label, struct source *src, uint32_t offset) {
  uint32_t line, col;
  source_position(src, offset, &line, &col);
  printf("#   %s %s:%u:%u\n", label, src->path, line, col);
}

/* --- the properties -------------------------------------------------------------------- */

/* (c): what any canonical text looks like, whatever its content. */
static const char *layout_fault(const char *t, size_t n, size_t *at_line) {
  size_t line = 1;
  *at_line = 0;
  if (n == 0) return NULL;
  if (n >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0) return "starts with a byte order mark";
  if (t[n - 1] != '\n') return "does not end with a newline";
  if (t[0] == '\n') return "starts with a blank line";
  if (n >= 2 && t[n - 2] == '\n') return "ends with a blank line";
  for (size_t i = 0; i < n; i++) {
    bool line_start = i == 0 || t[i - 1] == '\n';
    *at_line = line;
    if (t[i] == '\n') {
      if (i > 0 && (t[i - 1] == ' ' || t[i - 1] == '\t')) return "has trailing white space";
      if (i > 0 && t[i - 1] == '\r') return "has a CRLF line ending";
      if (i + 2 < n && t[i + 1] == '\n' && t[i + 2] == '\n') return "has two blank lines in a row";
      line++;
    } else if (line_start) {
      size_t j = i;
      while (j < n && t[j] == ' ') j++;
      if (j < n && t[j] == '\t') return "has a tab in its indentation";
    }
  }
  return NULL;
}

/* Runs (a), (b) and (c) on one file; prints its result line. */
static bool check_file(const char *path, bool allow_errors) {
  struct parsed in, out;
  parse_path(&in, path);
  if (!parsed_cleanly(&in)) {
    if (allow_errors) printf("ok - %s # SKIP does not parse\n", path);
    else printf("not ok - %s: does not parse\n", path);
    if (!allow_errors) print_first_error(&in);
    parsed_free(&in);
    return allow_errors;
  }
  size_t len;
  char *text = fmt_format(in.src, in.tree, &len);
  parse_text(&out, "(canonical text)", text, len);
  bool ok = false;
  const char *fault;
  size_t fault_line;
  char *dump_in = dump_tree(in.src, in.tree), *dump_out = NULL;
  if (!parsed_cleanly(&out)) {
    printf("not ok - %s: the canonical text does not parse\n", path);
    print_first_error(&out);
    goto done;
  }
  dump_out = dump_tree(out.src, out.tree);
  struct fmt_difference diff;
  bool same_dump = strcmp(dump_in, dump_out) == 0;
  bool same_tree = fmt_same_tree(in.src, in.tree, out.src, out.tree, &diff);
  if (!same_dump) {
    printf("not ok - %s: the canonical text has another tree\n", path);
    print_first_difference("tree dumps differ", dump_in, strlen(dump_in), dump_out, strlen(dump_out));
    goto done;
  }
  if (!same_tree) {
    printf("not ok - %s: fmt_same_tree() sees a difference the dumps do not: %s\n", path, diff.what);
    print_position("at", in.src, diff.a_offset);
    print_position("and", out.src, diff.b_offset);
    goto done;
  }
  if ((fault = layout_fault(text, len, &fault_line))) {
    printf("not ok - %s: the canonical text %s (line %zu)\n", path, fault, fault_line);
    goto done;
  }
  size_t len2;
  char *text2 = fmt_format(out.src, out.tree, &len2);
  if (len2 != len || memcmp(text, text2, len) != 0) {
    printf("not ok - %s: formatting the canonical text changes it\n", path);
    print_first_difference("first and second formatting differ", text, len, text2, len2);
  } else {
    ok = true;
    printf("ok - %s\n", path);
  }
  free(text2);
done:
  free(dump_in);
  free(dump_out);
  free(text);
  parsed_free(&out);
  parsed_free(&in);
  return ok;
}

static int compare_files(const char *a_path, const char *b_path) {
  struct parsed a, b;
  parse_path(&a, a_path);
  parse_path(&b, b_path);
  int status = 2;
  if (!parsed_cleanly(&a) || !parsed_cleanly(&b)) {
    printf("%s does not parse\n", parsed_cleanly(&a) ? b_path : a_path);
  } else {
    char *da = dump_tree(a.src, a.tree), *db = dump_tree(b.src, b.tree);
    struct fmt_difference diff;
    bool same_dump = strcmp(da, db) == 0;
    bool same_tree = fmt_same_tree(a.src, a.tree, b.src, b.tree, &diff);
    if (same_dump != same_tree) {
      printf("the dumps say %s, fmt_same_tree() says %s\n", same_dump ? "same" : "different",
             same_tree ? "same" : "different");
    } else if (same_tree) {
      printf("same\n");
      status = 0;
    } else {
      uint32_t al, ac, bl, bc;
      source_position(a.src, diff.a_offset, &al, &ac);
      source_position(b.src, diff.b_offset, &bl, &bc);
      printf("different: %s at %s:%u:%u and %s:%u:%u\n", diff.what, a_path, al, ac, b_path, bl, bc);
      status = 1;
    }
    free(da);
    free(db);
  }
  parsed_free(&a);
  parsed_free(&b);
  return status;
}

static int dump_file(const char *path) {
  struct parsed p;
  parse_path(&p, path);
  int status = 0;
  if (!parsed_cleanly(&p)) {
    fprintf(stderr, "fmt_check: %s does not parse\n", path);
    status = 2;
  } else {
    char *d = dump_tree(p.src, p.tree);
    fputs(d, stdout);
    free(d);
  }
  parsed_free(&p);
  return status;
}

static void usage(FILE *out) {
  fputs("usage: fmt_check [--allow-errors] FILE...\n"
        "       fmt_check --compare A B\n"
        "       fmt_check --dump FILE\n",
        out);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--compare") == 0) return compare_files(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump_file(argv[2]);
  int i = 1;
  bool allow_errors = false;
  if (i < argc && strcmp(argv[i], "--allow-errors") == 0) allow_errors = true, i++;
  if (i < argc && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (i == argc || (argv[i][0] == '-' && argv[i][1] == '-')) {
    usage(stderr);
    return 2;
  }
  int failed = 0;
  for (; i < argc; i++) failed += !check_file(argv[i], allow_errors);
  return failed ? 1 : 0;
}
