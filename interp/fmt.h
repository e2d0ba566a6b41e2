/* `trainpipe fmt`: one canonical layout for pipeline files. */
#ifndef TRAINPIPE_FMT_H
#define TRAINPIPE_FMT_H

#include <stdio.h>

#include "interp/cli.h"

extern const char fmt_usage[];

/* argv[0] is "fmt"; the rest are its options and files. Returns an exit
 * status (enum exit_status). */
int fmt_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env);

#endif
