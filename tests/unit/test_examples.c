#include "tests/unit/suites.h"
Suite *examples_suite(void) { return suite_create("examples"); }
