#include "runtime/stage_io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grammar/arena.h"
#include "interp/atomic_write.h"
#include "runtime/checkpoint.h"

char *stage_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = xmalloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

bool stage_make_dir(const char *dir, char *err, size_t err_size) {
  if (mkdir(dir, 0777) == 0 || errno == EEXIST) return true;
  snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
  return false;
}

double stage_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the metric lines of steps up to STEP: a stage resumed from a
 * checkpoint at STEP logs the later ones again. */
static void truncate_metrics(const char *path, long step) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char *kept = NULL, *line = NULL;
  size_t kept_len = 0, cap = 0;
  FILE *out = open_memstream(&kept, &kept_len);
  ssize_t n;
  while (out && (n = getline(&line, &cap, f)) > 0) {
    json_error_t jerr;
    json_t *o = json_loadb(line, (size_t)n, 0, &jerr);
    json_t *s = json_object_get(o, "step");
    if (json_is_integer(s) && json_integer_value(s) <= step) fwrite(line, 1, (size_t)n, out);
    json_decref(o);
  }
  free(line);
  fclose(f);
  if (out && fclose(out) == 0) atomic_write(path, kept, kept_len, 0644);
  free(kept);
}

static bool resume_from(struct stage_io *io, struct backend *be, long *step, double *tokens, json_t **state,
                        char *err, size_t err_size) {
  char *json = stage_path(io->resume_dir, "checkpoint.json");
  bool there = access(json, F_OK) == 0;
  free(json);
  if (!there) return true;
  struct checkpoint ck;
  if (!checkpoint_load(io->resume_dir, &ck, true, err, err_size)) return false;
  if (ck.cfg.head != be->spec.cfg.head) {
    snprintf(err, err_size, "%s: the checkpoint to resume from does not match the stage's model", io->resume_dir);
    checkpoint_free(&ck);
    return false;
  }
  be->ops->write_params(be, ck.params);
  if (ck.m && ck.v) be->ops->write_moments(be, ck.m, ck.v);
  *step = ck.step;
  *tokens = ck.tokens;
  *state = ck.resume ? json_incref(ck.resume) : NULL;
  checkpoint_free(&ck);
  truncate_metrics(io->metrics_path, *step);
  return true;
}

bool stage_io_open(struct stage_io *io, struct backend *be, bool resume, long *step, double *tokens, json_t **state,
                   char *err, size_t err_size) {
  *step = 0;
  *tokens = 0;
  *state = NULL;
  io->metrics = io->log = NULL;
  io->metrics_path = stage_path(io->dir, "metrics.jsonl");
  io->resume_dir = stage_path(io->dir, "resume");
  if (!stage_make_dir(io->dir, err, err_size)) return false;
  if (resume && !resume_from(io, be, step, tokens, state, err, err_size)) return false;
  char *log_path = stage_path(io->dir, "log.txt");
  io->metrics = fopen(io->metrics_path, *step > 0 ? "a" : "w");
  io->log = fopen(log_path, *step > 0 ? "a" : "w");
  free(log_path);
  if (!io->metrics || !io->log) {
    snprintf(err, err_size, "cannot write in %s: %s", io->dir, strerror(errno));
    return false;
  }
  stage_log(io, true, "%s: on %s", io->name, be->description);
  return true;
}

void stage_io_close(struct stage_io *io) {
  if (io->metrics) fclose(io->metrics);
  if (io->log) fclose(io->log);
  free(io->metrics_path);
  free(io->resume_dir);
  io->metrics = io->log = NULL;
  io->metrics_path = io->resume_dir = NULL;
}

void stage_log(const struct stage_io *io, bool final, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (io->log) fprintf(io->log, "%s\n", text), fflush(io->log);
  if (!io->progress) return;
  if (io->tty) fprintf(io->progress, "\r\033[K%s%s", text, final ? "\n" : "");
  else fprintf(io->progress, "%s\n", text);
  fflush(io->progress);
}

void stage_metrics(const struct stage_io *io, json_t *m) {
  json_dumpf(m, io->metrics, JSON_COMPACT | JSON_PRESERVE_ORDER);
  fputc('\n', io->metrics);
  fflush(io->metrics);
  json_decref(m);
}

void stage_eta(double seconds, char *buf, size_t size) {
  if (!(seconds >= 0) || seconds > 1e7) snprintf(buf, size, "?");
  else if (seconds < 60) snprintf(buf, size, "%.0fs", seconds);
  else if (seconds < 3600) snprintf(buf, size, "%.0fm%02.0fs", floor(seconds / 60), fmod(seconds, 60));
  else snprintf(buf, size, "%.0fh%02.0fm", floor(seconds / 3600), fmod(seconds / 60, 60));
}

bool stage_save(const struct stage_io *io, struct backend *be, const char *dir, long step, double tokens,
                json_t *state, char *err, size_t err_size) {
  if (!stage_make_dir(dir, err, err_size)) {
    json_decref(state);
    return false;
  }
  struct checkpoint ck = {.cfg = be->spec.cfg, .step = step, .tokens = tokens};
  snprintf(ck.tokenizer, sizeof ck.tokenizer, "%s", io->tokenizer);
  snprintf(ck.template, sizeof ck.template, "%s", io->template);
  snprintf(ck.stage, sizeof ck.stage, "%s", io->name);
  snprintf(ck.state, sizeof ck.state, "%s", io->state);
  snprintf(ck.head, sizeof ck.head, "%s", be->spec.cfg.head && io->head ? io->head : "");
  ck.params = xmalloc(be->n_params * sizeof *ck.params);
  be->ops->read_params(be, ck.params);
  if (state) {
    ck.m = xmalloc(be->n_params * sizeof *ck.m);
    ck.v = xmalloc(be->n_params * sizeof *ck.v);
    if (!be->ops->read_moments(be, ck.m, ck.v)) free(ck.m), free(ck.v), ck.m = ck.v = NULL;
    ck.resume = state;
  }
  bool ok = checkpoint_save(dir, &ck, err, err_size);
  checkpoint_free(&ck);
  return ok;
}

bool stage_finish(const struct stage_io *io, struct backend *be, long step, double tokens, json_t *summary,
                  char *err, size_t err_size) {
  bool ok = stage_save(io, be, io->dir, step, tokens, NULL, err, err_size);
  if (ok) {
    char *text = json_dumps(summary, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *path = stage_path(io->dir, "summary.json");
    size_t len = strlen(text);
    if (!atomic_write(path, text, len, 0644)) {
      snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
      ok = false;
    }
    free(path);
    free(text);
  }
  json_decref(summary);
  if (!ok) return false;
  /* the stage is done: its resume point is no longer needed */
  const char *files[] = {"checkpoint.json", "model.safetensors", "optimizer.safetensors"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *p = stage_path(io->resume_dir, files[i]);
    unlink(p);
    free(p);
  }
  rmdir(io->resume_dir);
  return true;
}

json_t *stage_summary(const char *dir) {
  char *path = stage_path(dir, "summary.json");
  json_error_t jerr;
  json_t *s = json_load_file(path, 0, &jerr);
  free(path);
  return json_is_object(s) ? s : (json_decref(s), NULL);
}
