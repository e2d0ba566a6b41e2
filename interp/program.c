#include "interp/program.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/parse.h"

#define MAX_IMPORT_DEPTH 64

void program_init(struct program *prog, const char *stdlib_dir) {
  memset(prog, 0, sizeof *prog);
  diag_list_init(&prog->diags, &prog->arena);
  prog->stdlib_dir = stdlib_dir;
}

void program_free(struct program *prog) {
  for (size_t i = 0; i < prog->n_loaded; i++) free(prog->loaded[i]);
  free(prog->loaded);
  free(prog->loaded_source);
  free(prog->stack);
  free(prog->files);
  source_set_free(&prog->sources);
  arena_free(&prog->arena);
}

static struct span whole_file(uint32_t file) { return (struct span){file, 0, 0, 0, 0}; }

static struct span at_offset(struct program *prog, uint32_t file, uint32_t offset) {
  struct span s = {file, offset, offset + 1, 0, 0};
  source_position(prog->sources.items[file], offset, &s.line, &s.col);
  return s;
}

/* Reports why a file's content was refused; returns false if it was. */
static bool accept_source(struct program *prog, struct source_result r, const struct span *import) {
  const char *path = prog->sources.items[r.id]->path;
  struct diag *d;
  switch (r.status) {
  case SOURCE_OK:
    return true;
  case SOURCE_UNREADABLE:
    d = diag_emit(&prog->diags, E0010, import ? *import : whole_file(r.id), "cannot read '%s': %s", path,
                  strerror(r.error));
    if (import && prog->stdlib_dir && strncmp(path, prog->stdlib_dir, strlen(prog->stdlib_dir)) == 0)
      diag_help(&prog->diags, d, "\"std/NAME.pipe\" names a file of the standard library in %s; TRAINPIPE_STDLIB chooses another folder", prog->stdlib_dir);
    else if (import)
      diag_help(&prog->diags, d, "import paths are relative to the importing file; \"std/NAME.pipe\" names the standard library");
    return false;
  case SOURCE_NOT_REGULAR:
    diag_emit(&prog->diags, E0010, import ? *import : whole_file(r.id), "cannot import '%s': not a regular file", path);
    return false;
  case SOURCE_TOO_LARGE:
    diag_emit(&prog->diags, E0010, import ? *import : whole_file(r.id), "cannot read '%s': larger than 1 GiB", path);
    return false;
  case SOURCE_NUL_BYTE:
    d = diag_emit(&prog->diags, E0012, at_offset(prog, r.id, r.offset), "NUL byte in '%s'", path);
    diag_note(&prog->diags, d, "pipeline files are text; is this a binary file?");
    if (import) diag_label(&prog->diags, d, *import, "imported here");
    return false;
  case SOURCE_BAD_UTF8:
    d = diag_emit(&prog->diags, E0011, at_offset(prog, r.id, r.offset), "invalid UTF-8 byte 0x%02X in '%s'",
                  (unsigned char)prog->sources.items[r.id]->text[r.offset], path);
    diag_help(&prog->diags, d, "convert the file to UTF-8, e.g. with iconv");
    if (import) diag_label(&prog->diags, d, *import, "imported here");
    return false;
  }
  return false;
}

/* "dir/of/importer" + "name" without a leading "./". */
static char *join_path(struct arena *arena, const char *importer, const char *path) {
  if (path[0] == '/') return arena_strndup(arena, path, strlen(path));
  const char *slash = strrchr(importer, '/');
  if (!slash) return arena_strndup(arena, path, strlen(path));
  return arena_printf(arena, "%.*s/%s", (int)(slash - importer), importer, path);
}

static char *resolve_import(struct program *prog, const char *importer, const struct expr *path) {
  const char *text = path->u.string.text;
  if (strncmp(text, "std/", 4) == 0)
    return arena_printf(&prog->arena, "%s/%s", prog->stdlib_dir ? prog->stdlib_dir : ".", text + 4);
  return join_path(&prog->arena, importer, text);
}

static void load_file(struct program *prog, const char *path, const struct span *import);

static void load_imports(struct program *prog, struct ast_file *tree) {
  const char *importer = prog->sources.items[tree->file]->path;
  for (struct item *it = tree->items; it; it = it->next) {
    if (it->kind != ITEM_IMPORT || it->path->invalid) continue;
    if (strlen(it->path->u.string.text) != it->path->u.string.len || it->path->u.string.len == 0) {
      diag_emit(&prog->diags, E0010, it->path->span, "invalid import path");
      continue;
    }
    load_file(prog, resolve_import(prog, importer, it->path), &it->path->span);
  }
}

/* The chain is named by the paths as the user wrote them, from the file
 * that is imported again back to itself. */
static const char *stack_path(struct program *prog, size_t i) {
  return prog->sources.items[prog->loaded_source[prog->stack[i]]]->path;
}

static void import_cycle(struct program *prog, size_t from, const char *path, const struct span *import) {
  size_t len = strlen(path) + 1;
  for (size_t i = from; i < prog->n_stack; i++) len += strlen(stack_path(prog, i)) + 4;
  char *chain = arena_alloc(&prog->arena, len);
  char *p = chain;
  for (size_t i = from; i < prog->n_stack; i++) p += sprintf(p, "%s -> ", stack_path(prog, i));
  strcpy(p, path);
  struct diag *d = diag_emit(&prog->diags, E0013, *import, "import cycle: %s", chain);
  diag_help(&prog->diags, d, "move what both files need into a third file that both import");
}

static void load_file(struct program *prog, const char *path, const struct span *import) {
  char resolved[PATH_MAX];
  const char *identity = realpath(path, resolved) ? resolved : path;

  for (size_t i = 0; i < prog->n_stack; i++) {
    if (strcmp(prog->loaded[prog->stack[i]], identity) == 0) {
      import_cycle(prog, i, path, import);
      return;
    }
  }
  for (size_t i = 0; i < prog->n_loaded; i++)
    if (strcmp(prog->loaded[i], identity) == 0) return; /* each file is loaded once */
  if (prog->n_stack >= MAX_IMPORT_DEPTH) {
    diag_emit(&prog->diags, E0013, *import, "imports nest deeper than %d files", MAX_IMPORT_DEPTH);
    return;
  }

  struct source_result r = source_read(&prog->sources, path, import != NULL);
  char *id_copy = xmalloc(strlen(identity) + 1);
  strcpy(id_copy, identity);
  prog->loaded = xgrow(prog->loaded, &prog->cap_loaded, prog->n_loaded + 1, sizeof *prog->loaded);
  prog->loaded_source = xrealloc(prog->loaded_source, prog->cap_loaded * sizeof *prog->loaded_source);
  prog->loaded[prog->n_loaded] = id_copy;
  prog->loaded_source[prog->n_loaded++] = r.id;

  if (!accept_source(prog, r, import)) {
    if (!import) prog->main_refused = true;
    prog->import_failed = true;
    return;
  }
  struct ast_file *tree = parse_file(&prog->sources, r.id, &prog->arena, &prog->diags);
  prog->files = xgrow(prog->files, &prog->cap_files, prog->n_files + 1, sizeof *prog->files);
  prog->files[prog->n_files++] = tree;

  prog->stack = xgrow(prog->stack, &prog->cap_stack, prog->n_stack + 1, sizeof *prog->stack);
  prog->stack[prog->n_stack++] = prog->n_loaded - 1;
  load_imports(prog, tree);
  prog->n_stack--;
}

void program_load(struct program *prog, const char *path) { load_file(prog, path, NULL); }

char *program_resolve_path(struct program *prog, const struct item *item, const char *path) {
  if (path[0] == '/') return arena_strndup(&prog->arena, path, strlen(path));
  const char *file = prog->sources.items[item->span.file]->path;
  const char *slash = strrchr(file, '/');
  if (!slash) return arena_strndup(&prog->arena, path, strlen(path));
  return arena_printf(&prog->arena, "%.*s/%s", (int)(slash - file), file, path);
}
