#include "tests/unit/suites.h"

Suite *data_suite(void) { return suite_create("data"); }
