#include "runtime/train.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grammar/arena.h"
#include "interp/atomic_write.h"
#include "runtime/checkpoint.h"
#include "runtime/objectives/objectives.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double objective_loss(const struct stage_run *run, const struct batch *b, const float *logp, double norm,
                             float *dlogp) {
  size_t n = (size_t)b->B * b->T;
  return run->objective == OBJECTIVE_NEXT_TOKEN ? next_token_loss(logp, b->targets, n, norm, dlogp)
                                                : masked_next_token_loss(logp, b->weights, n, norm, dlogp);
}

/* A micro-batch's buffers, sized for the largest. */
struct batch_buffers {
  struct batch *items;
  int count;
};

static void batches_alloc(struct batch_buffers *bb, int count, int micro, int T) {
  bb->count = count;
  bb->items = xmalloc((size_t)count * sizeof *bb->items);
  for (int i = 0; i < count; i++) {
    size_t n = (size_t)micro * T;
    bb->items[i] = (struct batch){.tokens = xmalloc(n * sizeof(int32_t)), .targets = xmalloc(n * sizeof(int32_t)),
                                  .weights = xmalloc(n * sizeof(float))};
  }
}

static void batches_free(struct batch_buffers *bb) {
  for (int i = 0; i < bb->count; i++) {
    free(bb->items[i].tokens);
    free(bb->items[i].targets);
    free(bb->items[i].weights);
  }
  free(bb->items);
}

double stage_evaluate(const struct stage_run *run, struct batch_source *source, long max, char *err, size_t err_size) {
  if (!source->ctx) return NAN;
  source->rewind(source->ctx);
  struct batch_buffers bb;
  batches_alloc(&bb, 1, run->micro_batch, run->context);
  size_t n = (size_t)run->micro_batch * run->context;
  float *logp = xmalloc(n * sizeof *logp), *dlogp = xmalloc(n * sizeof *dlogp);
  double sum = 0, counted = 0;
  for (long i = 0; i < max; i++) {
    struct batch *b = &bb.items[0];
    if (!source->next(source->ctx, b, run->micro_batch, err, err_size)) {
      sum = NAN;
      break;
    }
    if (b->B == 0) break; /* the held-out data is done */
    run->backend->ops->forward(run->backend, b->tokens, b->targets, b->B, b->T, logp, NULL);
    sum += objective_loss(run, b, logp, 1.0, dlogp);
    counted += (double)b->counted;
  }
  free(logp);
  free(dlogp);
  batches_free(&bb);
  return counted > 0 ? sum / counted : NAN;
}

/* The stage's folder and a file in it. */
static char *path_in(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = xmalloc(n);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static bool make_dir(const char *dir, char *err, size_t err_size) {
  if (mkdir(dir, 0777) == 0 || errno == EEXIST) return true;
  snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
  return false;
}

/* Saves the weights (and, to resume, the moments and the data position). */
static bool save(const struct stage_run *run, const char *dir, long step, double tokens, bool resumable, char *err,
                 size_t err_size) {
  struct backend *be = run->backend;
  struct checkpoint ck = {.cfg = be->spec.cfg, .step = step, .tokens = tokens};
  snprintf(ck.tokenizer, sizeof ck.tokenizer, "%s", run->tokenizer);
  snprintf(ck.template, sizeof ck.template, "%s", run->template);
  snprintf(ck.stage, sizeof ck.stage, "%s", run->name);
  snprintf(ck.state, sizeof ck.state, "%s", run->state);
  ck.params = xmalloc(be->n_params * sizeof *ck.params);
  be->ops->read_params(be, ck.params);
  if (resumable) {
    ck.m = xmalloc(be->n_params * sizeof *ck.m);
    ck.v = xmalloc(be->n_params * sizeof *ck.v);
    if (!be->ops->read_moments(be, ck.m, ck.v)) free(ck.m), free(ck.v), ck.m = ck.v = NULL;
    ck.resume = json_object();
    json_object_set_new(ck.resume, "data", run->train.save(run->train.ctx));
  }
  bool ok = checkpoint_save(dir, &ck, err, err_size);
  checkpoint_free(&ck);
  return ok;
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

static void log_line(const struct stage_run *run, FILE *log, bool final, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void log_line(const struct stage_run *run, FILE *log, bool final, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (log) fprintf(log, "%s\n", text), fflush(log);
  if (!run->progress) return;
  if (run->tty) fprintf(run->progress, "\r\033[K%s%s", text, final ? "\n" : "");
  else fprintf(run->progress, "%s\n", text);
  fflush(run->progress);
}

static void eta_text(double seconds, char *buf, size_t size) {
  if (!(seconds >= 0) || seconds > 1e7) snprintf(buf, size, "?");
  else if (seconds < 60) snprintf(buf, size, "%.0fs", seconds);
  else if (seconds < 3600) snprintf(buf, size, "%.0fm%02.0fs", floor(seconds / 60), fmod(seconds, 60));
  else snprintf(buf, size, "%.0fh%02.0fm", floor(seconds / 3600), fmod(seconds / 60, 60));
}

bool stage_train(const struct stage_run *run, struct stage_result *result, char *err, size_t err_size) {
  struct backend *be = run->backend;
  *result = (struct stage_result){.val_loss = NAN, .loss = NAN};
  if (!make_dir(run->dir, err, err_size)) return false;
  char *metrics_path = path_in(run->dir, "metrics.jsonl"), *log_path = path_in(run->dir, "log.txt");
  char *resume_dir = path_in(run->dir, "resume");
  long step = 0;
  double tokens = 0;
  bool ok = true;

  if (run->resume) {
    struct checkpoint ck;
    char *json = path_in(resume_dir, "checkpoint.json");
    bool there = access(json, F_OK) == 0;
    free(json);
    if (there) {
      if (!checkpoint_load(resume_dir, &ck, true, err, err_size)) {
        ok = false;
        goto done;
      }
      be->ops->write_params(be, ck.params);
      if (ck.m && ck.v) be->ops->write_moments(be, ck.m, ck.v);
      step = ck.step;
      tokens = ck.tokens;
      json_t *data = json_object_get(ck.resume, "data");
      if (data && !run->train.restore(run->train.ctx, data, err, err_size)) {
        checkpoint_free(&ck);
        ok = false;
        goto done;
      }
      checkpoint_free(&ck);
      truncate_metrics(metrics_path, step);
    }
  }
  FILE *metrics = fopen(metrics_path, step > 0 ? "a" : "w");
  FILE *log = fopen(log_path, step > 0 ? "a" : "w");
  if (!metrics || !log) {
    snprintf(err, err_size, "cannot write in %s: %s", run->dir, strerror(errno));
    if (metrics) fclose(metrics);
    if (log) fclose(log);
    ok = false;
    goto done;
  }
  if (step > 0) log_line(run, log, true, "%s: resuming at step %ld of %ld", run->name, step, run->steps);

  int micro = run->micro_batch, T = run->context;
  int n_micro = (run->batch + micro - 1) / micro;
  struct batch_buffers bb;
  batches_alloc(&bb, n_micro, micro, T);
  size_t n = (size_t)micro * T;
  float *logp = xmalloc(n * sizeof *logp), *dlogp = xmalloc(n * sizeof *dlogp);
  double started = now_seconds(), window_start = started, window_tokens = 0;
  long first_step = step;

  for (; step < run->steps; step++) {
    if (run->interrupted && *run->interrupted) {
      if (!make_dir(resume_dir, err, err_size) || !save(run, resume_dir, step, tokens, true, err, err_size)) {
        ok = false;
        break;
      }
      log_line(run, log, true, "%s: interrupted at step %ld; saved; continue with: trainpipe run --resume", run->name,
               step);
      result->interrupted = true;
      break;
    }
    /* every micro-batch of the step first: the objective normalises by
     * the tokens counted in the whole step */
    double counted = 0, processed = 0;
    int used = 0;
    for (int left = run->batch; left > 0 && used < n_micro; used++) {
      struct batch *b = &bb.items[used];
      if (!run->train.next(run->train.ctx, b, left < micro ? left : micro, err, err_size)) {
        ok = false;
        goto stop;
      }
      if (b->B == 0) break;
      counted += (double)b->counted;
      processed += (double)b->B * b->T;
      left -= b->B;
    }
    if (used == 0) {
      snprintf(err, err_size, "the data of stage '%s' gave no sequences", run->name);
      ok = false;
      break;
    }
    double norm = counted > 0 ? counted : 1, loss = 0;
    be->ops->zero_grad(be);
    for (int i = 0; i < used; i++) {
      struct batch *b = &bb.items[i];
      be->ops->forward(be, b->tokens, b->targets, b->B, b->T, logp, NULL);
      loss += objective_loss(run, b, logp, norm, dlogp);
      be->ops->backward(be, dlogp, NULL);
    }
    double grad_norm = be->ops->grad_norm(be, 1.0);
    double lr = schedule_lr(&run->schedule, step);
    struct adamw_step s = {.lr = (float)lr, .beta1 = run->beta1, .beta2 = run->beta2, .eps = run->eps,
                           .weight_decay = run->weight_decay,
                           .grad_scale = (float)clip_factor(grad_norm, run->grad_clip), .t = (int)(step + 1)};
    be->ops->step(be, &s);
    tokens += processed;
    window_tokens += processed;
    result->loss = loss;

    long done = step + 1;
    bool last = done == run->steps;
    bool evaluate = run->val.ctx && ((run->eval_every > 0 && done % run->eval_every == 0) || last);
    bool log_now = done % run->log_every == 0 || last || evaluate;
    double val_loss = NAN;
    if (evaluate) {
      val_loss = stage_evaluate(run, (struct batch_source *)&run->val, run->eval_batches, err, err_size);
      if (isnan(val_loss) && err[0]) {
        ok = false;
        break;
      }
      result->val_loss = val_loss;
    }
    if (log_now) {
      double t = now_seconds(), per_s = window_tokens / (t - window_start > 0 ? t - window_start : 1e-9);
      json_t *m = json_object();
      json_object_set_new(m, "step", json_integer(done));
      json_object_set_new(m, "tokens", json_real(tokens));
      json_object_set_new(m, "loss", json_real(loss));
      json_object_set_new(m, "lr", json_real(lr));
      json_object_set_new(m, "grad_norm", json_real(grad_norm));
      json_object_set_new(m, "tokens_per_s", json_real(per_s));
      if (!isnan(val_loss)) json_object_set_new(m, "val_loss", json_real(val_loss));
      json_dumpf(m, metrics, JSON_COMPACT | JSON_PRESERVE_ORDER);
      fputc('\n', metrics);
      fflush(metrics);
      json_decref(m);
      char eta[32], val[48] = "";
      eta_text((double)(run->steps - done) * (t - started) / (double)(done - first_step), eta, sizeof eta);
      if (!isnan(val_loss)) snprintf(val, sizeof val, "  val_loss %.4f", val_loss);
      log_line(run, log, last, "%s  step %ld/%ld  loss %.4f%s  lr %.3g  %.0f tok/s  ETA %s", run->name, done, run->steps,
               loss, val, lr, per_s, eta);
      window_start = t;
      window_tokens = 0;
    }
    if (run->checkpoint_every > 0 && done % run->checkpoint_every == 0 && !last) {
      if (!make_dir(resume_dir, err, err_size) || !save(run, resume_dir, done, tokens, true, err, err_size)) {
        ok = false;
        break;
      }
    }
  }
stop:
  if (ok && !result->interrupted) {
    ok = save(run, run->dir, step, tokens, false, err, err_size);
    if (ok) {
      /* the stage is done: its resume point is no longer needed */
      char *files[] = {"checkpoint.json", "model.safetensors", "optimizer.safetensors"};
      for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *p = path_in(resume_dir, files[i]);
        unlink(p);
        free(p);
      }
      rmdir(resume_dir);
    }
  }
  result->steps = step;
  result->tokens = tokens;
  free(logp);
  free(dlogp);
  batches_free(&bb);
  fclose(metrics);
  fclose(log);
done:
  free(metrics_path);
  free(log_path);
  free(resume_dir);
  return ok;
}
