/* `trainpipe explain STAGE-KIND` and `trainpipe explain order`: a teaching
 * page per stage kind (stage_pages.def) and the ordering rules as a table,
 * drawn from the stage table. */
#ifndef TRAINPIPE_EXPLAIN_STAGES_H
#define TRAINPIPE_EXPLAIN_STAGES_H

#include <stdbool.h>
#include <stdio.h>

/* Prints the page of the stage kind NAME; false (nothing printed) when NAME
 * is not a stage kind. */
bool explain_stage_print(FILE *out, const char *name);
/* The ordering rules as a table: which states each stage kind accepts,
 * warns on or refuses, what it produces, what it needs. */
void explain_order_print(FILE *out);
/* Every stage kind, one per line with its one-line goal, for the list that
 * `trainpipe explain` prints after the codes. */
void explain_stages_list(FILE *out);

#endif
