/* The prose of the stage pages (stage_pages.def) as C, shared by
 * `trainpipe explain` (explain_stages.c) and the generator of
 * trainpipe-stages(7) (man/stages-roff.c), so both say the same. */
#ifndef TRAINPIPE_STAGE_PAGES_H
#define TRAINPIPE_STAGE_PAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "interp/diag.h"
#include "interp/keys.h"
#include "interp/stages.h"

struct stage_page {
  enum owner_id owner;
  const char *goal_line, *goal, *data, *objective, *learns, *cannot, *risks, *skip, *before, *after, *reading;
};

/* The page of a stage kind; NULL for an owner that is not one. */
const struct stage_page *page_of(enum owner_id owner);

/* What each model state means. */
extern const char *const state_docs[STATE_COUNT];

/* Why the stages come in their order, a paragraph each. */
extern const char *const order_why[];
extern const size_t order_why_count;

/* The rules that span stages, and whether one is checked for a row. */
struct order_rule {
  enum diag_code code;
  const char *text;
};
extern const struct order_rule order_rules[];
extern const size_t order_rules_count;
bool rule_applies(enum diag_code code, const struct stage_row *row);

/* What a value of the REFERENCE or REWARD column means. */
struct use_doc {
  const char *word;
  enum diag_code code;
  const char *meaning;
};
extern const struct use_doc reference_docs[];
extern const size_t reference_docs_count;
extern const struct use_doc reward_docs[];
extern const size_t reward_docs_count;

/* Visits the stage kinds in the order of the key table, which is the order
 * of the stage table. The inner loop runs once, only to declare ROW. */
#define FOR_EACH_ROW(row)                                                  \
  for (int row##_owner = 0; row##_owner < OWNER_COUNT; row##_owner++)      \
    for (const struct stage_row *row = stage_row((enum owner_id)row##_owner); row; row = NULL)

/* "6e-4": the short form of a learning rate. */
void rate_text(double rate, char *buf, size_t size);
/* "a" or "an" before NOUN. */
const char *article(const char *noun);

static inline const char *kind_name(const struct stage_row *row) { return owner_spec(row->owner)->name; }

#endif
