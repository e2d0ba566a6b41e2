/* trainpipe's entry point: the only place that reads the process
 * environment; everything else receives it through cli_env. */
#include <limits.h>
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

int main(int argc, char **argv) {
  const char *no_color = getenv("NO_COLOR");
  struct cli_env env = {
      .stdlib_dir = find_stdlib(),
      .no_color = no_color && *no_color,
      .out_is_tty = isatty(STDOUT_FILENO),
      .err_is_tty = isatty(STDERR_FILENO),
  };
  return cli_main(argc, argv, stdout, stderr, &env);
}
