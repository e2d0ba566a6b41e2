/* What the scanner and the parser share while one file is parsed. Private to
 * grammar/. */
#ifndef TRAINPIPE_PARSE_STATE_H
#define TRAINPIPE_PARSE_STATE_H

#include "grammar/ast.h"
#include "interp/diag.h"

struct bracket {
  char open; /* '{', '(' or '[' */
  struct span span;
};

struct parse_state {
  struct arena *arena;
  struct source *src;
  uint32_t file;
  struct diag_list *diags;
  struct ast_file *tree;
  struct item *last_item;

  /* The scanner's position: the next byte to be matched. */
  uint32_t offset, line, col;

  /* Open brackets, so a syntax error can name what a missing closer closes. */
  struct bracket *brackets;
  size_t n_brackets, cap_brackets;

  unsigned syntax_errors;
  unsigned errors; /* lexical and syntax errors, for the cap */
  uint32_t last_error_at; /* offset of the token the last syntax error was reported at */
  bool stop; /* too many errors: the scanner reports end of input */
};

#endif
