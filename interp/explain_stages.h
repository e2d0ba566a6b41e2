/* `trainpipe explain STAGE-KIND` and `trainpipe explain order`: a teaching
 * page per stage kind and the ordering rules as tables. The prose comes
 * from stage_pages.def; every fact the stage table holds (input states and
 * their codes, the state produced, data kind, reference, reward, learning
 * rate, metrics, objective) is printed from stages.def, so the pages cannot
 * drift from what the checker does. Output is plain text in lines of at
 * most 79 columns, ending in a newline; trainpipe-stages(7) says the same
 * in roff (man/stages-roff.c). */
#ifndef TRAINPIPE_EXPLAIN_STAGES_H
#define TRAINPIPE_EXPLAIN_STAGES_H

#include <stdbool.h>
#include <stdio.h>

/* Prints the page of the stage kind NAME (exactly as a .pipe file writes
 * it: "dpo", "reward_model"): goal, data, objective, what it learns and
 * cannot learn, risks, when to skip it, what comes before and after, and
 * its row of the stage table. False, with nothing printed, when NAME is
 * not a stage kind. */
bool explain_stage_print(FILE *out, const char *name);
/* The ordering rules: why the stages come in order, the model states, a
 * table of what each stage kind does with each input state (trains, warns
 * with a code, refuses with a code) and what it produces, a table of what
 * each kind needs, and the rules that span several stages, with codes. */
void explain_order_print(FILE *out);
/* A heading line, then every stage kind, one per line with its one-line
 * goal in an aligned column; `trainpipe explain` prints it after the codes. */
void explain_stages_list(FILE *out);

#endif
