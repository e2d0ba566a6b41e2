/* Preference pairs, feedback examples and RL prompts, read into token
 * sequences (see examples.h). As with demonstrations (data.c), everything
 * is read once, at open, so that a bad line fails the stage before its
 * first step; the sequences of all examples live in one pool of tokens.
 *
 * Besides TRL's standard layout (strings), its conversational one is read:
 * "prompt", "chosen", "rejected" and "completion" may be lists of messages
 * {"role", "content"}, and a preference line without "prompt" whose
 * "chosen" and "rejected" are lists takes their shared first messages as
 * the prompt. Only the answers after the prompt keep their loss mask. */
#include "runtime/examples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/data_files.h"

/* An example while the files are read: its sequences, N_SEQ of them, lie
 * one after the other in the pool from START. */
struct item {
  size_t start;
  size_t len[2], prompt_len[2];
  int n_seq;
  double margin;
  bool desirable, held;
  json_t *line;
};

struct example_set {
  struct example_options opt;
  struct tokens pool;
  struct example *train, *val;
  size_t n_train, n_val;
  json_t *lines; /* prompts: every kept line; the examples borrow them */
  struct example_stats stats;
  struct epoch_order order; /* of the training examples */
};

/* Drops counted for a data set's message, by cause. */
struct drops {
  size_t context, max_length;
};

/* What open needs while it reads. */
struct reader {
  struct example_set *set;
  struct item *items;
  size_t n_items, cap_items;
  struct chat_message *m; /* one line's messages */
  size_t n_m, cap_m;
  struct tokens scratch;
  const struct example_source *src; /* the data set being read */
  struct drops drops;               /* of that data set */
};

/* The content of IT: its first sequence hashed as data.c hashes an
 * example, then, after a value no token has, the second. */
static uint64_t item_hash(const struct tokens *pool, const struct item *it) {
  static const int32_t no_token = -1;
  uint64_t h = token_hash(pool->ids + it->start, it->len[0]);
  if (it->n_seq == 2) {
    h = token_hash_add(h, &no_token, 1);
    h = token_hash_add(h, pool->ids + it->start + it->len[0], it->len[1]);
  }
  return h;
}

/* --- one line ------------------------------------------------------------ */

/* The top-level field whose value holds byte BAD of LINE (well-formed UTF-8
 * before it) in one of its strings, copied into NAME; NULL when the byte is
 * in no such string (a key, or between values). */
static const char *field_at(const char *line, size_t bad, char *name, size_t size) {
  int depth = 0;
  bool key_next = false, have = false;
  for (size_t i = 0; i < bad; i++) {
    char c = line[i];
    if (c == '"') {
      size_t start = ++i;
      while (i < bad && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
      bool is_key = depth == 1 && key_next;
      if (i >= bad) return is_key || !have ? NULL : name;
      if (is_key) {
        snprintf(name, size, "%.*s", (int)(i - start), line + start);
        have = true;
        key_next = false;
      }
    } else if (c == '{' || c == '[') {
      key_next = ++depth == 1 && c == '{';
    } else if (c == '}' || c == ']') {
      depth--;
    } else if (c == ',' && depth == 1) {
      key_next = true;
    }
  }
  return NULL;
}

static void add_message(struct reader *r, enum chat_role role, const char *text, size_t len) {
  r->m = xgrow(r->m, &r->cap_m, r->n_m + 1, sizeof *r->m);
  r->m[r->n_m++] = (struct chat_message){role, text, len};
}

/* FIELD of OBJ appended to the line's messages: a string is one message in
 * ROLE, a list holds {"role", "content"} messages. NULL, or why not. */
static const char *add_field(struct reader *r, json_t *obj, const char *field, enum chat_role role, char *why,
                             size_t size) {
  json_t *v = json_object_get(obj, field), *msg;
  if (!v) {
    snprintf(why, size, "no '%s' field", field);
    return why;
  }
  if (json_is_string(v)) {
    add_message(r, role, json_string_value(v), json_string_length(v));
    return NULL;
  }
  if (!json_is_array(v)) {
    snprintf(why, size, "'%s' is not a string or a list of messages", field);
    return why;
  }
  size_t i;
  json_array_foreach(v, i, msg) {
    json_t *name = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
    if (!json_is_string(name) || !json_is_string(content)) {
      snprintf(why, size, "%s[%zu]: no '%s' string", field, i, json_is_string(name) ? "content" : "role");
      return why;
    }
    if (!chat_role_find(json_string_value(name), json_string_length(name), &role)) {
      snprintf(why, size, "%s[%zu]: unknown role '%.40s' (system, user or assistant)", field, i,
               json_string_value(name));
      return why;
    }
    add_message(r, role, json_string_value(content), json_string_length(content));
  }
  return NULL;
}

/* A system message after the first of M[0 .. N), named by its field: the
 * first FROM_PROMPT messages are "prompt"'s, the others FIELD's. */
static const char *late_system(const struct chat_message *m, size_t n, size_t from_prompt, const char *field,
                               char *why, size_t size) {
  for (size_t i = 1; i < n; i++)
    if (m[i].role == ROLE_SYSTEM) {
      snprintf(why, size, "%s[%zu]: a system message may only come first", i < from_prompt ? "prompt" : field,
               i < from_prompt ? i : i - from_prompt);
      return why;
    }
  return NULL;
}

/* Messages M[0 .. N), the first NP of them the prompt, laid out at the end
 * of the pool; the answers within the prompt lose their mask. Its length
 * and the tokens before its first masked one in *LEN and *PROMPT_LEN; NULL,
 * or why not (FIELD names the answer; the first FROM_PROMPT messages come
 * from the "prompt" field). */
static const char *lay_out(struct reader *r, const struct chat_message *m, size_t n, size_t np, size_t from_prompt,
                           const char *field, size_t *len, size_t *prompt_len, char *why, size_t size) {
  const struct example_options *opt = &r->set->opt;
  struct tokens *pool = &r->set->pool;
  size_t start = pool->n;
  if (np == 1 && n == 2 && m[0].role == ROLE_USER && m[1].role == ROLE_ASSISTANT) {
    template_pair(opt->tok, opt->template, m[0].text, m[0].len, m[1].text, m[1].len, pool);
  } else {
    char reason[160];
    const char *bad = late_system(m, n, from_prompt, field, why, size);
    if (bad) return bad;
    if (!template_render(opt->tok, opt->template, m, n, false, pool, reason, sizeof reason)) {
      snprintf(why, size, "'%s': %s", field, reason);
      return why;
    }
    r->scratch.n = 0;
    bool prefix = template_render(opt->tok, opt->template, m, np, false, &r->scratch, reason, sizeof reason) &&
                  r->scratch.n <= pool->n - start &&
                  memcmp(r->scratch.ids, pool->ids + start, r->scratch.n * sizeof *pool->ids) == 0;
    if (!prefix) {
      pool->n = start;
      snprintf(why, size, "'%s' does not lay out as a continuation of the prompt", field);
      return why;
    }
    memset(pool->mask + start, 0, r->scratch.n);
  }
  size_t first = start;
  while (first < pool->n && !pool->mask[first]) first++;
  if (first == pool->n) {
    pool->n = start;
    snprintf(why, size, "'%s' has no assistant message after the prompt: nothing to learn from", field);
    return why;
  }
  *len = pool->n - start;
  *prompt_len = first - start;
  return NULL;
}

/* The messages of the two lists of an implicit prompt, M[0 .. NC) and
 * M[NC .. N), that both begin with. */
static size_t shared_prefix(const struct chat_message *m, size_t nc, size_t n) {
  size_t k = 0;
  while (k < nc && nc + k < n && m[k].role == m[nc + k].role && m[k].len == m[nc + k].len &&
         memcmp(m[k].text, m[nc + k].text, m[k].len) == 0)
    k++;
  return k;
}

static const char *read_preference(struct reader *r, json_t *obj, struct item *it, char *why, size_t size) {
  json_t *chosen = json_object_get(obj, "chosen"), *rejected = json_object_get(obj, "rejected");
  bool implicit = !json_object_get(obj, "prompt") && json_is_array(chosen) && json_is_array(rejected);
  const char *bad = NULL;
  /* both sequences whole in the messages: [prompt] chosen [prompt] rejected */
  if (!implicit && (bad = add_field(r, obj, "prompt", ROLE_USER, why, size))) return bad;
  size_t np = r->n_m;
  if ((bad = add_field(r, obj, "chosen", ROLE_ASSISTANT, why, size))) return bad;
  size_t nc = r->n_m;
  if (!implicit) (void)add_field(r, obj, "prompt", ROLE_USER, why, size);
  if ((bad = add_field(r, obj, "rejected", ROLE_ASSISTANT, why, size))) return bad;
  json_t *margin = json_object_get(obj, "margin");
  if (margin && !json_is_number(margin)) return "'margin' is not a number";
  it->margin = margin ? json_number_value(margin) : 0;
  if (implicit) np = shared_prefix(r->m, nc, r->n_m);
  size_t from_prompt = implicit ? 0 : np;
  it->n_seq = 2;
  if ((bad = lay_out(r, r->m, nc, np, from_prompt, "chosen", &it->len[0], &it->prompt_len[0], why, size)))
    return bad;
  return lay_out(r, r->m + nc, r->n_m - nc, np, from_prompt, "rejected", &it->len[1], &it->prompt_len[1], why,
                 size);
}

static const char *read_feedback(struct reader *r, json_t *obj, struct item *it, char *why, size_t size) {
  const char *bad = add_field(r, obj, "prompt", ROLE_USER, why, size);
  size_t np = r->n_m;
  if (bad || (bad = add_field(r, obj, "completion", ROLE_ASSISTANT, why, size))) return bad;
  json_t *label = json_object_get(obj, "label");
  if (!label) return "no 'label' field";
  if (!json_is_boolean(label)) return "'label' is not a boolean (true or false)";
  it->desirable = json_is_true(label);
  it->n_seq = 1;
  return lay_out(r, r->m, r->n_m, np, np, "completion", &it->len[0], &it->prompt_len[0], why, size);
}

static const char *read_prompt(struct reader *r, json_t *obj, struct item *it, char *why, size_t size) {
  const char *bad = add_field(r, obj, "prompt", ROLE_USER, why, size);
  if (bad) return bad;
  struct tokens *pool = &r->set->pool;
  char reason[160];
  if ((bad = late_system(r->m, r->n_m, r->n_m, "prompt", why, size))) return bad;
  if (!template_render(r->set->opt.tok, r->set->opt.template, r->m, r->n_m, true, pool, reason, sizeof reason)) {
    snprintf(why, size, "'prompt': %s", reason);
    return why;
  }
  it->n_seq = 1;
  it->len[0] = it->prompt_len[0] = pool->n - it->start;
  if (it->len[0] == 0) return "'prompt' is empty: nothing to generate from";
  memset(pool->mask + it->start, 0, it->len[0]);
  return NULL;
}

/* --- files --------------------------------------------------------------- */

/* LINE (N bytes, trimmed, not blank) of a file of R's data set: an
 * example added to the items, or one dropped for its length; NULL, or why
 * not (a jsonl_line_reader). */
static const char *read_line(void *ctx, const char *line, size_t n, char *why, size_t size) {
  struct reader *r = ctx;
  struct example_set *s = r->set;
  const struct example_source *src = r->src;
  size_t bad = utf8_check(line, n);
  if (bad < n) {
    char field[64];
    if (field_at(line, bad, field, sizeof field)) snprintf(why, size, "'%s' is not UTF-8 (byte %zu)", field, bad);
    else snprintf(why, size, "not UTF-8 at byte %zu", bad);
    return why;
  }
  json_error_t jerr;
  json_t *obj = json_loadb(line, n, 0, &jerr); /* as the checker reads it: no \u0000 */
  if (!obj) {
    snprintf(why, size, "not JSON: %s", jerr.text);
    return why;
  }
  const char *reason = "not a JSON object";
  struct item it = {.start = s->pool.n};
  r->n_m = 0;
  if (json_is_object(obj)) {
    switch (s->opt.kind) {
    case EXAMPLES_PREFERENCES: reason = read_preference(r, obj, &it, why, size); break;
    case EXAMPLES_FEEDBACK: reason = read_feedback(r, obj, &it, why, size); break;
    case EXAMPLES_PROMPTS: reason = read_prompt(r, obj, &it, why, size); break;
    }
  }
  if (reason) {
    s->pool.n = it.start;
    json_decref(obj);
    return reason;
  }
  size_t longest = it.len[0] > it.len[1] ? it.len[0] : it.len[1];
  size_t most = (size_t)s->opt.context + (s->opt.kind != EXAMPLES_PROMPTS);
  if (longest > most || (src->max_length > 0 && longest > src->max_length)) {
    s->pool.n = it.start;
    s->stats.dropped_long++;
    if (longest > most) r->drops.context++;
    else r->drops.max_length++;
    json_decref(obj);
    return NULL;
  }
  if (s->opt.kind == EXAMPLES_PROMPTS) {
    it.line = obj;
    json_array_append_new(s->lines, obj);
  } else {
    json_decref(obj);
  }
  r->items = xgrow(r->items, &r->cap_items, r->n_items + 1, sizeof *r->items);
  r->items[r->n_items++] = it;
  return NULL;
}

/* Holds out the examples of one data set, ITEMS[0 .. N), as data.c holds
 * out its documents: with the same split_seed, a feedback example and a
 * demonstration with the same prompt and response, which lay out to the
 * same tokens, fall on the same side. Returns how many. */
static size_t choose_val(const struct tokens *pool, struct item *items, size_t n, double val_split,
                         uint64_t split_seed) {
  uint64_t *hashes = xmalloc(n * sizeof *hashes);
  bool *held = xmalloc(n * sizeof *held);
  for (size_t i = 0; i < n; i++) hashes[i] = item_hash(pool, &items[i]);
  size_t n_val = held_out_choose(hashes, n, val_split, split_seed, held);
  for (size_t i = 0; i < n; i++) items[i].held = held[i];
  free(hashes);
  free(held);
  return n_val;
}

/* One data set, its examples added to the items; false with the reason. */
static bool read_source(struct reader *r, const struct example_source *src, char *err, size_t err_size) {
  struct file_list files;
  if (!file_list_match(&files, src->name, src->pattern, err, err_size)) return false;
  size_t first = r->n_items;
  r->src = src;
  r->drops = (struct drops){0};
  bool ok = true;
  for (size_t i = 0; ok && i < files.n; i++) ok = jsonl_read_lines(files.paths[i], read_line, r, err, err_size);
  size_t n_files = files.n;
  file_list_free(&files);
  if (!ok) return false;
  r->set->stats.files += n_files;
  size_t n = r->n_items - first;
  if (n == 0) {
    int at = snprintf(err, err_size, "data set '%s' has no examples: %zu file%s read", src->name, n_files,
                      n_files == 1 ? "" : "s");
    bool prompts = r->set->opt.kind == EXAMPLES_PROMPTS;
    if (at > 0 && (size_t)at < err_size && r->drops.context)
      at += snprintf(err + at, err_size - (size_t)at, ", %zu longer than the context (%d tokens%s)", r->drops.context,
                     r->set->opt.context + !prompts, prompts ? " for a prompt" : " for a sequence");
    if (at > 0 && (size_t)at < err_size && r->drops.max_length)
      snprintf(err + at, err_size - (size_t)at, ", %zu over max_length = %zu tokens", r->drops.max_length,
               src->max_length);
    return false;
  }
  r->set->stats.kept += n;
  r->set->stats.val_kept += choose_val(&r->set->pool, r->items + first, n, src->val_split, r->set->opt.split_seed);
  return true;
}

/* --- the set ------------------------------------------------------------- */

static struct sequence sequence_at(const struct tokens *pool, size_t start, size_t len, size_t prompt_len) {
  return (struct sequence){pool->ids + start, pool->mask + start, (int)len, (int)prompt_len};
}

/* The items as examples, training and held out, in file order. */
static void build(struct example_set *s, const struct item *items, size_t n) {
  for (size_t i = 0; i < n; i++) *(items[i].held ? &s->n_val : &s->n_train) += 1;
  s->train = xmalloc(s->n_train * sizeof *s->train);
  s->val = xmalloc(s->n_val * sizeof *s->val);
  size_t t = 0, v = 0;
  for (size_t i = 0; i < n; i++) {
    const struct item *it = &items[i];
    struct example e = {.margin = it->margin, .desirable = it->desirable, .line = it->line};
    struct sequence first = sequence_at(&s->pool, it->start, it->len[0], it->prompt_len[0]);
    if (s->opt.kind == EXAMPLES_PROMPTS) e.prompt = first;
    else e.chosen = first;
    if (it->n_seq == 2) e.rejected = sequence_at(&s->pool, it->start + it->len[0], it->len[1], it->prompt_len[1]);
    /* the next training example in file order: after a training example, the one after it */
    e.partner = (t + !it->held) % s->n_train;
    if (it->held) s->val[v++] = e;
    else s->train[t++] = e;
  }
}

static bool check_options(const struct example_source *sources, size_t n, const struct example_options *opt,
                          char *err, size_t err_size) {
  if (!check_reader_options(n, opt->tok, opt->context, err, err_size)) return false;
  if (opt->kind != EXAMPLES_PREFERENCES && opt->kind != EXAMPLES_FEEDBACK && opt->kind != EXAMPLES_PROMPTS) {
    snprintf(err, err_size, "unknown kind of examples %d", (int)opt->kind);
    return false;
  }
  for (size_t i = 0; i < n; i++)
    if (!check_val_split(sources[i].name, sources[i].val_split, err, err_size)) return false;
  return true;
}

struct example_set *examples_open(const struct example_source *sources, size_t n, const struct example_options *opt,
                                  char *err, size_t err_size) {
  if (!check_options(sources, n, opt, err, err_size)) return NULL;
  struct example_set *s = xmalloc(sizeof *s);
  *s = (struct example_set){.opt = *opt};
  if (opt->kind == EXAMPLES_PROMPTS) s->lines = json_array();
  struct reader r = {.set = s};
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) ok = read_source(&r, &sources[i], err, err_size);
  if (ok) build(s, r.items, r.n_items);
  free(r.items);
  free(r.m);
  tokens_free(&r.scratch);
  if (!ok) {
    examples_close(s);
    return NULL;
  }
  return s;
}

void examples_close(struct example_set *s) {
  if (!s) return;
  tokens_free(&s->pool);
  free(s->train);
  free(s->val);
  epoch_order_free(&s->order);
  json_decref(s->lines);
  free(s);
}

void examples_stats(const struct example_set *s, struct example_stats *out) { *out = s->stats; }
size_t examples_train_count(const struct example_set *s) { return s->n_train; }
size_t examples_val_count(const struct example_set *s) { return s->n_val; }

const struct example *examples_train(const struct example_set *s, size_t i) {
  return i < s->n_train ? &s->train[i] : NULL;
}

const struct example *examples_val(const struct example_set *s, size_t i) { return i < s->n_val ? &s->val[i] : NULL; }

/* --- order --------------------------------------------------------------- */

size_t examples_next(struct example_set *s) { return epoch_order_next(&s->order, s->n_train, s->opt.seed, 0); }

double examples_epochs(const struct example_set *s) { return epoch_order_epochs(&s->order, s->n_train); }

json_t *examples_state(const struct example_set *s) {
  return json_pack("{s:I, s:I}", "epoch", (json_int_t)s->order.epoch, "position",
                   (json_int_t)s->order.position);
}

bool examples_restore(struct example_set *s, const json_t *state, char *err, size_t err_size) {
  json_t *epoch = json_object_get(state, "epoch"), *position = json_object_get(state, "position");
  if (!json_is_integer(epoch) || !json_is_integer(position)) {
    snprintf(err, err_size, "the example position is not {\"epoch\": E, \"position\": P} with integers");
    return false;
  }
  json_int_t e = json_integer_value(epoch), p = json_integer_value(position);
  if (e < 0 || p < 0 || (uint64_t)p >= s->n_train) {
    snprintf(err, err_size, "position %lld of epoch %lld is not one of the %zu training examples", (long long)p,
             (long long)e, s->n_train);
    return false;
  }
  s->order.epoch = e;
  s->order.position = p;
  return true;
}
