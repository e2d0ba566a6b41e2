/* The grammar of .pipe files (see trainpipe.pipe(5)). Newlines are not
 * significant: declarations start with a keyword, block entries with a key.
 * Every node is built with its span. Error recovery resynchronises at the
 * next declaration, or at the next entry inside a block. */
%require "3.8"
%define api.pure full
%define api.location.type {struct span}
%define parse.error custom
%define parse.lac full
%expect 0
%locations
%lex-param {yyscan_t scanner}
%parse-param {yyscan_t scanner} {struct parse_state *ps}

%code requires {
#include "grammar/ast.h"
#include "grammar/parse_state.h"
typedef void *yyscan_t;

struct arg_list { struct arg *head, *tail; };
struct entry_list { struct entry *head, *tail; };
struct name_chain { struct name_list *head, *tail; };

#define YYLLOC_DEFAULT(Cur, Rhs, N)                        \
  do {                                                     \
    if (N) {                                               \
      (Cur) = YYRHSLOC(Rhs, 1);                            \
      (Cur).end = YYRHSLOC(Rhs, N).end;                    \
    } else {                                               \
      (Cur) = YYRHSLOC(Rhs, 0);                            \
      (Cur).start = (Cur).end;                             \
    }                                                      \
  } while (0)
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
yyscan_t lex_begin(struct parse_state *ps);
void lex_end(yyscan_t scanner);
}

%code {
#include <stdio.h>
#include <string.h>

#include "grammar/parse.h"

static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct parse_state *ps, const char *msg);
#define SYNC(loc) do { if ((loc).start != ps->last_error_at) yyerrok; } while (0)
static struct expr *new_expr(struct parse_state *ps, enum expr_kind kind, struct span span);
static struct expr *new_op(struct parse_state *ps, enum expr_op op, struct expr *lhs, struct expr *rhs, struct span span);
static struct arg *new_arg(struct parse_state *ps, const struct ident *name, struct expr *value, struct span span);
static void add_arg(struct arg_list *list, struct arg *arg);
static struct item *new_item(struct parse_state *ps, enum item_kind kind, struct span span, struct span keyword);
static void add_item(struct parse_state *ps, struct item *item);
}

%union {
  struct ident ident;
  struct expr *expr;
  struct arg *arg;
  struct arg_list args;
  struct entry *entry;
  struct entry_list entries;
  struct block block;
  struct name_chain names;
  struct item *item;
}

%token KW_PIPELINE "'pipeline'" KW_IMPORT "'import'" KW_MODEL "'model'" KW_DATA "'data'"
%token KW_STAGE "'stage'" KW_ORDER "'order'" KW_ASSERT "'assert'"
%token KW_TRUE "'true'" KW_FALSE "'false'" KW_AND "'and'" KW_OR "'or'" KW_NOT "'not'"
%token LE "'<='" GE "'>='" EQ "'=='" NE "'!='"
%token <ident> IDENT "identifier"
%token <expr> NUMBER "number" PERCENT "percentage" STRING "string"

%type <item> item
%type <expr> initializer call value expr atom
%type <arg> arg
%type <args> args args_opt values values_opt
%type <entry> entry
%type <entries> entries
%type <block> block block_opt
%type <names> order_chain
%type <ident> key

%left KW_OR
%left KW_AND
%precedence KW_NOT
%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%left '*' '/'
%precedence NEG

%%

file:
  %empty
| file item               { if ($2) add_item(ps, $2); }
;

item:
  sync_pipeline IDENT     { $$ = new_item(ps, ITEM_PIPELINE, @$, @1); $$->name = $2; }
| sync_import STRING      { $$ = new_item(ps, ITEM_IMPORT, @$, @1); $$->path = $2; }
| sync_model IDENT '=' initializer block_opt
                          { $$ = new_item(ps, ITEM_MODEL, @$, @1); $$->name = $2; $$->init = $4; $$->block = $5; }
| KW_DATA IDENT '=' initializer block_opt
                          { $$ = new_item(ps, ITEM_DATA, @$, @1); $$->name = $2; $$->init = $4; $$->block = $5; }
| sync_stage IDENT '=' IDENT '(' IDENT ')' block_opt
                          { $$ = new_item(ps, ITEM_STAGE, @$, @1); $$->name = $2; $$->kind_name = $4; $$->from = $6; $$->block = $8; }
| sync_order order_chain  { $$ = new_item(ps, ITEM_ORDER, @$, @1); $$->order = $2.head; }
| sync_assert expr        { $$ = new_item(ps, ITEM_ASSERT, @$, @1); $$->cond = $2; }
| error                   { $$ = NULL; }
;

/* A declaration keyword ends error recovery at once, so that an error in
 * the declaration it starts is reported, however short the previous one
 * was; unless the keyword is itself the token the error was reported at.
 * 'data' does not: it is also a key, and an error inside a block would
 * resume there. */
sync_pipeline: KW_PIPELINE { SYNC(@1); } ;
sync_import:   KW_IMPORT   { SYNC(@1); } ;
sync_model:    KW_MODEL    { SYNC(@1); } ;
sync_stage:    KW_STAGE    { SYNC(@1); } ;
sync_order:    KW_ORDER    { SYNC(@1); } ;
sync_assert:   KW_ASSERT   { SYNC(@1); } ;

initializer:
  IDENT                   { $$ = new_expr(ps, EXPR_NAME, @$); $$->u.name = $1; }
| call
;

call:
  IDENT '(' args_opt ')'  { $$ = new_expr(ps, EXPR_CALL, @$); $$->u.call.callee = $1; $$->u.call.args = $3.head; $$->u.call.open = @2; }
;

args_opt:
  %empty                  { $$ = (struct arg_list){0}; }
| args
| args ','
;

args:
  arg                     { $$ = (struct arg_list){0}; add_arg(&$$, $1); }
| args ',' arg            { $$ = $1; add_arg(&$$, $3); }
;

arg:
  value                   { $$ = new_arg(ps, NULL, $1, @$); }
| key '=' value           { $$ = new_arg(ps, &$1, $3, @$); }
;

block_opt:
  %empty                  { $$ = (struct block){0}; }
| block
;

block:
  '{' entries '}'         { $$ = (struct block){.entries = $2.head, .open = @1, .present = true}; }
;

entries:
  %empty                  { $$ = (struct entry_list){0}; }
| entries entry           { $$ = $1; if ($$.tail) $$.tail->next = $2; else $$.head = $2; $$.tail = $2; }
;

/* No recovery inside a block: an error there is most often a missing '}',
 * and resuming at the next declaration keeps one mistake one message. */
entry:
  key '=' value           { $$ = arena_alloc(ps->arena, sizeof *$$); $$->key = $1; $$->value = $3; $$->span = @$; }
;

/* 'data' is both a declaration and the key that names a stage's data. */
key:
  IDENT
| KW_DATA                 { $$ = (struct ident){ps->src->text + @1.start, @1.end - @1.start, @1}; }
;

value:
  NUMBER
| PERCENT
| STRING
| KW_TRUE                 { $$ = new_expr(ps, EXPR_BOOL, @$); $$->u.boolean = true; }
| KW_FALSE                { $$ = new_expr(ps, EXPR_BOOL, @$); $$->u.boolean = false; }
| IDENT                   { $$ = new_expr(ps, EXPR_NAME, @$); $$->u.name = $1; }
| call
| '-' NUMBER              { $$ = $2; $$->span = @$; $$->u.number.value = -$$->u.number.value; }
| '-' PERCENT             { $$ = $2; $$->span = @$; $$->u.number.value = -$$->u.number.value; }
| '[' values_opt ']'      { $$ = new_expr(ps, EXPR_LIST, @$); $$->u.list.items = $2.head; }
;

values_opt:
  %empty                  { $$ = (struct arg_list){0}; }
| values
| values ','
;

values:
  value                   { $$ = (struct arg_list){0}; add_arg(&$$, new_arg(ps, NULL, $1, @1)); }
| values ',' value        { $$ = $1; add_arg(&$$, new_arg(ps, NULL, $3, @3)); }
;

order_chain:
  IDENT '<' IDENT         { struct name_list *a = arena_alloc(ps->arena, sizeof *a), *b = arena_alloc(ps->arena, sizeof *b);
                            a->name = $1; b->name = $3; a->next = b; $$ = (struct name_chain){a, b}; }
| order_chain '<' IDENT   { struct name_list *n = arena_alloc(ps->arena, sizeof *n); n->name = $3;
                            $$ = $1; $$.tail->next = n; $$.tail = n; }
;

expr:
  expr KW_OR expr         { $$ = new_op(ps, OP_OR, $1, $3, @$); }
| expr KW_AND expr        { $$ = new_op(ps, OP_AND, $1, $3, @$); }
| KW_NOT expr             { $$ = new_op(ps, OP_NOT, NULL, $2, @$); }
| expr '<' expr           { $$ = new_op(ps, OP_LT, $1, $3, @$); }
| expr '>' expr           { $$ = new_op(ps, OP_GT, $1, $3, @$); }
| expr LE expr            { $$ = new_op(ps, OP_LE, $1, $3, @$); }
| expr GE expr            { $$ = new_op(ps, OP_GE, $1, $3, @$); }
| expr EQ expr            { $$ = new_op(ps, OP_EQ, $1, $3, @$); }
| expr NE expr            { $$ = new_op(ps, OP_NE, $1, $3, @$); }
| expr '+' expr           { $$ = new_op(ps, OP_ADD, $1, $3, @$); }
| expr '-' expr           { $$ = new_op(ps, OP_SUB, $1, $3, @$); }
| expr '*' expr           { $$ = new_op(ps, OP_MUL, $1, $3, @$); }
| expr '/' expr           { $$ = new_op(ps, OP_DIV, $1, $3, @$); }
| '-' expr %prec NEG      { $$ = new_op(ps, OP_NEG, NULL, $2, @$); }
| atom
;

atom:
  NUMBER
| PERCENT
| STRING
| KW_TRUE                 { $$ = new_expr(ps, EXPR_BOOL, @$); $$->u.boolean = true; }
| KW_FALSE                { $$ = new_expr(ps, EXPR_BOOL, @$); $$->u.boolean = false; }
| IDENT                   { $$ = new_expr(ps, EXPR_NAME, @$); $$->u.name = $1; }
| call
| atom '.' key            { $$ = new_expr(ps, EXPR_MEMBER, @$); $$->u.member.object = $1; $$->u.member.member = $3; }
| '(' expr ')'            { $$ = $2; }
;

%%

static struct expr *new_expr(struct parse_state *ps, enum expr_kind kind, struct span span) {
  struct expr *e = arena_alloc(ps->arena, sizeof *e);
  e->kind = kind;
  e->span = span;
  return e;
}

static struct expr *new_op(struct parse_state *ps, enum expr_op op, struct expr *lhs, struct expr *rhs,
                           struct span span) {
  struct expr *e = new_expr(ps, lhs ? EXPR_BINARY : EXPR_UNARY, span);
  e->u.op.op = op;
  e->u.op.lhs = lhs;
  e->u.op.rhs = rhs;
  return e;
}

static struct arg *new_arg(struct parse_state *ps, const struct ident *name, struct expr *value,
                           struct span span) {
  struct arg *a = arena_alloc(ps->arena, sizeof *a);
  if (name) a->name = *name;
  a->value = value;
  a->span = span;
  return a;
}

static void add_arg(struct arg_list *list, struct arg *arg) {
  if (list->tail) list->tail->next = arg;
  else list->head = arg;
  list->tail = arg;
}

static struct item *new_item(struct parse_state *ps, enum item_kind kind, struct span span,
                             struct span keyword) {
  struct item *it = arena_alloc(ps->arena, sizeof *it);
  it->kind = kind;
  it->span = span;
  it->keyword = keyword;
  return it;
}

static void add_item(struct parse_state *ps, struct item *item) {
  if (ps->last_item) ps->last_item->next = item;
  else ps->tree->items = item;
  ps->last_item = item;
}

/* Symbol names are written as they should appear in messages; bison keeps the
 * double quotes of an alias, which are dropped here. */
static const char *symbol_text(yysymbol_kind_t kind, int *len) {
  const char *name = yysymbol_name(kind);
  size_t n = strlen(name);
  if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
    *len = (int)n - 2;
    return name + 1;
  }
  *len = (int)n;
  return name;
}

static bool is_declaration_keyword(yysymbol_kind_t kind) {
  switch (kind) {
  case YYSYMBOL_KW_PIPELINE: case YYSYMBOL_KW_IMPORT: case YYSYMBOL_KW_MODEL: case YYSYMBOL_KW_DATA:
  case YYSYMBOL_KW_STAGE: case YYSYMBOL_KW_ORDER: case YYSYMBOL_KW_ASSERT:
    return true;
  default:
    return false;
  }
}

static bool is_value_start(yysymbol_kind_t kind) {
  switch (kind) {
  case YYSYMBOL_KW_TRUE: case YYSYMBOL_KW_FALSE: case YYSYMBOL_KW_NOT: case YYSYMBOL_IDENT:
  case YYSYMBOL_NUMBER: case YYSYMBOL_PERCENT: case YYSYMBOL_STRING:
    return true;
  default: {
    const char *name = yysymbol_name(kind);
    return strcmp(name, "'-'") == 0 || strcmp(name, "'['") == 0 || strcmp(name, "'('") == 0;
  }
  }
}

/* Appends alternative `index` of `count` to an "a, b or c" list. */
static void list_add(char *buf, size_t size, size_t *used, int index, int count, const char *text, int len) {
  const char *sep = index == 0 ? "" : index == count - 1 ? " or " : ", ";
  int w = snprintf(buf + *used, size - *used, "%s%.*s", sep, len, text);
  if (w > 0 && (size_t)w < size - *used) *used += (size_t)w;
}

/* What the parser could have accepted, with the declaration keywords folded
 * into "a declaration" and the tokens that start a value into "a value";
 * `closer` is reported back when it is among them. */
static size_t describe_expected(const yypcontext_t *ctx, char closer, bool *closes, char *buf, size_t size) {
  yysymbol_kind_t expected[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, expected, YYNTOKENS);
  if (n < 0) n = 0;
  /* Where a declaration may start, all the keywords are expected; inside a
   * block 'data' alone is, as a key. */
  bool fold = false, has_ident = false, fold_value = false;
  for (int i = 0; i < n; i++) {
    fold |= expected[i] == YYSYMBOL_KW_STAGE;
    has_ident |= expected[i] == YYSYMBOL_IDENT;
    fold_value |= expected[i] == YYSYMBOL_NUMBER;
  }
  int keep = 0;
  for (int i = 0; i < n; i++) {
    yysymbol_kind_t k = expected[i];
    if ((fold && is_declaration_keyword(k)) || (has_ident && !fold && k == YYSYMBOL_KW_DATA) ||
        (fold_value && is_value_start(k)))
      continue;
    expected[keep++] = k;
  }
  int count = keep + fold + fold_value, index = 0;
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < keep; i++) {
    int len;
    const char *text = symbol_text(expected[i], &len);
    if (closer && len == 3 && text[1] == closer) *closes = true;
    list_add(buf, size, &used, index++, count, text, len);
  }
  if (fold_value) list_add(buf, size, &used, index++, count, "a value", 7);
  if (fold) list_add(buf, size, &used, index++, count, "a declaration", 13);
  return used;
}

/* The token the parser stopped at, as the user wrote it. */
static void describe_found(const struct parse_state *ps, const YYLTYPE *loc, yysymbol_kind_t got, char *buf,
                           size_t size) {
  const char *text = ps->src->text + loc->start;
  int len = (int)(loc->end - loc->start);
  if (len > 40) { /* cut long tokens at a character boundary */
    len = 40;
    while (len > 0 && !utf8_starts_char((unsigned char)text[len])) len--;
  }
  if (got == YYSYMBOL_YYEOF) snprintf(buf, size, "end of file");
  else if (got == YYSYMBOL_IDENT) snprintf(buf, size, "identifier '%.*s'", len, text);
  else if (got == YYSYMBOL_NUMBER || got == YYSYMBOL_PERCENT) snprintf(buf, size, "number %.*s", len, text);
  else if (got == YYSYMBOL_STRING) snprintf(buf, size, "string %.*s", len, text);
  else snprintf(buf, size, "'%.*s'", len, text);
}

/* "expected '=' or '{', found identifier 'heads'"; a missing closing
 * bracket also points at the bracket it would close. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, struct parse_state *ps) {
  (void)scanner;
  if (ps->stop) return 0;
  const YYLTYPE *loc = yypcontext_location(ctx);
  ps->syntax_errors++;
  if (++ps->errors > PARSE_MAX_ERRORS) {
    diag_emit(ps->diags, N0005, *loc, "too many errors; the rest of the file is not checked");
    ps->stop = true;
    return 0;
  }
  ps->last_error_at = loc->start;

  struct bracket *open = ps->n_brackets ? &ps->brackets[ps->n_brackets - 1] : NULL;
  char closer = open ? (open->open == '{' ? '}' : open->open == '(' ? ')' : ']') : 0;
  bool closes = false;
  char expected[512], found[160];
  size_t n = describe_expected(ctx, closer, &closes, expected, sizeof expected);
  describe_found(ps, loc, yypcontext_token(ctx), found, sizeof found);
  struct diag *d = n ? diag_emit(ps->diags, E0001, *loc, "expected %s, found %s", expected, found)
                     : diag_emit(ps->diags, E0001, *loc, "unexpected %s", found);
  if (closes) diag_label(ps->diags, d, open->span, "unclosed '%c' opened here", open->open);
  return 0;
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct parse_state *ps, const char *msg) {
  (void)scanner;
  if (ps->stop) return;
  ps->syntax_errors++;
  ps->stop = true;
  /* Bison's only own message here is about its stack: the input nests
   * deeper than any pipeline needs. */
  diag_emit(ps->diags, E0001, *loc, "%s: the input nests too deeply", msg);
}

struct ast_file *parse_file(struct source_set *sources, uint32_t file, struct arena *arena,
                            struct diag_list *diags) {
  struct parse_state ps = {
      .arena = arena,
      .src = sources->items[file],
      .file = file,
      .diags = diags,
      .offset = 0,
      .line = 1,
      .col = 1,
      .last_error_at = UINT32_MAX,
  };
  ps.tree = arena_alloc(arena, sizeof *ps.tree);
  ps.tree->file = file;
  yyscan_t scanner = lex_begin(&ps);
  yyparse(scanner, &ps);
  lex_end(scanner);
  free(ps.brackets);
  /* a file abandoned at the error cap counts as one with syntax errors */
  ps.tree->syntax_errors = ps.syntax_errors + (ps.stop && ps.syntax_errors == 0);
  return ps.tree;
}
