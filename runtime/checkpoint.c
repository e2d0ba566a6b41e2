/* Checkpoints (see checkpoint.h). A checkpoint is a folder:
 *
 *   model.safetensors      the parameters, one tensor per gpt.h tensor (the
 *                          scalar head's, headw and headb, only when the
 *                          model has one)
 *   optimizer.safetensors  AdamW's moments as "m.NAME" and "v.NAME", when given
 *   checkpoint.json        everything else, and the names of the files above
 *
 * Whether a model has a scalar head is read from the tensors themselves;
 * checkpoint.json's "head" (the head's role) must agree with them.
 *
 * checkpoint.json is the commit record: a reader trusts only a folder that
 * has one, and only the files it names. A save therefore
 *   1. writes each data file in full to DIR/NAME.XXXXXX and fsyncs it;
 *   2. removes the old checkpoint.json and fsyncs the folder;
 *   3. renames the data files into place and fsyncs the folder;
 *   4. writes checkpoint.json the same way (atomic_write), last.
 * Whenever checkpoint.json exists, the files it names were whole on disk
 * before it appeared, and belong to it. A save that fails in step 1 (disk
 * full, a crash during the long write) leaves the previous checkpoint as it
 * was; only a failure in the short steps 2-4 leaves the folder with none,
 * never with a mix of two saves. One writer per folder: a save removes the
 * temporary files an interrupted save left behind.
 *
 * safetensors (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header size N, N bytes of JSON (padded with spaces to a
 * multiple of 8) mapping each tensor's name to its dtype, shape and
 * data_offsets [begin, end) within the byte buffer that follows, and
 * "__metadata__" to string pairs. The buffer holds the tensors back to back
 * with no gaps, in the order of the parameter layout. Files are read with
 * pread and every offset is checked against the file's size before it is
 * used, so a damaged file is reported, never trusted. */
#include "runtime/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interp/atomic_write.h"

#define MODEL_FILE "model.safetensors"
#define OPTIMIZER_FILE "optimizer.safetensors"
#define JSON_FILE "checkpoint.json"
#define FORMAT_NAME "trainpipe-checkpoint"
#define FORMAT_VERSION 1

/* The safetensors reference implementation refuses larger headers; so do
 * we, which also bounds what a damaged size field makes us allocate. */
#define MAX_HEADER_BYTES 100000000ull

/* Floats converted per write() while streaming a file out: large enough
 * that system calls are few, small enough not to matter beside the model. */
#define CHUNK_FLOATS (64 * 1024)

/* A model has at most GPT_TENSOR_COUNT tensors, the optimizer file twice
 * as many. */
#define MAX_TENSORS (2 * GPT_TENSOR_COUNT)

static bool fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t err_size, const char *fmt, ...) {
  if (err && err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return false;
}

static char *join(const char *dir, const char *name) {
  size_t size = strlen(dir) + strlen(name) + 2;
  char *path = malloc(size);
  if (path) snprintf(path, size, "%s/%s", dir, name);
  return path;
}

/* --- bytes on disk -------------------------------------------------------- */

static void put_u32le(unsigned char *b, uint32_t u) {
  b[0] = (unsigned char)u, b[1] = (unsigned char)(u >> 8), b[2] = (unsigned char)(u >> 16),
  b[3] = (unsigned char)(u >> 24);
}

static uint32_t get_u32le(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_u64le(unsigned char *b, uint64_t u) {
  put_u32le(b, (uint32_t)u);
  put_u32le(b + 4, (uint32_t)(u >> 32));
}

static uint64_t get_u64le(const unsigned char *b) {
  return (uint64_t)get_u32le(b) | (uint64_t)get_u32le(b + 4) << 32;
}

/* write() may be interrupted or write less than asked (pipes, quotas,
 * signals); keep going until all is written or it really fails. */
static bool write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* Reads exactly LEN bytes at AT; false with errno set, or with errno 0
 * when the file ends first (it shrank after we checked its size). */
static bool pread_all(int fd, void *data, size_t len, off_t at) {
  char *p = data;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = 0;
      return false;
    }
    p += n;
    len -= (size_t)n;
    at += n;
  }
  return true;
}

/* A rename or unlink reaches the disk only when the folder is synced. Some
 * file systems refuse fsync on a folder; the operation itself is done, so
 * that is not an error (atomic_write does the same). */
static void sync_folder(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

static const char *parent_of(char *path) {
  char *slash = strrchr(path, '/');
  if (!slash) return ".";
  if (slash == path) return "/";
  *slash = '\0';
  return path;
}

/* mkdir -p: creates every missing level of DIR, syncing the parent of each
 * new one so that the folder itself survives a crash. */
static bool make_folder(const char *dir, char *err, size_t err_size) {
  size_t len = strlen(dir);
  char *path = malloc(len + 1);
  if (!path) return fail(err, err_size, "%s: out of memory", dir);
  memcpy(path, dir, len + 1);
  bool ok = true;
  for (size_t i = 1; ok && i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char saved = path[i];
    path[i] = '\0';
    if (mkdir(path, 0755) == 0) {
      char *parent = malloc(i + 1);
      if (parent) {
        memcpy(parent, path, i + 1);
        sync_folder(parent_of(parent));
        free(parent);
      }
    } else if (errno != EEXIST) {
      ok = fail(err, err_size, "cannot create the folder %s: %s", path, strerror(errno));
    }
    path[i] = saved;
  }
  free(path);
  if (!ok) return false;
  struct stat st;
  if (stat(dir, &st) != 0) return fail(err, err_size, "%s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail(err, err_size, "%s is not a folder", dir);
  return true;
}

/* Whether NAME is one of our files with mkstemp's six-character suffix:
 * what an interrupted save leaves behind. */
static bool is_stale_temporary(const char *name) {
  static const char *const files[] = {MODEL_FILE, OPTIMIZER_FILE, JSON_FILE};
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    size_t n = strlen(files[f]);
    if (strncmp(name, files[f], n) != 0 || name[n] != '.' || strlen(name + n + 1) != 6) continue;
    bool suffix = true;
    for (const char *c = name + n + 1; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) suffix = false;
    if (suffix) return true;
  }
  return false;
}

static void remove_stale_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_stale_temporary(e->d_name)) continue;
    char *path = join(dir, e->d_name);
    if (path) (void)unlink(path); /* best effort: it is only litter */
    free(path);
  }
  closedir(d);
}

/* --- the tensors a file holds ------------------------------------------------ */

/* One tensor as a safetensors file holds it. */
struct tensor {
  char name[32];
  int dims;
  size_t shape[3];
  size_t count;           /* elements */
  float *data;            /* where it lives in memory (read into, or written from) */
  uint64_t begin, end;    /* data_offsets, as read */
  bool seen;
};

/* Elements of every tensor of CFG and their sum, refusing sizes that do not
 * fit in memory (a damaged or hostile checkpoint.json may claim anything). */
static bool count_params(const struct gpt_config *cfg, size_t counts[GPT_TENSOR_COUNT], size_t *total) {
  size_t sum = 0;
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    size_t shape[3], n = 1;
    int dims = gpt_tensor_shape(cfg, (enum gpt_tensor)t, shape);
    for (int i = 0; i < dims; i++) {
      if (shape[i] != 0 && n > SIZE_MAX / shape[i]) return false;
      n *= shape[i];
    }
    if (n > SIZE_MAX - sum) return false;
    counts[t] = n;
    sum += n;
  }
  /* the moments double it, and each float is four bytes */
  if (sum > SIZE_MAX / 8) return false;
  *total = sum;
  return true;
}

static bool is_head_tensor(enum gpt_tensor t) { return t == GPT_HEADW || t == GPT_HEADB; }

/* Appends the tensors of one file: every parameter tensor of CFG (the
 * head's only when it has one), named with PREFIX ("", "m.", "v."), in the
 * layout's order; returns the new count. */
static int add_tensors(struct tensor *ts, int n, const struct gpt_config *cfg, const size_t counts[GPT_TENSOR_COUNT],
                       const char *prefix) {
  for (int t = 0; t < GPT_TENSOR_COUNT; t++) {
    if (!cfg->head && is_head_tensor((enum gpt_tensor)t)) continue;
    struct tensor *x = &ts[n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s%s", prefix, gpt_tensor_name((enum gpt_tensor)t));
    x->dims = gpt_tensor_shape(cfg, (enum gpt_tensor)t, x->shape);
    x->count = counts[t];
  }
  return n;
}

/* Points the N tensors from TS, one model's in the layout's order, into
 * the parameter-layout buffer BUF. */
static void place_tensors(struct tensor *ts, int n, float *buf) {
  size_t at = 0;
  for (int t = 0; t < n; t++) {
    ts[t].data = buf + at;
    at += ts[t].count;
  }
}

/* What the files record of the config, and the head's role when there is
 * a head, so that each is self-describing: safetensors metadata maps
 * strings to strings. */
static json_t *config_metadata(const struct gpt_config *cfg, const char *head) {
  const struct { const char *key; int value; } dims[] = {
      {"vocab", cfg->vocab}, {"context", cfg->context}, {"layers", cfg->layers}, {"heads", cfg->heads},
      {"width", cfg->width},
  };
  json_t *meta = json_object();
  json_object_set_new(meta, "format", json_string("trainpipe"));
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    char text[24];
    snprintf(text, sizeof text, "%d", dims[i].value);
    json_object_set_new(meta, dims[i].key, json_string(text));
  }
  if (cfg->head) json_object_set_new(meta, "head", json_string(head));
  return meta;
}

/* --- writing ---------------------------------------------------------------- */

/* A file being written under a temporary name in its final folder. */
struct staged {
  char *path; /* where it goes */
  char *tmp;  /* where it is until then; NULL when there is nothing staged */
};

static void staged_discard(struct staged *s) {
  if (s->tmp) (void)unlink(s->tmp);
  free(s->tmp);
  free(s->path);
  s->tmp = s->path = NULL;
}

/* The safetensors header for TS: JSON padded with spaces to a multiple of 8
 * bytes, as the reference writer does, so the data starts 8-aligned. */
static char *safetensors_header(const struct tensor *ts, int n, json_t *meta, size_t *len) {
  json_t *header = json_object();
  json_object_set_new(header, "__metadata__", meta);
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; d < ts[i].dims; d++) json_array_append_new(shape, json_integer((json_int_t)ts[i].shape[d]));
    uint64_t bytes = (uint64_t)ts[i].count * 4;
    json_t *entry = json_object();
    json_object_set_new(entry, "dtype", json_string("F32"));
    json_object_set_new(entry, "shape", shape);
    json_object_set_new(entry, "data_offsets",
                        json_pack("[II]", (json_int_t)at, (json_int_t)(at + bytes)));
    json_object_set_new(header, ts[i].name, entry);
    at += bytes;
  }
  char *text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(header);
  if (!text) return NULL;
  size_t raw = strlen(text), padded = (raw + 7) / 8 * 8;
  char *out = realloc(text, padded + 1);
  if (!out) {
    free(text);
    return NULL;
  }
  memset(out + raw, ' ', padded - raw);
  out[padded] = '\0';
  *len = padded;
  return out;
}

/* Streams a safetensors file with TS to DIR/NAME.XXXXXX and fsyncs it;
 * the caller renames it into place once every file is written. */
static bool stage_safetensors(const char *dir, const char *name, const struct tensor *ts, int n, json_t *meta,
                              struct staged *s, char *err, size_t err_size) {
  size_t header_len = 0;
  char *header = safetensors_header(ts, n, meta, &header_len);
  unsigned char *chunk = malloc(CHUNK_FLOATS * 4);
  s->path = join(dir, name);
  char *tmp = s->path ? malloc(strlen(s->path) + 8) : NULL;
  if (!header || !chunk || !tmp) {
    free(header), free(chunk), free(tmp);
    return fail(err, err_size, "%s/%s: out of memory", dir, name);
  }
  sprintf(tmp, "%s.XXXXXX", s->path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(header), free(chunk), free(tmp);
    return fail(err, err_size, "%s: cannot create a temporary file: %s", s->path, strerror(e));
  }
  s->tmp = tmp; /* from here on, a failure removes it */

  struct stat st;
  mode_t mode = stat(s->path, &st) == 0 ? st.st_mode & 07777 : 0644;
  unsigned char size_field[8];
  put_u64le(size_field, header_len);
  bool ok = fchmod(fd, mode) == 0 && write_all(fd, size_field, 8) && write_all(fd, header, header_len);
  for (int i = 0; ok && i < n; i++) {
    for (size_t done = 0; ok && done < ts[i].count;) {
      size_t k = ts[i].count - done < CHUNK_FLOATS ? ts[i].count - done : CHUNK_FLOATS;
      for (size_t j = 0; j < k; j++) {
        uint32_t u;
        memcpy(&u, &ts[i].data[done + j], 4);
        put_u32le(chunk + 4 * j, u);
      }
      ok = write_all(fd, chunk, 4 * k);
      done += k;
    }
  }
  if (ok) ok = fsync(fd) == 0;
  int e = errno;
  if (close(fd) != 0 && ok) ok = false, e = errno;
  free(header);
  free(chunk);
  if (!ok) return fail(err, err_size, "%s: cannot write: %s", s->path, strerror(e));
  return true;
}

/* The roles a scalar head can have. */
static bool known_head_role(const char *role) {
  return strcmp(role, "reward") == 0 || strcmp(role, "value") == 0;
}

/* A role for a model with a head, and none for a model without. */
static bool valid_head(const struct checkpoint *ck, char *err, size_t err_size) {
  if (strnlen(ck->head, sizeof ck->head) == sizeof ck->head)
    return fail(err, err_size, "checkpoint: the head's role is not a terminated string");
  if (ck->head[0] && !known_head_role(ck->head))
    return fail(err, err_size, "checkpoint: the head's role is \"%s\"; it is \"reward\" or \"value\"", ck->head);
  if (ck->cfg.head && !ck->head[0])
    return fail(err, err_size, "checkpoint: the model has a scalar head but no role for it (\"reward\" or \"value\")");
  if (!ck->cfg.head && ck->head[0])
    return fail(err, err_size, "checkpoint: the head's role is \"%s\" but the model has no scalar head", ck->head);
  return true;
}

static bool valid_text(const char *text, size_t size, const char *what, char *err, size_t err_size) {
  if (strnlen(text, size) == size) return fail(err, err_size, "checkpoint: %s is not a terminated string", what);
  json_t *s = json_string(text);
  if (!s) return fail(err, err_size, "checkpoint: %s is not valid UTF-8", what);
  json_decref(s);
  return true;
}

/* checkpoint.json's text for CK, or NULL with a reason in ERR. */
static char *checkpoint_json(const struct checkpoint *ck, bool with_optimizer, size_t params, char *err,
                             size_t err_size) {
  json_t *cfg = json_pack("{sisisisisi}", "vocab", ck->cfg.vocab, "context", ck->cfg.context, "layers",
                          ck->cfg.layers, "heads", ck->cfg.heads, "width", ck->cfg.width);
  json_t *files = json_pack("{ssso}", "model", MODEL_FILE, "optimizer",
                            with_optimizer ? json_string(OPTIMIZER_FILE) : json_null());
  json_t *root = json_object();
  json_object_set_new(root, "format", json_string(FORMAT_NAME));
  json_object_set_new(root, "version", json_integer(FORMAT_VERSION));
  json_object_set_new(root, "config", cfg);
  json_object_set_new(root, "tokenizer", json_string(ck->tokenizer));
  json_object_set_new(root, "template", json_string(ck->template));
  json_object_set_new(root, "stage", json_string(ck->stage));
  json_object_set_new(root, "state", json_string(ck->state));
  if (ck->head[0]) json_object_set_new(root, "head", json_string(ck->head));
  json_object_set_new(root, "step", json_integer(ck->step));
  json_object_set_new(root, "tokens", json_real(ck->tokens));
  json_object_set_new(root, "parameters", json_integer((json_int_t)params));
  json_object_set_new(root, "files", files);
  json_object_set(root, "resume", ck->resume ? ck->resume : json_null());
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) {
    fail(err, err_size, "checkpoint: cannot encode checkpoint.json");
    return NULL;
  }
  size_t len = strlen(text);
  char *out = realloc(text, len + 2);
  if (!out) {
    free(text);
    fail(err, err_size, "checkpoint: out of memory");
    return NULL;
  }
  out[len] = '\n', out[len + 1] = '\0';
  return out;
}

bool checkpoint_save(const char *dir, const struct checkpoint *ck, char *err, size_t err_size) {
  /* Everything that can be refused is refused before the folder is touched. */
  const char *problem = gpt_config_problem(&ck->cfg);
  if (problem) return fail(err, err_size, "checkpoint: the config is invalid: %s", problem);
  size_t counts[GPT_TENSOR_COUNT], params;
  if (!count_params(&ck->cfg, counts, &params))
    return fail(err, err_size, "checkpoint: the config is too large to address");
  if (!ck->params) return fail(err, err_size, "checkpoint: no parameters to save");
  if (!ck->m != !ck->v) return fail(err, err_size, "checkpoint: the AdamW moments m and v go together");
  if (ck->step < 0) return fail(err, err_size, "checkpoint: step %ld is negative", ck->step);
  if (!isfinite(ck->tokens) || ck->tokens < 0)
    return fail(err, err_size, "checkpoint: tokens (%g) must be a finite count", ck->tokens);
  if (!valid_text(ck->tokenizer, sizeof ck->tokenizer, "the tokenizer", err, err_size) ||
      !valid_text(ck->template, sizeof ck->template, "the template", err, err_size) ||
      !valid_text(ck->stage, sizeof ck->stage, "the stage name", err, err_size) ||
      !valid_text(ck->state, sizeof ck->state, "the state", err, err_size) || !valid_head(ck, err, err_size))
    return false;
  bool with_optimizer = ck->m != NULL;
  char *json_text = checkpoint_json(ck, with_optimizer, params, err, err_size);
  if (!json_text) return false;

  struct staged model = {0}, optimizer = {0};
  char *json_path = NULL, *stale_optimizer = NULL;
  bool ok = make_folder(dir, err, err_size);
  if (ok) {
    remove_stale_temporaries(dir);
    struct tensor ts[MAX_TENSORS];
    int n = add_tensors(ts, 0, &ck->cfg, counts, "");
    place_tensors(ts, n, ck->params);
    ok = stage_safetensors(dir, MODEL_FILE, ts, n, config_metadata(&ck->cfg, ck->head), &model, err, err_size);
    if (ok && with_optimizer) {
      int per_file = add_tensors(ts, 0, &ck->cfg, counts, "m.");
      n = add_tensors(ts, per_file, &ck->cfg, counts, "v.");
      place_tensors(ts, per_file, ck->m);
      place_tensors(ts + per_file, per_file, ck->v);
      ok = stage_safetensors(dir, OPTIMIZER_FILE, ts, n, config_metadata(&ck->cfg, ck->head), &optimizer, err,
                             err_size);
    }
  }
  if (ok) {
    json_path = join(dir, JSON_FILE);
    stale_optimizer = join(dir, OPTIMIZER_FILE);
    if (!json_path || !stale_optimizer) ok = fail(err, err_size, "%s: out of memory", dir);
  }
  /* The old checkpoint is withdrawn before any of its files is replaced,
   * so no checkpoint.json ever names the files of another save. */
  if (ok && unlink(json_path) != 0 && errno != ENOENT)
    ok = fail(err, err_size, "%s: cannot remove the previous one: %s", json_path, strerror(errno));
  if (ok) {
    sync_folder(dir);
    const char *failed = NULL;
    if (rename(model.tmp, model.path) != 0)
      failed = model.path;
    else
      free(model.tmp), model.tmp = NULL;
    if (!failed && with_optimizer && rename(optimizer.tmp, optimizer.path) != 0)
      failed = optimizer.path;
    else if (!failed)
      free(optimizer.tmp), optimizer.tmp = NULL;
    /* moments of an earlier save would belong to other weights */
    if (!failed && !with_optimizer) (void)unlink(stale_optimizer);
    if (!failed) sync_folder(dir);
    if (!failed && !atomic_write(json_path, json_text, strlen(json_text), 0644)) failed = json_path;
    if (failed)
      ok = fail(err, err_size, "%s: cannot write: %s (the folder now holds no checkpoint)", failed, strerror(errno));
  }
  staged_discard(&model);
  staged_discard(&optimizer);
  free(json_path);
  free(stale_optimizer);
  free(json_text);
  return ok;
}

/* --- reading ---------------------------------------------------------------- */

static void shape_text(char *out, size_t size, const size_t *shape, int dims) {
  size_t at = (size_t)snprintf(out, size, "[");
  for (int d = 0; d < dims && at < size; d++)
    at += (size_t)snprintf(out + at, size - at, "%s%zu", d ? ", " : "", shape[d]);
  if (at < size) snprintf(out + at, size - at, "]");
}

/* A non-negative JSON integer. */
static bool get_count(const json_t *j, uint64_t *out) {
  if (!json_is_integer(j) || json_integer_value(j) < 0) return false;
  *out = (uint64_t)json_integer_value(j);
  return true;
}

/* Checks one header entry against the tensor it names. */
static bool check_entry(const char *path, const char *key, const json_t *entry, struct tensor *x, uint64_t data_len,
                        char *err, size_t err_size) {
  if (!json_is_object(entry)) return fail(err, err_size, "%s: tensor '%s' is not a JSON object", path, key);
  const json_t *dtype = json_object_get(entry, "dtype");
  if (!json_is_string(dtype))
    return fail(err, err_size, "%s: tensor '%s' has no dtype", path, key);
  if (strcmp(json_string_value(dtype), "F32") != 0)
    return fail(err, err_size, "%s: tensor '%s' has dtype %s; trainpipe stores F32", path, key,
                json_string_value(dtype));

  char want[96], got[160];
  shape_text(want, sizeof want, x->shape, x->dims);
  const json_t *shape = json_object_get(entry, "shape");
  if (!json_is_array(shape)) return fail(err, err_size, "%s: tensor '%s' has no shape", path, key);
  bool same = json_array_size(shape) == (size_t)x->dims;
  size_t at = (size_t)snprintf(got, sizeof got, "[");
  for (size_t d = 0; d < json_array_size(shape); d++) {
    uint64_t v;
    if (!get_count(json_array_get(shape, d), &v))
      return fail(err, err_size, "%s: tensor '%s': shape must list non-negative integers", path, key);
    if (same && v != x->shape[d]) same = false;
    if (at < sizeof got)
      at += (size_t)snprintf(got + at, sizeof got - at, "%s%llu", d ? ", " : "", (unsigned long long)v);
  }
  if (at < sizeof got) snprintf(got + at, sizeof got - at, "]");
  if (!same)
    return fail(err, err_size, "%s: tensor '%s' has shape %s; the config needs %s", path, key, got, want);

  const json_t *offsets = json_object_get(entry, "data_offsets");
  uint64_t begin, end;
  if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !get_count(json_array_get(offsets, 0), &begin) ||
      !get_count(json_array_get(offsets, 1), &end))
    return fail(err, err_size, "%s: tensor '%s': data_offsets must be two non-negative integers [begin, end]", path,
                key);
  if (begin > end || end > data_len)
    return fail(err, err_size, "%s: tensor '%s': data_offsets [%llu, %llu] are out of range: the data is %llu bytes",
                path, key, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_len);
  if (end - begin != (uint64_t)x->count * 4)
    return fail(err, err_size, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes; shape %s needs %llu", path,
                key, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin), want,
                (unsigned long long)x->count * 4);
  x->begin = begin, x->end = end;
  return true;
}

/* __metadata__ maps strings to strings; what it says of the config and of
 * the head's role (HEAD) must agree with checkpoint.json (the shapes
 * cannot tell the number of heads). */
static bool check_metadata(const char *path, const json_t *meta, const struct gpt_config *cfg, const char *head,
                           char *err, size_t err_size) {
  if (!json_is_object(meta)) return fail(err, err_size, "%s: __metadata__ is not a JSON object", path);
  const char *key;
  const json_t *value;
  json_object_foreach((json_t *)meta, key, value) {
    if (!json_is_string(value)) return fail(err, err_size, "%s: __metadata__ '%s' is not a string", path, key);
  }
  const struct { const char *key; int value; } dims[] = {
      {"vocab", cfg->vocab}, {"context", cfg->context}, {"layers", cfg->layers}, {"heads", cfg->heads},
      {"width", cfg->width},
  };
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    const json_t *v = json_object_get(meta, dims[i].key);
    if (!v) continue;
    char want[24];
    snprintf(want, sizeof want, "%d", dims[i].value);
    if (strcmp(json_string_value(v), want) != 0)
      return fail(err, err_size, "%s: __metadata__ says %s %s; checkpoint.json says %s", path, dims[i].key,
                  json_string_value(v), want);
  }
  const json_t *role = json_object_get(meta, "head");
  if (role && strcmp(json_string_value(role), head) != 0)
    return fail(err, err_size, "%s: __metadata__ says head \"%s\"; checkpoint.json says \"%s\"", path,
                json_string_value(role), head);
  return true;
}

/* A safetensors file whose header has been read. */
struct st_file {
  char *path;
  int fd;
  json_t *header;      /* the header's JSON object */
  uint64_t data_start; /* 8 + the header size */
  uint64_t data_len;   /* the bytes after it */
};

static void st_close(struct st_file *f) {
  if (f->fd >= 0) close(f->fd);
  free(f->path);
  json_decref(f->header);
  f->fd = -1;
  f->path = NULL;
  f->header = NULL;
}

/* Opens DIR/NAME and reads its header, a JSON object. Nothing is
 * allocated from what the file claims until it has been checked against
 * the file's size. */
static bool st_open(const char *dir, const char *name, struct st_file *f, char *err, size_t err_size) {
  f->fd = -1;
  f->header = NULL;
  f->path = join(dir, name);
  if (!f->path) return fail(err, err_size, "%s/%s: out of memory", dir, name);
  const char *path = f->path;
  bool ok = false;
  char *header = NULL;
  json_t *root = NULL;
  f->fd = open(path, O_RDONLY);
  struct stat st;
  if (f->fd < 0) {
    fail(err, err_size, "%s: %s", path, errno == ENOENT ? "missing" : strerror(errno));
    goto done;
  }
  if (fstat(f->fd, &st) != 0) {
    fail(err, err_size, "%s: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    fail(err, err_size, "%s: not a regular file", path);
    goto done;
  }
  uint64_t file_len = (uint64_t)st.st_size;
  unsigned char size_field[8];
  if (file_len < 8 || !pread_all(f->fd, size_field, 8, 0)) {
    fail(err, err_size, "%s: %llu bytes, too short for the 8-byte header size", path, (unsigned long long)file_len);
    goto done;
  }
  uint64_t header_len = get_u64le(size_field);
  if (header_len > file_len - 8) {
    fail(err, err_size, "%s: header size %llu runs past the end of the file (%llu bytes)", path,
         (unsigned long long)header_len, (unsigned long long)file_len);
    goto done;
  }
  if (header_len > MAX_HEADER_BYTES) {
    fail(err, err_size, "%s: header size %llu is beyond the safetensors limit of %llu bytes", path,
         (unsigned long long)header_len, MAX_HEADER_BYTES);
    goto done;
  }
  uint64_t data_len = file_len - 8 - header_len;
  header = malloc(header_len ? header_len : 1);
  if (!header) {
    fail(err, err_size, "%s: out of memory for a %llu-byte header", path, (unsigned long long)header_len);
    goto done;
  }
  if (!pread_all(f->fd, header, header_len, 8)) {
    fail(err, err_size, "%s: cannot read the header: %s", path, errno ? strerror(errno) : "the file ended");
    goto done;
  }
  json_error_t jerr;
  root = json_loadb(header, header_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    fail(err, err_size, "%s: the header is not valid JSON: %s (at byte %d of the header)", path, jerr.text,
         jerr.position);
    goto done;
  }
  if (!json_is_object(root)) {
    fail(err, err_size, "%s: the header is not a JSON object", path);
    goto done;
  }
  f->header = root;
  root = NULL;
  f->data_start = 8 + header_len;
  f->data_len = data_len;
  ok = true;
done:
  json_decref(root);
  free(header);
  if (!ok) st_close(f);
  return ok;
}

/* Whether the header of a model file F holds any tensor of the scalar
 * head. */
static bool st_has_head(const struct st_file *f) {
  return json_object_get(f->header, gpt_tensor_name(GPT_HEADW)) ||
         json_object_get(f->header, gpt_tensor_name(GPT_HEADB));
}

/* Checks that the header of F describes exactly the N tensors TS, with
 * their dtype and shapes, tiling the data that follows with neither gaps
 * nor overlaps, and that its metadata agrees with CFG and HEAD. */
static bool st_check(const struct st_file *f, struct tensor *ts, int n, const struct gpt_config *cfg, const char *head,
                     char *err, size_t err_size) {
  const char *path = f->path;
  uint64_t data_len = f->data_len;
  const char *key;
  json_t *entry;
  json_object_foreach(f->header, key, entry) {
    if (strcmp(key, "__metadata__") == 0) {
      if (!check_metadata(path, entry, cfg, head, err, err_size)) return false;
      continue;
    }
    struct tensor *x = NULL;
    for (int i = 0; i < n && !x; i++)
      if (strcmp(ts[i].name, key) == 0) x = &ts[i];
    if (!x) return fail(err, err_size, "%s: unexpected tensor '%s'", path, key);
    if (!check_entry(path, key, entry, x, data_len, err, err_size)) return false;
    x->seen = true;
  }
  for (int i = 0; i < n; i++)
    if (!ts[i].seen) return fail(err, err_size, "%s: tensor '%s' is missing", path, ts[i].name);

  /* In the order of their offsets, the tensors must tile the data exactly:
   * every byte belongs to one tensor. */
  int order[MAX_TENSORS];
  for (int i = 0; i < n; i++) {
    int j = i;
    while (j > 0 && ts[order[j - 1]].begin > ts[i].begin) order[j] = order[j - 1], j--;
    order[j] = i;
  }
  uint64_t at = 0;
  for (int k = 0; k < n; k++) {
    const struct tensor *x = &ts[order[k]];
    if (x->begin < at)
      return fail(err, err_size, "%s: tensors '%s' and '%s' overlap", path, ts[order[k - 1]].name, x->name);
    if (x->begin > at)
      return fail(err, err_size,
                  "%s: the data is not contiguous: bytes %llu to %llu before tensor '%s' belong to no tensor", path,
                  (unsigned long long)at, (unsigned long long)x->begin, x->name);
    at = x->end;
  }
  if (at != data_len)
    return fail(err, err_size, "%s: %llu bytes after the last tensor belong to no tensor", path,
                (unsigned long long)(data_len - at));
  return true;
}

/* Reads the checked tensors TS into their places. The bytes are
 * little-endian; the conversion is the identity on little-endian hosts and
 * a byte swap on others. */
static bool st_read(const struct st_file *f, struct tensor *ts, int n, char *err, size_t err_size) {
  for (int i = 0; i < n; i++) {
    if (!pread_all(f->fd, ts[i].data, ts[i].count * 4, (off_t)(f->data_start + ts[i].begin)))
      return fail(err, err_size, "%s: cannot read tensor '%s': %s", f->path, ts[i].name,
                  errno ? strerror(errno) : "the file ended early");
    unsigned char *bytes = (unsigned char *)ts[i].data;
    for (size_t j = 0; j < ts[i].count; j++) {
      uint32_t u = get_u32le(bytes + 4 * j);
      memcpy(&ts[i].data[j], &u, 4);
    }
  }
  return true;
}

/* A string field of checkpoint.json into a fixed buffer. */
static bool get_text(const char *path, const json_t *root, const char *key, char *out, size_t size, char *err,
                     size_t err_size) {
  const json_t *v = json_object_get(root, key);
  if (!json_is_string(v)) return fail(err, err_size, "%s: \"%s\" must be a string", path, key);
  size_t len = json_string_length(v);
  if (len >= size || strlen(json_string_value(v)) != len)
    return fail(err, err_size, "%s: \"%s\" is longer than %zu bytes or holds a NUL", path, key, size - 1);
  memcpy(out, json_string_value(v), len + 1);
  return true;
}

/* A file name from "files": a plain name in the checkpoint's own folder. */
static bool get_file_name(const char *path, const json_t *files, const char *key, const char **out, char *err,
                          size_t err_size) {
  const json_t *v = json_object_get(files, key);
  if (json_is_null(v)) {
    *out = NULL;
    return true;
  }
  const char *s = json_string_value(v);
  if (!s || !*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return fail(err, err_size, "%s: files.%s must name a file in the checkpoint's folder", path, key);
  *out = s;
  return true;
}

/* checkpoint.json's fields into CK, but for cfg.head, which the model
 * file's tensors tell (check_head), and the parameter count, which
 * depends on it (check_parameters). */
static bool parse_checkpoint_json(const char *path, const json_t *root, struct checkpoint *ck, const char **model,
                                  const char **optimizer, char *err, size_t err_size) {
  if (!json_is_object(root)) return fail(err, err_size, "%s: not a JSON object", path);
  const char *format = json_string_value(json_object_get(root, "format"));
  if (!format || strcmp(format, FORMAT_NAME) != 0)
    return fail(err, err_size, "%s: format is not \"%s\"", path, FORMAT_NAME);
  const json_t *version = json_object_get(root, "version");
  if (!json_is_integer(version)) return fail(err, err_size, "%s: \"version\" must be an integer", path);
  if (json_integer_value(version) != FORMAT_VERSION)
    return fail(err, err_size, "%s: version %lld; this trainpipe reads version %d", path,
                (long long)json_integer_value(version), FORMAT_VERSION);

  const json_t *cfg = json_object_get(root, "config");
  if (!json_is_object(cfg)) return fail(err, err_size, "%s: \"config\" must be an object", path);
  struct { const char *key; int *field; } dims[] = {
      {"vocab", &ck->cfg.vocab}, {"context", &ck->cfg.context}, {"layers", &ck->cfg.layers},
      {"heads", &ck->cfg.heads}, {"width", &ck->cfg.width},
  };
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    const json_t *v = json_object_get(cfg, dims[i].key);
    if (!json_is_integer(v) || json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX)
      return fail(err, err_size, "%s: config.%s must be an integer", path, dims[i].key);
    *dims[i].field = (int)json_integer_value(v);
  }
  const char *problem = gpt_config_problem(&ck->cfg);
  if (problem) return fail(err, err_size, "%s: the config is invalid: %s", path, problem);
  size_t counts[GPT_TENSOR_COUNT], params;
  struct gpt_config with_head = ck->cfg;
  with_head.head = 1;
  if (!count_params(&with_head, counts, &params))
    return fail(err, err_size, "%s: the config is too large to address", path);

  if (!get_text(path, root, "tokenizer", ck->tokenizer, sizeof ck->tokenizer, err, err_size) ||
      !get_text(path, root, "template", ck->template, sizeof ck->template, err, err_size) ||
      !get_text(path, root, "stage", ck->stage, sizeof ck->stage, err, err_size) ||
      !get_text(path, root, "state", ck->state, sizeof ck->state, err, err_size))
    return false;
  if (json_object_get(root, "head")) {
    if (!get_text(path, root, "head", ck->head, sizeof ck->head, err, err_size)) return false;
    if (!known_head_role(ck->head))
      return fail(err, err_size, "%s: \"head\" is \"%s\"; it is \"reward\" or \"value\"", path, ck->head);
  }
  const json_t *step = json_object_get(root, "step");
  if (!json_is_integer(step) || json_integer_value(step) < 0 || json_integer_value(step) > LONG_MAX)
    return fail(err, err_size, "%s: \"step\" must be a non-negative integer", path);
  ck->step = (long)json_integer_value(step);
  const json_t *tokens = json_object_get(root, "tokens");
  if (!json_is_number(tokens) || !(json_number_value(tokens) >= 0))
    return fail(err, err_size, "%s: \"tokens\" must be a non-negative number", path);
  ck->tokens = json_number_value(tokens);

  const json_t *files = json_object_get(root, "files");
  if (!json_is_object(files)) return fail(err, err_size, "%s: \"files\" must be an object", path);
  if (!get_file_name(path, files, "model", model, err, err_size) ||
      !get_file_name(path, files, "optimizer", optimizer, err, err_size))
    return false;
  if (!*model) return fail(err, err_size, "%s: files.model must name the model's file", path);

  const json_t *resume = json_object_get(root, "resume");
  ck->resume = resume && !json_is_null(resume) ? json_incref((json_t *)resume) : NULL;
  return true;
}

/* Whether the model has a scalar head, from the tensors of its file F:
 * checkpoint.json's "head" (at PATH) must name a role exactly when they
 * are there. */
static bool check_head(const char *path, const struct st_file *f, struct checkpoint *ck, char *err, size_t err_size) {
  bool tensors = st_has_head(f);
  if (tensors && !ck->head[0])
    return fail(err, err_size, "%s: %s holds a scalar head (headw, headb) but \"head\" gives it no role", path,
                f->path);
  if (!tensors && ck->head[0])
    return fail(err, err_size, "%s: \"head\" is \"%s\" but %s holds no scalar head (headw, headb)", path, ck->head,
                f->path);
  ck->cfg.head = tensors;
  return true;
}

/* checkpoint.json's "parameters" against the config, head included. */
static bool check_parameters(const char *path, const json_t *root, const struct gpt_config *cfg, char *err,
                             size_t err_size) {
  size_t counts[GPT_TENSOR_COUNT], params;
  count_params(cfg, counts, &params); /* parse_checkpoint_json made sure it fits */
  uint64_t claimed;
  if (!get_count(json_object_get(root, "parameters"), &claimed))
    return fail(err, err_size, "%s: \"parameters\" must be a count", path);
  if (claimed != params)
    return fail(err, err_size, "%s: \"parameters\" says %llu; the config has %zu", path, (unsigned long long)claimed,
                params);
  return true;
}

bool checkpoint_load(const char *dir, struct checkpoint *ck, bool with_moments, char *err, size_t err_size) {
  memset(ck, 0, sizeof *ck);
  char *path = join(dir, JSON_FILE);
  if (!path) return fail(err, err_size, "%s: out of memory", dir);
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  struct st_file f = {.fd = -1};
  bool ok = false;
  if (!root) {
    if (access(path, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR))
      fail(err, err_size, "%s: no checkpoint (%s is missing)", dir, JSON_FILE);
    else
      fail(err, err_size, "%s: not valid JSON: %s (line %d, column %d)", path, jerr.text, jerr.line, jerr.column);
    goto done;
  }
  const char *model, *optimizer;
  if (!parse_checkpoint_json(path, root, ck, &model, &optimizer, err, err_size)) goto done;
  if (!st_open(dir, model, &f, err, err_size) || !check_head(path, &f, ck, err, err_size) ||
      !check_parameters(path, root, &ck->cfg, err, err_size))
    goto done;
  size_t counts[GPT_TENSOR_COUNT], params;
  count_params(&ck->cfg, counts, &params);

  struct tensor ts[MAX_TENSORS];
  int n = add_tensors(ts, 0, &ck->cfg, counts, "");
  if (!st_check(&f, ts, n, &ck->cfg, ck->head, err, err_size)) goto done;
  ck->params = malloc(params * sizeof *ck->params);
  if (!ck->params) {
    fail(err, err_size, "%s: out of memory for %zu parameters", f.path, params);
    goto done;
  }
  place_tensors(ts, n, ck->params);
  if (!st_read(&f, ts, n, err, err_size)) goto done;
  st_close(&f);

  if (with_moments && optimizer) {
    int per_file = add_tensors(ts, 0, &ck->cfg, counts, "m.");
    n = add_tensors(ts, per_file, &ck->cfg, counts, "v.");
    if (!st_open(dir, optimizer, &f, err, err_size) || !st_check(&f, ts, n, &ck->cfg, ck->head, err, err_size))
      goto done;
    ck->m = malloc(params * sizeof *ck->m);
    ck->v = malloc(params * sizeof *ck->v);
    if (!ck->m || !ck->v) {
      fail(err, err_size, "%s: out of memory for the moments of %zu parameters", f.path, params);
      goto done;
    }
    place_tensors(ts, per_file, ck->m);
    place_tensors(ts + per_file, per_file, ck->v);
    if (!st_read(&f, ts, n, err, err_size)) goto done;
  }
  ok = true;
done:
  st_close(&f);
  if (!ok) {
    checkpoint_free(ck);
    memset(ck, 0, sizeof *ck);
  }
  json_decref(root);
  free(path);
  return ok;
}

void checkpoint_free(struct checkpoint *ck) {
  free(ck->params);
  free(ck->m);
  free(ck->v);
  json_decref(ck->resume);
  ck->params = ck->m = ck->v = NULL;
  ck->resume = NULL;
}
