/* Verifiers: the answer a pattern extracts compared exactly and
 * numerically, the format reward, combinations, completions that are not
 * valid UTF-8, patterns that would backtrack for ever or recurse too deep,
 * and the errors for bad patterns and bad data lines. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/verifier.h"
#include "tests/unit/suites.h"

static struct verifier_spec exact(const char *match, const char *against) {
  return (struct verifier_spec){.match = match, .against = against, .compare = VERIFIER_EXACT, .tolerance = 1e-6,
                                .weight = 1.0};
}

static struct verifier_spec numeric(const char *match, const char *against, double tolerance) {
  return (struct verifier_spec){.match = match, .against = against, .compare = VERIFIER_NUMERIC,
                                .tolerance = tolerance, .weight = 1.0};
}

static struct verifier *create_ok(const struct verifier_spec *specs, size_t n) {
  char err[512] = "";
  struct verifier *v = verifier_create(specs, n, err, sizeof err);
  ck_assert_msg(v != NULL, "%s", err);
  return v;
}

/* verifier_create must refuse SPECS with a message containing WANT (and
 * WANT2 when not NULL). */
static void create_fails(const struct verifier_spec *specs, size_t n, const char *want, const char *want2) {
  char err[512] = "";
  struct verifier *v = verifier_create(specs, n, err, sizeof err);
  ck_assert_msg(v == NULL, "accepted, expected an error containing \"%s\"", want);
  ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
  if (want2) ck_assert_msg(strstr(err, want2) != NULL, "error \"%s\" lacks \"%s\"", err, want2);
}

static json_t *line(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  ck_assert_msg(j != NULL, "%s: %s", text, e.text);
  return j;
}

/* COMPLETION (LEN bytes) scored against the data line LINE_TEXT. */
static struct verifier_result score_len(const struct verifier *v, const char *completion, size_t len,
                                        const char *line_text) {
  json_t *example = line(line_text);
  char err[512] = "";
  struct verifier_result r;
  bool ok = verifier_score(v, completion, len, example, &r, err, sizeof err);
  json_decref(example);
  ck_assert_msg(ok, "%s", err);
  return r;
}

static struct verifier_result score(const struct verifier *v, const char *completion, const char *line_text) {
  return score_len(v, completion, strlen(completion), line_text);
}

/* Scoring must fail with an error containing WANT. */
static void score_fails(const struct verifier *v, const char *completion, const json_t *example, const char *want) {
  char err[512] = "";
  struct verifier_result r = {.reward = 42};
  ck_assert(!verifier_score(v, completion, strlen(completion), example, &r, err, sizeof err));
  ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
  ck_assert(r.reward == 0 && !r.answered && !r.correct && !r.formatted && r.limit_hits == 0);
}

static void score_fails_on(const struct verifier *v, const char *completion, const char *line_text, const char *want) {
  json_t *example = line(line_text);
  score_fails(v, completion, example, want);
  json_decref(example);
}

/* Exact, numeric, or with a number in the data line: does COMPLETION's
 * answer equal the field? */
static bool correct(const struct verifier_spec *s, const char *completion, const char *line_text) {
  struct verifier *v = create_ok(s, 1);
  struct verifier_result r = score(v, completion, line_text);
  verifier_free(v);
  return r.correct;
}

START_TEST(test_exact_match_and_miss) {
  struct verifier_spec s = exact("answer: (\\d+)", "answer");
  struct verifier *v = create_ok(&s, 1);
  struct verifier_result r = score(v, "so the answer: 42.", "{\"answer\": \"42\"}");
  ck_assert(r.answered && r.correct && !r.formatted);
  ck_assert_double_eq(r.reward, 1.0);
  ck_assert_uint_eq(r.limit_hits, 0);

  r = score(v, "so the answer: 41.", "{\"answer\": \"42\"}");
  ck_assert(r.answered && !r.correct);
  ck_assert_double_eq(r.reward, 0.0);
  verifier_free(v);
}
END_TEST

START_TEST(test_exact_trims_ascii_space_only) {
  struct verifier_spec s = exact("answer:(.*)", "answer");
  ck_assert(correct(&s, "answer:  Paris \t\r", "{\"answer\": \"\\nParis \"}"));
  ck_assert(!correct(&s, "answer: paris", "{\"answer\": \"Paris\"}"));
  ck_assert(!correct(&s, "answer: Pa ris", "{\"answer\": \"Paris\"}"));
  /* a no-break space is not ASCII white space */
  ck_assert(!correct(&s, "answer: Paris\xc2\xa0", "{\"answer\": \"Paris\"}"));
}
END_TEST

START_TEST(test_numeric_against_exact) {
  struct verifier_spec n = numeric("answer: (\\S+)", "answer", 1e-6);
  struct verifier_spec e = exact("answer: (\\S+)", "answer");
  ck_assert(correct(&n, "answer: 12.0", "{\"answer\": \"12\"}"));
  ck_assert(!correct(&e, "answer: 12.0", "{\"answer\": \"12\"}"));
  ck_assert(correct(&n, "answer: 1.2e1", "{\"answer\": \" 12 \"}"));
  ck_assert(correct(&n, "answer: -0.5", "{\"answer\": -0.5}"));
  ck_assert(correct(&n, "answer: 12.0", "{\"answer\": 12}"));
  ck_assert(!correct(&n, "answer: 13", "{\"answer\": 12}"));
  /* the whole trimmed answer must be a finite number */
  ck_assert(!correct(&n, "answer: 12abc", "{\"answer\": 12}"));
  ck_assert(!correct(&n, "answer: nan", "{\"answer\": 12}"));
  ck_assert(!correct(&n, "answer: inf", "{\"answer\": 12}"));
  ck_assert(!correct(&n, "answer: 1e999", "{\"answer\": 12}"));
  struct verifier_spec empty = numeric("answer:(.*)", "answer", 1e-6);
  ck_assert(!correct(&empty, "answer:  ", "{\"answer\": 0}"));
}
END_TEST

START_TEST(test_tolerance) {
  struct verifier_spec tight = numeric("= (\\S+)", "answer", 1e-6);
  struct verifier_spec loose = numeric("= (\\S+)", "answer", 0.01);
  ck_assert(!correct(&tight, "pi = 3.14", "{\"answer\": 3.14159}"));
  ck_assert(correct(&loose, "pi = 3.14", "{\"answer\": 3.14159}"));
  /* |a - b| <= tolerance, inclusive (0.25 is exact in binary) */
  struct verifier_spec quarter = numeric("= (\\S+)", "answer", 0.25);
  ck_assert(correct(&quarter, "x = 0.5", "{\"answer\": 0.75}"));
  struct verifier_spec fifth = numeric("= (\\S+)", "answer", 0.2);
  ck_assert(!correct(&fifth, "x = 0.5", "{\"answer\": 0.75}"));
  struct verifier_spec zero = numeric("= (\\S+)", "answer", 0);
  ck_assert(correct(&zero, "x = 7", "{\"answer\": \"7.0\"}"));
}
END_TEST

START_TEST(test_exact_against_json_numbers) {
  struct verifier_spec s = exact("= (\\S+)", "answer");
  ck_assert(correct(&s, "x = 12", "{\"answer\": 12}"));
  ck_assert(!correct(&s, "x = 12.0", "{\"answer\": 12}"));
  ck_assert(correct(&s, "x = -3", "{\"answer\": -3}"));
  ck_assert(correct(&s, "x = 12345678901234567", "{\"answer\": 12345678901234567}"));
  /* a real is written in its shortest form that reads back the same */
  ck_assert(correct(&s, "x = 0.1", "{\"answer\": 0.1}"));
  ck_assert(correct(&s, "x = 2.5", "{\"answer\": 2.50}"));
  ck_assert(correct(&s, "x = 12", "{\"answer\": 12.0}"));
  ck_assert(correct(&s, "x = 2.5e-07", "{\"answer\": 2.5e-7}"));
  ck_assert(correct(&s, "x = 0.30000000000000004", "{\"answer\": 0.30000000000000004}"));
}
END_TEST

START_TEST(test_first_group_of_first_match) {
  struct verifier_spec s = exact("(\\d+) apples and (\\d+) pears", "answer");
  ck_assert(correct(&s, "3 apples and 5 pears", "{\"answer\": 3}"));
  ck_assert(!correct(&s, "3 apples and 5 pears", "{\"answer\": 5}"));
  struct verifier_spec first = exact("(\\d+)", "answer");
  ck_assert(correct(&first, "7, then 9", "{\"answer\": 7}"));
  ck_assert(!correct(&first, "7, then 9", "{\"answer\": 9}"));
  struct verifier_spec named = exact("(?<n>\\d+)", "answer");
  ck_assert(correct(&named, "n is 7", "{\"answer\": \"7\"}"));
}
END_TEST

START_TEST(test_no_answer) {
  struct verifier_spec s = exact("answer: (\\d+)", "answer");
  struct verifier *v = create_ok(&s, 1);
  struct verifier_result r = score(v, "I do not know.", "{\"answer\": 42}");
  ck_assert(!r.answered && !r.correct && !r.formatted);
  ck_assert_double_eq(r.reward, 0.0);
  ck_assert_uint_eq(r.limit_hits, 0);
  r = score(v, "", "{\"answer\": 42}");
  ck_assert(!r.answered);
  verifier_free(v);

  /* the first group took no part in the match: no answer */
  struct verifier_spec unset = exact("(x)|y", "answer");
  v = create_ok(&unset, 1);
  r = score(v, "y", "{\"answer\": \"\"}");
  ck_assert(!r.answered && !r.correct);
  ck_assert_double_eq(r.reward, 0.0);
  /* an empty group that did take part is an (empty) answer */
  struct verifier_spec empty = exact("<a>(.*)</a>", "answer");
  verifier_free(v);
  v = create_ok(&empty, 1);
  r = score(v, "<a></a>", "{\"answer\": \"\"}");
  ck_assert(r.answered && r.correct);
  verifier_free(v);
}
END_TEST

/* R1's rewards: accuracy 1 plus format 1. */
START_TEST(test_format_reward) {
  struct verifier_spec s = exact("<answer>(.*?)</answer>", "answer");
  s.format = "(?s)<think>.*?</think>\\s*<answer>.*?</answer>";
  struct verifier *v = create_ok(&s, 1);
  const char *good = "<think>2 + 2\nis 4</think>\n<answer>4</answer>";
  struct verifier_result r = score(v, good, "{\"answer\": 4}");
  ck_assert(r.answered && r.correct && r.formatted);
  ck_assert_double_eq(r.reward, 2.0);

  r = score(v, good, "{\"answer\": 5}");
  ck_assert(r.answered && !r.correct && r.formatted);
  ck_assert_double_eq(r.reward, 1.0);

  /* anchored at both ends: the whole completion must match */
  r = score(v, "<think>x</think><answer>4</answer> and more", "{\"answer\": 4}");
  ck_assert(r.correct && !r.formatted);
  ck_assert_double_eq(r.reward, 1.0);
  r = score(v, "so <think>x</think><answer>4</answer>", "{\"answer\": 4}");
  ck_assert(r.correct && !r.formatted);
  r = score(v, "<think>x</think><answer>4</answer>\n", "{\"answer\": 4}");
  ck_assert(!r.formatted);
  verifier_free(v);

  s.weight = 0.5;
  v = create_ok(&s, 1);
  r = score(v, good, "{\"answer\": 4}");
  ck_assert_double_eq(r.reward, 1.0);
  verifier_free(v);

  /* an alternation is anchored as a whole */
  struct verifier_spec alt = exact("(\\d+)", "answer");
  alt.format = "yes \\d|no \\d";
  v = create_ok(&alt, 1);
  ck_assert(score(v, "yes 1", "{\"answer\": 1}").formatted);
  ck_assert(!score(v, "yes 1 no 2", "{\"answer\": 1}").formatted);
  ck_assert(!score(v, "so no 2", "{\"answer\": 2}").formatted);
  verifier_free(v);

  /* \K moves where the reported match starts, not where it started */
  alt.format = "x\\K(\\d)";
  v = create_ok(&alt, 1);
  ck_assert(score(v, "x1", "{\"answer\": 1}").formatted);
  verifier_free(v);
}
END_TEST

START_TEST(test_combination_sums) {
  struct verifier_spec s[2] = {exact("answer: (\\w+)", "answer"), numeric("value: (\\S+)", "value", 0.01)};
  s[1].weight = 0.5;
  s[1].format = "(?s).*value: .*";
  struct verifier *v = create_ok(s, 2);
  const char *line_text = "{\"answer\": \"yes\", \"value\": 2.5}";
  struct verifier_result r = score(v, "answer: yes, value: 2.499", line_text);
  ck_assert(r.answered && r.correct && !r.formatted); /* the first verifier's */
  ck_assert_double_eq(r.reward, 1.0 + 0.5 * 2);

  r = score(v, "answer: no, value: 2.5", line_text);
  ck_assert(r.answered && !r.correct);
  ck_assert_double_eq(r.reward, 0.5 * 2);

  r = score(v, "value: 3", line_text);
  ck_assert(!r.answered && !r.correct);
  ck_assert_double_eq(r.reward, 0.5 * 1);
  verifier_free(v);
}
END_TEST

START_TEST(test_invalid_utf8_completion) {
  struct verifier_spec s = exact("answer: (\\d+)", "answer");
  s.format = "(?s).*";
  struct verifier *v = create_ok(&s, 1);
  const char bad[] = "\xff\xfe answer: 42 \xc3";
  struct verifier_result r = score_len(v, bad, sizeof bad - 1, "{\"answer\": 42}");
  ck_assert(r.answered && r.correct);
  /* no match crosses an invalid sequence, so the whole completion cannot
   * match a format */
  ck_assert(!r.formatted);
  ck_assert_double_eq(r.reward, 1.0);

  /* an invalid byte inside the answer ends it */
  const char split[] = "answer: 4\x80" "2";
  r = score_len(v, split, sizeof split - 1, "{\"answer\": 42}");
  ck_assert(r.answered && !r.correct);
  r = score_len(v, split, sizeof split - 1, "{\"answer\": 4}");
  ck_assert(r.correct);

  /* a NUL byte is just a byte: LEN counts, not the terminator */
  const char nul[] = "answer: 7\0answer: 8";
  r = score_len(v, nul, sizeof nul - 1, "{\"answer\": 7}");
  ck_assert(r.correct && r.formatted);
  r = score_len(v, "answer: 78", 9, "{\"answer\": 7}");
  ck_assert(r.correct);

  verifier_free(v);

  /* a format never matches across an invalid sequence, wherever it is */
  struct verifier_spec tagged = exact("<a>(\\d)</a>", "answer");
  tagged.format = "<a>\\d</a>";
  v = create_ok(&tagged, 1);
  const char after[] = "<a>1</a>\x80junk";
  r = score_len(v, after, sizeof after - 1, "{\"answer\": 1}");
  ck_assert(r.correct && !r.formatted);
  const char before[] = "\x80<a>1</a>";
  r = score_len(v, before, sizeof before - 1, "{\"answer\": 1}");
  ck_assert(r.correct && !r.formatted);
  ck_assert(score(v, "<a>1</a>", "{\"answer\": 1}").formatted);
  verifier_free(v);
}
END_TEST

/* Valid UTF-8 is matched by character, negated classes included. */
START_TEST(test_multibyte_answers) {
  struct verifier_spec s = exact("réponse : (\\S+)", "answer");
  struct verifier *v = create_ok(&s, 1);
  ck_assert(score(v, "réponse : été", "{\"answer\": \"été\"}").correct);
  ck_assert(score(v, "réponse : 42€", "{\"answer\": \"42€\"}").correct);
  verifier_free(v);
  struct verifier_spec d = exact("= (\\D)", "answer");
  v = create_ok(&d, 1);
  ck_assert(score(v, "x = π", "{\"answer\": \"π\"}").correct);
  verifier_free(v);
  struct verifier_spec w = exact("(\\W)$", "answer");
  v = create_ok(&w, 1);
  ck_assert(score(v, "done ✓", "{\"answer\": \"✓\"}").correct);
  /* and the same on a completion that is not valid UTF-8 elsewhere */
  const char bad[] = "\xff done ✓";
  ck_assert(score_len(v, bad, sizeof bad - 1, "{\"answer\": \"✓\"}").correct);
  verifier_free(v);
}
END_TEST

/* Catastrophic backtracking ends at the match limit; the harness's
 * timeout is what would catch a hang. */
START_TEST(test_match_limit) {
  const char *subject = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!";
  struct verifier_spec s = exact("(a+)+$", "answer");
  struct verifier *v = create_ok(&s, 1);
  struct verifier_result r = score(v, subject, "{\"answer\": \"a\"}");
  ck_assert_uint_eq(r.limit_hits, 1);
  ck_assert(!r.answered && !r.correct);
  ck_assert_double_eq(r.reward, 0.0);
  verifier_free(v);

  /* a format can hit it too; both count */
  s.format = "(a+)+";
  v = create_ok(&s, 1);
  r = score(v, subject, "{\"answer\": \"a\"}");
  ck_assert_uint_eq(r.limit_hits, 2);
  ck_assert(!r.formatted);
  ck_assert_double_eq(r.reward, 0.0);

  /* the same where the completion is not valid UTF-8 */
  const char bad[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\xff";
  r = score_len(v, bad, sizeof bad - 1, "{\"answer\": \"a\"}");
  ck_assert_uint_eq(r.limit_hits, 2);
  ck_assert_double_eq(r.reward, 0.0);
  verifier_free(v);

  /* a limit in one verifier of a combination costs only its reward */
  struct verifier_spec two[2] = {exact("(a+)+$", "answer"), exact("(a)", "answer")};
  v = create_ok(two, 2);
  r = score(v, subject, "{\"answer\": \"a\"}");
  ck_assert_uint_eq(r.limit_hits, 1);
  ck_assert(!r.answered);
  ck_assert_double_eq(r.reward, 1.0);
  verifier_free(v);
}
END_TEST

/* "((...))" nested DEPTH deep, after PREFIX. */
static char *nested(const char *prefix, size_t depth, size_t *len) {
  size_t p = strlen(prefix);
  char *s = malloc(p + 2 * depth + 1);
  ck_assert_ptr_nonnull(s);
  memcpy(s, prefix, p);
  memset(s + p, '(', depth);
  memset(s + p + depth, ')', depth);
  s[p + 2 * depth] = '\0';
  *len = p + 2 * depth;
  return s;
}

/* Recursion needs memory in proportion to its depth: the interpreter's
 * depth limit, or JIT's bounded stack, stops it. */
START_TEST(test_depth_bounded) {
  struct verifier_spec s = exact("answer: (\\((?1)*\\))$", "answer");
  struct verifier *v = create_ok(&s, 1);

  /* deeper than any limit allows */
  size_t len;
  char *deep = nested("answer: ", 1000000, &len);
  struct verifier_result r = score_len(v, deep, len, "{\"answer\": \"()\"}");
  ck_assert_uint_eq(r.limit_hits, 1);
  ck_assert(!r.answered);
  ck_assert_double_eq(r.reward, 0.0);
  free(deep);
  /* the same where the completion is not valid UTF-8 */
  deep = nested("\xff answer: ", 1000000, &len);
  r = score_len(v, deep, len, "{\"answer\": \"()\"}");
  ck_assert_uint_eq(r.limit_hits, 1);
  ck_assert(!r.answered);
  free(deep);

  /* deeper than JIT's default stack, well within the limits: it matches */
  char *medium = nested("answer: ", 1000, &len);
  json_t *example = json_object();
  json_object_set_new(example, "answer", json_string(medium + strlen("answer: ")));
  char err[512] = "";
  ck_assert_msg(verifier_score(v, medium, len, example, &r, err, sizeof err), "%s", err);
  ck_assert_uint_eq(r.limit_hits, 0);
  ck_assert(r.answered && r.correct);
  json_decref(example);
  free(medium);
  verifier_free(v);
}
END_TEST

START_TEST(test_field_errors) {
  struct verifier_spec s = exact("(\\d+)", "answer");
  struct verifier *v = create_ok(&s, 1);
  score_fails_on(v, "42", "{\"prompt\": \"6 x 7?\"}", "the prompt line has no field 'answer'");
  score_fails_on(v, "42", "{\"answer\": {\"value\": 42}}", "field 'answer' is an object, not a string or a number");
  score_fails_on(v, "42", "{\"answer\": [42]}", "field 'answer' is an array, not a string or a number");
  score_fails_on(v, "42", "{\"answer\": null}", "field 'answer' is null, not a string or a number");
  score_fails_on(v, "42", "{\"answer\": true}", "field 'answer' is a boolean, not a string or a number");
  /* an error even when the completion has no answer */
  score_fails_on(v, "no idea", "{\"solution\": 42}", "no field 'answer'");
  json_t *array = json_array();
  score_fails(v, "42", array, "not a JSON object");
  json_decref(array);
  score_fails(v, "42", NULL, "not a JSON object");
  verifier_free(v);

  /* numeric: the field must hold a number */
  struct verifier_spec n = numeric("(\\d+)", "expected", 0);
  v = create_ok(&n, 1);
  score_fails_on(v, "42", "{\"expected\": \"forty-two\"}", "field 'expected'");
  score_fails_on(v, "42", "{\"expected\": \"nan\"}", "field 'expected'");
  verifier_free(v);

  /* the second verifier's field */
  struct verifier_spec two[2] = {exact("(\\d+)", "answer"), exact("(\\w+)", "unit")};
  v = create_ok(two, 2);
  score_fails_on(v, "42 m", "{\"answer\": 42}", "no field 'unit'");
  verifier_free(v);
}
END_TEST

START_TEST(test_create_refuses) {
  struct verifier_spec s = exact("answer: \\d+", "answer");
  create_fails(&s, 1, "'match' has no capture group", "answer: \\d+");
  s = exact("answer: (\\d+", "answer");
  create_fails(&s, 1, "'match' is not a regular expression PCRE2 compiles", "at offset 12");
  s = exact("\xff(\\d)", "answer"); /* a pattern must be valid UTF-8 */
  create_fails(&s, 1, "PCRE2 compiles", NULL);
  s = exact("(\\d+)", "answer");
  s.format = "<answer>[0-9";
  create_fails(&s, 1, "'format' is not a regular expression PCRE2 compiles", "offset");
  s.format = NULL;
  s.against = NULL;
  create_fails(&s, 1, "'against'", NULL);
  s = numeric("(\\d+)", "answer", -1);
  create_fails(&s, 1, "'tolerance'", NULL);
  s = exact("(\\d+)", "answer");
  create_fails(&s, 0, "at least one", NULL);
  /* a format needs no group */
  s.format = "\\d+";
  verifier_free(create_ok(&s, 1));

  /* which of several */
  struct verifier_spec two[2] = {exact("(\\d+)", "answer"), exact("\\w+", "unit")};
  create_fails(two, 2, "verifier 2: 'match' has no capture group", NULL);
  verifier_free(NULL);
}
END_TEST

/* One verifier shared by threads: scoring only reads it. */
struct shared {
  struct verifier *v;
  json_t *example;
  char *deep; /* needs the larger JIT stack */
  size_t deep_len;
  atomic_int wrong; /* scores that came out other than alone */
};

static void *score_many(void *arg) {
  struct shared *sh = arg;
  const char *good = "answer: (())";
  const char bad[] = "\xff answer: (())";
  for (int i = 0; i < 200; i++) {
    struct verifier_result r;
    char err[256];
    bool ok = verifier_score(sh->v, good, strlen(good), sh->example, &r, err, sizeof err);
    if (!ok || !r.correct) atomic_fetch_add(&sh->wrong, 1);
    ok = verifier_score(sh->v, bad, sizeof bad - 1, sh->example, &r, err, sizeof err);
    if (!ok || !r.correct) atomic_fetch_add(&sh->wrong, 1);
    if (i % 20 == 0) {
      ok = verifier_score(sh->v, sh->deep, sh->deep_len, sh->example, &r, err, sizeof err);
      if (!ok || !r.answered || r.limit_hits != 0) atomic_fetch_add(&sh->wrong, 1);
    }
  }
  return NULL;
}

START_TEST(test_threads) {
  struct verifier_spec s = exact("answer: (\\((?1)*\\))", "answer");
  struct shared sh = {.v = create_ok(&s, 1), .example = line("{\"answer\": \"(())\"}")};
  sh.deep = nested("answer: ", 1000, &sh.deep_len);
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&threads[i], NULL, score_many, &sh), 0);
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  ck_assert_int_eq(atomic_load(&sh.wrong), 0);
  free(sh.deep);
  json_decref(sh.example);
  verifier_free(sh.v);
}
END_TEST

Suite *verifier_suite(void) {
  Suite *s = suite_create("verifier");
  TCase *tc = tcase_create("verifier");
  tcase_add_test(tc, test_exact_match_and_miss);
  tcase_add_test(tc, test_exact_trims_ascii_space_only);
  tcase_add_test(tc, test_numeric_against_exact);
  tcase_add_test(tc, test_tolerance);
  tcase_add_test(tc, test_exact_against_json_numbers);
  tcase_add_test(tc, test_first_group_of_first_match);
  tcase_add_test(tc, test_no_answer);
  tcase_add_test(tc, test_format_reward);
  tcase_add_test(tc, test_combination_sums);
  tcase_add_test(tc, test_invalid_utf8_completion);
  tcase_add_test(tc, test_multibyte_answers);
  tcase_add_test(tc, test_match_limit);
  tcase_add_test(tc, test_depth_bounded);
  tcase_add_test(tc, test_field_errors);
  tcase_add_test(tc, test_create_refuses);
  tcase_add_test(tc, test_threads);
  suite_add_tcase(s, tc);
  return s;
}
