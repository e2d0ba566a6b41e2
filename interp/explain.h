/* `trainpipe explain`: a page per diagnostic code (explain.def) saying what
 * the rule checks, why, and an example with its fix. */
#ifndef TRAINPIPE_EXPLAIN_H
#define TRAINPIPE_EXPLAIN_H

#include <stdio.h>

#include "interp/diag.h"

/* The page of a code, plain text ending in a newline; NULL if it has none. */
const char *explain_page(enum diag_code code);
/* "CODE (level): short-name — summary", a blank line, then the page. */
void explain_print(FILE *out, enum diag_code code);
/* Every code, one per line: code, level, short name and summary, in
 * aligned columns. */
void explain_list(FILE *out);

#endif
