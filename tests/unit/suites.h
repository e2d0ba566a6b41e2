/* Unit test suites (Check), one per front-end concern, and the fixtures
 * they share. */
#ifndef TRAINPIPE_TEST_SUITES_H
#define TRAINPIPE_TEST_SUITES_H

#include <check.h>

#include "grammar/parse.h"
#include "interp/program.h"

Suite *lexer_suite(void);
Suite *parser_suite(void);
Suite *keys_suite(void);
Suite *suggest_suite(void);
Suite *render_suite(void);
Suite *explain_suite(void);
Suite *json_line_suite(void);
Suite *explain_stages_suite(void);
Suite *plan_suite(void);
Suite *kernels_suite(void);
Suite *data_suite(void);
Suite *checkpoint_suite(void);
Suite *reference_suite(void);
Suite *train_suite(void);
Suite *objectives_suite(void);
Suite *objective_reference_suite(void);
Suite *verifier_suite(void);
Suite *generate_suite(void);
Suite *examples_suite(void);

/* A text parsed on its own, without imports or checks. */
struct parsed {
  struct arena arena;
  struct source_set sources;
  struct diag_list diags;
  struct ast_file *tree;
};

void parse_text(struct parsed *p, const char *text);
void parsed_free(struct parsed *p);

/* A text written to a temporary file, loaded and checked as `check` does. */
void check_text(struct program *prog, const char *text);
void checked_free(struct program *prog);

#endif
