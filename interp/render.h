/* Rendering diagnostics: text (rustc-like, with the source line and a caret
 * underline), gcc (one line each, for editors and grep) and JSON (one
 * document, every field, spans with byte offsets and line/column). */
#ifndef TRAINPIPE_RENDER_H
#define TRAINPIPE_RENDER_H

#include <jansson.h>
#include <stdio.h>

#include "interp/program.h"

enum render_format { RENDER_TEXT, RENDER_GCC, RENDER_JSON, RENDER_SARIF };

#define RENDER_JSON_VERSION 1

void render_text(FILE *out, struct program *prog, bool color);
void render_gcc(FILE *out, struct program *prog);
/* A JSON string of `text`, with bytes that are not UTF-8 replaced by
 * U+FFFD (a path or a quoted line may hold any bytes). */
json_t *render_json_string(const char *text);
/* Appends the program's diagnostics to a JSON array. */
void render_json_append(json_t *array, struct program *prog);
/* The whole document: {"version", "diagnostics", "summary"}. */
json_t *render_json_document(json_t *diagnostics);

#endif
