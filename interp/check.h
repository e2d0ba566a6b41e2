/* `trainpipe check`: the passes over a loaded program. Names are declared
 * and resolved, every key and value is validated against the key table,
 * unused models and data sets are reported, and suppression comments are
 * applied. Diagnostics go to the program's list, sorted by position. */
#ifndef TRAINPIPE_CHECK_H
#define TRAINPIPE_CHECK_H

#include "interp/program.h"

struct check_options {
  bool data; /* read the data files (off with --no-data) */
};

void check_program(struct program *prog, const struct check_options *opt);

#endif
