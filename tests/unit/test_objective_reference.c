#include "tests/unit/suites.h"
Suite *objective_reference_suite(void) { return suite_create("objective_reference"); }
