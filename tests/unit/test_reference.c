#include "tests/unit/suites.h"

Suite *reference_suite(void) { return suite_create("reference"); }
