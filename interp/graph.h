/* `trainpipe graph`: the pipeline as a graphviz DOT graph. Models, data
 * sets and stages are nodes (stages labelled with their kind and the state
 * they produce); lineage edges are solid, frozen(...) references dashed,
 * rewards dotted, data thin and grey, `order` constraints bold and grey.
 * A stage or declaration that a diagnostic points into is coloured by the
 * worst severity there (red, orange, blue), with the messages as tooltip. */
#ifndef TRAINPIPE_GRAPH_H
#define TRAINPIPE_GRAPH_H

#include <stdio.h>

#include "interp/program.h"

/* PROG has been checked; its diagnostics colour the nodes. */
void graph_print_dot(FILE *out, struct program *prog);

#endif
