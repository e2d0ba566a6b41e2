/* Checkpoints: a bit-exact round trip, with and without a scalar head, the
 * safetensors layout read back by hand (not through the loader), every
 * kind of damage reported by file and problem without a crash, and saves
 * that replace a checkpoint whole and leave no temporary files. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checkpoint.h"
#include "tests/unit/suites.h"

/* V=11, T=5, L=2, H=2, C=4: every tensor distinct in size, 560 floats. */
static const struct gpt_config tiny = {.vocab = 11, .context = 5, .layers = 2, .heads = 2, .width = 4};

/* The tensors of a model without a scalar head: all but headw and headb,
 * which come last. */
enum { TRUNK_TENSORS = GPT_HEADW };

/* --- folders and files ---------------------------------------------------- */

static void make_temp_folder(char path[64]) {
  strcpy(path, "/tmp/trainpipe-ckpt-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(path));
}

static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char child[512];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      remove_tree(child);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(path), 0);
  } else {
    ck_assert_int_eq(unlink(path), 0);
  }
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The folder's entries, sorted and joined with spaces. */
static void list_folder(const char *dir, char *out, size_t size) {
  char *names[32];
  int n = 0;
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    ck_assert_int_lt(n, 32);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], by_name);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i) strncat(out, " ", size - strlen(out) - 1);
    strncat(out, names[i], size - strlen(out) - 1);
    free(names[i]);
  }
}

static unsigned char *read_whole(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)size + 1);
  ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  *len = (size_t)size;
  return buf;
}

static void write_whole(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

static void file_path(char *out, size_t size, const char *dir, const char *name) {
  snprintf(out, size, "%s/%s", dir, name);
}

static bool exists(const char *dir, const char *name) {
  char path[512];
  file_path(path, sizeof path, dir, name);
  return access(path, F_OK) == 0;
}

static uint64_t u64le(const unsigned char *b) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
  return u;
}

/* --- checkpoints to save ---------------------------------------------------- */

static float *random_floats(size_t n, uint32_t seed) {
  float *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
  return x;
}

/* A checkpoint of CFG with parameters that include values a careless
 * writer would change (-0, a subnormal, a NaN with a payload, infinity). */
static void make_checkpoint(struct checkpoint *ck, const struct gpt_config *cfg, bool moments, uint64_t seed) {
  memset(ck, 0, sizeof *ck);
  ck->cfg = *cfg;
  size_t n = gpt_param_count(cfg);
  ck->params = malloc(n * sizeof *ck->params);
  gpt_init(cfg, ck->params, seed);
  uint32_t nan_bits = 0x7fc12345u;
  ck->params[0] = -0.0f;
  ck->params[1] = 1e-40f;
  memcpy(&ck->params[2], &nan_bits, 4);
  ck->params[3] = INFINITY;
  if (moments) {
    ck->m = random_floats(n, (uint32_t)seed + 1);
    ck->v = random_floats(n, (uint32_t)seed + 2);
  }
  strcpy(ck->tokenizer, "bytes");
  strcpy(ck->template, "turns");
  strcpy(ck->stage, "pretrain \"base\"");
  strcpy(ck->state, "base");
  ck->step = 1234;
  ck->tokens = 5.0e9 + 0.25;
  ck->resume = json_pack("{s:I,s:[i,i],s:s}", "position", (json_int_t)987654321012LL, "rng", 7, 9, "file", "a.jsonl");
}

static void save_ok(const char *dir, const struct checkpoint *ck) {
  char err[512] = "";
  ck_assert_msg(checkpoint_save(dir, ck, err, sizeof err), "save failed: %s", err);
}

static void assert_same_floats(const float *a, const float *b, size_t n, const char *what) {
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "%s differ", what);
}

static void assert_same_checkpoint(const struct checkpoint *a, const struct checkpoint *b, bool moments) {
  ck_assert_mem_eq(&a->cfg, &b->cfg, sizeof a->cfg);
  ck_assert_str_eq(a->head, b->head);
  ck_assert_str_eq(a->tokenizer, b->tokenizer);
  ck_assert_str_eq(a->template, b->template);
  ck_assert_str_eq(a->stage, b->stage);
  ck_assert_str_eq(a->state, b->state);
  ck_assert_int_eq(a->step, b->step);
  ck_assert(a->tokens == b->tokens);
  size_t n = gpt_param_count(&a->cfg);
  assert_same_floats(a->params, b->params, n, "parameters");
  if (moments) {
    assert_same_floats(a->m, b->m, n, "first moments");
    assert_same_floats(a->v, b->v, n, "second moments");
  }
  ck_assert(a->resume && b->resume && json_equal(a->resume, b->resume));
}

/* --- round trips --------------------------------------------------------------- */

START_TEST(round_trip) {
  char dir[64];
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, true, 42);
  save_ok(dir, &ck);
  char err[512] = "";
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&ck, &back, true);
  checkpoint_free(&back);
  ck_assert_ptr_null(back.params);
  ck_assert_ptr_null(back.resume);

  /* without moments asked for, none are read */
  ck_assert_msg(checkpoint_load(dir, &back, false, err, sizeof err), "%s", err);
  assert_same_checkpoint(&ck, &back, false);
  ck_assert_ptr_null(back.m);
  ck_assert_ptr_null(back.v);
  checkpoint_free(&back);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* More parameters than one write chunk, so streaming crosses chunk and
 * tensor boundaries. */
START_TEST(round_trip_large) {
  const struct gpt_config cfg = {.vocab = 300, .context = 64, .layers = 2, .heads = 4, .width = 128};
  ck_assert_uint_gt(gpt_param_count(&cfg), 4 * 65536);
  char dir[64];
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &cfg, true, 7);
  save_ok(dir, &ck);
  char err[512] = "";
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&ck, &back, true);
  checkpoint_free(&back);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

START_TEST(without_moments) {
  char dir[64];
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, false, 1);
  json_decref(ck.resume);
  ck.resume = NULL;
  save_ok(dir, &ck);
  ck_assert(!exists(dir, "optimizer.safetensors"));
  char err[512] = "";
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_floats(ck.params, back.params, gpt_param_count(&tiny), "parameters");
  ck_assert_ptr_null(back.m);
  ck_assert_ptr_null(back.v);
  ck_assert_ptr_null(back.resume);
  checkpoint_free(&back);

  char path[512];
  file_path(path, sizeof path, dir, "checkpoint.json");
  json_t *j = json_load_file(path, 0, NULL);
  ck_assert(json_is_null(json_object_get(json_object_get(j, "files"), "optimizer")));
  ck_assert(json_is_null(json_object_get(j, "resume")));
  json_decref(j);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* A checkpoint that has moments loads without them even when their file
 * is gone: nothing that was not asked for is read. */
START_TEST(moments_not_asked_for) {
  char dir[64], path[512], err[512] = "";
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, true, 3);
  save_ok(dir, &ck);
  file_path(path, sizeof path, dir, "optimizer.safetensors");
  ck_assert_int_eq(unlink(path), 0);
  ck_assert_msg(checkpoint_load(dir, &back, false, err, sizeof err), "%s", err);
  checkpoint_free(&back);
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strstr(err, "optimizer.safetensors: missing") != NULL, "%s", err);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

static void edit_json(const char *path, void (*edit)(json_t *));
static void assert_entry(const json_t *header, const char *name, const size_t *shape, int dims, size_t begin,
                         size_t end);
static json_t *read_header(const char *path, size_t *data_len, unsigned char **file);

/* A model with a scalar head keeps it, its moments and its role. */
START_TEST(round_trip_head) {
  struct gpt_config cfg = tiny;
  cfg.head = 1;
  char dir[64], path[512], err[512] = "";
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &cfg, true, 13);
  strcpy(ck.head, "reward");
  size_t offsets[GPT_TENSOR_COUNT], n = gpt_param_count(&cfg);
  ck_assert_uint_eq(n, gpt_param_count(&tiny) + 4 + 1);
  gpt_tensor_offsets(&cfg, offsets);
  ck.params[offsets[GPT_HEADB]] = 0.75f; /* not the initial 0 */
  save_ok(dir, &ck);
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  ck_assert_int_eq(back.cfg.head, 1);
  assert_same_checkpoint(&ck, &back, true);
  checkpoint_free(&back);

  /* the head's tensors where the layout puts them, and its role in both files */
  size_t data_len;
  file_path(path, sizeof path, dir, "model.safetensors");
  json_t *h = read_header(path, &data_len, NULL);
  ck_assert_uint_eq(data_len, 4 * n);
  ck_assert_uint_eq(json_object_size(h), GPT_TENSOR_COUNT + 1);
  size_t headw[1] = {4}, headb[1] = {1};
  assert_entry(h, "headw", headw, 1, 4 * offsets[GPT_HEADW], 4 * offsets[GPT_HEADB]);
  assert_entry(h, "headb", headb, 1, 4 * offsets[GPT_HEADB], 4 * n);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "__metadata__"), "head")), "reward");
  json_decref(h);
  file_path(path, sizeof path, dir, "optimizer.safetensors");
  h = read_header(path, &data_len, NULL);
  ck_assert_uint_eq(json_object_size(h), 2 * GPT_TENSOR_COUNT + 1);
  assert_entry(h, "v.headb", headb, 1, 4 * (n + offsets[GPT_HEADB]), 8 * n);
  json_decref(h);
  file_path(path, sizeof path, dir, "checkpoint.json");
  json_t *j = json_load_file(path, 0, NULL);
  ck_assert_str_eq(json_string_value(json_object_get(j, "head")), "reward");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "parameters")), (long long)n);
  json_decref(j);

  /* a value head, replacing it without moments */
  strcpy(ck.head, "value");
  free(ck.m), free(ck.v);
  ck.m = ck.v = NULL;
  save_ok(dir, &ck);
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&ck, &back, false);
  checkpoint_free(&back);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

static void claim_value_head(json_t *j) { json_object_set_new(j, "head", json_string("value")); }
static void drop_head(json_t *j) { json_object_del(j, "head"); }
static void unknown_head(json_t *j) { json_object_set_new(j, "head", json_string("critic")); }

/* checkpoint.json's "head" and the weights' tensors must agree, and the
 * message names checkpoint.json and the weights' file. */
START_TEST(head_must_match_tensors) {
  char dir[64], json[512], model[512], err[512] = "";
  make_temp_folder(dir);
  file_path(json, sizeof json, dir, "checkpoint.json");
  file_path(model, sizeof model, dir, "model.safetensors");
  struct checkpoint ck, back;

  /* a head claimed, no tensors */
  make_checkpoint(&ck, &tiny, false, 14);
  save_ok(dir, &ck);
  edit_json(json, claim_value_head);
  memset(&back, 0x5a, sizeof back);
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strncmp(err, json, strlen(json)) == 0, "the message does not start with %s: %s", json, err);
  ck_assert_msg(strstr(err, "\"head\" is \"value\" but") != NULL, "%s", err);
  ck_assert_msg(strstr(err, model) != NULL, "%s", err);
  ck_assert_ptr_null(back.params);
  checkpoint_free(&ck);

  /* tensors, no head claimed */
  struct gpt_config cfg = tiny;
  cfg.head = 1;
  make_checkpoint(&ck, &cfg, true, 15);
  strcpy(ck.head, "reward");
  save_ok(dir, &ck);
  edit_json(json, drop_head);
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strncmp(err, json, strlen(json)) == 0, "the message does not start with %s: %s", json, err);
  ck_assert_msg(strstr(err, "holds a scalar head (headw, headb) but \"head\" gives it no role") != NULL, "%s", err);

  /* a role that does not exist */
  save_ok(dir, &ck);
  edit_json(json, unknown_head);
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strstr(err, "\"head\" is \"critic\"; it is \"reward\" or \"value\"") != NULL, "%s", err);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* --- the bytes on disk ---------------------------------------------------- */

/* Parses a safetensors file by hand: the size field, the padding, and a
 * JSON header whose tensors cover the data exactly. */
static json_t *read_header(const char *path, size_t *data_len, unsigned char **file) {
  size_t len;
  unsigned char *bytes = read_whole(path, &len);
  ck_assert_uint_ge(len, 8);
  uint64_t n = u64le(bytes);
  ck_assert_uint_eq(n % 8, 0);
  ck_assert_uint_le(n, len - 8);
  ck_assert_int_eq(bytes[8], '{');
  json_error_t jerr;
  json_t *header = json_loadb((const char *)bytes + 8, (size_t)n, 0, &jerr);
  ck_assert_msg(header != NULL, "%s", jerr.text);
  *data_len = len - 8 - (size_t)n;
  if (file) *file = bytes;
  else free(bytes);
  return header;
}

/* Tensor NAME is F32 with SHAPE at [BEGIN, END). */
static void assert_entry(const json_t *header, const char *name, const size_t *shape, int dims, size_t begin,
                         size_t end) {
  const json_t *e = json_object_get(header, name);
  ck_assert_msg(e != NULL, "no tensor %s", name);
  ck_assert_str_eq(json_string_value(json_object_get(e, "dtype")), "F32");
  const json_t *s = json_object_get(e, "shape");
  ck_assert_uint_eq(json_array_size(s), (size_t)dims);
  for (int d = 0; d < dims; d++)
    ck_assert_int_eq(json_integer_value(json_array_get(s, (size_t)d)), (long long)shape[d]);
  const json_t *o = json_object_get(e, "data_offsets");
  ck_assert_uint_eq(json_array_size(o), 2);
  ck_assert_int_eq(json_integer_value(json_array_get(o, 0)), (long long)begin);
  ck_assert_int_eq(json_integer_value(json_array_get(o, 1)), (long long)end);
}

START_TEST(safetensors_layout) {
  char dir[64], path[512];
  make_temp_folder(dir);
  struct checkpoint ck;
  make_checkpoint(&ck, &tiny, true, 5);
  save_ok(dir, &ck);

  size_t data_len, offsets[GPT_TENSOR_COUNT], n = gpt_param_count(&tiny);
  unsigned char *file;
  file_path(path, sizeof path, dir, "model.safetensors");
  json_t *h = read_header(path, &data_len, &file);
  ck_assert_uint_eq(data_len, 4 * n);
  /* a model without a scalar head stores no headw or headb */
  ck_assert_uint_eq(json_object_size(h), TRUNK_TENSORS + 1);
  ck_assert_ptr_null(json_object_get(h, "headw"));
  ck_assert_ptr_null(json_object_get(h, "headb"));
  gpt_tensor_offsets(&tiny, offsets);
  for (int t = 0; t < TRUNK_TENSORS; t++) {
    size_t shape[3];
    int dims = gpt_tensor_shape(&tiny, (enum gpt_tensor)t, shape);
    size_t size = gpt_tensor_size(&tiny, (enum gpt_tensor)t);
    assert_entry(h, gpt_tensor_name((enum gpt_tensor)t), shape, dims, 4 * offsets[t], 4 * (offsets[t] + size));
  }
  const json_t *meta = json_object_get(h, "__metadata__");
  ck_assert_str_eq(json_string_value(json_object_get(meta, "format")), "trainpipe");
  ck_assert_str_eq(json_string_value(json_object_get(meta, "heads")), "2");
  ck_assert_str_eq(json_string_value(json_object_get(meta, "vocab")), "11");
  /* the data is little-endian fp32, whatever the host */
  const unsigned char *data = file + (size_t)u64le(file) + 8;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &ck.params[i], 4);
    unsigned char want[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                             (unsigned char)(u >> 24)};
    ck_assert_msg(memcmp(data + 4 * i, want, 4) == 0, "parameter %zu is not little-endian", i);
  }
  json_decref(h);
  free(file);

  /* the moments: m.NAME for every tensor, then v.NAME */
  file_path(path, sizeof path, dir, "optimizer.safetensors");
  h = read_header(path, &data_len, NULL);
  ck_assert_uint_eq(data_len, 8 * n);
  ck_assert_uint_eq(json_object_size(h), 2 * TRUNK_TENSORS + 1);
  for (int t = 0; t < TRUNK_TENSORS; t++) {
    size_t shape[3];
    int dims = gpt_tensor_shape(&tiny, (enum gpt_tensor)t, shape);
    size_t size = gpt_tensor_size(&tiny, (enum gpt_tensor)t);
    char name[32];
    snprintf(name, sizeof name, "m.%s", gpt_tensor_name((enum gpt_tensor)t));
    assert_entry(h, name, shape, dims, 4 * offsets[t], 4 * (offsets[t] + size));
    snprintf(name, sizeof name, "v.%s", gpt_tensor_name((enum gpt_tensor)t));
    assert_entry(h, name, shape, dims, 4 * (n + offsets[t]), 4 * (n + offsets[t] + size));
  }
  json_decref(h);

  file_path(path, sizeof path, dir, "checkpoint.json");
  json_error_t jerr;
  json_t *j = json_load_file(path, 0, &jerr);
  ck_assert_msg(j != NULL, "%s", jerr.text);
  ck_assert_str_eq(json_string_value(json_object_get(j, "format")), "trainpipe-checkpoint");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
  json_t *want_cfg = json_pack("{sisisisisi}", "vocab", 11, "context", 5, "layers", 2, "heads", 2, "width", 4);
  ck_assert(json_equal(json_object_get(j, "config"), want_cfg));
  json_decref(want_cfg);
  ck_assert_str_eq(json_string_value(json_object_get(j, "tokenizer")), "bytes");
  ck_assert_str_eq(json_string_value(json_object_get(j, "template")), "turns");
  ck_assert_str_eq(json_string_value(json_object_get(j, "stage")), "pretrain \"base\"");
  ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "base");
  ck_assert_ptr_null(json_object_get(j, "head"));
  ck_assert_int_eq(json_integer_value(json_object_get(j, "step")), 1234);
  ck_assert(json_number_value(json_object_get(j, "tokens")) == 5.0e9 + 0.25);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "parameters")), (long long)n);
  const json_t *files = json_object_get(j, "files");
  ck_assert_str_eq(json_string_value(json_object_get(files, "model")), "model.safetensors");
  ck_assert_str_eq(json_string_value(json_object_get(files, "optimizer")), "optimizer.safetensors");
  ck_assert(json_equal(json_object_get(j, "resume"), ck.resume));
  json_decref(j);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* --- damage ------------------------------------------------------------------- */

/* Rewrites a safetensors file with its header changed by EDIT and EXTRA
 * zero bytes appended to the data. */
static void edit_header(const char *path, void (*edit)(json_t *), size_t extra) {
  size_t len;
  unsigned char *bytes = read_whole(path, &len);
  uint64_t n = u64le(bytes);
  json_t *h = json_loadb((const char *)bytes + 8, (size_t)n, 0, NULL);
  ck_assert_ptr_nonnull(h);
  edit(h);
  char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(h);
  size_t tlen = strlen(text), padded = (tlen + 7) / 8 * 8, data = len - 8 - (size_t)n;
  unsigned char *out = calloc(8 + padded + data + extra, 1);
  for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  memcpy(out + 8, text, tlen);
  memset(out + 8 + tlen, ' ', padded - tlen);
  memcpy(out + 8 + padded, bytes + 8 + n, data);
  write_whole(path, out, 8 + padded + data + extra);
  free(out);
  free(text);
  free(bytes);
}

static void edit_json(const char *path, void (*edit)(json_t *)) {
  json_t *j = json_load_file(path, 0, NULL);
  ck_assert_ptr_nonnull(j);
  edit(j);
  ck_assert_int_eq(json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
  json_decref(j);
}

static void set_offsets(json_t *h, const char *name, long long begin, long long end) {
  json_t *offsets = json_pack("[II]", (json_int_t)begin, (json_int_t)end);
  json_object_set_new(json_object_get(h, name), "data_offsets", offsets);
}

static long long offset_of(json_t *h, const char *name, size_t which) {
  return json_integer_value(json_array_get(json_object_get(json_object_get(h, name), "data_offsets"), which));
}

static void wider_wte(json_t *h) {
  json_object_set_new(json_object_get(h, "wte"), "shape", json_pack("[ii]", 11, 5));
}
static void drop_lnfb(json_t *h) { json_object_del(h, "lnfb"); }
static void add_extra(json_t *h) {
  json_object_set_new(h, "extra", json_pack("{sss[i]s[ii]}", "dtype", "F32", "shape", 0, "data_offsets", 0, 0));
}
static void half_dtype(json_t *h) { json_object_set_new(json_object_get(h, "qkvw"), "dtype", json_string("F16")); }
static void bf16_m(json_t *h) { json_object_set_new(json_object_get(h, "m.fcw"), "dtype", json_string("BF16")); }
/* ln1w four bytes early: it overlaps wpe, and a gap opens after it */
static void overlap(json_t *h) {
  set_offsets(h, "ln1w", offset_of(h, "ln1w", 0) - 4, offset_of(h, "ln1w", 1) - 4);
}
/* lnfb four bytes late, over four extra bytes: a gap before it */
static void gap(json_t *h) { set_offsets(h, "lnfb", offset_of(h, "lnfb", 0) + 4, offset_of(h, "lnfb", 1) + 4); }
static void beyond(json_t *h) { set_offsets(h, "lnfb", 1LL << 40, (1LL << 40) + 16); }
static void backwards(json_t *h) { set_offsets(h, "wte", 176, 0); }
static void short_wte(json_t *h) { set_offsets(h, "wte", 0, 172); }
static void one_offset(json_t *h) {
  json_object_set_new(json_object_get(h, "wpe"), "data_offsets", json_pack("[i]", 176));
}
static void negative_dim(json_t *h) {
  json_object_set_new(json_object_get(h, "lnfw"), "shape", json_pack("[i]", -4));
}
static void not_an_object(json_t *h) { json_object_set_new(h, "wte", json_string("F32")); }
static void other_heads(json_t *h) {
  json_object_set_new(json_object_get(h, "__metadata__"), "heads", json_string("1"));
}
static void metadata_number(json_t *h) {
  json_object_set_new(json_object_get(h, "__metadata__"), "layers", json_integer(2));
}
static void nothing(json_t *h) { (void)h; }

static void indivisible_heads(json_t *j) {
  json_object_set_new(json_object_get(j, "config"), "heads", json_integer(3));
}
static void zero_layers(json_t *j) { json_object_set_new(json_object_get(j, "config"), "layers", json_integer(0)); }
static void huge_config(json_t *j) {
  json_t *c = json_object_get(j, "config");
  json_object_set_new(c, "width", json_integer(2000000000));
  json_object_set_new(c, "heads", json_integer(1));
  json_object_set_new(c, "layers", json_integer(2000000000));
}
static void miscounted(json_t *j) { json_object_set_new(j, "parameters", json_integer(561)); }
static void newer(json_t *j) { json_object_set_new(j, "version", json_integer(2)); }
static void foreign(json_t *j) { json_object_set_new(j, "format", json_string("pt")); }
static void escaping(json_t *j) {
  json_object_set_new(json_object_get(j, "files"), "model", json_string("../model.safetensors"));
}
static void long_stage(json_t *j) {
  char text[200];
  memset(text, 'a', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  json_object_set_new(j, "stage", json_string(text));
}
static void no_step(json_t *j) { json_object_del(j, "step"); }
/* a config that passes every check of checkpoint.json, but not the model's */
static void wider(json_t *j) {
  json_object_set_new(json_object_get(j, "config"), "width", json_integer(8));
  struct gpt_config c = tiny;
  c.width = 8;
  json_object_set_new(j, "parameters", json_integer((json_int_t)gpt_param_count(&c)));
}

enum damage_kind { HEADER, JSON, TRUNCATE, SIZE_FIELD, BYTES, REMOVE };

struct damage {
  enum damage_kind kind;
  const char *file;
  void (*edit)(json_t *);
  long long amount; /* bytes appended, truncated to, or the size field's value */
  const char *bytes;
  const char *expect;   /* in the message */
  const char *reported; /* the file the message starts with; NULL: FILE */
};

static const struct damage damages[] = {
    {.kind = TRUNCATE, .file = "model.safetensors", .amount = -4,
     .expect = "data_offsets [2224, 2240] are out of range: the data is 2236 bytes"},
    {.kind = TRUNCATE, .file = "model.safetensors", .amount = 5,
     .expect = "5 bytes, too short for the 8-byte header size"},
    {.kind = TRUNCATE, .file = "model.safetensors", .expect = "0 bytes, too short"},
    {.kind = SIZE_FIELD, .file = "model.safetensors", .amount = 0x0100000000000400LL,
     .expect = "header size 72057594037928960 runs past the end"},
    {.kind = SIZE_FIELD, .file = "model.safetensors", .amount = 2, .expect = "the header is not valid JSON"},
    {.kind = BYTES, .file = "model.safetensors", .bytes = "{\"wte\": [1,", .expect = "the header is not valid JSON"},
    {.kind = BYTES, .file = "model.safetensors", .bytes = "[1]     ", .expect = "the header is not a JSON object"},
    {.kind = HEADER, .file = "model.safetensors", .edit = wider_wte,
     .expect = "tensor 'wte' has shape [11, 5]; the config needs [11, 4]"},
    {.kind = HEADER, .file = "model.safetensors", .edit = drop_lnfb, .expect = "tensor 'lnfb' is missing"},
    {.kind = HEADER, .file = "model.safetensors", .edit = add_extra, .expect = "unexpected tensor 'extra'"},
    {.kind = HEADER, .file = "model.safetensors", .edit = half_dtype,
     .expect = "tensor 'qkvw' has dtype F16; trainpipe stores F32"},
    {.kind = HEADER, .file = "model.safetensors", .edit = overlap, .expect = "tensors 'wpe' and 'ln1w' overlap"},
    {.kind = HEADER, .file = "model.safetensors", .edit = gap, .amount = 4,
     .expect = "not contiguous: bytes 2224 to 2228 before tensor 'lnfb'"},
    {.kind = HEADER, .file = "model.safetensors", .edit = nothing, .amount = 4,
     .expect = "4 bytes after the last tensor belong to no tensor"},
    {.kind = HEADER, .file = "model.safetensors", .edit = beyond,
     .expect = "tensor 'lnfb': data_offsets [1099511627776, 1099511627792] are out of range"},
    {.kind = HEADER, .file = "model.safetensors", .edit = backwards,
     .expect = "tensor 'wte': data_offsets [176, 0] are out of range"},
    {.kind = HEADER, .file = "model.safetensors", .edit = short_wte,
     .expect = "tensor 'wte': data_offsets [0, 172] hold 172 bytes; shape [11, 4] needs 176"},
    {.kind = HEADER, .file = "model.safetensors", .edit = one_offset,
     .expect = "tensor 'wpe': data_offsets must be two"},
    {.kind = HEADER, .file = "model.safetensors", .edit = negative_dim,
     .expect = "tensor 'lnfw': shape must list non-negative integers"},
    {.kind = HEADER, .file = "model.safetensors", .edit = not_an_object,
     .expect = "tensor 'wte' is not a JSON object"},
    {.kind = HEADER, .file = "model.safetensors", .edit = other_heads,
     .expect = "__metadata__ says heads 1; checkpoint.json says 2"},
    {.kind = HEADER, .file = "model.safetensors", .edit = metadata_number,
     .expect = "__metadata__ 'layers' is not a string"},
    {.kind = HEADER, .file = "optimizer.safetensors", .edit = bf16_m, .expect = "tensor 'm.fcw' has dtype BF16"},
    {.kind = TRUNCATE, .file = "optimizer.safetensors", .amount = -1, .expect = "are out of range"},
    {.kind = REMOVE, .file = "model.safetensors", .expect = "missing"},
    {.kind = REMOVE, .file = "optimizer.safetensors", .expect = "missing"},
    {.kind = BYTES, .file = "checkpoint.json", .bytes = "{\"format\": ", .expect = "not valid JSON"},
    {.kind = JSON, .file = "checkpoint.json", .edit = indivisible_heads,
     .expect = "the config is invalid: heads must divide width"},
    {.kind = JSON, .file = "checkpoint.json", .edit = zero_layers,
     .expect = "the config is invalid: every dimension must be at least 1"},
    {.kind = JSON, .file = "checkpoint.json", .edit = huge_config, .expect = "the config is too large to address"},
    {.kind = JSON, .file = "checkpoint.json", .edit = miscounted,
     .expect = "\"parameters\" says 561; the config has 560"},
    {.kind = JSON, .file = "checkpoint.json", .edit = newer, .expect = "version 2; this trainpipe reads version 1"},
    {.kind = JSON, .file = "checkpoint.json", .edit = foreign, .expect = "format is not \"trainpipe-checkpoint\""},
    {.kind = JSON, .file = "checkpoint.json", .edit = escaping,
     .expect = "files.model must name a file in the checkpoint's folder"},
    {.kind = JSON, .file = "checkpoint.json", .edit = long_stage, .expect = "\"stage\" is longer than 127 bytes"},
    {.kind = JSON, .file = "checkpoint.json", .edit = no_step, .expect = "\"step\" must be a non-negative integer"},
    {.kind = JSON, .file = "checkpoint.json", .edit = wider,
     .expect = "__metadata__ says width 4; checkpoint.json says 8", .reported = "model.safetensors"},
};

START_TEST(damage_is_reported) {
  const struct damage *d = &damages[_i];
  char dir[64], path[512], err[512] = "";
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, true, 9);
  save_ok(dir, &ck);
  file_path(path, sizeof path, dir, d->file);
  switch (d->kind) {
  case HEADER: edit_header(path, d->edit, (size_t)d->amount); break;
  case JSON: edit_json(path, d->edit); break;
  case TRUNCATE: {
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, d->amount < 0 ? st.st_size + d->amount : d->amount), 0);
    break;
  }
  case SIZE_FIELD: {
    size_t len;
    unsigned char *bytes = read_whole(path, &len);
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)((uint64_t)d->amount >> (8 * i));
    write_whole(path, bytes, len);
    free(bytes);
    break;
  }
  case BYTES: {
    size_t len;
    unsigned char *bytes = read_whole(path, &len);
    size_t at = strcmp(d->file, "checkpoint.json") == 0 ? 0 : 8;
    memset(bytes + at, ' ', strcmp(d->file, "checkpoint.json") == 0 ? len : (size_t)u64le(bytes));
    memcpy(bytes + at, d->bytes, strlen(d->bytes));
    write_whole(path, bytes, len);
    free(bytes);
    break;
  }
  case REMOVE: ck_assert_int_eq(unlink(path), 0); break;
  }
  memset(&back, 0x5a, sizeof back);
  ck_assert_msg(!checkpoint_load(dir, &back, true, err, sizeof err), "damage %d was not noticed", _i);
  file_path(path, sizeof path, dir, d->reported ? d->reported : d->file);
  ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "the message does not start with %s: %s", path, err);
  ck_assert_msg(strstr(err, d->expect) != NULL, "expected \"%s\" in: %s", d->expect, err);
  /* a failed load leaves nothing to free */
  ck_assert_ptr_null(back.params);
  ck_assert_ptr_null(back.m);
  ck_assert_ptr_null(back.resume);
  checkpoint_free(&back);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* Any single damaged byte in the header, and a cut at any length, is
 * either harmless or reported with a reason; never a crash. */
START_TEST(damage_anywhere) {
  char dir[64], path[512], err[512];
  make_temp_folder(dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, false, 11);
  save_ok(dir, &ck);
  file_path(path, sizeof path, dir, "model.safetensors");
  size_t len;
  unsigned char *good = read_whole(path, &len);
  size_t header_end = 8 + (size_t)u64le(good);
  static const unsigned char values[] = {0x00, 0xff, '"', '}', '9', '-'};
  int refused = 0;
  for (size_t at = 0; at < header_end; at++) {
    for (size_t k = 0; k < sizeof values; k++) {
      if (good[at] == values[k]) continue;
      unsigned char *bad = malloc(len);
      memcpy(bad, good, len);
      bad[at] = values[k];
      write_whole(path, bad, len);
      free(bad);
      err[0] = '\0';
      if (checkpoint_load(dir, &back, true, err, sizeof err)) {
        checkpoint_free(&back);
      } else {
        ck_assert_msg(err[0] != '\0', "refused without a reason (byte %zu)", at);
        refused++;
      }
    }
  }
  ck_assert_int_gt(refused, 0);
  for (size_t cut = 0; cut < len; cut++) {
    write_whole(path, good, cut);
    ck_assert_msg(!checkpoint_load(dir, &back, true, err, sizeof err), "accepted a file cut at %zu", cut);
    ck_assert_msg(strstr(err, "model.safetensors") != NULL, "%s", err);
  }
  free(good);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

START_TEST(no_checkpoint) {
  char dir[64], err[512] = "";
  make_temp_folder(dir);
  struct checkpoint back;
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strstr(err, "no checkpoint (checkpoint.json is missing)") != NULL, "%s", err);
  ck_assert_ptr_null(back.params);

  /* data files without checkpoint.json are an interrupted save, not a checkpoint */
  struct checkpoint ck;
  make_checkpoint(&ck, &tiny, true, 2);
  save_ok(dir, &ck);
  char path[512];
  file_path(path, sizeof path, dir, "checkpoint.json");
  ck_assert_int_eq(unlink(path), 0);
  ck_assert(!checkpoint_load(dir, &back, true, err, sizeof err));
  ck_assert_msg(strstr(err, "no checkpoint") != NULL, "%s", err);

  file_path(path, sizeof path, dir, "absent/deeper");
  ck_assert(!checkpoint_load(path, &back, true, err, sizeof err));
  ck_assert_msg(strstr(err, "no checkpoint") != NULL, "%s", err);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* --- saving ------------------------------------------------------------------- */

START_TEST(creates_folders) {
  char dir[64], nested[512], err[512] = "", names[512];
  make_temp_folder(dir);
  snprintf(nested, sizeof nested, "%s/a/b/c/", dir);
  struct checkpoint ck, back;
  make_checkpoint(&ck, &tiny, true, 4);
  save_ok(nested, &ck);
  ck_assert_msg(checkpoint_load(nested, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&ck, &back, true);
  checkpoint_free(&back);

  /* a file where the folder should be */
  snprintf(nested, sizeof nested, "%s/a/b/c/checkpoint.json", dir);
  ck_assert(!checkpoint_save(nested, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "checkpoint.json") != NULL, "%s", err);
  snprintf(nested, sizeof nested, "%s/a/b/c", dir);
  list_folder(nested, names, sizeof names);
  ck_assert_str_eq(names, "checkpoint.json model.safetensors optimizer.safetensors");
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

START_TEST(replaces_whole) {
  char dir[64], err[512] = "", names[512];
  make_temp_folder(dir);
  struct checkpoint a, b, back;
  make_checkpoint(&a, &tiny, true, 21);
  save_ok(dir, &a);
  const struct gpt_config other = {.vocab = 13, .context = 3, .layers = 1, .heads = 4, .width = 8};
  make_checkpoint(&b, &other, false, 22);
  strcpy(b.stage, "sft");
  b.step = 3;
  save_ok(dir, &b);
  list_folder(dir, names, sizeof names);
  ck_assert_str_eq(names, "checkpoint.json model.safetensors");
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&b, &back, false);
  ck_assert_ptr_null(back.m);
  checkpoint_free(&back);

  /* and back again, with moments */
  save_ok(dir, &a);
  list_folder(dir, names, sizeof names);
  ck_assert_str_eq(names, "checkpoint.json model.safetensors optimizer.safetensors");
  ck_assert_msg(checkpoint_load(dir, &back, true, err, sizeof err), "%s", err);
  assert_same_checkpoint(&a, &back, true);
  checkpoint_free(&back);
  checkpoint_free(&a);
  checkpoint_free(&b);
  remove_tree(dir);
}
END_TEST

START_TEST(no_temporary_files) {
  char dir[64], path[512], names[512];
  make_temp_folder(dir);
  /* what an interrupted save leaves, and a file of someone else's */
  static const char *const litter[] = {"model.safetensors.Ab12Cd", "optimizer.safetensors.zzzzzz",
                                       "checkpoint.json.000000"};
  for (size_t i = 0; i < sizeof litter / sizeof litter[0]; i++) {
    file_path(path, sizeof path, dir, litter[i]);
    write_whole(path, "x", 1);
  }
  file_path(path, sizeof path, dir, "model.safetensors.notes");
  write_whole(path, "keep", 4);
  struct checkpoint ck;
  make_checkpoint(&ck, &tiny, true, 6);
  save_ok(dir, &ck);
  list_folder(dir, names, sizeof names);
  ck_assert_str_eq(names, "checkpoint.json model.safetensors model.safetensors.notes optimizer.safetensors");
  save_ok(dir, &ck);
  list_folder(dir, names, sizeof names);
  ck_assert_str_eq(names, "checkpoint.json model.safetensors model.safetensors.notes optimizer.safetensors");
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

/* What cannot be saved is refused before the folder is touched. */
START_TEST(refuses_bad_input) {
  char dir[64], target[512], err[512];
  make_temp_folder(dir);
  snprintf(target, sizeof target, "%s/never", dir);
  struct checkpoint ck;
  make_checkpoint(&ck, &tiny, true, 8);

  ck.cfg.heads = 3;
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "heads must divide width") != NULL, "%s", err);
  ck.cfg = tiny;

  float *v = ck.v;
  ck.v = NULL;
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "m and v go together") != NULL, "%s", err);
  ck.v = v;

  ck.tokens = NAN;
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "tokens") != NULL, "%s", err);
  ck.tokens = 1;

  memset(ck.stage, 'x', sizeof ck.stage);
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "stage name is not a terminated string") != NULL, "%s", err);
  strcpy(ck.stage, "\xff\xfe");
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "stage name is not valid UTF-8") != NULL, "%s", err);
  strcpy(ck.stage, "base");

  /* a role without a head, a head without a role, a role that does not exist */
  strcpy(ck.head, "reward");
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "the model has no scalar head") != NULL, "%s", err);
  ck.head[0] = '\0';
  ck.cfg.head = 1;
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "no role for it") != NULL, "%s", err);
  strcpy(ck.head, "critic");
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "\"critic\"") != NULL, "%s", err);
  ck.cfg.head = 2;
  ck_assert(!checkpoint_save(target, &ck, err, sizeof err));
  ck_assert_msg(strstr(err, "head must be 0") != NULL, "%s", err);

  ck_assert_int_ne(access(target, F_OK), 0);
  checkpoint_free(&ck);
  remove_tree(dir);
}
END_TEST

Suite *checkpoint_suite(void) {
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, round_trip_large);
  tcase_add_test(tc, without_moments);
  tcase_add_test(tc, moments_not_asked_for);
  tcase_add_test(tc, round_trip_head);
  tcase_add_test(tc, head_must_match_tensors);
  tcase_add_test(tc, safetensors_layout);
  tcase_add_loop_test(tc, damage_is_reported, 0, (int)(sizeof damages / sizeof damages[0]));
  tcase_add_test(tc, damage_anywhere);
  tcase_add_test(tc, no_checkpoint);
  tcase_add_test(tc, creates_folders);
  tcase_add_test(tc, replaces_whole);
  tcase_add_test(tc, no_temporary_files);
  tcase_add_test(tc, refuses_bad_input);
  suite_add_tcase(s, tc);
  return s;
}
