/* `trainpipe plan`: what a checked pipeline will do and what it will cost,
 * before it runs. The plan is one JSON document (jansson), built once and
 * printed as text, YAML or JSON; `plan -o FILE` writes it for `run`.
 *
 * Stages come in execution order: a topological order of lineage,
 * references, rewards and `order` constraints that keeps source order
 * where nothing constrains it. The plan holds the main file's stages and
 * the imported stages they depend on, nothing else. */
#ifndef TRAINPIPE_PLAN_H
#define TRAINPIPE_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "interp/program.h"

/* A device the cost is estimated for: peak dense throughput of the matmuls
 * at the precision the runtime uses there, its memory, and the share of the
 * peak a training run is assumed to reach. */
struct device_spec {
  const char *name;
  const char *description;
  const char *precision;
  double peak_flops; /* per second; for "cpu", per core */
  double memory;     /* bytes; 0 for "cpu": the machine's */
  double utilization;
};

/* The device called NAME; NULL when there is none. */
const struct device_spec *device_find(const char *name);
/* Every device, a line each: name, precision, peak, memory, description. */
void device_list(FILE *out);

struct plan_options {
  const char *device;  /* a device_find name */
  double utilization;  /* in (0, 1]; NAN for the device's default */
  bool data;           /* read the data files for sizes and example counts */
};

/* The plan of PROG, which must have checked without errors. Never NULL. */
json_t *plan_build(struct program *prog, const struct plan_options *opt);

void plan_print_text(FILE *out, json_t *plan);
/* The plan as a YAML document (libyaml's emitter); false on a write error. */
bool plan_print_yaml(FILE *out, json_t *plan);

#endif
