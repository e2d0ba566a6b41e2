#include "tests/unit/suites.h"

Suite *checkpoint_suite(void) { return suite_create("checkpoint"); }
