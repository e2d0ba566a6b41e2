/* The batches of a stage, from the data sets its plan names: corpora
 * packed into context-length sequences (a mix drawn by its shares), or
 * demonstrations laid out by the chat template with their loss masks; a
 * held-out part for val_loss. Built on tokenizer.h and data.h. */
#ifndef TRAINPIPE_BATCHES_H
#define TRAINPIPE_BATCHES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/train.h"

struct data_part {
  const char *name;
  const char *pattern; /* resolved glob */
  double share;
  json_t *settings;    /* the data set's settings from the plan ({key: {value, source}}) */
};

struct data_spec {
  const char *kind;    /* "corpus" or "demonstrations" */
  struct data_part *parts;
  size_t n_parts;
  int context;         /* tokens per sequence */
  uint64_t seed;
  const char *tokenizer, *template;
  bool response_only;  /* SFT's loss = response: weights on response tokens only */
  bool packing;
};

/* Opens the train and held-out sources (val->ctx NULL when nothing is held
 * out). False with a reason in ERR naming the file. */
bool batches_open(const struct data_spec *spec, struct batch_source *train, struct batch_source *val, char *err,
                  size_t err_size);
void batches_close(struct batch_source *train, struct batch_source *val);

#endif
