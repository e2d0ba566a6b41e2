/* Explain pages and SARIF. Every code has a page with an example and its
 * fix; each example is checked here and must be reported with its code,
 * and its fix must not be, so that the pages stay true as the checker
 * changes. The SARIF log of a checked program has a rule per code and a
 * result per diagnostic with the diagnostic's code, level and region. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "interp/check.h"
#include "interp/explain.h"
#include "interp/project.h"
#include "interp/render_sarif.h"
#include "tests/unit/suites.h"

#ifndef TRAINPIPE_SRCDIR
#define TRAINPIPE_SRCDIR "."
#endif

static char *capture(void (*print)(FILE *, enum diag_code), enum diag_code code) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(out);
  print(out, code);
  fclose(out);
  return buf;
}

static void list_to(FILE *out, enum diag_code code) {
  (void)code;
  explain_list(out);
}

START_TEST(every_code_has_a_page) {
  for (int i = 0; i < DIAG_COUNT; i++) {
    const char *page = explain_page((enum diag_code)i);
    const char *code = diag_info((enum diag_code)i)->code;
    ck_assert_msg(page != NULL, "%s has no explain page", code);
    size_t len = strlen(page);
    ck_assert_msg(len > 200, "%s: the page is too short to explain anything", code);
    ck_assert_msg(page[len - 1] == '\n', "%s: the page does not end in a newline", code);
    for (const char *line = page; *line;) {
      const char *nl = strchr(line, '\n');
      ck_assert_msg(nl - line <= 78, "%s: a line longer than 78 characters: %.*s", code, (int)(nl - line), line);
      line = nl + 1;
    }
  }
  ck_assert_ptr_null(explain_page(DIAG_COUNT));
}
END_TEST

/* A page's snippet: the lines indented by four spaces after a line that
 * starts with `heading` and ends in ':'. NULL when there is none. */
static char *snippet(const char *page, const char *heading) {
  size_t hlen = strlen(heading);
  const char *line = page;
  while (*line) {
    const char *nl = strchr(line, '\n');
    if (strncmp(line, heading, hlen) == 0 && nl[-1] == ':') break;
    line = nl + 1;
  }
  if (!*line) return NULL;
  line = strchr(line, '\n') + 1;
  char *out = xmalloc(strlen(line) + 1), *o = out;
  while (*line) {
    const char *nl = strchr(line, '\n');
    if (nl == line) { /* blank lines around the snippet */
      line++;
      if (o > out) break;
      continue;
    }
    if (strncmp(line, "    ", 4) != 0) break;
    memcpy(o, line + 4, (size_t)(nl - line - 4) + 1);
    o += nl - line - 4 + 1;
    line = nl + 1;
  }
  *o = '\0';
  if (o == out) {
    free(out);
    return NULL;
  }
  return out;
}

START_TEST(every_page_has_an_example_and_a_fix) {
  for (int i = 0; i < DIAG_COUNT; i++) {
    const char *page = explain_page((enum diag_code)i);
    const char *code = diag_info((enum diag_code)i)->code;
    ck_assert_ptr_nonnull(page);
    char *example = snippet(page, "Example"), *fix = snippet(page, "Fix");
    ck_assert_msg(example != NULL, "%s: no 'Example:' section with an indented snippet", code);
    ck_assert_msg(fix != NULL, "%s: no 'Fix:' section with an indented snippet", code);
    ck_assert_msg(strstr(page, "\nExample") < strstr(page, "\nFix"), "%s: the fix comes before the example", code);
    ck_assert_msg(strcmp(example, fix) != 0, "%s: the fix is the example", code);
    free(example);
    free(fix);
  }
}
END_TEST

/* Writes a snippet as files in a new directory: "# file: NAME" starts a
 * file (the first is example.pipe unless named), "\xHH" is a byte. Returns
 * the path of the first file. */
static char *write_snippet(const char *text, char *dir) {
  char *first = NULL;
  FILE *out = NULL;
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = (size_t)(nl - line);
    const char *name = NULL;
    if (len > 8 && strncmp(line, "# file: ", 8) == 0) name = line + 8;
    if (name || !out) {
      char path[512];
      if (name) snprintf(path, sizeof path, "%s/%.*s", dir, (int)(len - 8), name);
      else snprintf(path, sizeof path, "%s/example.pipe", dir);
      if (out) fclose(out);
      out = fopen(path, "wb");
      ck_assert_msg(out != NULL, "cannot write %s", path);
      if (!first) first = strdup(path);
      if (name) { /* the marker is not part of the file: a JSONL file has no comments */
        line = nl + 1;
        continue;
      }
    }
    for (size_t i = 0; i < len; i++) {
      unsigned hi, lo;
      if (line[i] == '\\' && i + 3 < len && line[i + 1] == 'x' && sscanf(line + i + 2, "%1x%1x", &hi, &lo) == 2) {
        fputc((int)(hi * 16 + lo), out);
        i += 3;
      } else {
        fputc(line[i], out);
      }
    }
    fputc('\n', out);
    line = nl + 1;
  }
  if (out) fclose(out);
  return first;
}

/* Removes the files of a snippet's directory (it has no subdirectories),
 * then the directory. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  for (struct dirent *e; (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ck_assert_int_eq(unlink(path), 0);
  }
  closedir(d);
  ck_assert_int_eq(rmdir(dir), 0);
}

/* Whether checking the snippet reports `code`; `all` gets every code
 * reported, for the failure message. */
static bool reports(const char *text, enum diag_code code, char *all, size_t size) {
  char dir[] = "/tmp/trainpipe-explain-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char *path = write_snippet(text, dir);
  ck_assert_ptr_nonnull(path);
  struct program prog;
  program_init(&prog, TRAINPIPE_SRCDIR "/stdlib-pipelines");
  program_load(&prog, path);
  if (!prog.main_refused) {
    check_program(&prog, &(struct check_options){.data = true});
    struct config cfg; /* as `check` does: the project file applies */
    config_load(&cfg, &prog, path);
    config_apply(&cfg, &prog);
  }
  bool found = false;
  size_t used = 0;
  all[0] = '\0';
  for (const struct diag *d = prog.diags.head; d; d = d->next) {
    found |= d->code == code;
    int w = snprintf(all + used, size - used, " %s", diag_info(d->code)->code);
    if (w > 0 && (size_t)w < size - used) used += (size_t)w;
  }
  program_free(&prog);
  free(path);
  remove_dir(dir);
  return found;
}

START_TEST(examples_are_reported_and_fixes_are_not) {
  enum diag_code code = (enum diag_code)_i;
  const char *page = explain_page(code), *name = diag_info(code)->code;
  ck_assert_ptr_nonnull(page);
  char *example = snippet(page, "Example"), *fix = snippet(page, "Fix");
  ck_assert_ptr_nonnull(example);
  ck_assert_ptr_nonnull(fix);
  char found[1024];
  ck_assert_msg(reports(example, code, found, sizeof found), "%s: the example is not reported with it (found:%s)",
                name, found);
  ck_assert_msg(!reports(fix, code, found, sizeof found), "%s: the fix is still reported with it (found:%s)", name,
                found);
  free(example);
  free(fix);
}
END_TEST

START_TEST(print_has_a_header_then_the_page) {
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    char *out = capture(explain_print, (enum diag_code)i);
    char header[512];
    snprintf(header, sizeof header, "%s (%s): %s \xE2\x80\x94 %s\n\n", info->code, severity_name(info->level),
             info->name, info->summary);
    ck_assert_msg(strncmp(out, header, strlen(header)) == 0, "%s: header is: %s", info->code, out);
    ck_assert_str_eq(out + strlen(header), explain_page((enum diag_code)i));
    free(out);
  }
}
END_TEST

START_TEST(list_has_every_code_aligned) {
  char *out = capture(list_to, 0);
  const char *line = out;
  long summary_at = -1;
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    const char *nl = strchr(line, '\n');
    ck_assert_msg(nl != NULL, "the list ends before %s", info->code);
    ck_assert_msg(strncmp(line, info->code, strlen(info->code)) == 0, "line %d is not %s: %.*s", i + 1, info->code,
                  (int)(nl - line), line);
    const char *level = strstr(line, severity_name(info->level));
    const char *name = strstr(line, info->name);
    const char *summary = strstr(line, info->summary);
    ck_assert_msg(level && level < nl && name && name < nl && summary && summary < nl, "%s: line is %.*s",
                  info->code, (int)(nl - line), line);
    ck_assert(level < name && name < summary);
    ck_assert_msg(summary + strlen(info->summary) == nl, "%s: the summary does not end the line", info->code);
    if (summary_at < 0) summary_at = summary - line;
    ck_assert_msg(summary - line == summary_at, "%s: the summary is not aligned", info->code);
    line = nl + 1;
  }
  ck_assert_str_eq(line, "");
  free(out);
}
END_TEST

/* SARIF */

static const char sarif_text[] =
    "model tiny = gpt2 { layers = 2  heads = 2  width = 64  context = 128 }\n"
    "data web = corpus(\"w\xC3\xA9" "b/*.txt\") { dedup = 100 }\n"
    "data dup = corpus(\"a\")\n"
    "data dup = corpus(\"b\")\n"
    "stage base = pretrain(tiny) { data = mix(web = 50%, dup = 50%) }\n"
    "stage sft1 = sft(bsae) { data = web }\n";

static json_t *sarif_of(struct program *prog) {
  json_t *results = json_array();
  render_sarif_append(results, prog);
  json_t *doc = render_sarif_document(results);
  ck_assert_ptr_nonnull(doc);
  /* it must serialise as UTF-8 and parse back */
  char *text = json_dumps(doc, JSON_PRESERVE_ORDER);
  ck_assert_ptr_nonnull(text);
  json_error_t error;
  json_t *back = json_loads(text, 0, &error);
  ck_assert_msg(back != NULL, "SARIF does not parse back: %s", error.text);
  ck_assert(json_equal(doc, back));
  json_decref(back);
  free(text);
  return doc;
}

static const char *str_at(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
  return json_string_value(v);
}

static json_int_t int_at(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  ck_assert_msg(json_is_integer(v), "'%s' is not an integer", key);
  return json_integer_value(v);
}

static const char *level_of(enum severity sev) {
  return sev == SEV_ERROR ? "error" : sev == SEV_WARNING ? "warning" : "note";
}

START_TEST(sarif_log_and_rules) {
  struct program prog;
  check_text(&prog, sarif_text);
  json_t *doc = sarif_of(&prog);
  ck_assert_str_eq(str_at(doc, "$schema"), "https://json.schemastore.org/sarif-2.1.0.json");
  ck_assert_str_eq(str_at(doc, "version"), "2.1.0");
  json_t *runs = json_object_get(doc, "runs");
  ck_assert_int_eq(json_array_size(runs), 1);
  json_t *run = json_array_get(runs, 0);
  ck_assert_str_eq(str_at(run, "columnKind"), "unicodeCodePoints");
  json_t *driver = json_object_get(json_object_get(run, "tool"), "driver");
  ck_assert_str_eq(str_at(driver, "name"), "trainpipe");
  ck_assert_str_eq(str_at(driver, "version"), PACKAGE_VERSION);
  ck_assert_ptr_null(json_object_get(driver, "informationUri"));
  json_t *rules = json_object_get(driver, "rules");
  ck_assert_int_eq(json_array_size(rules), DIAG_COUNT);
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    json_t *rule = json_array_get(rules, (size_t)i);
    ck_assert_str_eq(str_at(rule, "id"), info->code);
    ck_assert_str_eq(str_at(rule, "name"), info->name);
    ck_assert_str_eq(str_at(json_object_get(rule, "shortDescription"), "text"), info->summary);
    ck_assert_str_eq(str_at(json_object_get(rule, "fullDescription"), "text"), explain_page((enum diag_code)i));
    ck_assert_str_eq(str_at(json_object_get(rule, "help"), "text"), explain_page((enum diag_code)i));
    ck_assert_str_eq(str_at(json_object_get(rule, "defaultConfiguration"), "level"), level_of(info->level));
  }
  json_decref(doc);
  checked_free(&prog);
}
END_TEST

START_TEST(sarif_results_match_the_diagnostics) {
  struct program prog;
  check_text(&prog, sarif_text);
  json_t *doc = sarif_of(&prog);
  json_t *results = json_object_get(json_array_get(json_object_get(doc, "runs"), 0), "results");
  const char *path = prog.sources.items[prog.files[0]->file]->path;
  size_t i = 0;
  for (const struct diag *d = prog.diags.head; d; d = d->next, i++) {
    json_t *r = json_array_get(results, i);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(str_at(r, "ruleId"), diag_info(d->code)->code);
    ck_assert_int_eq(int_at(r, "ruleIndex"), d->code);
    ck_assert_str_eq(str_at(r, "level"), level_of(d->severity));
    ck_assert_str_eq(str_at(json_object_get(r, "message"), "text"), d->message);
    json_t *loc = json_object_get(json_array_get(json_object_get(r, "locations"), 0), "physicalLocation");
    ck_assert_str_eq(str_at(json_object_get(loc, "artifactLocation"), "uri"), path);
    json_t *region = json_object_get(loc, "region");
    ck_assert_int_eq(int_at(region, "startLine"), d->span.line);
    ck_assert_int_eq(int_at(region, "startColumn"), d->span.col);
    ck_assert_int_eq(int_at(region, "byteOffset"), d->span.start);
    ck_assert_int_eq(int_at(region, "byteLength"), d->span.end - d->span.start);
    ck_assert_int_eq(int_at(region, "endLine"), d->span.line); /* every span here is on one line */
    size_t chars = 0;
    for (uint32_t k = d->span.start; k < d->span.end; k++)
      chars += utf8_starts_char((unsigned char)prog.sources.items[d->span.file]->text[k]);
    ck_assert_int_eq(int_at(region, "endColumn"), d->span.col + chars);
    size_t n_labels = 0;
    for (const struct diag_label *l = d->labels; l; l = l->next) n_labels++;
    ck_assert_int_eq(json_array_size(json_object_get(r, "relatedLocations")), n_labels);
    json_t *props = json_object_get(r, "properties");
    ck_assert_str_eq(str_at(props, "name"), diag_info(d->code)->name);
    if (d->help) ck_assert_str_eq(str_at(props, "help"), d->help);
    else ck_assert_ptr_null(json_object_get(props, "help"));
  }
  ck_assert_int_eq(json_array_size(results), i);
  ck_assert_int_ge(i, 3);

  /* 'dedup = 100' on line 2 comes after a two-byte character: columns
   * count characters, byte offsets bytes */
  json_t *first = json_array_get(results, 0);
  ck_assert_str_eq(str_at(first, "ruleId"), "E0203");
  json_t *region =
      json_object_get(json_object_get(json_array_get(json_object_get(first, "locations"), 0), "physicalLocation"),
                      "region");
  ck_assert_int_eq(int_at(region, "startLine"), 2);
  ck_assert_int_eq(int_at(region, "startColumn"), 42);
  ck_assert_int_eq(int_at(region, "endColumn"), 45);
  ck_assert_int_eq(int_at(region, "byteOffset"), 71 + 42);
  ck_assert_int_eq(int_at(region, "byteLength"), 3);
  /* its note makes a markdown message, with the brackets escaped */
  const char *md = str_at(json_object_get(first, "message"), "markdown");
  const char *want = "'dedup' must be in \\[0, 64\\], found 100\n\n**note:** dedup: ";
  ck_assert_msg(strncmp(md, want, strlen(want)) == 0, "markdown: %s", md);

  /* the duplicate name points back at the first declaration */
  json_t *dup = json_array_get(results, 1);
  ck_assert_str_eq(str_at(dup, "ruleId"), "E0101");
  json_t *related = json_array_get(json_object_get(dup, "relatedLocations"), 0);
  ck_assert_str_eq(str_at(json_object_get(related, "message"), "text"), "first declared here as a data set");
  json_t *rregion = json_object_get(json_object_get(related, "physicalLocation"), "region");
  ck_assert_int_eq(int_at(rregion, "startLine"), 3);
  ck_assert_int_eq(int_at(rregion, "startColumn"), 6);
  ck_assert_int_eq(int_at(rregion, "endColumn"), 9);
  ck_assert_ptr_nonnull(strstr(str_at(json_object_get(dup, "message"), "markdown"), "\n\n**help:** rename"));
  json_decref(doc);
  checked_free(&prog);
}
END_TEST

/* A file that cannot be read is reported on the file as a whole: no
 * region. Its path is a URI reference, percent-encoded where needed. */
START_TEST(sarif_whole_file_has_no_region) {
  struct program prog;
  program_init(&prog, NULL);
  program_load(&prog, "/nonexistent dir/#1.pipe");
  ck_assert(prog.main_refused);
  ck_assert_ptr_nonnull(prog.diags.head);
  ck_assert_int_eq(prog.diags.head->span.line, 0);
  json_t *doc = sarif_of(&prog);
  json_t *r = json_array_get(json_object_get(json_array_get(json_object_get(doc, "runs"), 0), "results"), 0);
  ck_assert_str_eq(str_at(r, "ruleId"), "E0010");
  json_t *loc = json_object_get(json_array_get(json_object_get(r, "locations"), 0), "physicalLocation");
  ck_assert_str_eq(str_at(json_object_get(loc, "artifactLocation"), "uri"), "/nonexistent%20dir/%231.pipe");
  ck_assert_ptr_null(json_object_get(loc, "region"));
  json_decref(doc);
  program_free(&prog);
}
END_TEST

/* Messages quote paths and text; bytes that are not UTF-8 become U+FFFD
 * there, and are percent-encoded in the URI. */
START_TEST(sarif_strings_are_utf8) {
  struct program prog;
  program_init(&prog, NULL);
  program_load(&prog, "/nonexistent/caf\xE9.pipe");
  ck_assert_ptr_nonnull(prog.diags.head);
  json_t *doc = sarif_of(&prog);
  json_t *r = json_array_get(json_object_get(json_array_get(json_object_get(doc, "runs"), 0), "results"), 0);
  ck_assert_ptr_nonnull(strstr(str_at(json_object_get(r, "message"), "text"), "/nonexistent/caf\xEF\xBF\xBD.pipe"));
  json_t *loc = json_object_get(json_array_get(json_object_get(r, "locations"), 0), "physicalLocation");
  ck_assert_str_eq(str_at(json_object_get(loc, "artifactLocation"), "uri"), "/nonexistent/caf%E9.pipe");
  json_decref(doc);
  program_free(&prog);
}
END_TEST

Suite *explain_suite(void) {
  Suite *s = suite_create("explain");
  TCase *tc = tcase_create("pages");
  tcase_add_test(tc, every_code_has_a_page);
  tcase_add_test(tc, every_page_has_an_example_and_a_fix);
  tcase_add_test(tc, print_has_a_header_then_the_page);
  tcase_add_test(tc, list_has_every_code_aligned);
  suite_add_tcase(s, tc);
  tc = tcase_create("examples");
  tcase_add_loop_test(tc, examples_are_reported_and_fixes_are_not, 0, DIAG_COUNT);
  suite_add_tcase(s, tc);
  tc = tcase_create("sarif");
  tcase_add_test(tc, sarif_log_and_rules);
  tcase_add_test(tc, sarif_results_match_the_diagnostics);
  tcase_add_test(tc, sarif_whole_file_has_no_region);
  tcase_add_test(tc, sarif_strings_are_utf8);
  suite_add_tcase(s, tc);
  return s;
}
