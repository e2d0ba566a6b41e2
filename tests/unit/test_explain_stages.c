#include "tests/unit/suites.h"

Suite *explain_stages_suite(void) {
  Suite *s = suite_create("explain_stages");
  return s;
}
