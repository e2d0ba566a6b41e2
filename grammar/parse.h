/* Parsing one source file into a syntax tree. Lexical and syntax errors are
 * reported as diagnostics; parsing recovers at the next declaration (or
 * block entry) and stops after PARSE_MAX_ERRORS syntax errors. The tree of a
 * file with errors holds every declaration that parsed. */
#ifndef TRAINPIPE_PARSE_H
#define TRAINPIPE_PARSE_H

#include "grammar/ast.h"
#include "interp/diag.h"

#define PARSE_MAX_ERRORS 20

struct ast_file *parse_file(struct source_set *sources, uint32_t file, struct arena *arena,
                            struct diag_list *diags);

#endif
