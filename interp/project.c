#include "interp/project.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_NAME "trainpipe.yaml"

/* The nearest trainpipe.yaml in the pipeline's folder or above it. */
static char *find_config(const char *pipeline_path) {
  char dir[PATH_MAX];
  if (strcmp(pipeline_path, "-") == 0 || !realpath(pipeline_path, dir)) {
    if (!getcwd(dir, sizeof dir)) return NULL;
  } else {
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
  }
  for (;;) {
    char candidate[PATH_MAX + sizeof CONFIG_NAME + 1];
    snprintf(candidate, sizeof candidate, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", CONFIG_NAME);
    struct stat st;
    if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
      /* shown relative to the current folder when it is below it */
      char cwd[PATH_MAX];
      const char *shown = candidate;
      size_t n = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
      if (n && strncmp(candidate, cwd, n) == 0 && candidate[n] == '/') shown = candidate + n + 1;
      char *found = xmalloc(strlen(shown) + 1);
      strcpy(found, shown);
      return found;
    }
    if (strcmp(dir, "/") == 0) return NULL;
    char *slash = strrchr(dir, '/');
    if (!slash) return NULL;
    *(slash == dir ? slash + 1 : slash) = '\0';
  }
}

static struct span span_at(struct program *prog, uint32_t file, yaml_mark_t start, yaml_mark_t end) {
  struct span s = {file, (uint32_t)start.index, (uint32_t)end.index, (uint32_t)start.line + 1, 0};
  uint32_t line;
  source_position(prog->sources.items[file], s.start, &line, &s.col);
  if (s.end <= s.start) s.end = s.start + 1;
  return s;
}

static bool level_of(const char *text, enum config_level *level) {
  static const struct {
    const char *name;
    enum config_level level;
  } names[] = {{"error", LEVEL_ERROR}, {"warning", LEVEL_WARNING}, {"note", LEVEL_NOTE}, {"off", LEVEL_OFF}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(text, names[i].name) == 0) {
      *level = names[i].level;
      return true;
    }
  return false;
}

/* One `key: value` of the top-level mapping. */
static void config_entry(struct config *cfg, struct program *prog, uint32_t file, const yaml_event_t *key,
                         const yaml_event_t *value) {
  const char *k = (const char *)key->data.scalar.value;
  const char *v = value->type == YAML_SCALAR_EVENT ? (const char *)value->data.scalar.value : NULL;
  struct span kspan = span_at(prog, file, key->start_mark, key->end_mark);
  struct span vspan = span_at(prog, file, value->start_mark, value->end_mark);
  if (strcmp(k, "werror") == 0) {
    if (v && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) cfg->werror = strcmp(v, "true") == 0;
    else diag_emit(&prog->diags, E0018, vspan, "werror must be true or false");
    return;
  }
  enum diag_code code;
  if (!diag_lookup(k, strlen(k), &code)) {
    struct diag *d = diag_emit(&prog->diags, W0019, kspan, "unknown key '%s' in %s", k, CONFIG_NAME);
    diag_note(&prog->diags, d, "keys are diagnostic codes (W0405) or their short names, and werror");
    return;
  }
  enum config_level level;
  if (!v || !level_of(v, &level)) { /* also a list or mapping given as the value */
    diag_emit(&prog->diags, E0018, vspan, "the level of %s must be error, warning, note or off", diag_info(code)->code);
    return;
  }
  if (diag_info(code)->level == SEV_ERROR && level != LEVEL_ERROR) {
    struct diag *d = diag_emit(&prog->diags, W0019, vspan, "%s is an error and stays one", diag_info(code)->code);
    diag_note(&prog->diags, d, "a pipeline with errors does not run; a project file cannot change that");
    return;
  }
  cfg->level[code] = level;
}

static void parse_config(struct config *cfg, struct program *prog, uint32_t file) {
  const struct source *src = prog->sources.items[file];
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return;
  yaml_parser_set_input_string(&parser, (const unsigned char *)src->text, src->len);
  yaml_event_t event, key;
  int depth = 0;
  bool have_key = false, done = false;
  while (!done) {
    if (!yaml_parser_parse(&parser, &event)) {
      yaml_mark_t m = parser.problem_mark;
      struct diag *d = diag_emit(&prog->diags, E0018, span_at(prog, file, m, m), "%s: %s", CONFIG_NAME,
                                 parser.problem ? parser.problem : "invalid YAML");
      if (parser.context) diag_note(&prog->diags, d, "%s", parser.context);
      break;
    }
    switch (event.type) {
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
      if (depth == 1 && have_key) { /* a nested value where a scalar belongs */
        config_entry(cfg, prog, file, &key, &event);
        yaml_event_delete(&key);
        have_key = false;
      } else if (depth == 0 && event.type == YAML_SEQUENCE_START_EVENT) {
        diag_emit(&prog->diags, E0018, span_at(prog, file, event.start_mark, event.end_mark),
                  "%s must be a mapping of codes to levels", CONFIG_NAME);
      }
      depth++;
      break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
      depth--;
      break;
    case YAML_SCALAR_EVENT:
      if (depth != 1) break;
      if (!have_key) {
        key = event;
        have_key = true;
        continue; /* kept: not deleted below */
      }
      config_entry(cfg, prog, file, &key, &event);
      yaml_event_delete(&key);
      have_key = false;
      break;
    default:
      break;
    }
    yaml_event_delete(&event);
  }
  if (have_key) yaml_event_delete(&key);
  yaml_parser_delete(&parser);
}

void config_load(struct config *cfg, struct program *prog, const char *pipeline_path) {
  memset(cfg, 0, sizeof *cfg);
  char *path = find_config(pipeline_path);
  if (!path) return;
  struct source_result r = source_read(&prog->sources, path, true);
  cfg->path = prog->sources.items[r.id]->path;
  free(path);
  if (r.status != SOURCE_OK) {
    diag_emit(&prog->diags, E0018, (struct span){r.id, r.offset, r.offset + 1, 0, 0}, "cannot read %s", CONFIG_NAME);
    return;
  }
  parse_config(cfg, prog, r.id);
}

static bool turned_off(const struct diag *d, void *ctx) {
  const struct config *cfg = ctx;
  return cfg->level[d->code] == LEVEL_OFF;
}

void config_apply(const struct config *cfg, struct program *prog) {
  for (struct diag *d = prog->diags.head; d; d = d->next) {
    switch (cfg->level[d->code]) {
    case LEVEL_ERROR: d->severity = SEV_ERROR; break;
    case LEVEL_WARNING: d->severity = SEV_WARNING; break;
    case LEVEL_NOTE: d->severity = SEV_NOTE; break;
    default: break;
    }
  }
  diag_filter(&prog->diags, turned_off, (void *)cfg); /* also recounts */
}
