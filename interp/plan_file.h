/* Plan files, as `trainpipe plan -o FILE` writes them (JSON, or YAML for
 * FILE.yaml and FILE.yml), read back for `trainpipe run FILE`. */
#ifndef TRAINPIPE_PLAN_FILE_H
#define TRAINPIPE_PLAN_FILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether PATH names a plan file rather than a pipeline. */
bool plan_file_named(const char *path);

/* The plan in PATH; NULL with a reason (file:line:column where there is
 * one) in ERR, also when the document is not a plan. */
json_t *plan_file_read(const char *path, char *err, size_t err_size);

#endif
