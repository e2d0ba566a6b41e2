#include "interp/fmt.h"

const char fmt_usage[] = "usage: trainpipe fmt [-w | --check] FILE...\n";

int fmt_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  (void)argc, (void)argv, (void)out, (void)env;
  fputs(fmt_usage, err);
  return EXIT_USAGE;
}
