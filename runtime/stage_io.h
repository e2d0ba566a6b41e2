/* What every stage loop shares (train.c's and rl.c's): the stage's folder,
 * its log (log.txt, and a progress line on the terminal), its metric lines
 * (metrics.jsonl), checkpoints into the folder or its resume/ subfolder,
 * and summary.json, the final metrics `assert` gates read.
 *
 * A stage resumes from DIR/resume when it is there: the weights, the AdamW
 * moments and the loop's own state (a JSON object the loop defines); metric
 * lines logged after that checkpoint are dropped, to be logged again. */
#ifndef TRAINPIPE_STAGE_IO_H
#define TRAINPIPE_STAGE_IO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "runtime/backend.h"

struct stage_io {
  /* given */
  const char *name, *state;        /* the stage, and what its output is ("base", "reward"...) */
  const char *tokenizer, *template;
  const char *head;                /* the role of the model's scalar head ("reward", "value"), or "" */
  const char *dir;
  FILE *progress;                  /* NULL: quiet */
  bool tty;
  /* owned, opened by stage_io_open */
  FILE *metrics, *log;
  char *metrics_path, *resume_dir;
};

/* A file in DIR, allocated. */
char *stage_path(const char *dir, const char *name);

bool stage_make_dir(const char *dir, char *err, size_t err_size);

/* Creates the folder; with RESUME and a checkpoint in DIR/resume, loads it
 * into BACKEND and sets *STEP, *TOKENS and *STATE (the loop's JSON, owned by
 * the caller; NULL when nothing was resumed). Opens the log and the metric
 * lines, appending after a resumed step. */
bool stage_io_open(struct stage_io *io, struct backend *backend, bool resume, long *step, double *tokens,
                   json_t **state, char *err, size_t err_size);
void stage_io_close(struct stage_io *io);

/* A line in log.txt and on the progress stream (on a terminal, a live line
 * that FINAL ends). */
void stage_log(const struct stage_io *io, bool final, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A metric line (steals M). */
void stage_metrics(const struct stage_io *io, json_t *m);

/* "12s", "3m05s", "1h02m"; "?" when unknown. */
void stage_eta(double seconds, char *buf, size_t size);

/* Seconds on a monotonic clock. */
double stage_clock(void);

/* Saves BACKEND's weights into DIR; with STATE (stolen), the moments and
 * STATE too, so that the stage can resume there. */
bool stage_save(const struct stage_io *io, struct backend *backend, const char *dir, long step, double tokens,
                json_t *state, char *err, size_t err_size);

/* The stage is done: its checkpoint into DIR, SUMMARY (stolen) into
 * summary.json, the resume point removed. */
bool stage_finish(const struct stage_io *io, struct backend *backend, long step, double tokens, json_t *summary,
                  char *err, size_t err_size);

/* Reads a finished stage's summary.json in DIR; NULL when there is none. */
json_t *stage_summary(const char *dir);

#endif
