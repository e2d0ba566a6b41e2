#include "tests/unit/suites.h"

Suite *kernels_suite(void) { return suite_create("kernels"); }
