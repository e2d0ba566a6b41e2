/* The data, looked at before any compute is spent: every path and glob
 * resolves to readable files; JSONL files are read one line at a time
 * (constant memory, whatever their size) and every line must parse and
 * carry the fields its kind needs, with TRL's names; a data set with no
 * examples is an error. Paths are relative to the file that declares them. */
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "interp/checker.h"

#define MAX_LINE_ERRORS 10 /* per file; then a count */

/* The fields an example of each kind must carry: alternatives separated by
 * '|', fields within one alternative by ','. */
static const char *fields_of(enum owner_id kind) {
  switch (kind) {
  case OWNER_DEMOS: return "prompt,response|messages";
  case OWNER_PREFS: return "prompt,chosen,rejected";
  case OWNER_FEEDBACK: return "prompt,completion,label";
  case OWNER_PROMPTS: return "prompt";
  default: return NULL;
  }
}

/* Which alternative the object satisfies; otherwise the first field missing
 * from the alternative it comes closest to. */
static const char *missing_field(json_t *obj, const char *fields, char *buf, size_t size) {
  const char *best = NULL;
  size_t best_have = 0;
  for (const char *alt = fields; *alt;) {
    const char *end = strchr(alt, '|');
    size_t len = end ? (size_t)(end - alt) : strlen(alt);
    size_t have = 0;
    const char *first_missing = NULL;
    size_t missing_len = 0;
    for (const char *f = alt; f < alt + len;) {
      const char *comma = memchr(f, ',', (size_t)(alt + len - f));
      size_t n = comma ? (size_t)(comma - f) : (size_t)(alt + len - f);
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)n, f);
      if (json_object_get(obj, name)) have++;
      else if (!first_missing) first_missing = f, missing_len = n;
      f += n + (comma != NULL);
    }
    if (!first_missing) return NULL;
    if (!best || have > best_have) {
      snprintf(buf, size, "%.*s", (int)missing_len, first_missing);
      best = buf;
      best_have = have;
    }
    alt += len + (end != NULL);
  }
  return best;
}

struct scan {
  size_t examples;
  size_t errors;
};

/* What was found for one resolved path: data sets often share files, and
 * each file is read once per check. */
struct seen_path {
  const char *pattern;
  enum owner_id kind;
  size_t files, bytes;
  struct scan scan;
};

struct seen_paths {
  struct seen_path *slots; /* open addressing; pattern == NULL is empty */
  size_t cap, n;
};

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static struct seen_path *seen_slot(struct seen_path *slots, size_t cap, const char *pattern, enum owner_id kind) {
  size_t i = (hash_text(pattern) ^ kind) & (cap - 1);
  while (slots[i].pattern && !(slots[i].kind == kind && strcmp(slots[i].pattern, pattern) == 0)) i = (i + 1) & (cap - 1);
  return &slots[i];
}

/* The entry for (pattern, kind), added empty when new; *fresh says which. */
static struct seen_path *seen_get(struct seen_paths *seen, const char *pattern, enum owner_id kind, bool *fresh) {
  if ((seen->n + 1) * 2 > seen->cap) {
    size_t cap = seen->cap ? seen->cap * 2 : 64;
    struct seen_path *slots = xmalloc(cap * sizeof *slots);
    memset(slots, 0, cap * sizeof *slots);
    for (size_t i = 0; i < seen->cap; i++)
      if (seen->slots[i].pattern) *seen_slot(slots, cap, seen->slots[i].pattern, seen->slots[i].kind) = seen->slots[i];
    free(seen->slots);
    seen->slots = slots;
    seen->cap = cap;
  }
  struct seen_path *p = seen_slot(seen->slots, seen->cap, pattern, kind);
  *fresh = p->pattern == NULL;
  if (*fresh) {
    *p = (struct seen_path){.pattern = pattern, .kind = kind};
    seen->n++;
  }
  return p;
}

/* Reads a JSONL file line by line; reports lines that do not parse or lack
 * a field, the first MAX_LINE_ERRORS of them, then how many more. */
static void scan_jsonl(struct checker *c, const struct expr *path_expr, const char *path, enum owner_id kind,
                       struct scan *scan) {
  FILE *f = fopen(path, "rb");
  if (!f) return; /* found by glob, vanished since: reported as missing below */
  const char *fields = fields_of(kind);
  char *line = NULL, field[64];
  size_t cap = 0, line_no = 0, errors = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) >= 0) {
    line_no++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    size_t i = 0;
    while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == (size_t)len) continue; /* blank lines are allowed */
    json_error_t err;
    json_t *obj = json_loadb(line, (size_t)len, 0, &err);
    const char *why = NULL;
    char reason[200];
    if (!obj) {
      snprintf(reason, sizeof reason, "not JSON: %s", err.text);
      why = reason;
    } else if (!json_is_object(obj)) {
      why = "not a JSON object";
    } else {
      const char *missing = fields ? missing_field(obj, fields, field, sizeof field) : NULL;
      if (missing) {
        snprintf(reason, sizeof reason, "no '%s' field", missing);
        why = reason;
      }
    }
    json_decref(obj);
    if (!why) {
      scan->examples++;
      continue;
    }
    if (++errors <= MAX_LINE_ERRORS) {
      struct diag *d = diag_emit(c->diags, E0502, path_expr->span, "%s:%zu: %s", path, line_no, why);
      if (errors == 1 && fields)
        diag_note(c->diags, d, "each line of %s data is one JSON object with %s", owner_spec(kind)->name, fields);
    }
  }
  if (errors > MAX_LINE_ERRORS)
    diag_emit(c->diags, E0502, path_expr->span, "%s: %zu more lines with errors", path, errors - MAX_LINE_ERRORS);
  scan->errors += errors;
  free(line);
  fclose(f);
}

/* A path relative to the folder of the file that declares it. */
static char *resolve(struct checker *c, const struct item *decl, const char *path) {
  if (path[0] == '/') return arena_strndup(&c->prog->arena, path, strlen(path));
  const char *file = c->prog->sources.items[decl->span.file]->path;
  const char *slash = strrchr(file, '/');
  if (!slash) return arena_strndup(&c->prog->arena, path, strlen(path));
  return arena_printf(&c->prog->arena, "%.*s/%s", (int)(slash - file), file, path);
}

static void check_data_set(struct checker *c, struct seen_paths *seen, const struct item *it,
                           const struct owner_spec *kind) {
  const struct arg *a = it->init->u.call.args;
  if (!a || a->name.text || a->value->kind != EXPR_STRING || a->value->invalid || a->value->u.string.len == 0) return;
  const struct expr *path_expr = a->value;
  char *pattern = resolve(c, it, path_expr->u.string.text);
  bool fresh;
  struct seen_path *found = seen_get(seen, pattern, kind->id, &fresh);
  if (fresh) {
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    size_t files = 0, bytes = 0;
    struct scan scan = {0, 0};
    if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      struct stat st;
      if (stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      FILE *probe = fopen(g.gl_pathv[i], "rb");
      if (!probe) continue;
      fclose(probe);
      files++;
      bytes += (size_t)st.st_size;
      if (kind->id != OWNER_CORPUS) scan_jsonl(c, path_expr, g.gl_pathv[i], kind->id, &scan);
    }
    }
    globfree(&g);
    found->files = files;
    found->bytes = bytes;
    found->scan = scan;
  }
  size_t files = found->files, bytes = found->bytes;
  struct scan scan = found->scan;
  if (files == 0) {
    struct diag *d = diag_emit(c->diags, E0501, path_expr->span, "no readable file matches '%s'", pattern);
    diag_note(c->diags, d, "paths are relative to the folder of the file that declares the data set");
    diag_help(c->diags, d, "check the path, or run check --no-data to skip the data checks");
    return;
  }
  bool empty = kind->id == OWNER_CORPUS ? bytes == 0 : scan.examples == 0 && scan.errors == 0;
  if (empty) {
    struct diag *d = diag_emit(c->diags, E0503, path_expr->span, "data set '%.*s' has no %s", (int)it->name.len,
                               it->name.text, kind->id == OWNER_CORPUS ? "text" : "examples");
    diag_note(c->diags, d, "%zu file%s matched, and %s empty", files, files == 1 ? "" : "s",
              files == 1 ? "it is" : "all are");
  }
}

void check_data_files(struct checker *c) {
  struct seen_paths seen = {0};
  for (size_t f = 0; f < c->prog->n_files; f++) {
    for (const struct item *it = c->prog->files[f]->items; it; it = it->next) {
      if (it->kind != ITEM_DATA || it->init->kind != EXPR_CALL) continue;
      const struct owner_spec *kind =
          owner_find(FAMILY_DATA, it->init->u.call.callee.text, it->init->u.call.callee.len);
      if (kind && kind->positional == T_PATH) check_data_set(c, &seen, it, kind);
    }
  }
  free(seen.slots);
}
