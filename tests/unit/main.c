/* Runs every suite. With CK_TAP_LOG_FILE_NAME=- (set by make check) Check
 * writes TAP to stdout for the test harness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "interp/check.h"
#include "tests/unit/suites.h"

void parse_text(struct parsed *p, const char *text) {
  memset(p, 0, sizeof *p);
  diag_list_init(&p->diags, &p->arena);
  struct source_result r = source_add(&p->sources, "test.pipe", text, strlen(text));
  ck_assert_int_eq(r.status, SOURCE_OK);
  p->tree = parse_file(&p->sources, r.id, &p->arena, &p->diags);
}

void parsed_free(struct parsed *p) {
  source_set_free(&p->sources);
  arena_free(&p->arena);
}

void check_text(struct program *prog, const char *text) {
  char path[] = "/tmp/trainpipe-unit-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  size_t len = strlen(text);
  ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
  close(fd);
  program_init(prog, NULL);
  program_load(prog, path);
  unlink(path);
  ck_assert(!prog->main_refused);
  check_program(prog, &(struct check_options){.data = false});
}

void checked_free(struct program *prog) { program_free(prog); }

int main(void) {
  SRunner *runner = srunner_create(lexer_suite());
  srunner_add_suite(runner, parser_suite());
  srunner_add_suite(runner, keys_suite());
  srunner_add_suite(runner, suggest_suite());
  srunner_add_suite(runner, render_suite());
  srunner_add_suite(runner, explain_suite());
  srunner_add_suite(runner, json_line_suite());
  srunner_add_suite(runner, explain_stages_suite());
  srunner_add_suite(runner, plan_suite());
  srunner_add_suite(runner, kernels_suite());
  srunner_add_suite(runner, data_suite());
  srunner_add_suite(runner, checkpoint_suite());
  srunner_add_suite(runner, reference_suite());
  srunner_add_suite(runner, train_suite());
  srunner_add_suite(runner, objectives_suite());
  srunner_add_suite(runner, objective_reference_suite());
  srunner_add_suite(runner, verifier_suite());
  srunner_add_suite(runner, generate_suite());
  srunner_add_suite(runner, examples_suite());
  srunner_run_all(runner, CK_ENV);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
