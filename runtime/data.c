/* Corpora and demonstrations, read into token sequences and served in
 * batches (see data.h). Everything a data set holds is read once, at open:
 * the data of a stage that trains on a CPU fits in memory many times over,
 * and reading it all first is what lets a bad line fail the stage before
 * its first step. */
#include "runtime/data.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grammar/arena.h"
#include "runtime/data_files.h"
#include "runtime/rng.h"

/* One sequence: LEN tokens of a part from START; LEN <= T + 1. */
struct seq {
  size_t start;
  size_t len;
};

/* The training or the held-out side of a source. */
struct part {
  struct tokens toks;
  struct seq *seqs;
  size_t n_seqs, cap_seqs;
};

struct source {
  char *name;
  enum data_kind kind;
  struct part train, val;
  struct data_stats stats;
  struct epoch_order order; /* of the training sequences */
};

struct data_loader {
  struct data_options opt;
  struct source *src;
  size_t n;
  double *cum;    /* cumulative shares, the last 1 */
  int64_t draws;  /* mix draws done */
};

/* A document or example, as a range of the tokens read. */
struct doc {
  size_t start, len;
  uint64_t hash;
};

struct docs {
  struct tokens toks;
  struct doc *items;
  size_t n, cap;
};

bool demo_format_find(const char *name, enum demo_format *out, char *err, size_t err_size) {
  static const char *const names[] = {[FORMAT_AUTO] = "auto", [FORMAT_PROMPT_RESPONSE] = "prompt_response",
                                      [FORMAT_MESSAGES] = "messages"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (name && strcmp(name, names[i]) == 0) {
      *out = (enum demo_format)i;
      return true;
    }
  snprintf(err, err_size, "unknown format '%s': auto, prompt_response or messages", name ? name : "(none)");
  return false;
}

void data_batch_init(struct data_batch *b, int B, int T) {
  size_t n = (size_t)B * (size_t)T;
  *b = (struct data_batch){.B = B, .T = T};
  b->tokens = xmalloc(n * sizeof *b->tokens);
  b->targets = xmalloc(n * sizeof *b->targets);
  b->weights = xmalloc(n * sizeof *b->weights);
  b->source = xmalloc((size_t)B * sizeof *b->source);
}

void data_batch_free(struct data_batch *b) {
  free(b->tokens);
  free(b->targets);
  free(b->weights);
  free(b->source);
  *b = (struct data_batch){0};
}

/* --- reading files ------------------------------------------------------ */

/* The whole of PATH, NUL-terminated, in *BUF (LEN bytes); false with the
 * reason. */
static bool read_file(const char *path, char **buf, size_t *len, char *err, size_t err_size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return false;
  }
  struct stat st;
  size_t cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, have = 0;
  char *data = xmalloc(cap);
  for (;;) {
    if (have + 1 >= cap) data = xrealloc(data, cap *= 2); /* longer than fstat said: growing, or not sized */
    ssize_t n = read(fd, data + have, cap - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      snprintf(err, err_size, "%s: cannot read: %s", path, strerror(errno));
      free(data);
      close(fd);
      return false;
    }
    if (n == 0) break;
    have += (size_t)n;
  }
  close(fd);
  data[have] = '\0';
  *buf = data;
  *len = have;
  return true;
}

static void docs_add(struct docs *d, size_t start) {
  d->items = xgrow(d->items, &d->cap, d->n + 1, sizeof *d->items);
  size_t len = d->toks.n - start;
  d->items[d->n++] = (struct doc){start, len, token_hash(d->toks.ids + start, len)};
}

/* Every file of a corpus, one document each. */
static bool read_corpus(const struct data_source *s, const struct data_options *opt, struct docs *out,
                        struct data_stats *st, char *err, size_t err_size) {
  struct file_list files;
  if (!file_list_match(&files, s->name, s->pattern, err, err_size)) return false;
  bool ok = true;
  for (size_t i = 0; ok && i < files.n; i++) {
    const char *path = files.paths[i];
    char *text;
    size_t len;
    if (!(ok = read_file(path, &text, &len, err, err_size))) break;
    st->files++;
    size_t bad = utf8_check(text, len);
    if (bad < len) {
      snprintf(err, err_size, "%s: not UTF-8 at byte %zu (0x%02x)", path, bad, (unsigned char)text[bad]);
      ok = false;
    } else {
      size_t chars = utf8_chars(text, len);
      if (chars == 0 || chars < s->min_chars) {
        st->dropped_short++;
      } else {
        size_t start = out->toks.n;
        tokenizer_encode(opt->tok, text, len, 1, &out->toks);
        if (s->max_length > 0 && out->toks.n - start > s->max_length) {
          out->toks.n = start;
          st->dropped_long++;
        } else {
          docs_add(out, start);
        }
      }
    }
    free(text);
  }
  file_list_free(&files);
  return ok;
}

/* The messages of one JSONL example in M (grown as needed); NULL when it is
 * one, else why not. */
static const char *example_messages(json_t *obj, enum demo_format format, struct chat_message **m, size_t *n,
                                    size_t *cap, char *why, size_t why_size) {
  *n = 0;
  if (!json_is_object(obj)) return "not a JSON object";
  json_t *messages = json_object_get(obj, "messages");
  if (format == FORMAT_MESSAGES || (format == FORMAT_AUTO && messages)) {
    if (!messages) return "no 'messages' field (format = messages)";
    if (!json_is_array(messages) || json_array_size(messages) == 0) return "'messages' is not a list of messages";
    bool answered = false;
    for (size_t i = 0; i < json_array_size(messages); i++) {
      json_t *msg = json_array_get(messages, i), *role = json_object_get(msg, "role"),
             *content = json_object_get(msg, "content");
      if (!json_is_string(role)) {
        snprintf(why, why_size, "messages[%zu]: no 'role' string", i);
        return why;
      }
      if (!json_is_string(content)) {
        snprintf(why, why_size, "messages[%zu]: no 'content' string", i);
        return why;
      }
      *m = xgrow(*m, cap, *n + 1, sizeof **m);
      struct chat_message *cm = &(*m)[(*n)++];
      if (!chat_role_find(json_string_value(role), json_string_length(role), &cm->role)) {
        snprintf(why, why_size, "messages[%zu]: unknown role '%.40s' (system, user or assistant)", i,
                 json_string_value(role));
        return why;
      }
      cm->text = json_string_value(content);
      cm->len = json_string_length(content);
      answered |= cm->role == ROLE_ASSISTANT;
    }
    if (!answered) return "no assistant message: nothing to learn from";
    return NULL;
  }
  static const char *const fields[2] = {"prompt", "response"};
  *m = xgrow(*m, cap, 2, sizeof **m);
  for (size_t i = 0; i < 2; i++) {
    json_t *v = json_object_get(obj, fields[i]);
    if (!v) {
      snprintf(why, why_size, "no '%s' field%s", fields[i], format == FORMAT_AUTO ? " (and no 'messages')" : "");
      return why;
    }
    if (!json_is_string(v)) {
      snprintf(why, why_size, "'%s' is not a string", fields[i]);
      return why;
    }
    (*m)[i] = (struct chat_message){i ? ROLE_ASSISTANT : ROLE_USER, json_string_value(v), json_string_length(v)};
  }
  *n = 2;
  return NULL;
}

/* One example's tokens, just added from START: dropped when over
 * max_length, else cut to the longest sequence, and the loss scope set. */
static void keep_example(const struct data_source *s, const struct data_options *opt, struct docs *out, size_t start,
                         struct data_stats *st) {
  struct tokens *t = &out->toks;
  size_t len = t->n - start, most = (size_t)opt->context + 1;
  if (s->max_length > 0 && len > s->max_length) {
    t->n = start;
    st->dropped_long++;
    return;
  }
  if (opt->loss_all) /* every token but the first, which nothing of this example predicts */
    for (size_t i = 0; i < len; i++) t->mask[start + i] = i > 0;
  if (len > most) {
    t->n = start + most;
    st->truncated++;
    bool counted = false;
    for (size_t i = 1; i < most && !counted; i++) counted = t->mask[start + i];
    st->truncated_blank += !counted;
  }
  docs_add(out, start);
}

/* What the lines of a demonstration file are read into. */
struct demo_reader {
  const struct data_source *s;
  const struct data_options *opt;
  struct docs *out;
  struct data_stats *st;
  struct chat_message *m; /* one line's messages */
  size_t cap_m;
};

/* One JSONL line, one example (a jsonl_line_reader). */
static const char *read_demo(void *ctx, const char *line, size_t n, char *why, size_t why_size) {
  struct demo_reader *r = ctx;
  json_error_t jerr;
  json_t *obj = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
  if (!obj) {
    snprintf(why, why_size, "not JSON: %s", jerr.text);
    return why;
  }
  size_t n_msg, start = r->out->toks.n;
  const char *bad = example_messages(obj, r->s->format, &r->m, &n_msg, &r->cap_m, why, why_size);
  char reason[160];
  if (!bad && !template_render(r->opt->tok, r->opt->template, r->m, n_msg, false, &r->out->toks, reason,
                               sizeof reason)) {
    snprintf(why, why_size, "%s", reason);
    bad = why;
  }
  if (!bad) keep_example(r->s, r->opt, r->out, start, r->st);
  json_decref(obj);
  return bad;
}

/* Every line of the JSONL files, one example each. */
static bool read_demos(const struct data_source *s, const struct data_options *opt, struct docs *out,
                       struct data_stats *st, char *err, size_t err_size) {
  struct file_list files;
  if (!file_list_match(&files, s->name, s->pattern, err, err_size)) return false;
  struct demo_reader r = {.s = s, .opt = opt, .out = out, .st = st};
  bool ok = true;
  for (size_t i = 0; ok && i < files.n; i++) {
    st->files++;
    ok = jsonl_read_lines(files.paths[i], read_demo, &r, err, err_size);
  }
  free(r.m);
  file_list_free(&files);
  return ok;
}

/* --- splitting and laying out ------------------------------------------ */

/* Which documents are held out: HELD[i]. */
static size_t choose_val(const struct docs *d, double val_split, uint64_t split_seed, bool *held) {
  uint64_t *hashes = xmalloc(d->n * sizeof *hashes);
  for (size_t i = 0; i < d->n; i++) hashes[i] = d->items[i].hash;
  size_t n_val = held_out_choose(hashes, d->n, val_split, split_seed, held);
  free(hashes);
  return n_val;
}

static void part_add_seq(struct part *p, size_t start, size_t len) {
  p->seqs = xgrow(p->seqs, &p->cap_seqs, p->n_seqs + 1, sizeof *p->seqs);
  p->seqs[p->n_seqs++] = (struct seq){start, len};
}

/* Windows of T + 1 tokens over the tokens of P from START, each starting
 * where the last one's final token is, the last one shorter. */
static void window(struct part *p, size_t start, size_t T) {
  for (size_t s = start; s + 1 < p->toks.n; s += T) {
    size_t left = p->toks.n - s;
    part_add_seq(p, s, left < T + 1 ? left : T + 1);
  }
}

static void append_range(struct part *p, const struct docs *d, const struct doc *doc) {
  tokens_append(&p->toks, d->toks.ids + doc->start, d->toks.mask + doc->start, doc->len);
}

/* The documents with HELD[i] == WANT laid out in P. */
static void build_part(const struct source *src, const struct data_options *opt, const struct docs *d,
                       const bool *held, bool want, struct part *p) {
  size_t T = (size_t)opt->context;
  int32_t eos = tokenizer_special(opt->tok, SPECIAL_EOS);
  if (src->kind == DATA_CORPUS && opt->packing) {
    tokens_push(&p->toks, eos, 1);
    for (size_t i = 0; i < d->n; i++) {
      if (held[i] != want) continue;
      append_range(p, d, &d->items[i]);
      tokens_push(&p->toks, eos, 1);
    }
    window(p, 0, T);
    return;
  }
  size_t bin_len = 0; /* packed demonstrations: tokens in the last sequence, which is being filled */
  for (size_t i = 0; i < d->n; i++) {
    if (held[i] != want) continue;
    size_t start = p->toks.n;
    if (src->kind == DATA_CORPUS) { /* unpacked: each document windowed alone */
      tokens_push(&p->toks, eos, 1);
      append_range(p, d, &d->items[i]);
      tokens_push(&p->toks, eos, 1);
      window(p, start, T);
      continue;
    }
    append_range(p, d, &d->items[i]);
    size_t len = d->items[i].len;
    if (!opt->packing) {
      part_add_seq(p, start, len);
    } else if (bin_len > 0 && bin_len + len <= T + 1) {
      p->seqs[p->n_seqs - 1].len = bin_len += len;
    } else {
      part_add_seq(p, start, len);
      bin_len = len;
    }
  }
}

/* Positions holding data in P, and targets counted. */
static void part_count(const struct part *p, size_t *tokens, size_t *counted) {
  *tokens = *counted = 0;
  for (size_t i = 0; i < p->n_seqs; i++) {
    const struct seq *q = &p->seqs[i];
    *tokens += q->len - 1;
    for (size_t t = 1; t < q->len; t++) *counted += p->toks.mask[q->start + t];
  }
}

static void part_free(struct part *p) {
  tokens_free(&p->toks);
  free(p->seqs);
}

static bool open_source(struct source *src, const struct data_source *s, const struct data_options *opt, char *err,
                        size_t err_size) {
  struct docs d = {0};
  struct data_stats *st = &src->stats;
  bool ok = s->kind == DATA_CORPUS ? read_corpus(s, opt, &d, st, err, err_size)
                                   : read_demos(s, opt, &d, st, err, err_size);
  if (ok && d.n == 0) {
    const char *what = s->kind == DATA_CORPUS ? "documents" : "examples";
    int at = snprintf(err, err_size, "data set '%s' has no %s: %zu file%s read", s->name, what, st->files,
                      st->files == 1 ? "" : "s");
    if (at > 0 && (size_t)at < err_size && st->dropped_short)
      at += snprintf(err + at, err_size - (size_t)at, ", %zu document%s empty or under min_chars = %zu",
                     st->dropped_short, st->dropped_short == 1 ? "" : "s", s->min_chars);
    if (at > 0 && (size_t)at < err_size && st->dropped_long)
      snprintf(err + at, err_size - (size_t)at, ", %zu over max_length = %zu tokens", st->dropped_long,
               s->max_length);
    ok = false;
  }
  if (ok) {
    bool *held = xmalloc(d.n * sizeof *held);
    st->kept = d.n;
    st->val_kept = choose_val(&d, s->val_split, opt->split_seed, held);
    build_part(src, opt, &d, held, false, &src->train);
    build_part(src, opt, &d, held, true, &src->val);
    free(held);
    size_t unused;
    part_count(&src->train, &st->train_tokens, &st->train_counted);
    part_count(&src->val, &st->val_tokens, &unused);
    st->train_sequences = src->train.n_seqs;
    st->val_sequences = src->val.n_seqs;
  }
  tokens_free(&d.toks);
  free(d.items);
  return ok;
}

struct data_loader *data_open(const struct data_source *sources, size_t n, const struct data_options *opt,
                              char *err, size_t err_size) {
  if (!check_reader_options(n, opt->tok, opt->context, err, err_size)) return NULL;
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    if (n > 1 && !(sources[i].share >= 0 && isfinite(sources[i].share))) {
      snprintf(err, err_size, "data set '%s': share %g is not a share", sources[i].name, sources[i].share);
      return NULL;
    }
    if (!check_val_split(sources[i].name, sources[i].val_split, err, err_size)) return NULL;
    total += sources[i].share;
  }
  if (n > 1 && !(total > 0)) {
    snprintf(err, err_size, "a mix whose shares add up to 0");
    return NULL;
  }
  struct data_loader *d = xmalloc(sizeof *d);
  *d = (struct data_loader){.opt = *opt, .n = n};
  d->src = xmalloc(n * sizeof *d->src);
  d->cum = xmalloc(n * sizeof *d->cum);
  double acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += n > 1 ? sources[i].share : 1;
    d->cum[i] = n > 1 ? acc / total : 1;
    size_t name_len = strlen(sources[i].name ? sources[i].name : "");
    d->src[i] = (struct source){.kind = sources[i].kind, .name = xmalloc(name_len + 1)};
    memcpy(d->src[i].name, sources[i].name ? sources[i].name : "", name_len + 1);
  }
  d->cum[n - 1] = 1; /* whatever the rounding, every draw lands in a source */
  for (size_t i = 0; i < n; i++) {
    struct data_source s = sources[i];
    s.name = d->src[i].name;
    if (!open_source(&d->src[i], &s, opt, err, err_size)) {
      data_close(d);
      return NULL;
    }
  }
  return d;
}

void data_close(struct data_loader *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n; i++) {
    part_free(&d->src[i].train);
    part_free(&d->src[i].val);
    epoch_order_free(&d->src[i].order);
    free(d->src[i].name);
  }
  free(d->src);
  free(d->cum);
  free(d);
}

size_t data_source_count(const struct data_loader *d) { return d->n; }

void data_source_stats(const struct data_loader *d, size_t source, struct data_stats *out) {
  *out = d->src[source].stats;
}

/* --- batches ------------------------------------------------------------ */

/* Row R of B from sequence Q of P (NULL: a padding row). */
static size_t fill_row(const struct data_loader *d, const struct part *p, const struct seq *q, struct data_batch *b,
                       int r) {
  size_t T = (size_t)b->T, n = q ? q->len - 1 : 0, counted = 0;
  if (n > T) n = T; /* a batch narrower than the context: the sequence's start */
  int32_t *tok = b->tokens + (size_t)r * T, *tgt = b->targets + (size_t)r * T;
  float *w = b->weights + (size_t)r * T;
  for (size_t t = 0; t < n; t++) {
    size_t at = q->start + t;
    bool counts = p->toks.mask[at + 1]; /* the target's mask: what the model is asked to produce */
    tok[t] = p->toks.ids[at];
    tgt[t] = counts ? p->toks.ids[at + 1] : -1;
    w[t] = counts;
    counted += counts;
  }
  int32_t pad = tokenizer_special(d->opt.tok, SPECIAL_PAD);
  for (size_t t = n; t < T; t++) {
    tok[t] = pad;
    tgt[t] = -1;
    w[t] = 0;
  }
  return counted;
}

void data_next(struct data_loader *d, struct data_batch *b) {
  b->counted = 0;
  b->rows = b->B;
  for (int r = 0; r < b->B; r++) {
    size_t s = 0;
    if (d->n > 1) {
      struct rng rng = rng_seed(stream_value(d->opt.seed, STREAM_MIX, (uint64_t)d->draws++));
      double u = rng_uniform(&rng);
      while (s + 1 < d->n && !(u < d->cum[s])) s++;
    }
    struct source *src = &d->src[s];
    const struct seq *q = &src->train.seqs[epoch_order_next(&src->order, src->train.n_seqs, d->opt.seed, s)];
    b->counted += fill_row(d, &src->train, q, b, r);
    b->source[r] = (int)s;
  }
}

double data_epochs(const struct data_loader *d) {
  return epoch_order_epochs(&d->src[0].order, d->src[0].train.n_seqs);
}

size_t data_val_sequences(const struct data_loader *d) {
  size_t n = 0;
  for (size_t i = 0; i < d->n; i++) n += d->src[i].val.n_seqs;
  return n;
}

int data_val_batch(const struct data_loader *d, size_t first, struct data_batch *b) {
  b->counted = 0;
  b->rows = 0;
  size_t s = 0, at = first;
  while (s < d->n && at >= d->src[s].val.n_seqs) at -= d->src[s++].val.n_seqs;
  for (int r = 0; r < b->B; r++) {
    while (s < d->n && at >= d->src[s].val.n_seqs) s++, at = 0;
    if (s == d->n) {
      fill_row(d, NULL, NULL, b, r);
      b->source[r] = -1;
      continue;
    }
    b->counted += fill_row(d, &d->src[s].val, &d->src[s].val.seqs[at++], b, r);
    b->source[r] = (int)s;
    b->rows++;
  }
  return b->rows;
}

/* --- position ----------------------------------------------------------- */

size_t data_state_size(const struct data_loader *d) { return DATA_STATE_SIZE(d->n); }

void data_state_get(const struct data_loader *d, int64_t *state) {
  state[0] = d->draws;
  for (size_t i = 0; i < d->n; i++) {
    state[1 + 2 * i] = d->src[i].order.epoch;
    state[2 + 2 * i] = d->src[i].order.position;
  }
}

bool data_state_set(struct data_loader *d, const int64_t *state, size_t size, char *err, size_t err_size) {
  if (size != DATA_STATE_SIZE(d->n)) {
    snprintf(err, err_size, "the data position has %zu numbers, and %zu are expected for %zu data set%s", size,
             (size_t)DATA_STATE_SIZE(d->n), d->n, d->n == 1 ? "" : "s");
    return false;
  }
  if (state[0] < 0) {
    snprintf(err, err_size, "the data position has %lld mix draws", (long long)state[0]);
    return false;
  }
  for (size_t i = 0; i < d->n; i++) {
    int64_t epoch = state[1 + 2 * i], pos = state[2 + 2 * i];
    if (epoch < 0 || pos < 0 || (uint64_t)pos >= d->src[i].train.n_seqs) {
      snprintf(err, err_size, "data set '%s': position %lld of epoch %lld is not one of its %zu sequences",
               d->src[i].name, (long long)pos, (long long)epoch, d->src[i].train.n_seqs);
      return false;
    }
  }
  d->draws = state[0];
  for (size_t i = 0; i < d->n; i++) {
    d->src[i].order.epoch = state[1 + 2 * i];
    d->src[i].order.position = state[2 + 2 * i];
  }
  return true;
}

json_t *data_state_to_json(const struct data_loader *d) {
  json_t *sources = json_array();
  for (size_t i = 0; i < d->n; i++)
    json_array_append_new(sources, json_pack("{s:s, s:I, s:I}", "name", d->src[i].name, "epoch",
                                             (json_int_t)d->src[i].order.epoch, "position",
                                             (json_int_t)d->src[i].order.position));
  return json_pack("{s:I, s:o}", "draws", (json_int_t)d->draws, "sources", sources);
}

bool data_state_from_json(struct data_loader *d, const json_t *state, char *err, size_t err_size) {
  json_t *draws = json_object_get(state, "draws"), *sources = json_object_get(state, "sources");
  if (!json_is_integer(draws) || !json_is_array(sources)) {
    snprintf(err, err_size, "the data position is not {\"draws\": N, \"sources\": [...]}");
    return false;
  }
  if (json_array_size(sources) != d->n) {
    snprintf(err, err_size, "the data position is for %zu data set%s, and this stage reads %zu",
             json_array_size(sources), json_array_size(sources) == 1 ? "" : "s", d->n);
    return false;
  }
  int64_t *values = xmalloc(DATA_STATE_SIZE(d->n) * sizeof *values);
  values[0] = json_integer_value(draws);
  bool ok = true;
  for (size_t i = 0; ok && i < d->n; i++) {
    json_t *s = json_array_get(sources, i), *name = json_object_get(s, "name"), *epoch = json_object_get(s, "epoch"),
           *pos = json_object_get(s, "position");
    if (!json_is_integer(epoch) || !json_is_integer(pos)) {
      snprintf(err, err_size, "the data position of data set %zu has no integer epoch and position", i);
      ok = false;
    } else if (json_is_string(name) && strcmp(json_string_value(name), d->src[i].name) != 0) {
      snprintf(err, err_size, "the data position is for data set '%s', and this stage reads '%s'",
               json_string_value(name), d->src[i].name);
      ok = false;
    } else {
      values[1 + 2 * i] = json_integer_value(epoch);
      values[2 + 2 * i] = json_integer_value(pos);
    }
  }
  ok = ok && data_state_set(d, values, DATA_STATE_SIZE(d->n), err, err_size);
  free(values);
  return ok;
}
