/* Text from a trained model, so that a person can see what a stage did:
 * the prompt (alone, or as a user turn of the chat template), then tokens
 * drawn one at a time from the model's next-token distribution, scaled by
 * a temperature and cut to the top k and to the nucleus of mass top_p,
 * until the end-of-turn token, the token budget or the end of the
 * backend's max_seq positions. Generation goes through the backend's KV
 * cache (generate.h): the backend needs one generation row. Deterministic
 * for a seed. */
#ifndef TRAINPIPE_SAMPLE_H
#define TRAINPIPE_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/backend.h"
#include "runtime/tokenizer.h"

struct sample_options {
  double temperature; /* 0: always the likeliest token */
  int top_k;          /* 0: every token */
  double top_p;       /* 1: every token */
  int max_tokens;
  uint64_t seed;
  bool chat;          /* the prompt is a user turn; the answer stops at its end-of-turn token */
};

/* Writes the generated text (not the prompt) and a newline to OUT once
 * generation ends. False with a reason in ERR. */
bool sample_text(struct backend *model, const struct tokenizer *tok, enum chat_template template, const char *prompt,
                 const struct sample_options *opt, FILE *out, char *err, size_t err_size);

#endif
