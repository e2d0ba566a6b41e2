/* trainpipe's entry point: the only place that reads the process
 * environment; everything else receives it through cli_env. */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "interp/cli.h"

/* "std/NAME.pipe" resolves into the source tree when this binary runs from
 * its build directory, and into the installed data directory otherwise;
 * TRAINPIPE_STDLIB overrides both. */
static const char *find_stdlib(void) {
  const char *env = getenv("TRAINPIPE_STDLIB");
  if (env && *env) return env;
  char exe[PATH_MAX], build[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0 && realpath(TRAINPIPE_BUILDDIR, build)) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if (strcmp(exe, build) == 0) return TRAINPIPE_SRCDIR "/stdlib-pipelines";
  }
  return TRAINPIPE_PKGDATADIR "/std";
}

/* Set by Ctrl-C; a running stage polls it between steps, saves a
 * checkpoint and stops cleanly. The one piece of state a signal handler
 * can share, hence file scope. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

int main(int argc, char **argv) {
  /* only training stops at a step boundary; every other command stops at
   * once, as a command line tool should */
  if (argc > 1 && strcmp(argv[1], "run") == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
  }
  const char *no_color = getenv("NO_COLOR");
  struct cli_env env = {
      .stdlib_dir = find_stdlib(),
      .no_color = no_color && *no_color,
      .out_is_tty = isatty(STDOUT_FILENO),
      .err_is_tty = isatty(STDERR_FILENO),
      .interrupted = &interrupted,
  };
  return cli_main(argc, argv, stdout, stderr, &env);
}
