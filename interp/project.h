/* The project file, trainpipe.yaml, found by walking up from the folder of
 * the pipeline: per-code levels and werror.
 *
 *   W0405: error          # raise a warning to an error
 *   unused-name: off      # codes or short names; off silences everywhere
 *   N0424: off
 *   werror: true
 *
 * A warning or note can be raised, lowered or turned off; an error can only
 * stay an error. Problems in the file are diagnostics pointing into it. */
#ifndef TRAINPIPE_PROJECT_H
#define TRAINPIPE_PROJECT_H

#include "interp/program.h"

enum config_level { LEVEL_DEFAULT, LEVEL_ERROR, LEVEL_WARNING, LEVEL_NOTE, LEVEL_OFF };

struct config {
  const char *path; /* NULL when there is none */
  enum config_level level[DIAG_COUNT];
  bool werror;
};

/* Finds and reads the project file of the program's main file. */
void config_load(struct config *cfg, struct program *prog, const char *pipeline_path);
/* Sets the levels of the program's diagnostics as the file says. */
void config_apply(const struct config *cfg, struct program *prog);

#endif
