/* SARIF 2.1.0 output, for code-scanning services and editors that read
 * static-analysis logs: one run of trainpipe with a rule per diagnostic
 * code (its explain page as help) and a result per diagnostic. Columns
 * count characters (run.columnKind "unicodeCodePoints"); regions also carry
 * byte offsets. */
#ifndef TRAINPIPE_RENDER_SARIF_H
#define TRAINPIPE_RENDER_SARIF_H

#include <jansson.h>

#include "interp/program.h"

#define SARIF_SCHEMA_URI "https://json.schemastore.org/sarif-2.1.0.json"
#define SARIF_VERSION "2.1.0"

/* Appends one SARIF result per diagnostic of the program to `results`. */
void render_sarif_append(json_t *results, struct program *prog);
/* The whole log, {"$schema", "version", "runs": [one run]}, taking
 * ownership of `results`. */
json_t *render_sarif_document(json_t *results);

#endif
