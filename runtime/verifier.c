/* Verifiers (see verifier.h): PCRE2 patterns compiled once, matched under
 * limits, and the answer they extract compared with a field of the data
 * line.
 *
 * Two compilations of each pattern. Completions are sampled byte by byte
 * and need not be valid UTF-8, and PCRE2's two engines each get something
 * wrong with PCRE2_MATCH_INVALID_UTF in releases still shipped (10.42):
 * JIT code makes \S, \D and \W fail on every multibyte character
 * (PCRE2Project/pcre2#224, fixed in 10.43), and the interpreter lets \z,
 * \Z and an end-anchored pattern match at an invalid sequence as if it
 * were the end of the subject (pcre2#343). So each pattern is compiled
 *   - `utf`: PCRE2_UTF, as `check` compiles it (interp/check_values.c),
 *     so every pattern the checker accepts compiles here, and given to
 *     the JIT compiler where PCRE2 has one. pcre2_match checks the subject
 *     first and answers a UTF-8 error for an invalid one;
 *   - `any`: PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, run by the interpreter,
 *     for the completions `utf` refused. An invalid sequence matches no
 *     pattern item and no match crosses it.
 * `format` is compiled with PCRE2_ANCHORED | PCRE2_ENDANCHORED (JIT code
 * takes them only at compile time), and a format match must also start
 * at 0 and end at the end of the completion, which no match of a
 * completion holding an invalid sequence does: such a completion never
 * earns the format score.
 *
 * Limits. Every match runs with a match context carrying
 * VERIFIER_MATCH_LIMIT, VERIFIER_DEPTH_LIMIT and a heap limit. JIT code
 * obeys the match limit but ignores the depth and heap limits (pcre2api,
 * pcre2jit); what bounds its backtracking depth is the size of its stack.
 * A JIT match first runs on PCRE2's 32 KiB stack on the machine stack,
 * which costs no allocation; if that is too small, it is run again on a
 * JIT stack of at most VERIFIER_JIT_STACK_MAX bytes, and if that too is
 * exhausted the match counts as stopped by a limit. 1 MiB admits a
 * backtracking depth of the same order (10^4) as the interpreter's depth
 * limit. The interpreter (no JIT support, a pattern the JIT compiler
 * refuses, or an invalid completion) runs under the depth and heap limits.
 *
 * Threads. verifier_score only reads the verifier: the compiled patterns,
 * their JIT code and the shared match context are never written after
 * verifier_create, which PCRE2 documents as safe to share. Each call
 * allocates its own match data (one, sized for the verifier's largest
 * pattern) and, only when a match needs it, its own JIT stack, so one
 * verifier may score completions from several threads at once. The cost,
 * a few microseconds per call, is nothing beside sampling a completion.
 *
 * Numbers are read with strtod; trainpipe never changes LC_NUMERIC, so
 * the decimal point is '.'. */
#include "runtime/verifier.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The interpreter's backtracking memory, in KiB: the depth limit bounds
 * the number of frames, but a frame grows with the number of groups. */
#define VERIFIER_HEAP_LIMIT_KIB 65536u
/* The JIT stack a match is retried on when PCRE2's default is too small. */
#define VERIFIER_JIT_STACK_START (32u * 1024u)
#define VERIFIER_JIT_STACK_MAX (1024u * 1024u)

struct pattern {
  pcre2_code *utf; /* for valid UTF-8, JIT-compiled where possible; NULL: no pattern */
  pcre2_code *any; /* for any bytes, interpreted */
};

struct check {
  struct pattern match, format;
  char *against;
  enum verifier_compare compare;
  double tolerance;
  double weight;
};

struct verifier {
  struct check *checks;
  size_t n;
  pcre2_match_context *limits; /* read only once created */
  uint32_t pairs;              /* ovector pairs of the largest pattern */
};

static void set_err(char *err, size_t size, const char *fmt, ...) {
  if (!err || size == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, size, fmt, ap);
  va_end(ap);
}

/* "verifier 2: " when there are several, so that a message names which. */
static void which(char *buf, size_t size, size_t i, size_t n) {
  if (n > 1) snprintf(buf, size, "verifier %zu: ", i + 1);
  else buf[0] = '\0';
}

static void pattern_free(struct pattern *p) {
  pcre2_code_free(p->utf);
  pcre2_code_free(p->any);
}

/* Compiles KEY's pattern TEXT into P, with OPTIONS on top of the
 * checker's; MIN_GROUPS: the capture groups it must have. */
static bool compile_pattern(struct pattern *p, const char *key, const char *text, uint32_t options,
                            uint32_t min_groups, const char *where, uint32_t *pairs, char *err, size_t err_size) {
  int code;
  PCRE2_SIZE offset;
  p->utf = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PCRE2_UTF | options, &code, &offset, NULL);
  if (!p->utf) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    set_err(err, err_size, "%s'%s' is not a regular expression PCRE2 compiles: %s, at offset %zu of the pattern: %.*s<here>%s",
            where, key, (const char *)message, (size_t)offset, (int)offset, text, text + offset);
    return false;
  }
  uint32_t groups = 0;
  pcre2_pattern_info(p->utf, PCRE2_INFO_CAPTURECOUNT, &groups);
  if (groups < min_groups) {
    set_err(err, err_size, "%s'%s' has no capture group: \"%s\"; its first group is the answer, so put the answer "
                           "in parentheses: \"answer: (\\d+)\"", where, key, text);
    return false;
  }
  if (groups + 1 > *pairs) *pairs = groups + 1;
  /* A failure here (no JIT support, or a pattern too large for it)
   * leaves the pattern to the interpreter, which honours every limit. */
  (void)pcre2_jit_compile(p->utf, PCRE2_JIT_COMPLETE);
  /* The same pattern for completions that are not valid UTF-8.
   * PCRE2_MATCH_INVALID_UTF changes how a pattern is matched, not what
   * compiles, so this fails only for want of memory. */
  p->any = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | options, &code,
                         &offset, NULL);
  if (!p->any) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    set_err(err, err_size, "%s'%s' does not compile for completions that are not valid UTF-8: %s", where, key,
            (const char *)message);
    return false;
  }
  return true;
}

void verifier_free(struct verifier *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    pattern_free(&v->checks[i].match);
    pattern_free(&v->checks[i].format);
    free(v->checks[i].against);
  }
  free(v->checks);
  pcre2_match_context_free(v->limits);
  free(v);
}

struct verifier *verifier_create(const struct verifier_spec *specs, size_t n, char *err, size_t err_size) {
  if (!specs || n == 0) {
    set_err(err, err_size, "no verifier to compile: a reward needs at least one");
    return NULL;
  }
  struct verifier *v = calloc(1, sizeof *v);
  if (!v) goto out_of_memory;
  v->checks = calloc(n, sizeof *v->checks);
  v->limits = pcre2_match_context_create(NULL);
  if (!v->checks || !v->limits) goto out_of_memory;
  pcre2_set_match_limit(v->limits, VERIFIER_MATCH_LIMIT);
  pcre2_set_depth_limit(v->limits, VERIFIER_DEPTH_LIMIT);
  pcre2_set_heap_limit(v->limits, VERIFIER_HEAP_LIMIT_KIB);
  v->pairs = 1;
  for (size_t i = 0; i < n; i++) {
    const struct verifier_spec *s = &specs[i];
    struct check *c = &v->checks[i];
    v->n = i + 1; /* what verifier_free releases on the way out */
    char where[40];
    which(where, sizeof where, i, n);
    if (!s->match) {
      set_err(err, err_size, "%sno 'match' pattern", where);
      goto fail;
    }
    if (!s->against || !s->against[0]) {
      set_err(err, err_size, "%sno 'against' field to compare the answer with", where);
      goto fail;
    }
    if (s->compare != VERIFIER_EXACT && s->compare != VERIFIER_NUMERIC) {
      set_err(err, err_size, "%sunknown comparison %d", where, (int)s->compare);
      goto fail;
    }
    if (s->compare == VERIFIER_NUMERIC && !(s->tolerance >= 0)) { /* also refuses NaN */
      set_err(err, err_size, "%s'tolerance' must be 0 or more, not %g", where, s->tolerance);
      goto fail;
    }
    if (!isfinite(s->weight)) {
      set_err(err, err_size, "%s'weight' must be a finite number, not %g", where, s->weight);
      goto fail;
    }
    c->compare = s->compare;
    c->tolerance = s->tolerance;
    c->weight = s->weight;
    c->against = strdup(s->against);
    if (!c->against) goto out_of_memory;
    if (!compile_pattern(&c->match, "match", s->match, 0, 1, where, &v->pairs, err, err_size)) goto fail;
    if (s->format && !compile_pattern(&c->format, "format", s->format, PCRE2_ANCHORED | PCRE2_ENDANCHORED, 0, where,
                                      &v->pairs, err, err_size))
      goto fail;
  }
  return v;

out_of_memory:
  set_err(err, err_size, "out of memory compiling the verifier");
fail:
  verifier_free(v);
  return NULL;
}

/* ---- Matching ---- */

enum outcome { MATCHED, NO_MATCH, LIMITED, FAILED };

static bool is_limit(int rc) {
  return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
         rc == PCRE2_ERROR_JIT_STACKLIMIT;
}

static bool is_utf_error(int rc) { return rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21; }

/* One completion being scored. */
struct subject {
  const char *text;
  size_t len;
  bool invalid; /* not valid UTF-8: known once a `utf` match refused it */
};

/* Runs P over S under the verifier's limits; *RC: PCRE2's code. */
static enum outcome run_match(const struct verifier *v, const struct pattern *p, struct subject *s,
                              pcre2_match_data *md, int *rc) {
  PCRE2_SPTR text = (PCRE2_SPTR)s->text;
  if (!s->invalid) {
    *rc = pcre2_match(p->utf, text, s->len, 0, 0, md, v->limits);
    if (*rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      /* Too deep for the default JIT stack: once more on a larger one,
       * private to this call. */
      pcre2_match_context *mc = pcre2_match_context_copy(v->limits);
      pcre2_jit_stack *stack = pcre2_jit_stack_create(VERIFIER_JIT_STACK_START, VERIFIER_JIT_STACK_MAX, NULL);
      if (mc && stack) {
        pcre2_jit_stack_assign(mc, NULL, stack);
        *rc = pcre2_match(p->utf, text, s->len, 0, 0, md, mc);
      } else {
        *rc = PCRE2_ERROR_NOMEMORY;
      }
      pcre2_jit_stack_free(stack);
      pcre2_match_context_free(mc);
    }
    if (is_utf_error(*rc)) s->invalid = true;
  }
  if (s->invalid) *rc = pcre2_match(p->any, text, s->len, 0, 0, md, v->limits);
  if (*rc >= 0) return MATCHED; /* 0 cannot happen: the match data holds every group */
  if (*rc == PCRE2_ERROR_NOMATCH) return NO_MATCH;
  if (is_limit(*rc)) return LIMITED;
  return FAILED;
}

/* ---- Answers and expected values ---- */

static bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void trim(const char **text, size_t *len) {
  const char *s = *text;
  size_t n = *len;
  while (n > 0 && ascii_space(s[0])) s++, n--;
  while (n > 0 && ascii_space(s[n - 1])) n--;
  *text = s;
  *len = n;
}

/* TEXT (LEN bytes, trimmed) as a finite number: strtod must read all of
 * it. Empty text, "nan", "inf" and overflowing values are not numbers. */
static bool parse_number(const char *text, size_t len, double *value) {
  trim(&text, &len);
  if (len == 0) return false;
  char small[64];
  char *copy = len < sizeof small ? small : malloc(len + 1);
  if (!copy) return false;
  memcpy(copy, text, len);
  copy[len] = '\0';
  char *end;
  double x = strtod(copy, &end);
  bool ok = end == copy + len && isfinite(x);
  if (copy != small) free(copy);
  if (ok) *value = x;
  return ok;
}

/* The expected answer of one check, from the data line. */
struct expected {
  const char *text; /* exact: the bytes to compare with */
  size_t len;
  double number;    /* numeric: the value */
  char buf[40];     /* the text of a JSON number */
};

/* A JSON real as text for an exact comparison. jansson keeps only the
 * value, not how the data wrote it, so this is the shortest "%g" form
 * that reads back as the same double: 0.1 is "0.1", 12.0 is "12", 2.50
 * is "2.5" (a completion answering "2.50" needs compare = numeric). */
static void format_real(double x, char *buf, size_t size) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, size, "%.*g", digits, x);
    if (strtod(buf, NULL) == x) return;
  }
}

static const char *json_kind(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  default: return "a value";
  }
}

static bool expected_of(const struct check *c, const json_t *example, struct expected *e, char *err, size_t err_size) {
  const json_t *field = json_object_get(example, c->against);
  if (!field) {
    set_err(err, err_size, "the prompt line has no field '%s'", c->against);
    return false;
  }
  if (json_is_string(field)) {
    e->text = json_string_value(field);
    e->len = json_string_length(field);
    if (c->compare == VERIFIER_NUMERIC && !parse_number(e->text, e->len, &e->number)) {
      set_err(err, err_size, "field '%s' is \"%.*s\", not a number, and the verifier compares numerically", c->against,
              e->len > 40 ? 40 : (int)e->len, e->text);
      return false;
    }
    return true;
  }
  if (json_is_integer(field)) {
    json_int_t i = json_integer_value(field);
    snprintf(e->buf, sizeof e->buf, "%" JSON_INTEGER_FORMAT, i);
    e->number = (double)i;
  } else if (json_is_real(field)) {
    e->number = json_real_value(field);
    format_real(e->number, e->buf, sizeof e->buf);
  } else {
    set_err(err, err_size, "field '%s' is %s, not a string or a number", c->against, json_kind(field));
    return false;
  }
  e->text = e->buf;
  e->len = strlen(e->buf);
  return true;
}

static bool same_answer(const struct check *c, const char *answer, size_t len, const struct expected *e) {
  if (c->compare == VERIFIER_NUMERIC) {
    double x;
    return parse_number(answer, len, &x) && fabs(x - e->number) <= c->tolerance;
  }
  const char *want = e->text;
  size_t want_len = e->len;
  trim(&answer, &len);
  trim(&want, &want_len);
  return len == want_len && memcmp(answer, want, len) == 0;
}

/* ---- Scoring ---- */

static void match_failed(const struct verifier *v, size_t i, const char *key, int rc, char *err, size_t err_size) {
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(rc, message, sizeof message);
  char where[40];
  which(where, sizeof where, i, v->n);
  set_err(err, err_size, "%smatching '%s' failed: %s", where, key, (const char *)message);
}

bool verifier_score(const struct verifier *v, const char *completion, size_t len, const json_t *example,
                    struct verifier_result *out, char *err, size_t err_size) {
  *out = (struct verifier_result){0};
  if (!json_is_object(example)) {
    set_err(err, err_size, "the prompt line is not a JSON object");
    return false;
  }
  struct subject subject = {.text = completion ? completion : "", .len = completion ? len : 0};
  pcre2_match_data *md = pcre2_match_data_create(v->pairs, NULL);
  if (!md) {
    set_err(err, err_size, "out of memory scoring a completion");
    return false;
  }
  struct verifier_result r = {0};
  bool ok = true;
  for (size_t i = 0; i < v->n && ok; i++) {
    const struct check *c = &v->checks[i];
    struct expected e;
    if (!expected_of(c, example, &e, err, err_size)) {
      ok = false;
      break;
    }
    bool answered = false, correct = false, formatted = false;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    int rc;
    switch (run_match(v, &c->match, &subject, md, &rc)) {
    case MATCHED:
      /* A group that took no part in the match (r"(x)|y" on "y") is no answer. */
      if (ov[2] != PCRE2_UNSET && ov[3] >= ov[2]) {
        answered = true;
        correct = same_answer(c, subject.text + ov[2], ov[3] - ov[2], &e);
      }
      break;
    case NO_MATCH: break;
    case LIMITED: r.limit_hits++; break;
    case FAILED:
      match_failed(v, i, "match", rc, err, err_size);
      ok = false;
      break;
    }
    if (ok && c->format.utf) {
      switch (run_match(v, &c->format, &subject, md, &rc)) {
      /* where the match started, not ov[0], which \K may move */
      case MATCHED: formatted = pcre2_get_startchar(md) == 0 && ov[1] == subject.len; break;
      case NO_MATCH: break;
      case LIMITED: r.limit_hits++; break;
      case FAILED:
        match_failed(v, i, "format", rc, err, err_size);
        ok = false;
        break;
      }
    }
    r.reward += c->weight * ((correct ? 1.0 : 0.0) + (formatted ? 1.0 : 0.0));
    if (i == 0) {
      r.answered = answered;
      r.correct = correct;
      r.formatted = formatted;
    }
  }
  pcre2_match_data_free(md);
  if (ok) *out = r;
  return ok;
}
