/* The renderers on one checked program: gcc lines, the text layout with
 * carets, and a JSON document that parses back with every field. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/render.h"
#include "tests/unit/suites.h"

static const char program_text[] =
    "model tiny = gpt2 { layers = 4 }\n"
    "data web = corpus(\"web/*.txt\")\n"
    "data dup = corpus(\"a\")\n"
    "data dup = corpus(\"b\")\n"
    "stage base = pretrain(tiny) { data = mix(web = 50%, dup = 50%)  tokens = 500M }\n"
    "stage sft1 = sft(bsae) { data = web }\n";

static char *render(struct program *prog, enum render_format format, const char **path) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(out);
  if (format == RENDER_TEXT) render_text(out, prog, false);
  else render_gcc(out, prog);
  fclose(out);
  *path = prog->sources.items[prog->files[0]->file]->path;
  return buf;
}

START_TEST(gcc_lines) {
  struct program prog;
  check_text(&prog, program_text);
  const char *path;
  char *out = render(&prog, RENDER_GCC, &path);
  char expected[1024];
  snprintf(expected, sizeof expected,
           "%s:4:6: error: 'dup' is declared twice [E0101]\n"
           "%s:6:18: error: undefined name 'bsae' [E0102]\n"
           "%s:6:33: error: sft needs demonstrations data, but 'web' is corpus data [E0419]\n",
           path, path, path);
  ck_assert_str_eq(out, expected);
  free(out);
  checked_free(&prog);
}
END_TEST

START_TEST(text_layout) {
  struct program prog;
  check_text(&prog, program_text);
  const char *path;
  char *out = render(&prog, RENDER_TEXT, &path);
  char expected[2048];
  snprintf(expected, sizeof expected,
           "error[E0101]: 'dup' is declared twice\n"
           " --> %s:4:6\n"
           "  |\n"
           "3 | data dup = corpus(\"a\")\n"
           "  |      --- first declared here as a data set\n"
           "4 | data dup = corpus(\"b\")\n"
           "  |      ^^^\n"
           "  |\n"
           "   = help: rename one of them; models, data sets and stages share one namespace\n"
           "\n"
           "error[E0102]: undefined name 'bsae'\n"
           " --> %s:6:18\n"
           "  |\n"
           "6 | stage sft1 = sft(bsae) { data = web }\n"
           "  |                  ^^^^\n"
           "  |\n"
           "   = help: did you mean 'base'?\n"
           "\n"
           "error[E0419]: sft needs demonstrations data, but 'web' is corpus data\n"
           " --> %s:6:33\n"
           "  |\n"
           "2 | data web = corpus(\"web/*.txt\")\n"
           "  |            ------------------- declared as corpus here\n"
           "...\n"
           "6 | stage sft1 = sft(bsae) { data = web }\n"
           "  |                                 ^^^\n"
           "  |\n"
           "   = note: demonstrations: JSONL prompt/response pairs or chat messages for SFT\n"
           "\n",
           path, path, path);
  ck_assert_str_eq(out, expected);
  free(out);
  checked_free(&prog);
}
END_TEST

START_TEST(json_document) {
  struct program prog;
  check_text(&prog, program_text);
  json_t *array = json_array();
  render_json_append(array, &prog);
  json_t *doc = render_json_document(array);
  char *dump = json_dumps(doc, 0);
  json_decref(doc);
  json_error_t error;
  json_t *back = json_loads(dump, 0, &error);
  ck_assert_ptr_nonnull(back);
  free(dump);

  ck_assert_int_eq(json_integer_value(json_object_get(back, "version")), RENDER_JSON_VERSION);
  json_t *summary = json_object_get(back, "summary");
  ck_assert_int_eq(json_integer_value(json_object_get(summary, "errors")), 3);
  ck_assert_int_eq(json_integer_value(json_object_get(summary, "warnings")), 0);
  json_t *first = json_array_get(json_object_get(back, "diagnostics"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(first, "code")), "E0101");
  ck_assert_str_eq(json_string_value(json_object_get(first, "severity")), "error");
  ck_assert_str_eq(json_string_value(json_object_get(first, "name")), "duplicate-name");
  json_t *span = json_object_get(first, "span");
  json_t *start = json_object_get(span, "start"), *end = json_object_get(span, "end");
  /* "data dup" on line 4: the name starts at byte 5 of the line */
  size_t line4 = strlen("model tiny = gpt2 { layers = 4 }\ndata web = corpus(\"web/*.txt\")\ndata dup = corpus(\"a\")\n");
  ck_assert_int_eq(json_integer_value(json_object_get(start, "offset")), (json_int_t)line4 + 5);
  ck_assert_int_eq(json_integer_value(json_object_get(start, "line")), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(start, "column")), 6);
  ck_assert_int_eq(json_integer_value(json_object_get(end, "column")), 9);
  json_t *label = json_array_get(json_object_get(first, "labels"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(label, "message")), "first declared here as a data set");
  ck_assert(json_is_array(json_object_get(first, "notes")));
  ck_assert(json_is_string(json_object_get(first, "help")));
  json_decref(back);
  checked_free(&prog);
}
END_TEST

Suite *render_suite(void) {
  Suite *s = suite_create("render");
  TCase *tc = tcase_create("formats");
  tcase_add_test(tc, gcc_lines);
  tcase_add_test(tc, text_layout);
  tcase_add_test(tc, json_document);
  suite_add_tcase(s, tc);
  return s;
}
