/* `trainpipe fmt`: one canonical layout for pipeline files. */
#ifndef TRAINPIPE_FMT_H
#define TRAINPIPE_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "grammar/ast.h"
#include "interp/cli.h"

extern const char fmt_usage[];

/* argv[0] is "fmt"; the rest are its options and files. Returns an exit
 * status (enum exit_status). */
int fmt_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env);

/* The canonical text of a file that parsed without lexical or syntax
 * errors: xmalloc'd, `*len` bytes, not NUL-terminated. A file with errors
 * must not be given: its tree lacks what did not parse. */
char *fmt_format(const struct source *src, const struct ast_file *tree, size_t *len);

/* Where two trees part, as byte offsets into each source, and what
 * differs there ("a name", "a number's spelling", "a comment"...). */
struct fmt_difference {
  uint32_t a_offset, b_offset;
  const char *what;
};

/* Whether two parses say the same thing: the same declarations, names,
 * values (numbers by value and spelling, strings by text and spelling) and
 * comments (without trailing white space), in the same order; spans and
 * layout aside. On a difference, `diff` (may be NULL) says where. */
bool fmt_same_tree(const struct source *a_src, const struct ast_file *a, const struct source *b_src,
                   const struct ast_file *b, struct fmt_difference *diff);

#endif
