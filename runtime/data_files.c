/* What the readers of data sets share (see data_files.h). */
#include "runtime/data_files.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "grammar/arena.h"
#include "runtime/rng.h"

/* --- files ----------------------------------------------------------------- */

bool file_list_match(struct file_list *files, const char *set_name, const char *pattern, char *err,
                     size_t err_size) {
  *files = (struct file_list){0};
  int rc = glob(pattern, 0, NULL, &files->matched);
  if (rc == 0) {
    files->paths = xmalloc(files->matched.gl_pathc * sizeof *files->paths);
    for (size_t i = 0; i < files->matched.gl_pathc; i++) {
      struct stat st;
      char *path = files->matched.gl_pathv[i];
      if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) files->paths[files->n++] = path;
    }
    if (files->n > 0) return true;
  }
  if (rc == GLOB_NOSPACE) snprintf(err, err_size, "data set '%s': out of memory matching '%s'", set_name, pattern);
  else if (rc == GLOB_ABORTED)
    snprintf(err, err_size, "data set '%s': cannot read a folder on the way to '%s'", set_name, pattern);
  else snprintf(err, err_size, "data set '%s': no file matches '%s'", set_name, pattern);
  file_list_free(files);
  return false;
}

void file_list_free(struct file_list *files) {
  free(files->paths);
  globfree(&files->matched);
  *files = (struct file_list){0};
}

bool jsonl_read_lines(const char *path, jsonl_line_reader *read, void *ctx, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return false;
  }
  char *line = NULL, why[256];
  size_t cap = 0, line_no = 0;
  ssize_t got;
  bool ok = true;
  while (ok && (got = getline(&line, &cap, f)) >= 0) {
    size_t n = (size_t)got, lead = 0;
    line_no++;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    while (lead < n && (line[lead] == ' ' || line[lead] == '\t')) lead++;
    if (lead == n) continue; /* blank lines are allowed, as the checker allows them */
    const char *bad = read(ctx, line, n, why, sizeof why);
    if (bad) {
      snprintf(err, err_size, "%s:%zu: %s", path, line_no, bad);
      ok = false;
    }
  }
  if (ok && ferror(f)) {
    snprintf(err, err_size, "%s: cannot read after line %zu: %s", path, line_no, strerror(errno));
    ok = false;
  }
  free(line);
  fclose(f);
  return ok;
}

/* --- options ----------------------------------------------------------------- */

bool check_reader_options(size_t n_sources, const struct tokenizer *tok, int context, char *err, size_t err_size) {
  if (n_sources > 0 && tok && context >= 1) return true;
  snprintf(err, err_size, "%s", n_sources == 0 ? "no data set to read" : !tok ? "no tokenizer" : "context below 1");
  return false;
}

bool check_val_split(const char *set_name, double val_split, char *err, size_t err_size) {
  if (val_split >= 0 && val_split < 1) return true;
  snprintf(err, err_size, "data set '%s': val_split %g is not in [0, 1)", set_name, val_split);
  return false;
}

/* --- content and randomness ------------------------------------------------ */

uint64_t token_hash_add(uint64_t hash, const int32_t *ids, size_t n) {
  for (size_t i = 0; i < n; i++) hash = (hash ^ (uint32_t)ids[i]) * 1099511628211ull;
  return hash;
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t stream_value(uint64_t seed, uint64_t stream, uint64_t index) {
  return mix64(mix64(seed ^ mix64(stream + 0x9E3779B97F4A7C15ull)) + index * 0xD1B54A32D192ED03ull);
}

struct split_key {
  uint64_t key;
  size_t index;
};

static int by_key(const void *a, const void *b) {
  const struct split_key *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

size_t held_out_choose(const uint64_t *hashes, size_t n, double val_split, uint64_t split_seed, bool *held) {
  size_t n_val = (size_t)llround(val_split * (double)n);
  if (val_split > 0 && n >= 2 && n_val == 0) n_val = 1;
  if (n_val >= n) n_val = n ? n - 1 : 0; /* something must be left to train on */
  memset(held, 0, n * sizeof *held);
  if (n_val == 0) return 0;
  struct split_key *keys = xmalloc(n * sizeof *keys);
  for (size_t i = 0; i < n; i++) keys[i] = (struct split_key){stream_value(split_seed, STREAM_SPLIT, hashes[i]), i};
  qsort(keys, n, sizeof *keys, by_key);
  for (size_t i = 0; i < n_val; i++) held[keys[i].index] = true;
  free(keys);
  return n_val;
}

size_t epoch_order_next(struct epoch_order *o, size_t n, uint64_t seed, uint64_t source) {
  if (!o->perm || o->perm_epoch != o->epoch) {
    if (!o->perm) o->perm = xmalloc(n * sizeof *o->perm);
    for (size_t i = 0; i < n; i++) o->perm[i] = i;
    struct rng r = rng_seed(stream_value(seed, STREAM_SHUFFLE + source, (uint64_t)o->epoch));
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
      size_t j = (size_t)rng_below(&r, i);
      size_t tmp = o->perm[i - 1];
      o->perm[i - 1] = o->perm[j];
      o->perm[j] = tmp;
    }
    o->perm_epoch = o->epoch;
  }
  size_t next = o->perm[o->position];
  if ((size_t)++o->position == n) {
    o->epoch++;
    o->position = 0;
  }
  return next;
}

double epoch_order_epochs(const struct epoch_order *o, size_t n) {
  return (double)o->epoch + (double)o->position / (double)n;
}

void epoch_order_free(struct epoch_order *o) {
  free(o->perm);
  o->perm = NULL;
}
