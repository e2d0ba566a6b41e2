#include "interp/render_sarif.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "interp/explain.h"
#include "interp/render.h"

static const char *sarif_level(enum severity sev) {
  switch (sev) {
  case SEV_ERROR: return "error";
  case SEV_WARNING: return "warning";
  case SEV_NOTE: return "note";
  }
  return "error";
}

/* A path as given, as a URI reference: characters a URI path may hold are
 * kept, everything else (spaces, '%', '#', '?', ':', bytes past ASCII) is
 * percent-encoded, so "<stdin>" is "%3Cstdin%3E" and a consumer decodes
 * any path back to its bytes. */
static json_t *path_uri(const char *path) {
  static const char keep[] = "-._~/!$&'()*+,;=@";
  static const char hex[] = "0123456789ABCDEF";
  size_t len = strlen(path);
  char *buf = xmalloc(len * 3 + 1), *o = buf;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr(keep, *p)) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  json_t *j = json_stringn(buf, (size_t)(o - buf));
  free(buf);
  return j;
}

/* Lines and columns (1-based, in characters) of both ends, and the bytes.
 * SARIF's endColumn is the column just past the region, as a span's end. */
static json_t *region(struct program *prog, struct span span) {
  struct source *src = prog->sources.items[span.file];
  uint32_t end_line = span.line, end_col = span.col;
  const char *text = src->text;
  if (!memchr(text + span.start, '\n', span.end - span.start)) /* count from the start, which the span knows */
    for (uint32_t i = span.start; i < span.end; i++) end_col += utf8_starts_char((unsigned char)text[i]);
  else
    source_position(src, span.end, &end_line, &end_col);
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "startLine", (json_int_t)span.line, "startColumn",
                   (json_int_t)span.col, "endLine", (json_int_t)end_line, "endColumn", (json_int_t)end_col,
                   "byteOffset", (json_int_t)span.start, "byteLength", (json_int_t)(span.end - span.start));
}

/* A diagnostic on a file as a whole (line 0) has no region. */
static json_t *physical_location(struct program *prog, struct span span) {
  json_t *loc = json_pack("{s:{s:o}}", "artifactLocation", "uri", path_uri(prog->sources.items[span.file]->path));
  if (span.line != 0) json_object_set_new(loc, "region", region(prog, span));
  return loc;
}

/* Appends text as CommonMark that shows it as written: punctuation that
 * could start emphasis, code, links, HTML or entities is escaped
 * everywhere, and what could start a heading, a list or a quote is escaped
 * at the start of a line. */
static void put_markdown(char **buf, size_t *len, size_t *cap, const char *text) {
  bool line_start = true, digits = false;
  for (const char *p = text; *p; p++) {
    char c = *p;
    bool escape = strchr("\\`*_[]<>#|~!&{}", c) != NULL;
    if (line_start && strchr("-+=>", c)) escape = true;
    if (digits && (c == '.' || c == ')')) escape = true;
    *buf = xgrow(*buf, cap, *len + 3, 1);
    if (escape) (*buf)[(*len)++] = '\\';
    (*buf)[(*len)++] = c;
    digits = (line_start || digits) && c >= '0' && c <= '9';
    line_start = c == '\n' || (line_start && (c == ' ' || c == '\t'));
  }
}

static void put_raw(char **buf, size_t *len, size_t *cap, const char *text) {
  size_t n = strlen(text);
  *buf = xgrow(*buf, cap, *len + n + 1, 1);
  memcpy(*buf + *len, text, n);
  *len += n;
}

/* The message, then each note and the help as paragraphs of their own. */
static json_t *markdown(const struct diag *d) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  put_markdown(&buf, &len, &cap, d->message);
  for (const struct diag_line *n = d->notes; n; n = n->next) {
    put_raw(&buf, &len, &cap, "\n\n**note:** ");
    put_markdown(&buf, &len, &cap, n->text);
  }
  if (d->help) {
    put_raw(&buf, &len, &cap, "\n\n**help:** ");
    put_markdown(&buf, &len, &cap, d->help);
  }
  buf = xgrow(buf, &cap, len + 1, 1);
  buf[len] = '\0';
  json_t *j = render_json_string(buf);
  free(buf);
  return j;
}

void render_sarif_append(json_t *results, struct program *prog) {
  for (const struct diag *d = prog->diags.head; d; d = d->next) {
    const struct diag_info *info = diag_info(d->code);
    json_t *message = json_pack("{s:o}", "text", render_json_string(d->message));
    if (d->notes || d->help) json_object_set_new(message, "markdown", markdown(d));
    json_t *result = json_pack("{s:s, s:I, s:s, s:o, s:[{s:o}]}", "ruleId", info->code, "ruleIndex",
                               (json_int_t)d->code, "level", sarif_level(d->severity), "message", message,
                               "locations", "physicalLocation", physical_location(prog, d->span));
    if (d->labels) {
      json_t *related = json_array();
      json_int_t id = 1;
      for (const struct diag_label *l = d->labels; l; l = l->next)
        json_array_append_new(related, json_pack("{s:I, s:o, s:{s:o}}", "id", id++, "physicalLocation",
                                                 physical_location(prog, l->span), "message", "text",
                                                 render_json_string(l->text)));
      json_object_set_new(result, "relatedLocations", related);
    }
    json_t *properties = json_pack("{s:s}", "name", info->name);
    if (d->notes) {
      json_t *notes = json_array();
      for (const struct diag_line *n = d->notes; n; n = n->next) json_array_append_new(notes, render_json_string(n->text));
      json_object_set_new(properties, "notes", notes);
    }
    if (d->help) json_object_set_new(properties, "help", render_json_string(d->help));
    json_object_set_new(result, "properties", properties);
    json_array_append_new(results, result);
  }
}

/* One rule per code, in the order of diag_codes.def, so that a result's
 * ruleIndex is its code's place there. */
static json_t *rules(void) {
  json_t *array = json_array();
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    json_t *rule = json_pack("{s:s, s:s, s:{s:o}}", "id", info->code, "name", info->name, "shortDescription",
                             "text", render_json_string(info->summary));
    const char *page = explain_page((enum diag_code)i);
    if (page) {
      json_object_set_new(rule, "fullDescription", json_pack("{s:o}", "text", render_json_string(page)));
      json_object_set_new(rule, "help", json_pack("{s:o}", "text", render_json_string(page)));
    }
    json_object_set_new(rule, "defaultConfiguration", json_pack("{s:s}", "level", sarif_level(info->level)));
    json_array_append_new(array, rule);
  }
  return array;
}

json_t *render_sarif_document(json_t *results) {
  return json_pack("{s:s, s:s, s:[{s:{s:{s:s, s:s, s:o}}, s:s, s:o}]}", "$schema", SARIF_SCHEMA_URI, "version",
                   SARIF_VERSION, "runs", "tool", "driver", "name", "trainpipe", "version", PACKAGE_VERSION, "rules",
                   rules(), "columnKind", "unicodeCodePoints", "results", results);
}
