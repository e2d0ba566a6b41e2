#include "interp/explain_stages.h"

bool explain_stage_print(FILE *out, const char *name) {
  (void)out;
  (void)name;
  return false;
}

void explain_order_print(FILE *out) { (void)out; }

void explain_stages_list(FILE *out) { (void)out; }
