#include "interp/plan_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool yaml_named(const char *path) { return ends_with(path, ".yaml") || ends_with(path, ".yml"); }

bool plan_file_named(const char *path) { return ends_with(path, ".json") || yaml_named(path); }

/* A plain scalar as the plan writes them: a number, true, false or null;
 * anything else stays a string. Quoted scalars are always strings. */
static json_t *scalar_json(const yaml_event_t *ev) {
  const char *text = (const char *)ev->data.scalar.value;
  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json_stringn(text, ev->data.scalar.length);
  if (strcmp(text, "true") == 0) return json_true();
  if (strcmp(text, "false") == 0) return json_false();
  if (strcmp(text, "null") == 0 || strcmp(text, "~") == 0 || text[0] == '\0') return json_null();
  char *end;
  errno = 0;
  long long i = strtoll(text, &end, 10);
  if (*end == '\0' && errno == 0) return json_integer(i);
  double d = strtod(text, &end);
  if (*end == '\0') return json_real(d);
  return json_stringn(text, ev->data.scalar.length);
}

/* The YAML node that starts with the next event, as JSON; NULL on error. */
static json_t *read_node(yaml_parser_t *p, int depth, char *err, size_t err_size) {
  yaml_event_t ev;
  if (!yaml_parser_parse(p, &ev)) {
    snprintf(err, err_size, "%zu:%zu: %s", p->problem_mark.line + 1, p->problem_mark.column + 1, p->problem);
    return NULL;
  }
  json_t *out = NULL;
  if (depth > 64) {
    snprintf(err, err_size, "%zu:%zu: nested too deeply for a plan", ev.start_mark.line + 1, ev.start_mark.column + 1);
  } else if (ev.type == YAML_SCALAR_EVENT) {
    out = scalar_json(&ev);
  } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
    out = json_array();
    for (;;) {
      json_t *item = read_node(p, depth + 1, err, err_size);
      if (!item) {
        if (!err[0]) break; /* the end of the sequence */
        json_decref(out);
        out = NULL;
        break;
      }
      json_array_append_new(out, item);
    }
  } else if (ev.type == YAML_MAPPING_START_EVENT) {
    out = json_object();
    for (;;) {
      json_t *key = read_node(p, depth + 1, err, err_size);
      if (!key) {
        if (err[0]) json_decref(out), out = NULL;
        break;
      }
      if (!json_is_string(key)) {
        snprintf(err, err_size, "%zu:%zu: a mapping key that is not a string", p->mark.line + 1, p->mark.column + 1);
        json_decref(key);
        json_decref(out);
        out = NULL;
        break;
      }
      json_t *value = read_node(p, depth + 1, err, err_size);
      if (!value) {
        if (!err[0]) snprintf(err, err_size, "%zu:%zu: a key without a value", p->mark.line + 1, p->mark.column + 1);
        json_decref(key);
        json_decref(out);
        out = NULL;
        break;
      }
      json_object_set_new(out, json_string_value(key), value);
      json_decref(key);
    }
  } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
    err[0] = '\0'; /* the caller's collection ends here */
  } else {
    snprintf(err, err_size, "%zu:%zu: anchors, aliases and tags are not part of a plan", ev.start_mark.line + 1,
             ev.start_mark.column + 1);
  }
  yaml_event_delete(&ev);
  return out;
}

static json_t *read_yaml(FILE *f, const char *path, char *err, size_t err_size) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    snprintf(err, err_size, "%s: out of memory", path);
    return NULL;
  }
  yaml_parser_set_input_file(&p, f);
  yaml_event_t ev;
  json_t *doc = NULL;
  char why[256] = "";
  /* the stream and document starts, then the one node */
  for (int i = 0; i < 2; i++) {
    if (!yaml_parser_parse(&p, &ev)) {
      snprintf(why, sizeof why, "%zu:%zu: %s", p.problem_mark.line + 1, p.problem_mark.column + 1, p.problem);
      break;
    }
    yaml_event_delete(&ev);
  }
  if (!why[0]) doc = read_node(&p, 0, why, sizeof why);
  if (!doc && !why[0]) snprintf(why, sizeof why, "1:1: empty document");
  if (!doc) snprintf(err, err_size, "%s:%s", path, why);
  yaml_parser_delete(&p);
  return doc;
}

json_t *plan_file_read(const char *path, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: %s", path, strerror(errno));
    return NULL;
  }
  json_t *plan;
  if (yaml_named(path)) {
    plan = read_yaml(f, path, err, err_size);
  } else {
    json_error_t jerr;
    plan = json_loadf(f, 0, &jerr);
    if (!plan) snprintf(err, err_size, "%s:%d:%d: not a JSON plan: %s", path, jerr.line, jerr.column, jerr.text);
  }
  fclose(f);
  if (plan && (json_integer_value(json_object_get(plan, "trainpipe_plan")) != 1 ||
               !json_is_array(json_object_get(plan, "stages")))) {
    snprintf(err, err_size, "%s: not a plan written by 'trainpipe plan -o' (no trainpipe_plan: 1)", path);
    json_decref(plan);
    plan = NULL;
  }
  return plan;
}
