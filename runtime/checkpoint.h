/* Checkpoints: a folder with the weights as safetensors (an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then raw little-endian fp32 data), the AdamW
 * moments in a second safetensors file when training can resume, and a
 * small JSON with everything else. Every file is written to a temporary
 * name, fsynced and renamed. checkpoint.json is written last and names the
 * files it belongs to: a reader trusts only a folder that has one. A save
 * withdraws the previous checkpoint.json before it renames new files into
 * place, so a save that fails while writing leaves the previous checkpoint,
 * and one that fails after that leaves none, never a mix. One writer per
 * folder. */
#ifndef TRAINPIPE_CHECKPOINT_H
#define TRAINPIPE_CHECKPOINT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/gpt.h"

struct checkpoint {
  struct gpt_config cfg;
  char tokenizer[32];  /* "bytes" */
  char template[32];   /* "turns" */
  char stage[128];     /* the stage that wrote it */
  char state[32];      /* "base", "instruct"...: what training it has seen */
  char head[16];       /* the role of the scalar head (cfg.head): "reward", "value"; "" without one */
  long step;           /* optimiser steps done in that stage */
  double tokens;       /* tokens trained on in that stage */
  float *params;       /* gpt_param_count floats */
  float *m, *v;        /* AdamW moments, or NULL */
  json_t *resume;      /* what else the stage needs to resume (data position, RNG): owned */
};

/* Writes CK into the folder DIR (created if missing): model.safetensors,
 * optimizer.safetensors when m and v are given, checkpoint.json. The
 * scalar head's tensors and role are written only for a model with one.
 * False with a reason in ERR. */
bool checkpoint_save(const char *dir, const struct checkpoint *ck, char *err, size_t err_size);

/* Reads the checkpoint in DIR into CK (allocating params, and m and v when
 * WITH_MOMENTS and they are there); cfg.head is 1 when the weights have a
 * scalar head, and checkpoint.json must then give its role. False with a
 * reason in ERR naming the file and what is wrong; CK then holds nothing
 * to free. */
bool checkpoint_load(const char *dir, struct checkpoint *ck, bool with_moments, char *err, size_t err_size);

void checkpoint_free(struct checkpoint *ck);

#endif
