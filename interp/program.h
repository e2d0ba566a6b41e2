/* A program: the file named on the command line and every file it imports,
 * read, validated as UTF-8 text and parsed, with the diagnostics of all of
 * them in one list. Imports resolve relative to the importing file, or into
 * the standard library for "std/NAME.pipe". */
#ifndef TRAINPIPE_PROGRAM_H
#define TRAINPIPE_PROGRAM_H

#include "grammar/ast.h"
#include "interp/diag.h"

struct program {
  struct arena arena;
  struct source_set sources;
  struct diag_list diags;
  struct ast_file **files; /* in load order; the main file first */
  size_t n_files, cap_files;
  const char *stdlib_dir;
  bool main_refused;  /* the main file could not be read as text */
  bool import_failed; /* a file's declarations are missing */

  /* identities (real paths) of the files loaded and of the import chain */
  char **loaded;
  uint32_t *loaded_source;
  size_t n_loaded, cap_loaded;
  size_t *stack; /* indices into loaded */
  size_t n_stack, cap_stack;
};

void program_init(struct program *prog, const char *stdlib_dir);
void program_load(struct program *prog, const char *path);
void program_free(struct program *prog);

/* PATH as written in a declaration of ITEM's file: relative to that file's
 * folder unless absolute; in the program's arena. */
char *program_resolve_path(struct program *prog, const struct item *item, const char *path);

/* Whether a file is the one named on the command line. */
static inline bool program_is_main(const struct program *prog, uint32_t file) {
  return prog->n_files > 0 && prog->files[0]->file == file;
}

#endif
