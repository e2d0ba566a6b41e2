#include "tests/unit/suites.h"
Suite *generate_suite(void) { return suite_create("generate"); }
