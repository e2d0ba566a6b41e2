/* `trainpipe fmt`: one canonical layout for pipeline files, with no options,
 * so that a pipeline reads the same whoever wrote it and a diff shows only
 * what changed in meaning.
 *
 * The layout:
 * - Declarations start in column 1. A block with entries opens with '{' at
 *   the end of its declaration's line, holds one `key = value` per line,
 *   indented two spaces, and closes with '}' alone on a line; an empty block
 *   is `{}`.
 * - Blank lines: one between declarations of different kinds and around
 *   each declaration that spans lines; between other declarations, between
 *   block entries and between comments, one where the source has one or
 *   more. None at the start or the end of the file, after an opening
 *   bracket or before a closing one.
 * - '=' is aligned over runs of entries of a block (and of named arguments
 *   of a call written one per line), and over runs of one-line model, data
 *   or stage declarations of the same kind. A blank line ends a run, and so
 *   does an entry or declaration that spans lines, which is not aligned.
 * - One space around '=', binary operators and '<' in an order, after a
 *   comma, 'not' and a declaration keyword; none inside brackets or before
 *   a comma; a minus sign sticks to what it negates (but `- -x`).
 * - A call or a list stays on one line, unless the source breaks the line
 *   right after its opening bracket or a comment is inside it: then each
 *   argument gets a line of its own, two spaces deeper, followed by a comma,
 *   and the closing bracket a line of its own.
 * - Numbers, percentages and strings are copied as written (3e-4, 2M, 40%,
 *   r"..."), except for white space after a minus sign. Parentheses in
 *   assertions are kept where written and added where the tree needs them.
 * - Comments stay where they are: one on a line of its own stays on a line
 *   of its own, before what followed it and indented like it; one after
 *   code stays at the end of that line, one space after the code, and is
 *   aligned with the trailing comments of the lines aligned with its line.
 *   Their text is kept, less trailing white space. A comment inside an
 *   expression ends the line there; the expression goes on four spaces
 *   deeper than the line it started on.
 * - LF line endings, a final newline (an empty file stays empty), no
 *   trailing white space, no byte order mark, spaces for indentation.
 *
 * The printer walks the tree and prints each token; comments, which are not
 * in the tree, are taken from the source in order and printed before the
 * first token that follows them. Every decision depends only on the tokens,
 * the comments between them, whether a comment follows code on its line,
 * blank lines between declarations and entries, and line breaks right after
 * an opening bracket; the printed text keeps all of these, so formatting
 * it again changes nothing. Expressions are walked with an explicit stack:
 * a chain of a million 'or's is a tree that deep. */
#include "interp/fmt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/parse.h"
#include "interp/atomic_write.h"
#include "interp/program.h"
#include "interp/render.h"

const char fmt_usage[] =
    "usage: trainpipe fmt [-w | --check] FILE...\n"
    "\n"
    "Prints each pipeline in the one canonical layout, which has no options:\n"
    "  - blocks hold one 'key = value' per line, indented two spaces, between\n"
    "    '{' at the end of the declaration's line and '}' alone on a line;\n"
    "  - one blank line between declarations of different kinds and around\n"
    "    those that span lines; elsewhere one where the file has one or more;\n"
    "  - '=' aligned over the entries of a block and over runs of one-line\n"
    "    declarations of one kind, with no blank line between them;\n"
    "  - one space around '=' and operators and after commas, none inside\n"
    "    brackets; calls and lists on one line unless written with a line\n"
    "    break after their opening bracket (then one argument per line);\n"
    "  - numbers, percentages and strings exactly as written;\n"
    "  - comments kept where they are, on their own line or at the end of\n"
    "    the line they follow, so suppressions stay on their declaration;\n"
    "  - LF line endings, a final newline, no trailing spaces, no BOM.\n"
    "\n"
    "options:\n"
    "  -w, --write      rewrite each FILE in place instead of printing it; the\n"
    "                   new text replaces the file at once (a temporary file\n"
    "                   renamed over it, with the same mode), and a file\n"
    "                   already in canonical layout is not touched\n"
    "  --check          print nothing but a unified diff of the changes that\n"
    "                   formatting would make, and exit 1 if there are any\n"
    "  -h, --help       show this help\n"
    "\n"
    "A FILE of '-' is read from standard input (not with -w). A FILE with\n"
    "syntax errors is reported as 'trainpipe check' reports them and is never\n"
    "rewritten.\n"
    "\n"
    "exit status: 0 success (with --check: every FILE is in canonical layout),\n"
    "1 with --check: some FILE is not, 2 usage errors or a FILE that cannot\n"
    "be read, parsed or written.\n";

#define INDENT 2       /* a block's entries, the arguments of a call broken over lines */
#define CONTINUATION 4 /* what follows a comment inside an expression */
#define NO_PAD UINT32_MAX

/* --- the output, as lines ---------------------------------------------------- */

/* Alignment is decided once every line is known, so lines are kept apart
 * until then: their text, where '=' may be padded, their group (the lines
 * whose '=' and trailing comments align) and their trailing comment. */
struct out_line {
  size_t code, code_len; /* the text, in printer.code */
  unsigned indent;
  uint32_t pad_at;      /* where alignment pads, in the text; NO_PAD if it does not */
  size_t group;         /* 0: aligned with nothing */
  const char *comment;  /* the trailing comment, after '#', trimmed */
  uint32_t comment_len;
  bool own_comment;     /* the line is a comment */
  bool blank_before;
};

enum task_kind {
  TASK_EXPR,       /* node: an expression */
  TASK_TEXT,       /* node: text the printer writes, not in the source; flags: spaces */
  TASK_MEMBER_KEY, /* node: the ident after '.' */
  TASK_ARG,        /* node: an argument of a call or list kept on one line */
  TASK_CLOSE,      /* at: the closing bracket of a call or list kept on one line */
  TASK_ARG_LINE,   /* node: an argument on a line of its own; at: its group; indent */
  TASK_ARG_END,    /* at: the line that argument started; ends its group if it spans lines */
  TASK_CLOSE_LINE, /* at: the closing bracket of a broken call or list; indent: its line's */
};

enum { SPACE_BEFORE = 1, SPACE_AFTER = 2 };

/* Small, since a long chain of operators keeps two tasks per operator. */
struct task {
  const void *node;
  uint32_t at;
  uint16_t indent;
  uint8_t kind;
  uint8_t flags; /* SPACE_*, or the closing bracket */
};

/* How comments met before a token are laid out. */
enum comment_layout {
  COMMENTS_INLINE,     /* inside an expression: an own-line comment breaks it */
  COMMENTS_LINES,      /* between arguments: own lines, no blank lines */
  COMMENTS_PARAGRAPHS, /* between declarations and entries: blank lines kept */
};

struct printer {
  const char *text; /* the source */
  const struct comment *comments;
  size_t n_comments, next_comment; /* comments before next_comment are printed */
  uint32_t last_end;               /* just after the last token or comment printed */
  bool printed_any;

  struct out_line *lines;
  size_t n_lines, cap_lines;
  char *code;
  size_t code_len, code_cap;
  bool open;          /* the last line takes more text (it is not a comment line) */
  bool space;         /* a space goes before the next text on this line */
  bool blank_pending; /* the next line starts a new section of declarations */
  bool no_blank;      /* the next line follows an opening bracket */
  unsigned logical_indent; /* of the line the current declaration, entry or argument started */
  size_t n_groups;

  struct task *tasks;
  size_t n_tasks, cap_tasks;
};

static struct out_line *current(struct printer *p) { return &p->lines[p->n_lines - 1]; }

static void new_line(struct printer *p, unsigned indent, bool blank) {
  p->lines = xgrow(p->lines, &p->cap_lines, p->n_lines + 1, sizeof *p->lines);
  p->lines[p->n_lines++] = (struct out_line){.code = p->code_len, .indent = indent, .pad_at = NO_PAD,
                                             .blank_before = blank};
  p->open = true;
  p->space = false;
}

static void append(struct printer *p, const char *s, size_t n) {
  if (n == 0) return; /* the buffer may not exist yet */
  p->code = xgrow(p->code, &p->code_cap, p->code_len + n, 1);
  memcpy(p->code + p->code_len, s, n);
  p->code_len += n;
  current(p)->code_len += n;
}

static size_t new_group(struct printer *p) { return p->n_groups++; }

/* Newlines in the source between two offsets, counted up to 2: 0 means the
 * same line, 2 a blank line. */
static unsigned newlines_between(const struct printer *p, uint32_t from, uint32_t to) {
  unsigned n = 0;
  for (uint32_t i = from; i < to && n < 2; i++) n += p->text[i] == '\n';
  return n;
}

/* A line for a declaration, an entry, an argument or an own-line comment,
 * starting at source offset `start`. */
static void begin_line(struct printer *p, unsigned indent, uint32_t start, bool keep_blank) {
  bool blank = p->n_lines > 0 && !p->no_blank &&
               (p->blank_pending || (keep_blank && p->printed_any && newlines_between(p, p->last_end, start) >= 2));
  p->blank_pending = false;
  p->no_blank = false;
  new_line(p, indent, blank);
  p->logical_indent = indent;
}

/* Inside an expression: the rest goes on a continuation line. */
static void break_line(struct printer *p) { new_line(p, p->logical_indent + CONTINUATION, false); }

static bool blank_since(const struct printer *p, size_t first_line) {
  for (size_t i = first_line; i < p->n_lines; i++)
    if (p->lines[i].blank_before) return true;
  return false;
}

/* --- comments ------------------------------------------------------------------ */

static uint32_t trimmed_length(const char *text, uint32_t len) {
  while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r')) len--;
  return len;
}

static bool comment_pending_before(const struct printer *p, uint32_t limit) {
  return p->next_comment < p->n_comments && p->comments[p->next_comment].span.start < limit;
}

/* Prints the comments that come before source offset `limit`. One that
 * follows code on its source line is attached to the current line; the
 * others get lines of their own at `indent`. */
static void flush_comments(struct printer *p, uint32_t limit, unsigned indent, enum comment_layout layout) {
  while (comment_pending_before(p, limit)) {
    const struct comment *c = &p->comments[p->next_comment++];
    uint32_t len = trimmed_length(c->text, c->len);
    bool trailing = p->printed_any && p->open && p->n_lines > 0 && current(p)->code_len > 0 &&
                    !current(p)->comment && newlines_between(p, p->last_end, c->span.start) == 0;
    if (trailing) {
      current(p)->comment = c->text;
      current(p)->comment_len = len;
    } else {
      if (layout == COMMENTS_INLINE) new_line(p, indent, false);
      else begin_line(p, indent, c->span.start, layout == COMMENTS_PARAGRAPHS);
      append(p, "#", 1);
      append(p, c->text, len);
      current(p)->own_comment = true;
      p->open = false;
    }
    p->last_end = c->span.end;
    p->printed_any = true;
  }
}

/* --- tokens ---------------------------------------------------------------------- */

/* Text the printer adds (operators, '=', commas): it may follow a trailing
 * comment's code on the same line, since the comment is written last. */
static void put_text(struct printer *p, const char *s, size_t n) {
  if (p->n_lines == 0 || !p->open) break_line(p);
  if (p->space && current(p)->code_len > 0) append(p, " ", 1);
  p->space = false;
  append(p, s, n);
}

/* A token of the source at [start, end): the comments before it come first,
 * and a line that ends in a comment takes no more tokens. */
static void put_token(struct printer *p, const char *s, size_t n, uint32_t start, uint32_t end) {
  flush_comments(p, start, p->logical_indent + CONTINUATION, COMMENTS_INLINE);
  if (p->n_lines == 0 || !p->open || current(p)->comment) break_line(p);
  put_text(p, s, n);
  p->last_end = end;
  p->printed_any = true;
}

static void put_ident(struct printer *p, const struct ident *id) {
  put_token(p, id->text, id->len, id->span.start, id->span.end);
}

/* " = ", where alignment pads before the '='. */
static void put_equals(struct printer *p) {
  current(p)->pad_at = (uint32_t)current(p)->code_len;
  p->space = true;
  put_text(p, "=", 1);
  p->space = true;
}

/* --- expressions ------------------------------------------------------------------- */

enum { PREC_OR = 1, PREC_AND, PREC_NOT, PREC_COMPARE, PREC_ADD, PREC_MUL, PREC_NEG, PREC_ATOM };

static int precedence(const struct expr *e) {
  if (e->kind == EXPR_UNARY) return e->u.op.op == OP_NOT ? PREC_NOT : PREC_NEG;
  if (e->kind != EXPR_BINARY) return PREC_ATOM;
  switch (e->u.op.op) {
  case OP_OR: return PREC_OR;
  case OP_AND: return PREC_AND;
  case OP_ADD: case OP_SUB: return PREC_ADD;
  case OP_MUL: case OP_DIV: return PREC_MUL;
  default: return PREC_COMPARE;
  }
}

static const char *operator_text(enum expr_op op) {
  switch (op) {
  case OP_NEG: case OP_SUB: return "-";
  case OP_NOT: return "not";
  case OP_ADD: return "+";
  case OP_MUL: return "*";
  case OP_DIV: return "/";
  case OP_LT: return "<";
  case OP_LE: return "<=";
  case OP_GT: return ">";
  case OP_GE: return ">=";
  case OP_EQ: return "==";
  case OP_NE: return "!=";
  case OP_AND: return "and";
  case OP_OR: return "or";
  }
  return "?";
}

/* The parser drops parentheses but a node's span covers those around its
 * operands, so an operand that starts later (or ends earlier) than the part
 * of its parent it begins (or ends) was written in parentheses. */
static bool parenthesized_first(const struct expr *parent, const struct expr *child) {
  return parent->span.start < child->span.start;
}
static bool parenthesized_last(const struct expr *parent, const struct expr *child) {
  return parent->span.end > child->span.end;
}

static void push(struct printer *p, enum task_kind kind, const void *node, uint32_t at, unsigned indent,
                 uint8_t flags) {
  p->tasks = xgrow(p->tasks, &p->cap_tasks, p->n_tasks + 1, sizeof *p->tasks);
  /* Indentation deeper than this cannot come from a file the parser takes
   * (it nests at most some thousands deep); the clamp only keeps the type. */
  if (indent > UINT16_MAX) indent = UINT16_MAX;
  p->tasks[p->n_tasks++] = (struct task){node, at, (uint16_t)indent, (uint8_t)kind, flags};
}

static void push_text(struct printer *p, const char *text, uint8_t spaces) { push(p, TASK_TEXT, text, 0, 0, spaces); }

/* Tasks run from the top of the stack, so a sequence is pushed backwards. */
static void push_operand(struct printer *p, const struct expr *e, bool parens) {
  if (parens) push_text(p, ")", 0);
  push(p, TASK_EXPR, e, 0, 0, 0);
  if (parens) push_text(p, "(", 0);
}

/* Offset of the first token in [from, end) after white space and comments. */
static uint32_t skip_blank(const char *text, uint32_t from, uint32_t end) {
  while (from < end) {
    char c = text[from];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      from++;
    } else if (c == '#') {
      while (from < end && text[from] != '\n') from++;
    } else {
      break;
    }
  }
  return from;
}

/* A number as written; "- 1" in the source (a minus and a number are two
 * tokens) is printed "-1". */
static void put_number(struct printer *p, const struct expr *e) {
  uint32_t start = e->span.start, end = e->span.end;
  if (p->text[start] == '-') {
    put_token(p, "-", 1, start, start + 1);
    start = skip_blank(p->text, start + 1, end);
  }
  put_token(p, p->text + start, end - start, start, end);
}

static bool newline_between(const struct printer *p, uint32_t from, uint32_t to) {
  return newlines_between(p, from, to) > 0;
}

/* The arguments of a call or the items of a list, after the opening
 * bracket, which is printed: on one line, or one per line when the source
 * breaks the line after the bracket or holds a comment inside. */
static void push_arguments(struct printer *p, const struct arg *args, uint32_t open_end, uint32_t close, char closer) {
  bool broken = comment_pending_before(p, close) || (args && newline_between(p, open_end, args->span.start));
  if (!broken) {
    size_t n = 0;
    for (const struct arg *a = args; a; a = a->next) n++;
    size_t count = n ? 2 * n : 1; /* the arguments, the commas between them, the closer */
    p->tasks = xgrow(p->tasks, &p->cap_tasks, p->n_tasks + count, sizeof *p->tasks);
    size_t top = p->n_tasks + count - 1;
    for (const struct arg *a = args; a; a = a->next) {
      p->tasks[top--] = (struct task){.node = a, .kind = TASK_ARG};
      if (a->next) p->tasks[top--] = (struct task){.node = ",", .kind = TASK_TEXT, .flags = SPACE_AFTER};
    }
    p->tasks[top] = (struct task){.at = close, .kind = TASK_CLOSE, .flags = (uint8_t)closer};
    p->n_tasks += count;
    return;
  }
  /* Each argument line pushes the next one when it runs, so that the
   * argument before can start a new alignment group in it. */
  unsigned outer = current(p)->indent;
  p->no_blank = true;
  push(p, TASK_CLOSE_LINE, NULL, close, outer, (uint8_t)closer);
  if (args) push(p, TASK_ARG_LINE, args, (uint32_t)new_group(p), outer + INDENT, 0);
}

static void run_expr(struct printer *p, const struct expr *e) {
  switch (e->kind) {
  case EXPR_NUMBER:
  case EXPR_PERCENT:
    put_number(p, e);
    break;
  case EXPR_STRING:
  case EXPR_BOOL:
    put_token(p, p->text + e->span.start, e->span.end - e->span.start, e->span.start, e->span.end);
    break;
  case EXPR_NAME:
    put_ident(p, &e->u.name);
    break;
  case EXPR_MEMBER: {
    const struct expr *object = e->u.member.object;
    push(p, TASK_MEMBER_KEY, &e->u.member.member, 0, 0, 0);
    push_text(p, ".", 0);
    push_operand(p, object, precedence(object) < PREC_ATOM || parenthesized_first(e, object));
    break;
  }
  case EXPR_CALL:
    put_ident(p, &e->u.call.callee);
    put_token(p, "(", 1, e->u.call.open.start, e->u.call.open.end);
    push_arguments(p, e->u.call.args, e->u.call.open.end, e->span.end - 1, ')');
    break;
  case EXPR_LIST:
    put_token(p, "[", 1, e->span.start, e->span.start + 1);
    push_arguments(p, e->u.list.items, e->span.start + 1, e->span.end - 1, ']');
    break;
  case EXPR_UNARY: {
    const struct expr *operand = e->u.op.rhs;
    bool parens = parenthesized_last(e, operand);
    if (e->u.op.op == OP_NOT) {
      put_token(p, "not", 3, e->span.start, e->span.start + 3);
      p->space = true;
      parens |= precedence(operand) < PREC_NOT;
    } else {
      put_token(p, "-", 1, e->span.start, e->span.start + 1);
      parens |= precedence(operand) < PREC_NEG;
      /* "--a" would read as a typo */
      p->space = !parens && operand->kind == EXPR_UNARY && operand->u.op.op == OP_NEG;
    }
    push_operand(p, operand, parens);
    break;
  }
  case EXPR_BINARY: {
    const struct expr *lhs = e->u.op.lhs, *rhs = e->u.op.rhs;
    int prec = precedence(e);
    bool chains = prec != PREC_COMPARE; /* comparisons do not chain */
    push_operand(p, rhs, parenthesized_last(e, rhs) || precedence(rhs) <= prec);
    push_text(p, operator_text(e->u.op.op), SPACE_BEFORE | SPACE_AFTER);
    push_operand(p, lhs, parenthesized_first(e, lhs) || precedence(lhs) < prec || (!chains && precedence(lhs) == prec));
    break;
  }
  }
}

static void run_tasks(struct printer *p, size_t base) {
  while (p->n_tasks > base) {
    struct task t = p->tasks[--p->n_tasks]; /* a copy: pushes may move the stack */
    switch ((enum task_kind)t.kind) {
    case TASK_EXPR:
      run_expr(p, t.node);
      break;
    case TASK_TEXT: {
      const char *s = t.node;
      if (t.flags & SPACE_BEFORE) p->space = true;
      put_text(p, s, strlen(s));
      if (t.flags & SPACE_AFTER) p->space = true;
      break;
    }
    case TASK_MEMBER_KEY:
      put_ident(p, t.node);
      break;
    case TASK_ARG: {
      const struct arg *a = t.node;
      if (a->name.text) {
        put_ident(p, &a->name);
        p->space = true;
        put_text(p, "=", 1);
        p->space = true;
      }
      push(p, TASK_EXPR, a->value, 0, 0, 0);
      break;
    }
    case TASK_CLOSE: {
      char closer = (char)t.flags;
      put_token(p, &closer, 1, t.at, t.at + 1);
      break;
    }
    case TASK_ARG_LINE: {
      const struct arg *a = t.node;
      flush_comments(p, a->span.start, t.indent, COMMENTS_LINES);
      begin_line(p, t.indent, a->span.start, false);
      uint32_t line = (uint32_t)(p->n_lines - 1);
      current(p)->group = t.at;
      if (a->name.text) {
        put_ident(p, &a->name);
        put_equals(p);
      }
      if (a->next) push(p, TASK_ARG_LINE, a->next, t.at, t.indent, 0);
      push(p, TASK_ARG_END, NULL, line, 0, 0);
      push_text(p, ",", 0);
      push(p, TASK_EXPR, a->value, 0, 0, 0);
      break;
    }
    case TASK_ARG_END:
      if (p->n_lines - 1 != t.at) { /* it spans lines: not aligned, and the next argument starts afresh */
        p->lines[t.at].group = 0;
        if (p->n_tasks > 0 && p->tasks[p->n_tasks - 1].kind == TASK_ARG_LINE)
          p->tasks[p->n_tasks - 1].at = (uint32_t)new_group(p);
      }
      break;
    case TASK_CLOSE_LINE: {
      char closer = (char)t.flags;
      flush_comments(p, t.at, (unsigned)t.indent + INDENT, COMMENTS_LINES);
      begin_line(p, t.indent, t.at, false);
      put_token(p, &closer, 1, t.at, t.at + 1);
      break;
    }
    }
  }
}

static void print_expr(struct printer *p, const struct expr *e, bool parens) {
  size_t base = p->n_tasks;
  push_operand(p, e, parens);
  run_tasks(p, base);
}

/* --- declarations ---------------------------------------------------------------- */

static void print_block(struct printer *p, const struct item *it) {
  const struct block *b = &it->block;
  if (!b->present) return;
  uint32_t close = it->span.end - 1;
  p->space = true;
  put_text(p, "{", 1);
  if (!b->entries && !comment_pending_before(p, close)) {
    put_token(p, "}", 1, close, close + 1);
    return;
  }
  /* Comments between the declaration and its '{' go after the '{'. */
  p->no_blank = true;
  flush_comments(p, b->open.start, INDENT, COMMENTS_PARAGRAPHS);
  p->last_end = b->open.end;
  size_t group = new_group(p);
  for (const struct entry *e = b->entries; e; e = e->next) {
    size_t before = p->n_lines;
    flush_comments(p, e->span.start, INDENT, COMMENTS_PARAGRAPHS);
    begin_line(p, INDENT, e->span.start, true);
    if (blank_since(p, before)) group = new_group(p);
    size_t first = p->n_lines - 1;
    put_ident(p, &e->key);
    put_equals(p);
    print_expr(p, e->value, false);
    if (p->n_lines - 1 == first) {
      p->lines[first].group = group;
    } else { /* it spans lines: not aligned, and the entries after it start afresh */
      p->lines[first].group = 0;
      group = new_group(p);
    }
  }
  flush_comments(p, close, INDENT, COMMENTS_PARAGRAPHS);
  begin_line(p, 0, close, false);
  put_token(p, "}", 1, close, close + 1);
}

static void print_item(struct printer *p, const struct item *it) {
  put_token(p, p->text + it->keyword.start, it->keyword.end - it->keyword.start, it->keyword.start, it->keyword.end);
  p->space = true;
  switch (it->kind) {
  case ITEM_PIPELINE:
    put_ident(p, &it->name);
    break;
  case ITEM_IMPORT:
    print_expr(p, it->path, false);
    break;
  case ITEM_MODEL:
  case ITEM_DATA:
    put_ident(p, &it->name);
    put_equals(p);
    print_expr(p, it->init, false);
    print_block(p, it);
    break;
  case ITEM_STAGE:
    put_ident(p, &it->name);
    put_equals(p);
    put_ident(p, &it->kind_name);
    put_text(p, "(", 1);
    put_ident(p, &it->from);
    put_text(p, ")", 1);
    print_block(p, it);
    break;
  case ITEM_ORDER:
    for (const struct name_list *n = it->order; n; n = n->next) {
      if (n != it->order) {
        p->space = true;
        put_text(p, "<", 1);
        p->space = true;
      }
      put_ident(p, &n->name);
    }
    break;
  case ITEM_ASSERT:
    print_expr(p, it->cond, it->span.end > it->cond->span.end);
    break;
  }
}

static void print_file(struct printer *p, const struct ast_file *tree) {
  const struct item *prev = NULL;
  bool prev_one_line = false;
  size_t run = 0; /* the group of the current run of one-line declarations */
  for (const struct item *it = tree->items; it; it = it->next) {
    size_t before = p->n_lines;
    p->blank_pending |= prev && prev->kind != it->kind;
    flush_comments(p, it->span.start, 0, COMMENTS_PARAGRAPHS);
    begin_line(p, 0, it->span.start, true);
    size_t first = p->n_lines - 1;
    print_item(p, it);
    bool one_line = p->n_lines - 1 == first;
    if (one_line) {
      if (!(prev && prev_one_line && prev->kind == it->kind && !blank_since(p, before))) run = new_group(p);
      p->lines[first].group = run;
    } else if (before > 0) {
      p->lines[before].blank_before = true; /* before its leading comments, if any */
    }
    prev = it;
    prev_one_line = one_line;
    p->blank_pending = !one_line;
  }
  flush_comments(p, UINT32_MAX, 0, COMMENTS_PARAGRAPHS);
}

/* --- rendering ---------------------------------------------------------------------- */

static size_t display_width(const char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) w += utf8_starts_char((unsigned char)s[i]);
  return w;
}

struct text_buffer {
  char *p;
  size_t len, cap;
};

static void out_bytes(struct text_buffer *b, const char *s, size_t n) {
  if (n == 0) return; /* the buffer may not exist yet */
  b->p = xgrow(b->p, &b->cap, b->len + n, 1);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void out_spaces(struct text_buffer *b, size_t n) {
  if (n == 0) return;
  b->p = xgrow(b->p, &b->cap, b->len + n, 1);
  memset(b->p + b->len, ' ', n);
  b->len += n;
}

static bool pads(const struct out_line *l) { return l->group && l->pad_at != NO_PAD; }

static char *render(const struct printer *p, size_t *len) {
  size_t *pad_width = xmalloc(p->n_groups * sizeof *pad_width);
  size_t *comment_column = xmalloc(p->n_groups * sizeof *comment_column);
  memset(pad_width, 0, p->n_groups * sizeof *pad_width);
  memset(comment_column, 0, p->n_groups * sizeof *comment_column);
  for (size_t i = 0; i < p->n_lines; i++) {
    const struct out_line *l = &p->lines[i];
    if (pads(l) && l->pad_at > pad_width[l->group]) pad_width[l->group] = l->pad_at;
  }
  for (size_t i = 0; i < p->n_lines; i++) {
    const struct out_line *l = &p->lines[i];
    if (!l->group || !l->comment) continue;
    size_t w = l->indent + display_width(p->code + l->code, l->code_len) + (pads(l) ? pad_width[l->group] - l->pad_at : 0);
    if (w > comment_column[l->group]) comment_column[l->group] = w;
  }
  struct text_buffer b = {0};
  for (size_t i = 0; i < p->n_lines; i++) {
    const struct out_line *l = &p->lines[i];
    const char *code = p->code + l->code;
    if (l->blank_before) out_bytes(&b, "\n", 1);
    out_spaces(&b, l->indent);
    size_t width = l->indent;
    if (pads(l)) {
      out_bytes(&b, code, l->pad_at);
      out_spaces(&b, pad_width[l->group] - l->pad_at);
      out_bytes(&b, code + l->pad_at, l->code_len - l->pad_at);
    } else {
      out_bytes(&b, code, l->code_len);
    }
    if (l->comment) {
      size_t gap = 1;
      if (l->group) {
        width += display_width(code, l->code_len) + (pads(l) ? pad_width[l->group] - l->pad_at : 0);
        gap += comment_column[l->group] - width;
      }
      out_spaces(&b, gap);
      out_bytes(&b, "#", 1);
      out_bytes(&b, l->comment, l->comment_len);
    }
    out_bytes(&b, "\n", 1);
  }
  free(pad_width);
  free(comment_column);
  *len = b.len;
  return b.p ? b.p : xmalloc(1);
}

char *fmt_format(const struct source *src, const struct ast_file *tree, size_t *len) {
  struct printer p = {.text = src->text, .comments = src->comments, .n_comments = src->n_comments, .n_groups = 1};
  print_file(&p, tree);
  char *text = render(&p, len);
  free(p.lines);
  free(p.code);
  free(p.tasks);
  return text;
}

/* --- comparing trees ---------------------------------------------------------------- */

struct tree_compare {
  const struct source *a_src, *b_src;
  struct fmt_difference *diff;
  const struct expr **stack; /* pairs */
  size_t n, cap;
};

static bool differ(struct tree_compare *c, uint32_t a_at, uint32_t b_at, const char *what) {
  if (c->diff) *c->diff = (struct fmt_difference){a_at, b_at, what};
  return false;
}

static bool same_bytes(const char *a, uint32_t a_len, const char *b, uint32_t b_len) {
  return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static bool same_ident(const struct ident *a, const struct ident *b) {
  return same_bytes(a->text, a->len, b->text, b->len);
}

/* A literal's spelling: its token, and whether a minus comes before it. */
static const char *spelling(const struct source *src, const struct expr *e, bool *minus, uint32_t *len) {
  uint32_t start = e->span.start;
  *minus = (e->kind == EXPR_NUMBER || e->kind == EXPR_PERCENT) && src->text[start] == '-';
  if (*minus) start = skip_blank(src->text, start + 1, e->span.end);
  *len = e->span.end - start;
  return src->text + start;
}

static bool same_spelling(struct tree_compare *c, const struct expr *a, const struct expr *b) {
  bool a_minus, b_minus;
  uint32_t a_len, b_len;
  const char *a_text = spelling(c->a_src, a, &a_minus, &a_len), *b_text = spelling(c->b_src, b, &b_minus, &b_len);
  return a_minus == b_minus && same_bytes(a_text, a_len, b_text, b_len);
}

static void push_pair(struct tree_compare *c, const struct expr *a, const struct expr *b) {
  c->stack = xgrow(c->stack, &c->cap, c->n + 2, sizeof *c->stack);
  c->stack[c->n++] = a;
  c->stack[c->n++] = b;
}

static bool same_args(struct tree_compare *c, const struct expr *at_a, const struct arg *a, const struct expr *at_b,
                      const struct arg *b) {
  for (; a && b; a = a->next, b = b->next) {
    if (!a->name.text != !b->name.text || (a->name.text && !same_ident(&a->name, &b->name)))
      return differ(c, a->span.start, b->span.start, "an argument's name");
    push_pair(c, a->value, b->value);
  }
  if (a || b) return differ(c, a ? a->span.start : at_a->span.end, b ? b->span.start : at_b->span.end, "the number of arguments");
  return true;
}

static bool same_expr(struct tree_compare *c, const struct expr *root_a, const struct expr *root_b) {
  size_t base = c->n;
  push_pair(c, root_a, root_b);
  while (c->n > base) {
    const struct expr *b = c->stack[--c->n], *a = c->stack[--c->n];
    if (!a || !b) {
      if (a != b) return differ(c, a ? a->span.start : 0, b ? b->span.start : 0, "an operand");
      continue;
    }
    uint32_t at_a = a->span.start, at_b = b->span.start;
    if (a->kind != b->kind) return differ(c, at_a, at_b, "the kind of a value");
    if (a->invalid != b->invalid) return differ(c, at_a, at_b, "a value's validity");
    switch (a->kind) {
    case EXPR_NUMBER:
    case EXPR_PERCENT:
      if (a->u.number.value != b->u.number.value || signbit(a->u.number.value) != signbit(b->u.number.value) ||
          a->u.number.integer != b->u.number.integer)
        return differ(c, at_a, at_b, "a number's value");
      if (!same_spelling(c, a, b)) return differ(c, at_a, at_b, "a number's spelling");
      break;
    case EXPR_STRING:
      if (!same_bytes(a->u.string.text, a->u.string.len, b->u.string.text, b->u.string.len))
        return differ(c, at_a, at_b, "a string's text");
      if (!same_spelling(c, a, b)) return differ(c, at_a, at_b, "a string's spelling");
      break;
    case EXPR_BOOL:
      if (a->u.boolean != b->u.boolean) return differ(c, at_a, at_b, "a boolean");
      break;
    case EXPR_NAME:
      if (!same_ident(&a->u.name, &b->u.name)) return differ(c, at_a, at_b, "a name");
      break;
    case EXPR_MEMBER:
      if (!same_ident(&a->u.member.member, &b->u.member.member)) return differ(c, at_a, at_b, "a member's name");
      push_pair(c, a->u.member.object, b->u.member.object);
      break;
    case EXPR_CALL:
      if (!same_ident(&a->u.call.callee, &b->u.call.callee)) return differ(c, at_a, at_b, "a function's name");
      if (!same_args(c, a, a->u.call.args, b, b->u.call.args)) return false;
      break;
    case EXPR_LIST:
      if (!same_args(c, a, a->u.list.items, b, b->u.list.items)) return false;
      break;
    case EXPR_UNARY:
    case EXPR_BINARY:
      if (a->u.op.op != b->u.op.op) return differ(c, at_a, at_b, "an operator");
      push_pair(c, a->u.op.rhs, b->u.op.rhs);
      push_pair(c, a->u.op.lhs, b->u.op.lhs);
      break;
    }
  }
  return true;
}

static bool same_block(struct tree_compare *c, const struct item *ia, const struct item *ib) {
  const struct block *a = &ia->block, *b = &ib->block;
  if (a->present != b->present) return differ(c, ia->span.end, ib->span.end, "a block");
  const struct entry *ea = a->entries, *eb = b->entries;
  for (; ea && eb; ea = ea->next, eb = eb->next) {
    if (!same_ident(&ea->key, &eb->key)) return differ(c, ea->span.start, eb->span.start, "a key");
    if (!same_expr(c, ea->value, eb->value)) return false;
  }
  if (ea || eb)
    return differ(c, ea ? ea->span.start : ia->span.end, eb ? eb->span.start : ib->span.end, "the number of entries");
  return true;
}

static bool same_item(struct tree_compare *c, const struct item *a, const struct item *b) {
  uint32_t at_a = a->span.start, at_b = b->span.start;
  if (a->kind != b->kind) return differ(c, at_a, at_b, "the kind of a declaration");
  if (!same_ident(&a->name, &b->name)) return differ(c, a->name.span.start, b->name.span.start, "a declaration's name");
  switch (a->kind) {
  case ITEM_PIPELINE:
    return true;
  case ITEM_IMPORT:
    return same_expr(c, a->path, b->path);
  case ITEM_MODEL:
  case ITEM_DATA:
    return same_expr(c, a->init, b->init) && same_block(c, a, b);
  case ITEM_STAGE:
    if (!same_ident(&a->kind_name, &b->kind_name)) return differ(c, at_a, at_b, "a stage kind");
    if (!same_ident(&a->from, &b->from)) return differ(c, at_a, at_b, "what a stage starts from");
    return same_block(c, a, b);
  case ITEM_ORDER: {
    const struct name_list *na = a->order, *nb = b->order;
    for (; na && nb; na = na->next, nb = nb->next)
      if (!same_ident(&na->name, &nb->name)) return differ(c, na->name.span.start, nb->name.span.start, "a name in an order");
    if (na || nb) return differ(c, at_a, at_b, "the length of an order");
    return true;
  }
  case ITEM_ASSERT:
    return same_expr(c, a->cond, b->cond);
  }
  return true;
}

static bool same_comments(struct tree_compare *c) {
  const struct source *a = c->a_src, *b = c->b_src;
  size_t n = a->n_comments < b->n_comments ? a->n_comments : b->n_comments;
  for (size_t i = 0; i < n; i++) {
    const struct comment *ca = &a->comments[i], *cb = &b->comments[i];
    if (!same_bytes(ca->text, trimmed_length(ca->text, ca->len), cb->text, trimmed_length(cb->text, cb->len)))
      return differ(c, ca->span.start, cb->span.start, "a comment");
  }
  if (a->n_comments != b->n_comments)
    return differ(c, n < a->n_comments ? a->comments[n].span.start : (uint32_t)a->len,
                  n < b->n_comments ? b->comments[n].span.start : (uint32_t)b->len, "the number of comments");
  return true;
}

bool fmt_same_tree(const struct source *a_src, const struct ast_file *a, const struct source *b_src,
                   const struct ast_file *b, struct fmt_difference *diff) {
  struct tree_compare c = {.a_src = a_src, .b_src = b_src, .diff = diff};
  bool same = true;
  const struct item *ia = a->items, *ib = b->items;
  for (; same && ia && ib; ia = ia->next, ib = ib->next) same = same_item(&c, ia, ib);
  if (same && (ia || ib))
    same = differ(&c, ia ? ia->span.start : (uint32_t)a_src->len, ib ? ib->span.start : (uint32_t)b_src->len,
                  "the number of declarations");
  if (same) same = same_comments(&c);
  free(c.stack);
  return same;
}

/* --- a unified diff of lines ----------------------------------------------------------- */

#define DIFF_CONTEXT 3
/* Past this many differing lines the shortest edit costs too much to find;
 * the rest of the middle is shown as one replacement. */
#define DIFF_MAX_EDITS 1000

struct text_line {
  const char *p;
  size_t len; /* with its '\n', when it has one */
};

enum edit { EDIT_SAME, EDIT_DELETE, EDIT_INSERT };

static struct text_line *split_lines(const char *text, size_t len, size_t *n) {
  size_t count = 0, cap = 0;
  struct text_line *lines = xgrow(NULL, &cap, 1, sizeof *lines); /* never NULL, even for no lines */
  for (size_t start = 0; start < len;) {
    const char *nl = memchr(text + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - text) + 1 : len;
    lines = xgrow(lines, &cap, count + 1, sizeof *lines);
    lines[count++] = (struct text_line){text + start, end - start};
    start = end;
  }
  *n = count;
  return lines;
}

static bool same_line(struct text_line a, struct text_line b) { return a.len == b.len && memcmp(a.p, b.p, a.len) == 0; }

/* Myers' greedy shortest edit script between a[0, n) and b[0, m), keeping
 * each round's furthest reaching paths to walk back along. Appends the
 * edits to `edits`; false if more than DIFF_MAX_EDITS are needed. */
static bool shortest_edits(const struct text_line *a, long n, const struct text_line *b, long m, unsigned char *edits,
                           size_t *n_edits) {
  long max_d = n + m < DIFF_MAX_EDITS ? n + m : DIFF_MAX_EDITS;
  long *v = xmalloc((size_t)(2 * max_d + 3) * sizeof *v);
  long *trace = xmalloc((size_t)(max_d + 1) * (size_t)(max_d + 1) * sizeof *trace); /* round d at d * d */
  long off = max_d + 1, found = -1;
  v[off + 1] = 0;
  for (long d = 0; d <= max_d && found < 0; d++) {
    for (long k = -d; k <= d; k += 2) {
      long x = k == -d || (k != d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      long y = x - k;
      while (x < n && y < m && same_line(a[x], b[y])) x++, y++;
      v[off + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
    memcpy(trace + d * d, v + off - d, (size_t)(2 * d + 1) * sizeof *v);
  }
  free(v);
  if (found < 0) {
    free(trace);
    return false;
  }
  /* Walk back from the end, writing the edits backwards. */
  size_t start = *n_edits, k_out = start;
  long x = n, y = m;
  for (long d = found; d > 0; d--) {
    const long *prev = trace + (d - 1) * (d - 1) + (d - 1); /* indexed by k */
    long k = x - y;
    bool down = k == -d || (k != d && prev[k - 1] < prev[k + 1]);
    long pk = down ? k + 1 : k - 1, px = prev[pk], py = px - pk;
    long snake_x = down ? px : px + 1;
    for (; x > snake_x; x--, y--) edits[k_out++] = EDIT_SAME;
    edits[k_out++] = down ? EDIT_INSERT : EDIT_DELETE;
    x = px;
    y = py;
  }
  for (; x > 0; x--) edits[k_out++] = EDIT_SAME;
  free(trace);
  for (size_t i = start, j = k_out - 1; i < j; i++, j--) {
    unsigned char t = edits[i];
    edits[i] = edits[j];
    edits[j] = t;
  }
  *n_edits = k_out;
  return true;
}

static unsigned char *diff_lines(const struct text_line *a, size_t na, const struct text_line *b, size_t nb,
                                 size_t *n_edits) {
  unsigned char *edits = xmalloc(na + nb + 1);
  size_t n = 0, prefix = 0, suffix = 0;
  while (prefix < na && prefix < nb && same_line(a[prefix], b[prefix])) prefix++;
  while (suffix < na - prefix && suffix < nb - prefix && same_line(a[na - 1 - suffix], b[nb - 1 - suffix])) suffix++;
  memset(edits, EDIT_SAME, prefix);
  n = prefix;
  size_t mid_a = na - prefix - suffix, mid_b = nb - prefix - suffix;
  if (!shortest_edits(a + prefix, (long)mid_a, b + prefix, (long)mid_b, edits, &n)) {
    memset(edits + n, EDIT_DELETE, mid_a);
    memset(edits + n + mid_a, EDIT_INSERT, mid_b);
    n += mid_a + mid_b;
  }
  memset(edits + n, EDIT_SAME, suffix);
  *n_edits = n + suffix;
  return edits;
}

static void print_range(FILE *out, char sign, size_t first, size_t count) {
  /* an empty range names the line before it, as diff -u does */
  if (count == 1) fprintf(out, "%c%zu", sign, first + 1);
  else fprintf(out, "%c%zu,%zu", sign, count ? first + 1 : first, count);
}

static void print_diff_line(FILE *out, char sign, struct text_line l) {
  bool newline = l.len > 0 && l.p[l.len - 1] == '\n';
  fputc(sign, out);
  fwrite(l.p, 1, l.len - newline, out);
  fputs(newline ? "\n" : "\n\\ No newline at end of file\n", out);
}

/* Prints a unified diff from `before` to `after`; whether they differ. */
static bool print_diff(FILE *out, const char *path, const char *before, size_t before_len, const char *after,
                       size_t after_len) {
  size_t na, nb, n;
  struct text_line *a = split_lines(before, before_len, &na), *b = split_lines(after, after_len, &nb);
  unsigned char *edits = diff_lines(a, na, b, nb, &n);
  bool header = false;
  size_t i = 0, ai = 0, bi = 0; /* edit i starts at line ai of a and bi of b */
  while (i < n) {
    if (edits[i] == EDIT_SAME) {
      i++, ai++, bi++;
      continue;
    }
    /* A hunk: context before, changes whose gaps are short, context after. */
    size_t back = i < DIFF_CONTEXT ? i : DIFF_CONTEXT;
    size_t start = i - back, hunk_a = ai - back, hunk_b = bi - back, end = i;
    for (;;) {
      while (end < n && edits[end] != EDIT_SAME) end++;
      size_t same = 0;
      while (end + same < n && edits[end + same] == EDIT_SAME) same++;
      if (end + same < n && same <= 2 * DIFF_CONTEXT) {
        end += same;
        continue;
      }
      end += same < DIFF_CONTEXT ? same : DIFF_CONTEXT;
      break;
    }
    size_t count_a = 0, count_b = 0;
    for (size_t j = start; j < end; j++) {
      count_a += edits[j] != EDIT_INSERT;
      count_b += edits[j] != EDIT_DELETE;
    }
    if (!header) {
      fprintf(out, "--- %s\t(original)\n+++ %s\t(formatted)\n", path, path);
      header = true;
    }
    fputs("@@ ", out);
    print_range(out, '-', hunk_a, count_a);
    fputc(' ', out);
    print_range(out, '+', hunk_b, count_b);
    fputs(" @@\n", out);
    size_t x = hunk_a, y = hunk_b;
    for (size_t j = start; j < end; j++) {
      if (edits[j] == EDIT_SAME) print_diff_line(out, ' ', a[x++]), y++;
      else if (edits[j] == EDIT_DELETE) print_diff_line(out, '-', a[x++]);
      else print_diff_line(out, '+', b[y++]);
    }
    i = end, ai = x, bi = y;
  }
  free(a);
  free(b);
  free(edits);
  return header;
}

/* --- rewriting a file ------------------------------------------------------------------- */

/* Through a symbolic link the file it points to is rewritten: replacing
 * the link with a file would cut it off from what it shared. */
static bool rewrite(const char *path, const char *text, size_t len, FILE *err) {
  char target[PATH_MAX];
  if (!realpath(path, target) || !atomic_write(target, text, len, 0644)) {
    fprintf(err, "trainpipe: cannot rewrite '%s': %s\n", path, strerror(errno));
    return false;
  }
  return true;
}

/* --- the command ---------------------------------------------------------------------- */

enum fmt_mode { FMT_PRINT, FMT_WRITE, FMT_CHECK };

static int fmt_usage_error(FILE *err, const char *fmt, const char *arg) {
  fprintf(err, "trainpipe: fmt: ");
  fprintf(err, fmt, arg);
  fprintf(err, "\nTry 'trainpipe help fmt' for usage.\n");
  return EXIT_USAGE;
}

/* The same reports as `trainpipe check` gives for a file it cannot take. */
static void report_refused(struct program *prog, struct source_result r) {
  struct source *src = prog->sources.items[r.id];
  struct span at = {r.id, r.offset, r.offset + 1, 0, 0};
  if (r.status == SOURCE_NUL_BYTE || r.status == SOURCE_BAD_UTF8) source_position(src, r.offset, &at.line, &at.col);
  struct span whole = {r.id, 0, 0, 0, 0};
  struct diag *d;
  switch (r.status) {
  case SOURCE_OK:
    break;
  case SOURCE_UNREADABLE:
    diag_emit(&prog->diags, E0010, whole, "cannot read '%s': %s", src->path, strerror(r.error));
    break;
  case SOURCE_NOT_REGULAR:
    diag_emit(&prog->diags, E0010, whole, "cannot read '%s': not a regular file", src->path);
    break;
  case SOURCE_TOO_LARGE:
    diag_emit(&prog->diags, E0010, whole, "cannot read '%s': larger than 1 GiB", src->path);
    break;
  case SOURCE_NUL_BYTE:
    d = diag_emit(&prog->diags, E0012, at, "NUL byte in '%s'", src->path);
    diag_note(&prog->diags, d, "pipeline files are text; is this a binary file?");
    break;
  case SOURCE_BAD_UTF8:
    d = diag_emit(&prog->diags, E0011, at, "invalid UTF-8 byte 0x%02X in '%s'", (unsigned char)src->text[r.offset],
                  src->path);
    diag_help(&prog->diags, d, "convert the file to UTF-8, e.g. with iconv");
    break;
  }
}

/* A guard against a printer bug ever costing a user their pipeline: the
 * canonical text must parse to the same tree before it is shown or
 * written. */
static bool keeps_meaning(const struct source *src, const struct ast_file *tree, const char *text, size_t len,
                          struct fmt_difference *diff) {
  struct source_set set = {0};
  struct arena arena = {0};
  struct diag_list diags;
  diag_list_init(&diags, &arena);
  struct source_result r = source_add(&set, src->path, text, len);
  bool same = false;
  *diff = (struct fmt_difference){0, 0, "whether it parses"};
  if (r.status == SOURCE_OK) {
    struct ast_file *again = parse_file(&set, r.id, &arena, &diags);
    same = !again->syntax_errors && !diags.count[SEV_ERROR] && fmt_same_tree(src, tree, set.items[r.id], again, diff);
  }
  source_set_free(&set);
  arena_free(&arena);
  return same;
}

static int fmt_file(const char *path, enum fmt_mode mode, FILE *out, FILE *err, const struct cli_env *env) {
  struct program prog;
  program_init(&prog, env->stdlib_dir);
  struct source_result r = source_read(&prog.sources, path, false);
  struct source *src = prog.sources.items[r.id];
  int status = EXIT_CLEAN;
  if (r.status != SOURCE_OK) {
    report_refused(&prog, r);
    render_text(err, &prog, false);
    program_free(&prog);
    return EXIT_USAGE;
  }
  struct ast_file *tree = parse_file(&prog.sources, r.id, &prog.arena, &prog.diags);
  size_t errors = prog.diags.count[SEV_ERROR];
  if (errors || tree->syntax_errors) {
    diag_sort(&prog.diags);
    render_text(err, &prog, false);
    fprintf(err, "%s: %zu error%s; not formatted\n", src->path, errors, errors == 1 ? "" : "s");
    program_free(&prog);
    return EXIT_USAGE;
  }
  size_t len;
  char *text = fmt_format(src, tree, &len);
  struct fmt_difference diff;
  if (!keeps_meaning(src, tree, text, len, &diff)) {
    uint32_t line, col;
    source_position(src, diff.a_offset, &line, &col);
    fprintf(err, "trainpipe: %s:%u:%u: internal error: the canonical layout would change %s; the file is left as it is\n",
            src->path, line, col, diff.what);
    status = EXIT_USAGE;
  } else if (mode == FMT_PRINT) {
    fwrite(text, 1, len, out);
  } else {
    bool canonical = len == src->len && memcmp(text, src->text, len) == 0;
    if (!canonical && mode == FMT_CHECK) {
      print_diff(out, src->path, src->text, src->len, text, len);
      status = EXIT_FINDINGS;
    } else if (!canonical && !rewrite(path, text, len, err)) {
      status = EXIT_USAGE;
    }
  }
  free(text);
  program_free(&prog);
  return status;
}

int fmt_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  enum fmt_mode mode = FMT_PRINT;
  bool write = false, check = false, options_done = false, from_stdin = false;
  char **files = xmalloc((size_t)argc * sizeof *files);
  int n_files = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (options_done || a[0] != '-' || a[1] == '\0') { /* "-" is standard input */
      files[n_files++] = argv[i];
      from_stdin |= strcmp(a, "-") == 0;
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(fmt_usage, out);
      free(files);
      return EXIT_CLEAN;
    } else if (strcmp(a, "-w") == 0 || strcmp(a, "--write") == 0) {
      write = true;
    } else if (strcmp(a, "--check") == 0) {
      check = true;
    } else {
      free(files);
      return fmt_usage_error(err, "unknown option '%s'", a);
    }
  }
  int status = EXIT_CLEAN;
  if (write && check) status = fmt_usage_error(err, "%s", "-w and --check exclude each other");
  else if (n_files == 0) status = fmt_usage_error(err, "%s", "no pipeline file given");
  else if (write && from_stdin) status = fmt_usage_error(err, "%s", "-w cannot rewrite standard input");
  if (status != EXIT_CLEAN) {
    free(files);
    return status;
  }
  mode = write ? FMT_WRITE : check ? FMT_CHECK : FMT_PRINT;
  for (int i = 0; i < n_files; i++) {
    int file_status = fmt_file(files[i], mode, out, err, env);
    if (file_status > status) status = file_status;
  }
  free(files);
  if (fflush(out) != 0) {
    fprintf(err, "trainpipe: fmt: cannot write the output: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  return status;
}
