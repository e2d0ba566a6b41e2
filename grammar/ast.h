/* The syntax tree of one pipeline file. Every node lives in the parse's
 * arena and carries its span; identifiers point into the source text, which
 * outlives the tree. Lists are singly linked in source order. */
#ifndef TRAINPIPE_AST_H
#define TRAINPIPE_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "grammar/source.h"

struct ident {
  const char *text; /* into the source; not NUL-terminated */
  uint32_t len;
  struct span span;
};

enum expr_kind {
  EXPR_NUMBER,  /* 3e-3, 2M, 12 */
  EXPR_PERCENT, /* 80% (value holds 80) */
  EXPR_STRING,
  EXPR_BOOL,
  EXPR_NAME,   /* web */
  EXPR_MEMBER, /* judge.accuracy */
  EXPR_CALL,   /* frozen(x), adamw(lr = 3e-3) */
  EXPR_LIST,   /* [a, b] */
  EXPR_UNARY,  /* -x, not x */
  EXPR_BINARY, /* x >= 0.65 */
};

enum expr_op {
  OP_NEG, OP_NOT, OP_ADD, OP_SUB, OP_MUL, OP_DIV,
  OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR,
};

struct arg {
  struct ident name; /* name.text is NULL for a positional argument */
  struct expr *value;
  struct span span;
  struct arg *next;
};

struct expr {
  enum expr_kind kind;
  struct span span;
  bool invalid; /* a literal the scanner already reported; checks skip it */
  union {
    struct {
      double value;
      bool integer; /* written without a fraction or exponent, or scaled to a whole value */
    } number;
    struct {
      const char *text; /* decoded, NUL-terminated, in the arena */
      uint32_t len;
    } string;
    bool boolean;
    struct ident name;
    struct {
      struct expr *object;
      struct ident member;
    } member;
    struct {
      struct ident callee;
      struct arg *args;
      struct span open; /* the '(' */
    } call;
    struct {
      struct arg *items; /* positional args */
    } list;
    struct {
      enum expr_op op;
      struct expr *lhs, *rhs; /* lhs is NULL for unary operators */
    } op;
  } u;
};

struct entry {
  struct ident key;
  struct expr *value;
  struct span span;
  struct entry *next;
};

struct block {
  struct entry *entries;
  struct span open; /* the '{' */
  bool present;
};

enum item_kind { ITEM_PIPELINE, ITEM_IMPORT, ITEM_MODEL, ITEM_DATA, ITEM_STAGE, ITEM_ORDER, ITEM_ASSERT };

struct name_list {
  struct ident name;
  struct name_list *next;
};

struct item {
  enum item_kind kind;
  struct span span;     /* the whole item */
  struct span keyword;  /* 'stage', 'model'... */
  struct ident name;    /* pipeline, model, data and stage names */
  struct expr *init;    /* model and data: what follows '=' */
  struct ident kind_name; /* stage: the stage kind */
  struct ident from;      /* stage: the model it starts from */
  struct block block;     /* model, data, stage */
  struct expr *path;      /* import: the string */
  struct name_list *order; /* order: a < b < c */
  struct expr *cond;       /* assert */
  struct item *next;
};

struct ast_file {
  uint32_t file; /* source id */
  struct item *items;
  unsigned syntax_errors;
};

bool ident_eq(const struct ident *a, const struct ident *b);
bool ident_is(const struct ident *a, const char *text);

#endif
