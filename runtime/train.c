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
#include "runtime/stage_io.h"


static double next_token_share(void *ctx, const struct batch *b, const float *logp, const float *values,
                               const double norm[2], float *dlogp, float *dvalues, struct objective_stats *st) {
  (void)ctx, (void)values, (void)dvalues, (void)st;
  return next_token_loss(logp, b->targets, (size_t)b->B * b->T, norm[0], dlogp);
}

static double masked_next_token_share(void *ctx, const struct batch *b, const float *logp, const float *values,
                                      const double norm[2], float *dlogp, float *dvalues, struct objective_stats *st) {
  (void)ctx, (void)values, (void)dvalues, (void)st;
  return masked_next_token_loss(logp, b->weights, (size_t)b->B * b->T, norm[0], dlogp);
}

const struct stage_objective next_token_objective = {.logp = true, .loss = next_token_share};
const struct stage_objective masked_next_token_objective = {.logp = true, .loss = masked_next_token_share};

static void add_units(const struct stage_run *run, const struct batch *b, double units[2]) {
  const struct stage_objective *o = &run->objective;
  double u[2] = {(double)b->counted, 0};
  if (o->units) o->units(o->ctx, b, u);
  units[0] += u[0];
  units[1] += u[1];
}

/* One micro-batch through the backend and the objective: the share of the
 * loss; with TRAIN, its gradients added into the backend's. */
static double micro_step(const struct stage_run *run, const struct batch *b, const double norm[2], bool train, float *logp,
                         float *dlogp, float *values, float *dvalues, struct objective_stats *st) {
  const struct stage_objective *o = &run->objective;
  struct backend *be = run->backend;
  if (o->prepare) o->prepare(o->ctx, be, b);
  be->ops->forward(be, b->tokens, o->logp ? b->targets : NULL, b->B, b->T, o->logp ? logp : NULL,
                   o->values ? values : NULL);
  double share = o->loss(o->ctx, b, logp, values, norm, dlogp, dvalues, st);
  if (train) be->ops->backward(be, o->logp ? dlogp : NULL, o->values ? dvalues : NULL);
  return share;
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
                                  .weights = xmalloc(n * sizeof(float)),
                                  .rows = xmalloc((size_t)micro * sizeof(struct batch_row))};
  }
}

static void batches_free(struct batch_buffers *bb) {
  for (int i = 0; i < bb->count; i++) {
    free(bb->items[i].tokens);
    free(bb->items[i].targets);
    free(bb->items[i].weights);
    free(bb->items[i].rows);
  }
  free(bb->items);
}

/* Scratch for a micro-batch's outputs and their gradients. */
struct outputs {
  float *logp, *dlogp, *values, *dvalues;
};

static void outputs_alloc(struct outputs *o, size_t n) {
  o->logp = xmalloc(n * sizeof *o->logp);
  o->dlogp = xmalloc(n * sizeof *o->dlogp);
  o->values = xmalloc(n * sizeof *o->values);
  o->dvalues = xmalloc(n * sizeof *o->dvalues);
}

static void outputs_free(struct outputs *o) {
  free(o->logp);
  free(o->dlogp);
  free(o->values);
  free(o->dvalues);
}

double stage_evaluate(const struct stage_run *run, struct batch_source *source, long max, struct objective_stats *st,
                      char *err, size_t err_size) {
  if (!source->ctx) return NAN;
  source->rewind(source->ctx);
  struct batch_buffers bb;
  batches_alloc(&bb, 1, run->micro_batch, run->context);
  struct outputs out;
  outputs_alloc(&out, (size_t)run->micro_batch * run->context);
  struct objective_stats ignored = {0};
  double sum = 0, units[2] = {0, 0};
  for (long i = 0; i < max; i++) {
    struct batch *b = &bb.items[0];
    if (!source->next(source->ctx, b, run->micro_batch, err, err_size)) {
      sum = NAN;
      break;
    }
    if (b->B == 0) break; /* the held-out data is done */
    /* each micro-batch normalised by its own units, then weighted by
     * them: the mean over the pass, also for an objective with two
     * normalisers (ORPO's tokens and pairs) */
    double own[2] = {0, 0};
    add_units(run, b, own);
    double norm[2] = {own[0] > 0 ? own[0] : 1, own[1] > 0 ? own[1] : 1};
    sum += own[0] * micro_step(run, b, norm, false, out.logp, out.dlogp, out.values, out.dvalues, st ? st : &ignored);
    units[0] += own[0];
  }
  outputs_free(&out);
  batches_free(&bb);
  return units[0] > 0 ? sum / units[0] : NAN;
}

static void add_metrics(const struct stage_run *run, const struct objective_stats *st, json_t *m) {
  if (run->objective.metrics) run->objective.metrics(run->objective.ctx, st, m);
}

/* The held-out metrics VAL into the metric line M, each as val_NAME. */
static void add_held_out(json_t *m, json_t *val) {
  const char *key;
  json_t *v;
  json_object_foreach(val, key, v) {
    char name[64];
    snprintf(name, sizeof name, "val_%s", key);
    json_object_set(m, name, v);
  }
}

/* The line of numbers after the loss on the progress line: the objective's
 * metrics of STEP (accuracy 0.750  margin 0.31). */
static void metrics_text(json_t *m, char *buf, size_t size) {
  size_t at = 0;
  buf[0] = '\0';
  const char *key;
  json_t *v;
  json_object_foreach(m, key, v) {
    if (at + 1 >= size) break;
    int n = snprintf(buf + at, size - at, "  %s %.4g", key, json_number_value(v));
    if (n < 0) break;
    at += (size_t)n;
  }
}

bool stage_train(const struct stage_run *run, struct stage_result *result, char *err, size_t err_size) {
  struct backend *be = run->backend;
  *result = (struct stage_result){.val_loss = NAN, .loss = NAN};
  struct stage_io io = {.name = run->name, .state = run->state, .tokenizer = run->tokenizer,
                        .template = run->template, .head = run->head ? run->head : "", .dir = run->dir,
                        .progress = run->progress, .tty = run->tty};
  long step;
  double tokens;
  json_t *state;
  if (!stage_io_open(&io, be, run->resume, &step, &tokens, &state, err, err_size)) {
    stage_io_close(&io);
    return false;
  }
  bool ok = true;
  json_t *data = json_object_get(state, "data");
  if (data && !run->train.restore(run->train.ctx, data, err, err_size)) ok = false;
  json_decref(state);
  if (!ok) {
    stage_io_close(&io);
    return false;
  }
  if (step > 0) stage_log(&io, true, "%s: resuming at step %ld of %ld", run->name, step, run->steps);
  for (size_t i = 0; i < run->n_notes; i++) stage_log(&io, true, "%s: %s", run->name, run->notes[i]);

  int micro = run->micro_batch, T = run->context;
  int n_micro = (run->batch + micro - 1) / micro;
  struct batch_buffers bb;
  batches_alloc(&bb, n_micro, micro, T);
  struct outputs out;
  outputs_alloc(&out, (size_t)micro * T);
  double started = stage_clock(), window_start = started, window_tokens = 0;
  long first_step = step;
  json_t *last_metrics = json_object(), *last_val = NULL;
  if (step == 0 && run->eval_at_start && run->val.ctx) {
    struct objective_stats vst = {0};
    double val_loss = stage_evaluate(run, (struct batch_source *)&run->val, run->eval_batches, &vst, err, err_size);
    if (isnan(val_loss) && err[0]) ok = false;
    else {
      json_t *m = json_object(), *vm = json_object();
      add_metrics(run, &vst, vm);
      json_object_set_new(m, "step", json_integer(0));
      if (!isnan(val_loss)) json_object_set_new(m, "val_loss", json_real(val_loss));
      add_held_out(m, vm);
      char shown[160];
      metrics_text(vm, shown, sizeof shown);
      stage_log(&io, true, "%s  step 0/%ld  val_loss %.4f%s (before training)", run->name, run->steps, val_loss, shown);
      stage_metrics(&io, m);
      json_decref(vm);
    }
  }

  for (; ok && step < run->steps; step++) {
    if (run->interrupted && *run->interrupted) {
      json_t *resume = json_object();
      json_object_set_new(resume, "data", run->train.save(run->train.ctx));
      if (!stage_save(&io, be, io.resume_dir, step, tokens, resume, err, err_size)) {
        ok = false;
        break;
      }
      stage_log(&io, true, "%s: interrupted at step %ld; saved; continue with: trainpipe run --resume", run->name,
                step);
      result->interrupted = true;
      break;
    }
    /* every micro-batch of the step first: the objective normalises by
     * the units (tokens, pairs) of the whole step */
    double units[2] = {0, 0}, processed = 0;
    int used = 0;
    for (int left = run->batch; left > 0 && used < n_micro; used++) {
      struct batch *b = &bb.items[used];
      if (!run->train.next(run->train.ctx, b, left < micro ? left : micro, err, err_size)) {
        ok = false;
        goto stop;
      }
      if (b->B == 0) break;
      add_units(run, b, units);
      processed += (double)b->B * b->T;
      left -= b->B;
    }
    if (used == 0) {
      snprintf(err, err_size, "the data of stage '%s' gave no sequences", run->name);
      ok = false;
      break;
    }
    double norm[2] = {units[0] > 0 ? units[0] : 1, units[1] > 0 ? units[1] : 1}, loss = 0;
    struct objective_stats st = {0};
    be->ops->zero_grad(be);
    for (int i = 0; i < used; i++)
      loss += micro_step(run, &bb.items[i], norm, true, out.logp, out.dlogp, out.values, out.dvalues, &st);
    double grad_norm = be->ops->grad_norm(be, 1.0);
    double lr = schedule_lr(&run->schedule, step);
    struct adamw_step s = {.lr = (float)lr, .beta1 = run->beta1, .beta2 = run->beta2, .eps = run->eps,
                           .weight_decay = run->weight_decay,
                           .grad_scale = (float)clip_factor(grad_norm, run->grad_clip), .t = (int)(step + 1)};
    be->ops->step(be, &s);
    tokens += processed;
    window_tokens += processed;
    result->loss = loss;
    json_t *step_metrics = json_object();
    add_metrics(run, &st, step_metrics);
    json_decref(last_metrics);
    last_metrics = step_metrics;

    long done = step + 1;
    bool last = done == run->steps;
    bool evaluate = run->val.ctx && ((run->eval_every > 0 && done % run->eval_every == 0) || last);
    bool log_now = done % run->log_every == 0 || last || evaluate;
    double val_loss = NAN;
    json_t *val_metrics = NULL;
    if (evaluate) {
      struct objective_stats vst = {0};
      val_loss = stage_evaluate(run, (struct batch_source *)&run->val, run->eval_batches, &vst, err, err_size);
      if (isnan(val_loss) && err[0]) {
        ok = false;
        break;
      }
      result->val_loss = val_loss;
      val_metrics = json_object();
      add_metrics(run, &vst, val_metrics);
      json_decref(last_val);
      last_val = json_incref(val_metrics);
    }
    if (log_now) {
      double t = stage_clock(), per_s = window_tokens / (t - window_start > 0 ? t - window_start : 1e-9);
      json_t *m = json_object();
      json_object_set_new(m, "step", json_integer(done));
      json_object_set_new(m, "tokens", json_real(tokens));
      json_object_set_new(m, "loss", json_real(loss));
      json_object_update(m, step_metrics);
      json_object_set_new(m, "lr", json_real(lr));
      json_object_set_new(m, "grad_norm", json_real(grad_norm));
      json_object_set_new(m, "tokens_per_s", json_real(per_s));
      if (!isnan(val_loss)) json_object_set_new(m, "val_loss", json_real(val_loss));
      if (val_metrics) add_held_out(m, val_metrics);
      stage_metrics(&io, m);
      char eta[32], val[48] = "", shown[160];
      stage_eta((double)(run->steps - done) * (t - started) / (double)(done - first_step), eta, sizeof eta);
      if (!isnan(val_loss)) snprintf(val, sizeof val, "  val_loss %.4f", val_loss);
      metrics_text(val_metrics ? val_metrics : step_metrics, shown, sizeof shown);
      stage_log(&io, last, "%s  step %ld/%ld  loss %.4f%s%s  lr %.3g  %.0f tok/s  ETA %s", run->name, done, run->steps,
                loss, val, shown, lr, per_s, eta);
      window_start = t;
      window_tokens = 0;
    }
    json_decref(val_metrics);
    if (run->checkpoint_every > 0 && done % run->checkpoint_every == 0 && !last) {
      json_t *resume = json_object();
      json_object_set_new(resume, "data", run->train.save(run->train.ctx));
      if (!stage_save(&io, be, io.resume_dir, done, tokens, resume, err, err_size)) {
        ok = false;
        break;
      }
    }
  }
stop:
  if (ok && !result->interrupted) {
    /* the summary: what `assert` reads; held-out figures where there are some */
    json_t *summary = json_object();
    json_object_set_new(summary, "steps", json_integer(step));
    json_object_set_new(summary, "loss", json_real(result->loss));
    if (!isnan(result->val_loss)) json_object_set_new(summary, "val_loss", json_real(result->val_loss));
    json_object_update(summary, last_val ? last_val : last_metrics);
    result->summary = json_incref(summary);
    ok = stage_finish(&io, be, step, tokens, summary, err, err_size);
  }
  json_decref(last_metrics);
  json_decref(last_val);
  result->steps = step;
  result->tokens = tokens;
  outputs_free(&out);
  batches_free(&bb);
  stage_io_close(&io);
  return ok;
}
