#include "tests/unit/suites.h"
Suite *objectives_suite(void) { return suite_create("objectives"); }
