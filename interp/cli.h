/* The command line. Everything a command needs from its environment comes
 * in through cli_env, so tests can run commands in-process. */
#ifndef TRAINPIPE_CLI_H
#define TRAINPIPE_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

struct cli_env {
  const char *stdlib_dir; /* where "std/NAME.pipe" imports resolve */
  bool no_color;          /* NO_COLOR is set */
  bool out_is_tty;
  bool err_is_tty;
  volatile sig_atomic_t *interrupted; /* set on Ctrl-C; NULL where nothing interrupts */
};

enum exit_status { EXIT_CLEAN = 0, EXIT_FINDINGS = 1, EXIT_USAGE = 2 };

int cli_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env);

#endif
