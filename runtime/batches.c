#include "runtime/batches.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/data.h"
#include "runtime/tokenizer.h"

/* The loader the two sources share; the training source owns it. */
struct batches {
  struct tokenizer *tok;
  struct data_loader *loader;
  struct data_batch rows; /* the loader's batch, copied into the trainer's */
  int rows_b;
  size_t val_next;        /* the next held-out sequence */
};

static double number_setting(json_t *settings, const char *key, double fallback) {
  json_t *v = json_object_get(json_object_get(settings, key), "value");
  return json_is_number(v) ? json_number_value(v) : fallback;
}

static const char *text_setting(json_t *settings, const char *key, const char *fallback) {
  const char *s = json_string_value(json_object_get(json_object_get(settings, key), "value"));
  return s ? s : fallback;
}

static void copy_rows(struct batch *b, const struct data_batch *rows, int B) {
  size_t n = (size_t)B * rows->T;
  memcpy(b->tokens, rows->tokens, n * sizeof *b->tokens);
  memcpy(b->targets, rows->targets, n * sizeof *b->targets);
  memcpy(b->weights, rows->weights, n * sizeof *b->weights);
  b->B = B;
  b->T = rows->T;
  b->counted = rows->counted; /* rows past B are padding, with no weight */
}

static void ensure_rows(struct batches *s, int B, int T) {
  if (s->rows_b == B) return;
  if (s->rows_b) data_batch_free(&s->rows);
  data_batch_init(&s->rows, B, T);
  s->rows_b = B;
}

static bool train_next(void *ctx, struct batch *b, int max_b, char *err, size_t err_size) {
  (void)err, (void)err_size;
  struct batches *s = ctx;
  ensure_rows(s, max_b, s->rows.T ? s->rows.T : b->T);
  data_next(s->loader, &s->rows);
  copy_rows(b, &s->rows, max_b);
  return true;
}

static json_t *train_save(void *ctx) { return data_state_to_json(((struct batches *)ctx)->loader); }

static bool train_restore(void *ctx, json_t *state, char *err, size_t err_size) {
  return data_state_from_json(((struct batches *)ctx)->loader, state, err, err_size);
}

static void train_rewind(void *ctx) { (void)ctx; /* training goes on where it is */ }

static bool val_next(void *ctx, struct batch *b, int max_b, char *err, size_t err_size) {
  (void)err, (void)err_size;
  struct batches *s = ctx;
  ensure_rows(s, max_b, s->rows.T);
  int filled = s->val_next < data_val_sequences(s->loader) ? data_val_batch(s->loader, s->val_next, &s->rows) : 0;
  s->val_next += (size_t)filled;
  copy_rows(b, &s->rows, filled);
  return true;
}

static void val_rewind(void *ctx) { ((struct batches *)ctx)->val_next = 0; }

static json_t *val_save(void *ctx) { return json_integer((json_int_t)((struct batches *)ctx)->val_next); }

static bool val_restore(void *ctx, json_t *state, char *err, size_t err_size) {
  (void)err, (void)err_size;
  ((struct batches *)ctx)->val_next = (size_t)json_integer_value(state);
  return true;
}

bool batches_open(const struct data_spec *spec, struct batch_source *train, struct batch_source *val, char *err,
                  size_t err_size) {
  *train = (struct batch_source){0};
  *val = (struct batch_source){0};
  if (spec->n_parts == 0) {
    snprintf(err, err_size, "the stage names no data");
    return false;
  }
  struct batches *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, err_size, "out of memory");
    return false;
  }
  s->tok = tokenizer_create(spec->tokenizer, err, err_size);
  enum chat_template template;
  if (!s->tok || !template_find(spec->template, &template, err, err_size)) {
    tokenizer_free(s->tok);
    free(s);
    return false;
  }
  bool demos = strcmp(spec->kind, "demonstrations") == 0;
  struct data_source *sources = xmalloc(spec->n_parts * sizeof *sources);
  for (size_t i = 0; i < spec->n_parts; i++) {
    json_t *st = spec->parts[i].settings;
    double max_length = number_setting(st, "max_length", 0);
    sources[i] = (struct data_source){
        .name = spec->parts[i].name, .kind = demos ? DATA_DEMONSTRATIONS : DATA_CORPUS,
        .pattern = spec->parts[i].pattern, .share = spec->parts[i].share,
        .val_split = number_setting(st, "val_split", 0.01), .min_chars = (size_t)number_setting(st, "min_chars", 0),
        .max_length = isnan(max_length) ? 0 : (size_t)max_length, .format = FORMAT_AUTO};
    if (demos && !demo_format_find(text_setting(st, "format", "auto"), &sources[i].format, err, err_size)) {
      free(sources);
      tokenizer_free(s->tok);
      free(s);
      return false;
    }
  }
  /* the held-out documents do not depend on the stage's seed, so a text
   * held out of pre-training is not trained on in mid-training either */
  struct data_options opt = {.tok = s->tok, .template = template, .context = spec->context, .seed = spec->seed,
                             .split_seed = 0, .packing = spec->packing, .loss_all = !spec->response_only};
  s->loader = data_open(sources, spec->n_parts, &opt, err, err_size);
  free(sources);
  if (!s->loader) {
    tokenizer_free(s->tok);
    free(s);
    return false;
  }
  data_batch_init(&s->rows, 1, spec->context);
  s->rows_b = 1;
  *train = (struct batch_source){.ctx = s, .next = train_next, .save = train_save, .restore = train_restore,
                                 .rewind = train_rewind};
  if (data_val_sequences(s->loader) > 0)
    *val = (struct batch_source){.ctx = s, .next = val_next, .save = val_save, .restore = val_restore,
                                 .rewind = val_rewind};
  return true;
}

void batches_close(struct batch_source *train, struct batch_source *val) {
  struct batches *s = train->ctx;
  if (s) {
    if (s->rows_b) data_batch_free(&s->rows);
    data_close(s->loader);
    tokenizer_free(s->tok);
    free(s);
  }
  *train = (struct batch_source){0};
  *val = (struct batch_source){0};
}
