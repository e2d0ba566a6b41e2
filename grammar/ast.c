#include "grammar/ast.h"

#include <string.h>

bool ident_eq(const struct ident *a, const struct ident *b) {
  return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

bool ident_is(const struct ident *a, const char *text) {
  size_t n = strlen(text);
  return a->len == n && memcmp(a->text, text, n) == 0;
}
