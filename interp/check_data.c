/* The data, looked at before any compute is spent: every path and glob
 * resolves to readable files; JSONL files are read one line at a time
 * (constant memory, whatever their size) and every line must parse and
 * carry the fields its kind needs, with TRL's names; a data set with no
 * examples is an error. Paths are relative to the file that declares them. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interp/checker.h"
#include "interp/json_line.h"
#include "interp/stages.h"

#define MAX_LINE_ERRORS 10 /* per file; then a count */

/* The fields an example of each kind must carry: alternatives separated by
 * '|', fields within one alternative by ','. */
static const char *fields_of(enum owner_id kind) {
  switch (kind) {
  case OWNER_DEMOS: return "prompt,response|messages";
  case OWNER_PREFS: return "prompt,chosen,rejected";
  case OWNER_FEEDBACK: return "prompt,completion,label";
  case OWNER_PROMPTS: return "prompt";
  default: return NULL;
  }
}

/* The alternatives of FIELDS as sets of fields, for the test every line
 * takes; *N of them, at most MAX_ALTERNATIVES. */
#define MAX_ALTERNATIVES 4
static void field_sets(const char *fields, unsigned *sets, size_t *n) {
  *n = 0;
  if (!fields) return;
  for (const char *f = fields; *f && *n < MAX_ALTERNATIVES; (*n)++) {
    sets[*n] = 0;
    for (;;) {
      size_t len = strcspn(f, ",|");
      enum json_field field = json_field_find(f, len);
      sets[*n] |= 1u << field; /* JSON_FIELD_COUNT: a bit no line has */
      f += len;
      if (*f != ',') break;
      f++;
    }
    if (*f == '|') f++;
  }
}

/* Which alternative the example satisfies; otherwise the first field
 * missing from the alternative it comes closest to. */
static const char *missing_field(const struct json_line *ex, const char *fields, char *buf, size_t size) {
  const char *best = NULL;
  size_t best_have = 0;
  for (const char *alt = fields; *alt;) {
    const char *end = strchr(alt, '|');
    size_t len = end ? (size_t)(end - alt) : strlen(alt);
    size_t have = 0;
    const char *first_missing = NULL;
    size_t missing_len = 0;
    for (const char *f = alt; f < alt + len;) {
      const char *comma = memchr(f, ',', (size_t)(alt + len - f));
      size_t n = comma ? (size_t)(comma - f) : (size_t)(alt + len - f);
      enum json_field field = json_field_find(f, n);
      if (field != JSON_FIELD_COUNT && (ex->present & 1u << field)) have++;
      else if (!first_missing) first_missing = f, missing_len = n;
      f += n + (comma != NULL);
    }
    if (!first_missing) return NULL;
    if (!best || have > best_have) {
      snprintf(buf, size, "%.*s", (int)missing_len, first_missing);
      best = buf;
      best_have = have;
    }
    alt += len + (end != NULL);
  }
  return best;
}

/* Example lengths, in buckets of 16 bytes up to 64 KiB; longer ones share
 * the last. Small, so that a check of many small files stays cheap. */
#define LENGTH_BUCKET_BYTES 16
#define LENGTH_BUCKETS 4096

struct scan {
  size_t examples;
  size_t errors;
  uint32_t *lengths;  /* histogram, allocated with the first example */
  size_t labels[2];   /* feedback: false, true */
};

/* The text of an example that goes through the model: the prompt and the
 * longest of its answers, or every message. */
static size_t example_bytes(const struct json_line *ex) {
  static const enum json_field answers[] = {JSON_FIELD_RESPONSE, JSON_FIELD_CHOSEN, JSON_FIELD_REJECTED,
                                            JSON_FIELD_COMPLETION};
  size_t answer = 0;
  for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
    if (ex->string_bytes[answers[i]] > answer) answer = ex->string_bytes[answers[i]];
  return ex->string_bytes[JSON_FIELD_PROMPT] + ex->message_bytes + answer;
}

static size_t percentile_99(const struct scan *s) {
  if (!s->lengths || s->examples == 0) return 0;
  size_t want = s->examples - s->examples / 100, seen = 0; /* the 99th percentile, rounded up */
  for (size_t b = 0; b < LENGTH_BUCKETS; b++) {
    seen += s->lengths[b];
    if (seen >= want) return (b + 1) * LENGTH_BUCKET_BYTES - 1;
  }
  return LENGTH_BUCKETS * LENGTH_BUCKET_BYTES;
}

/* What was found for one resolved path: data sets often share files, and
 * each file is read once per check. */
struct seen_path {
  const char *pattern;
  enum owner_id kind;
  size_t files, bytes;
  struct scan scan;
  const struct item *data; /* the first data set that named it */
  size_t p99;               /* bytes of the 99th-percentile example */
};

struct seen_paths {
  struct seen_path *slots; /* open addressing; pattern == NULL is empty */
  size_t cap, n;
};

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static struct seen_path *seen_slot(struct seen_path *slots, size_t cap, const char *pattern, enum owner_id kind) {
  size_t i = (hash_text(pattern) ^ kind) & (cap - 1);
  while (slots[i].pattern && !(slots[i].kind == kind && strcmp(slots[i].pattern, pattern) == 0)) i = (i + 1) & (cap - 1);
  return &slots[i];
}

/* The entry for (pattern, kind), added empty when new; *fresh says which. */
static struct seen_path *seen_get(struct seen_paths *seen, const char *pattern, enum owner_id kind, bool *fresh) {
  if ((seen->n + 1) * 2 > seen->cap) {
    size_t cap = seen->cap ? seen->cap * 2 : 64;
    struct seen_path *slots = xmalloc(cap * sizeof *slots);
    memset(slots, 0, cap * sizeof *slots);
    for (size_t i = 0; i < seen->cap; i++)
      if (seen->slots[i].pattern) *seen_slot(slots, cap, seen->slots[i].pattern, seen->slots[i].kind) = seen->slots[i];
    free(seen->slots);
    seen->slots = slots;
    seen->cap = cap;
  }
  struct seen_path *p = seen_slot(seen->slots, seen->cap, pattern, kind);
  *fresh = p->pattern == NULL;
  if (*fresh) {
    *p = (struct seen_path){.pattern = pattern, .kind = kind};
    seen->n++;
  }
  return p;
}

/* One line of a JSONL file: NULL when it is a good example, described in
 * *EX; else why not, in REASON. */
static const char *parse_line(const char *line, size_t len, const char *fields, const unsigned *sets,
                              size_t n_sets, struct json_line *ex, char *reason, size_t size) {
  if (!json_line_read(line, len, ex, reason, size)) return reason;
  if (!fields) return NULL;
  for (size_t i = 0; i < n_sets; i++)
    if ((ex->present & sets[i]) == sets[i]) return NULL;
  char field[64];
  const char *missing = missing_field(ex, fields, field, sizeof field);
  if (!missing) return NULL;
  snprintf(reason, size, "no '%s' field", missing);
  return reason;
}

static void count_example(struct scan *scan, const struct json_line *ex) {
  if (!scan->lengths) {
    scan->lengths = xmalloc(LENGTH_BUCKETS * sizeof *scan->lengths);
    memset(scan->lengths, 0, LENGTH_BUCKETS * sizeof *scan->lengths);
  }
  size_t b = example_bytes(ex) / LENGTH_BUCKET_BYTES;
  scan->lengths[b < LENGTH_BUCKETS ? b : LENGTH_BUCKETS - 1]++;
  if (ex->label >= 0) scan->labels[ex->label]++;
  scan->examples++;
}

/* Files are read in blocks of this size, and lines taken from the block;
 * a longer line grows the buffer to hold it, and only then. */
#define READ_BLOCK (1u << 20)

/* Reads a JSONL file line by line; reports lines that do not parse or lack
 * a field, the first MAX_LINE_ERRORS of them, then how many more. */
static void scan_jsonl(struct checker *c, const struct expr *path_expr, const char *path, enum owner_id kind,
                       struct scan *scan) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return; /* found by glob, vanished since: reported as missing below */
#ifdef POSIX_FADV_SEQUENTIAL
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  const char *fields = fields_of(kind);
  unsigned sets[MAX_ALTERNATIVES];
  size_t n_sets;
  field_sets(fields, sets, &n_sets);
  size_t cap = READ_BLOCK, have = 0, line_no = 0, errors = 0;
  char *buf = xmalloc(cap);
  bool eof = false;
  while (!eof || have > 0) {
    if (!eof) {
      if (have == cap) buf = xrealloc(buf, cap *= 2); /* one line longer than the buffer */
      ssize_t n = read(fd, buf + have, cap - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        diag_emit(c->diags, E0502, path_expr->span, "%s: cannot read after line %zu: %s", path, line_no,
                  strerror(errno));
        errors++;
      }
      if (n <= 0) eof = true;
      else have += (size_t)n;
    }
    size_t start = 0;
    for (;;) {
      char *nl = memchr(buf + start, '\n', have - start);
      if (!nl && !(eof && start < have)) break;
      size_t end = nl ? (size_t)(nl - buf) : have, len = end - start;
      const char *line = buf + start;
      start = nl ? end + 1 : have;
      line_no++;
      while (len > 0 && line[len - 1] == '\r') len--;
      size_t i = 0;
      while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
      if (i == len) continue; /* blank lines are allowed */
      struct json_line ex;
      char reason[200];
      const char *why = parse_line(line, len, fields, sets, n_sets, &ex, reason, sizeof reason);
      if (!why) {
        count_example(scan, &ex);
        continue;
      }
      if (++errors <= MAX_LINE_ERRORS) {
        struct diag *d = diag_emit(c->diags, E0502, path_expr->span, "%s:%zu: %s", path, line_no, why);
        if (errors == 1 && fields)
          diag_note(c->diags, d, "each line of %s data is one JSON object with %s", owner_spec(kind)->name, fields);
      }
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  if (errors > MAX_LINE_ERRORS)
    diag_emit(c->diags, E0502, path_expr->span, "%s: %zu more lines with errors", path, errors - MAX_LINE_ERRORS);
  scan->errors += errors;
  free(buf);
  close(fd);
}

/* KTO weighs desirable and undesirable examples; TRL advises weights that
 * make desirable_weight * D / (undesirable_weight * U) lie in [1, 4/3]. */
static void check_balance(struct checker *c, const struct expr *path_expr, const struct scan *s) {
  size_t bad = s->labels[0], good = s->labels[1];
  if (bad + good == 0) return;
  double ratio = bad ? (double)good / (double)bad : INFINITY;
  if (ratio >= 1 && ratio <= 4.0 / 3) return;
  struct diag *d = diag_emit(c->diags, N0505, path_expr->span, "%zu desirable and %zu undesirable examples", good, bad);
  if (good == 0 || bad == 0) {
    diag_note(c->diags, d, "KTO learns from the contrast of the two; with one kind only, it has none");
    return;
  }
  diag_note(c->diags, d, "KTO works best when desirable_weight * desirable / (undesirable_weight * undesirable) "
                         "is between 1 and 4/3; here it is %.2f", ratio);
  if (ratio < 1) diag_help(c->diags, d, "set desirable_weight = %.2f", 1 / ratio);
  else diag_help(c->diags, d, "set undesirable_weight = %.2f", ratio);
}

static void check_data_set(struct checker *c, struct seen_paths *seen, const struct item *it,
                           const struct owner_spec *kind) {
  const struct arg *a = it->init->u.call.args;
  if (!a || a->name.text || a->value->kind != EXPR_STRING || a->value->invalid || a->value->u.string.len == 0) return;
  const struct expr *path_expr = a->value;
  char *pattern = program_resolve_path(c->prog, it, path_expr->u.string.text);
  bool fresh;
  struct seen_path *found = seen_get(seen, pattern, kind->id, &fresh);
  if (fresh) {
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    size_t files = 0, bytes = 0;
    struct scan scan = {0};
    if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      struct stat st;
      if (stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      FILE *probe = fopen(g.gl_pathv[i], "rb");
      if (!probe) continue;
      fclose(probe);
      files++;
      bytes += (size_t)st.st_size;
      if (kind->id != OWNER_CORPUS) scan_jsonl(c, path_expr, g.gl_pathv[i], kind->id, &scan);
    }
    }
    globfree(&g);
    found->files = files;
    found->bytes = bytes;
    found->scan = scan;
    found->data = it;
    found->p99 = percentile_99(&found->scan);
    check_balance(c, path_expr, &found->scan);
  }
  struct decl *self = symtab_find(&c->symbols, it->name.text, it->name.len);
  if (self && self->item == it) self->data_p99 = found->p99;
  size_t files = found->files, bytes = found->bytes;
  struct scan scan = found->scan;
  if (files == 0) {
    struct diag *d = diag_emit(c->diags, E0501, path_expr->span, "no readable file matches '%s'", pattern);
    diag_note(c->diags, d, "paths are relative to the folder of the file that declares the data set");
    diag_help(c->diags, d, "check the path, or run check --no-data to skip the data checks");
    return;
  }
  bool empty = kind->id == OWNER_CORPUS ? bytes == 0 : scan.examples == 0 && scan.errors == 0;
  if (empty) {
    struct diag *d = diag_emit(c->diags, E0503, path_expr->span, "data set '%.*s' has no %s", (int)it->name.len,
                               it->name.text, kind->id == OWNER_CORPUS ? "text" : "examples");
    diag_note(c->diags, d, "%zu file%s matched, and %s empty", files, files == 1 ? "" : "s",
              files == 1 ? "it is" : "all are");
  }
}

/* The data set a stage reads, if it names one (not a mix) of examples. */
static const struct decl *stage_data(struct checker *c, const struct item *stage) {
  const struct stage_row *row = decl_stage_row(stage);
  if (!row || row->data_kind == OWNER_CORPUS) return NULL; /* lengths matter for examples only */
  for (const struct entry *e = stage->block.entries; e; e = e->next) {
    if (!ident_is(&e->key, row->data_key) || e->value->kind != EXPR_NAME) continue;
    const struct decl *d = symtab_find(&c->symbols, e->value->u.name.text, e->value->u.name.len);
    return d && d->item->kind == ITEM_DATA ? d : NULL;
  }
  return NULL;
}

/* Examples longer than the stage's context lose their ends: for SFT and
 * preference data, the responses the loss is about. */
/* A data set's max_length: longer examples never reach a stage. */
static double data_max_length(const struct item *data) {
  const struct entry *e = item_entry(data, "max_length");
  const struct arg *a = data->init->kind == EXPR_CALL ? call_arg(data->init, "max_length") : NULL;
  const struct expr *v = e ? e->value : a ? a->value : NULL;
  return v && v->kind == EXPR_NUMBER ? v->u.number.value : NAN;
}

static void check_lengths(struct checker *c, const struct item *stage) {
  const struct decl *p = stage_data(c, stage);
  if (!p || p->data_p99 == 0) return;
  size_t bytes = p->data_p99;
  double context = stage_context(c, stage);
  if (isnan(context) || (double)bytes <= context) return; /* no tokenizer makes more tokens than bytes */
  bool exact = stage_uses_byte_tokens(c, stage);
  double tokens = exact ? (double)bytes : (double)bytes / 4; /* about 4 bytes per BPE token */
  double max_length = data_max_length(p->item);
  if (max_length <= context || tokens <= context) return;
  const struct entry *e = NULL;
  for (e = stage->block.entries; e && !ident_is(&e->key, decl_stage_row(stage)->data_key); e = e->next) {}
  struct diag *d = diag_emit(c->diags, W0504, e->value->span, "1 in 100 examples of '%.*s' is over %s%.0f tokens, "
                             "longer than the %g of stage '%.*s'", (int)p->item->name.len, p->item->name.text,
                             exact ? "" : "about ", tokens, context, (int)stage->name.len, stage->name.text);
  diag_note(c->diags, d, "what does not fit is cut off, and it is the end of each example, the response, that the "
                         "loss is about");
  if (isnan(max_length)) diag_help(c->diags, d, "raise the stage's context, or filter the data with max_length");
  else diag_help(c->diags, d, "raise the stage's context, or lower the data set's max_length to %g", context);
}

void check_data_files(struct checker *c) {
  struct seen_paths seen = {0};
  for (size_t f = 0; f < c->prog->n_files; f++) {
    for (const struct item *it = c->prog->files[f]->items; it; it = it->next) {
      if (it->kind != ITEM_DATA || it->init->kind != EXPR_CALL) continue;
      const struct owner_spec *kind =
          owner_find(FAMILY_DATA, it->init->u.call.callee.text, it->init->u.call.callee.len);
      if (kind && kind->positional == T_PATH) check_data_set(c, &seen, it, kind);
    }
  }
  for (size_t f = 0; f < c->prog->n_files; f++)
    for (const struct item *it = c->prog->files[f]->items; it; it = it->next)
      if (it->kind == ITEM_STAGE) check_lengths(c, it);
  for (size_t i = 0; i < seen.cap; i++) free(seen.slots[i].scan.lengths);
  free(seen.slots);
}
