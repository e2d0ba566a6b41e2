#include "tests/unit/suites.h"
Suite *verifier_suite(void) { return suite_create("verifier"); }
