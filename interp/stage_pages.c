#include "interp/stage_pages.h"

#include <stdio.h>
#include <string.h>

static const struct stage_page pages[] = {
#define STAGE_PAGE(owner, goal_line, goal, data, objective, learns, cannot, risks, skip, before, after, reading) \
  {OWNER_##owner, goal_line, goal, data, objective, learns, cannot, risks, skip, before, after, reading},
#include "interp/stage_pages.def"
#undef STAGE_PAGE
};

/* A stage kind added to stages.def without its page would make `explain`
 * silently skip it; the build stops instead. */
enum {
  STAGE_KIND_COUNT = 0
#define STAGE(...) +1
#include "interp/stages.def"
#undef STAGE
};
_Static_assert(sizeof pages / sizeof pages[0] == STAGE_KIND_COUNT,
               "every row of interp/stages.def needs its STAGE_PAGE in interp/stage_pages.def");

const char *const state_docs[STATE_COUNT] = {
#define STATE_DOC(state, doc) [state] = doc,
#include "interp/stage_pages.def"
#undef STATE_DOC
};

const char *const order_why[] = {
#define ORDER_WHY(text) text,
#include "interp/stage_pages.def"
#undef ORDER_WHY
};

const struct order_rule order_rules[] = {
#define ORDER_RULE(code, applies, text) {code, text},
#include "interp/stage_pages.def"
#undef ORDER_RULE
};

bool rule_applies(enum diag_code code, const struct stage_row *row) {
  switch (code) {
#define ORDER_RULE(code, applies, text) \
  case code: return applies;
#include "interp/stage_pages.def"
#undef ORDER_RULE
  default: return false;
  }
}

const struct use_doc reference_docs[] = {
#define REFERENCE_DOC(use, word, code, meaning) [use] = {word, code, meaning},
#include "interp/stage_pages.def"
#undef REFERENCE_DOC
};

const struct use_doc reward_docs[] = {
#define REWARD_DOC(needed, word, code, meaning) [needed] = {word, code, meaning},
#include "interp/stage_pages.def"
#undef REWARD_DOC
};

const struct stage_page *page_of(enum owner_id owner) {
  for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
    if (pages[i].owner == owner) return &pages[i];
  return NULL;
}

const size_t order_why_count = sizeof order_why / sizeof order_why[0];
const size_t order_rules_count = sizeof order_rules / sizeof order_rules[0];
const size_t reference_docs_count = sizeof reference_docs / sizeof reference_docs[0];
const size_t reward_docs_count = sizeof reward_docs / sizeof reward_docs[0];

void rate_text(double rate, char *buf, size_t size) {
  char raw[32];
  snprintf(raw, sizeof raw, "%.2e", rate);
  char *e = strchr(raw, 'e');
  if (!e) {
    snprintf(buf, size, "%s", raw);
    return;
  }
  size_t mantissa = (size_t)(e - raw);
  while (mantissa > 1 && raw[mantissa - 1] == '0') mantissa--;
  if (mantissa > 1 && raw[mantissa - 1] == '.') mantissa--;
  const char *exp = e + 1;
  const char *sign = *exp == '-' ? "-" : "";
  if (*exp == '-' || *exp == '+') exp++;
  while (exp[0] == '0' && exp[1]) exp++;
  snprintf(buf, size, "%.*se%s%s", (int)mantissa, raw, sign, exp);
}

const char *article(const char *noun) { return strchr("aeiou", noun[0]) ? "an" : "a"; }
