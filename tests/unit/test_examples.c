/* Preference pairs, feedback examples and RL prompts: the tokens and masks
 * the template gives them, margins and labels, the lines kept for
 * verifiers, the errors a bad line stops on, examples dropped for their
 * length, the held-out split by content, the order drawn from the seed and
 * resumed from a saved position, and the partners of feedback examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/examples.h"
#include "runtime/tokenizer.h"
#include "tests/unit/suites.h"

enum { BOS = BYTES_BOS, EOS = BYTES_EOS, USR = BYTES_USER, AST = BYTES_ASSISTANT };

/* A temporary folder and the files written into it, removed at the end. */
struct tmp {
  char dir[64];
  char files[16][128];
  int n;
  char pattern[128];
};

static void tmp_make(struct tmp *t) {
  memset(t, 0, sizeof *t);
  snprintf(t->dir, sizeof t->dir, "/tmp/trainpipe-examples-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

static const char *tmp_text(struct tmp *t, const char *name, const char *text) {
  ck_assert_int_lt(t->n, 16);
  char *path = t->files[t->n++], buf[sizeof t->files[0]];
  snprintf(buf, sizeof buf, "%s/%s", t->dir, name);
  memcpy(path, buf, sizeof buf);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
  fclose(f);
  return path;
}

static const char *tmp_glob(struct tmp *t, const char *pattern) {
  snprintf(t->pattern, sizeof t->pattern, "%s/%s", t->dir, pattern);
  return t->pattern;
}

static void tmp_remove(struct tmp *t) {
  for (int i = 0; i < t->n; i++) unlink(t->files[i]);
  rmdir(t->dir);
}

static struct tokenizer *bytes_tokenizer(void) {
  char err[200];
  struct tokenizer *tok = tokenizer_create("bytes", err, sizeof err);
  ck_assert_msg(tok != NULL, "%s", err);
  return tok;
}

static struct example_options options(enum example_kind kind, const struct tokenizer *tok, int context) {
  return (struct example_options){.kind = kind, .tok = tok, .template = TEMPLATE_TURNS, .context = context,
                                  .seed = 1, .split_seed = 7};
}

static struct example_source source(const char *pattern, double val_split) {
  return (struct example_source){.name = "ex", .pattern = pattern, .val_split = val_split};
}

static struct example_set *open_ok(const struct example_source *src, const struct example_options *opt) {
  char err[512];
  struct example_set *s = examples_open(src, 1, opt, err, sizeof err);
  ck_assert_msg(s != NULL, "%s", err);
  return s;
}

/* The error examples_open gives, which must exist and contain WANT. */
static void open_fails(const struct example_source *src, const struct example_options *opt, const char *want) {
  char err[512] = "";
  struct example_set *s = examples_open(src, 1, opt, err, sizeof err);
  ck_assert_msg(s == NULL, "opened; expected an error with '%s'", want);
  ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

/* S holds exactly the tokens and mask of T. */
static void assert_sequence(const struct sequence *s, const struct tokens *t) {
  ck_assert_int_eq(s->len, (int)t->n);
  for (size_t i = 0; i < t->n; i++) {
    ck_assert_msg(s->ids[i] == t->ids[i], "id at %zu: %d, expected %d", i, s->ids[i], t->ids[i]);
    ck_assert_msg(s->mask[i] == t->mask[i], "mask at %zu: %d, expected %d", i, s->mask[i], t->mask[i]);
  }
}

static void assert_pair(const struct tokenizer *tok, enum chat_template tpl, const struct sequence *s,
                        const char *prompt, const char *response) {
  struct tokens t = {0};
  template_pair(tok, tpl, prompt, strlen(prompt), response, strlen(response), &t);
  assert_sequence(s, &t);
  tokens_free(&t);
}

/* The text of S, special tokens by name. */
static const char *text_of(const struct tokenizer *tok, const struct sequence *s, char *buf, size_t size) {
  tokenizer_decode(tok, s->ids, (size_t)s->len, buf, size);
  return buf;
}

START_TEST(preference_pairs) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "prefs.jsonl",
           "{\"prompt\": \"Hi\", \"chosen\": \"Yes\", \"rejected\": \"No\"}\n"
           "{\"prompt\": \"Q\", \"chosen\": \"A\", \"rejected\": \"\", \"margin\": 1.5}\n"
           "{\"prompt\": \"Q2\", \"chosen\": \"A\", \"rejected\": \"B\", \"margin\": 2}\n");
  struct example_source src = source(tmp_glob(&t, "*.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_PREFERENCES, tok, 32);
  struct example_set *s = open_ok(&src, &opt);
  ck_assert_uint_eq(examples_train_count(s), 3);
  ck_assert_uint_eq(examples_val_count(s), 0);
  const struct example *e = examples_train(s, 0);
  assert_pair(tok, TEMPLATE_TURNS, &e->chosen, "Hi", "Yes");
  assert_pair(tok, TEMPLATE_TURNS, &e->rejected, "Hi", "No");
  int32_t want[] = {BOS, USR, 'H', 'i', AST, 'Y', 'e', 's', EOS};
  uint8_t mask[] = {0, 0, 0, 0, 0, 1, 1, 1, 1};
  for (int i = 0; i < 9; i++) {
    ck_assert_int_eq(e->chosen.ids[i], want[i]);
    ck_assert_int_eq(e->chosen.mask[i], mask[i]);
  }
  ck_assert_int_eq(e->chosen.prompt_len, 5); /* <|bos|><|user|>Hi<|assistant|> */
  ck_assert_int_eq(e->rejected.prompt_len, 5);
  ck_assert_double_eq(e->margin, 0);
  ck_assert_int_eq(e->prompt.len, 0);
  ck_assert_ptr_null(e->line);

  e = examples_train(s, 1);
  assert_pair(tok, TEMPLATE_TURNS, &e->rejected, "Q", ""); /* an empty answer still learns to stop */
  ck_assert_int_eq(e->rejected.len, 5);
  ck_assert_int_eq(e->rejected.prompt_len, 4);
  ck_assert_double_eq(e->margin, 1.5);
  ck_assert_double_eq(examples_train(s, 2)->margin, 2);
  ck_assert_ptr_null(examples_train(s, 3));

  struct example_stats st;
  examples_stats(s, &st);
  ck_assert_uint_eq(st.files, 1);
  ck_assert_uint_eq(st.kept, 3);
  ck_assert_uint_eq(st.val_kept, 0);
  ck_assert_uint_eq(st.dropped_long, 0);
  examples_close(s);

  opt.template = TEMPLATE_PLAIN; /* no special tokens before the answer */
  s = open_ok(&src, &opt);
  e = examples_train(s, 0);
  assert_pair(tok, TEMPLATE_PLAIN, &e->chosen, "Hi", "Yes");
  ck_assert_int_eq(e->chosen.prompt_len, 2);
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

/* TRL's conversational layout: lists of messages, the prompt explicit or
 * the messages chosen and rejected share. */
START_TEST(conversational_preferences) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "conv.jsonl",
           "{\"chosen\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yes\"}],"
           " \"rejected\": [{\"role\": \"user\", \"content\": \"Hi\"},"
           " {\"role\": \"assistant\", \"content\": \"No\"}]}\n"
           "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chosen\": [{\"role\": \"assistant\", "
           "\"content\": \"Yes\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"No\"}]}\n"
           "{\"chosen\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
           " {\"role\": \"assistant\", \"content\": \"Yo\"}, {\"role\": \"user\", \"content\": \"More\"},"
           " {\"role\": \"assistant\", \"content\": \"X\"}],"
           " \"rejected\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
           " {\"role\": \"assistant\", \"content\": \"Yo\"}, {\"role\": \"user\", \"content\": \"More\"},"
           " {\"role\": \"assistant\", \"content\": \"YZ\"}]}\n");
  struct example_source src = source(tmp_glob(&t, "conv.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_PREFERENCES, tok, 64);
  struct example_set *s = open_ok(&src, &opt);
  ck_assert_uint_eq(examples_train_count(s), 3);
  for (size_t i = 0; i < 2; i++) {
    const struct example *e = examples_train(s, i);
    assert_pair(tok, TEMPLATE_TURNS, &e->chosen, "Hi", "Yes");
    assert_pair(tok, TEMPLATE_TURNS, &e->rejected, "Hi", "No");
    ck_assert_int_eq(e->chosen.prompt_len, 5);
  }
  /* several turns: only the last answer, after the shared messages, is learned */
  const struct example *e = examples_train(s, 2);
  char buf[256];
  ck_assert_str_eq(text_of(tok, &e->chosen, buf, sizeof buf),
                   "<|bos|><|user|>S\n\nHi<|assistant|>Yo<|eos|><|user|>More<|assistant|>X<|eos|>");
  ck_assert_int_eq(e->chosen.prompt_len, e->chosen.len - 2);
  ck_assert_int_eq(e->rejected.prompt_len, e->rejected.len - 3);
  for (int i = 0; i < e->chosen.len; i++) ck_assert_int_eq(e->chosen.mask[i], i >= e->chosen.prompt_len);
  for (int i = 0; i < e->rejected.len; i++) ck_assert_int_eq(e->rejected.mask[i], i >= e->rejected.prompt_len);
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(feedback_labels) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "kto.jsonl",
           "{\"prompt\": \"p1\", \"completion\": \"good\", \"label\": true}\n"
           "\n"
           "{\"prompt\": \"p2\", \"completion\": \"bad\", \"label\": false, \"extra\": [1, 2]}\n"
           "{\"prompt\": \"p3\", \"completion\": \"fine\", \"label\": true}\n");
  struct example_source src = source(tmp_glob(&t, "kto.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_FEEDBACK, tok, 32);
  struct example_set *s = open_ok(&src, &opt);
  ck_assert_uint_eq(examples_train_count(s), 3);
  static const char *const prompts[] = {"p1", "p2", "p3"}, *const completions[] = {"good", "bad", "fine"};
  static const bool labels[] = {true, false, true};
  for (size_t i = 0; i < 3; i++) {
    const struct example *e = examples_train(s, i);
    assert_pair(tok, TEMPLATE_TURNS, &e->chosen, prompts[i], completions[i]);
    ck_assert_int_eq(e->chosen.prompt_len, 5); /* <|bos|><|user|>pN<|assistant|> */
    ck_assert_int_eq(e->desirable, labels[i]);
    ck_assert_int_eq(e->rejected.len, 0);
    ck_assert_uint_eq(e->partner, (i + 1) % 3);
  }
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(prompts_for_generation) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "rl.jsonl",
           "{\"prompt\": \"What is 2+2?\", \"answer\": \"4\", \"meta\": {\"level\": 1}}\n"
           "{\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief\"},"
           " {\"role\": \"user\", \"content\": \"Hi\"}],"
           " \"answer\": \"hello\"}\n");
  struct example_source src = source(tmp_glob(&t, "rl.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_PROMPTS, tok, 32);
  struct example_set *s = open_ok(&src, &opt);
  ck_assert_uint_eq(examples_train_count(s), 2);
  const struct example *e = examples_train(s, 0);
  struct chat_message m = {ROLE_USER, "What is 2+2?", 12};
  struct tokens want = {0};
  char err[160];
  ck_assert(template_render(tok, TEMPLATE_TURNS, &m, 1, true, &want, err, sizeof err));
  ck_assert_int_eq(want.ids[want.n - 1], AST);
  assert_sequence(&e->prompt, &want); /* nothing to learn: every mask 0 */
  for (int i = 0; i < e->prompt.len; i++) ck_assert_int_eq(e->prompt.mask[i], 0);
  ck_assert_int_eq(e->prompt.prompt_len, e->prompt.len);
  ck_assert_int_eq(e->chosen.len, 0);
  ck_assert_ptr_nonnull(e->line);
  ck_assert_str_eq(json_string_value(json_object_get(e->line, "answer")), "4");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e->line, "meta"), "level")), 1);

  e = examples_train(s, 1);
  char buf[128];
  ck_assert_str_eq(text_of(tok, &e->prompt, buf, sizeof buf), "<|bos|><|user|>Be brief\n\nHi<|assistant|>");
  ck_assert_str_eq(json_string_value(json_object_get(e->line, "answer")), "hello");
  tokens_free(&want);
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

/* Each bad line comes third, after a good line and a blank one. */
static const struct {
  enum example_kind kind;
  const char *line, *want;
} bad_lines[] = {
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": \"b\"", "not JSON"},
    {EXAMPLES_PREFERENCES, "[\"prompt\", \"chosen\", \"rejected\"]", "not a JSON object"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": \"b\"}", "no 'rejected' field"},
    {EXAMPLES_PREFERENCES, "{\"chosen\": \"b\", \"rejected\": \"c\"}", "no 'prompt' field"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": 3, \"rejected\": \"c\"}", "'chosen' is not a string"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\", \"margin\": \"big\"}",
     "'margin' is not a number"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": \"b\xff\", \"rejected\": \"c\"}",
     "'chosen' is not UTF-8"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\\u0000\"}", "not JSON"},
    {EXAMPLES_PREFERENCES,
     "{\"prompt\": \"a\", \"chosen\": [{\"role\": \"bot\", \"content\": \"b\"}], \"rejected\": \"c\"}",
     "chosen[0]: unknown role 'bot'"},
    {EXAMPLES_PREFERENCES, "{\"prompt\": \"a\", \"chosen\": [{\"role\": \"user\"}], \"rejected\": \"c\"}",
     "chosen[0]: no 'content' string"},
    {EXAMPLES_PREFERENCES,
     "{\"prompt\": \"a\", \"chosen\": [{\"role\": \"user\", \"content\": \"b\"}], \"rejected\": \"c\"}",
     "'chosen' has no assistant message"},
    {EXAMPLES_PREFERENCES,
     "{\"prompt\": \"a\", \"chosen\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", "
     "\"content\": \"b\"}], \"rejected\": \"c\"}",
     "chosen[0]: a system message may only come first"},
    {EXAMPLES_FEEDBACK, "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": \"yes\"}", "'label' is not a boolean"},
    {EXAMPLES_FEEDBACK, "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": 1}", "'label' is not a boolean"},
    {EXAMPLES_FEEDBACK, "{\"prompt\": \"a\", \"completion\": \"b\"}", "no 'label' field"},
    {EXAMPLES_FEEDBACK, "{\"prompt\": \"a\", \"label\": true}", "no 'completion' field"},
    {EXAMPLES_FEEDBACK, "{\"prompt\": \"\xc3\", \"completion\": \"b\", \"label\": true}", "'prompt' is not UTF-8"},
    {EXAMPLES_PROMPTS, "{\"question\": \"a\"}", "no 'prompt' field"},
    {EXAMPLES_PROMPTS, "{\"prompt\": null}", "'prompt' is not a string"},
    {EXAMPLES_PROMPTS,
     "{\"prompt\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"s\"}]}",
     "prompt[1]: a system message may only come first"},
    {EXAMPLES_PROMPTS, "{\"prompt\": \"a\", \"answer\": \"\xed\xa0\x80\"}", "'answer' is not UTF-8"},
    {EXAMPLES_PROMPTS, "{\"prompt\": \"a\"} x", "not JSON"},
};

static const char *const good_lines[] = {
    [EXAMPLES_PREFERENCES] = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}",
    [EXAMPLES_FEEDBACK] = "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": false}",
    [EXAMPLES_PROMPTS] = "{\"prompt\": \"a\"}",
};

START_TEST(bad_line) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  char text[512], want[256];
  snprintf(text, sizeof text, "%s\n  \n%s\n%s\n", good_lines[bad_lines[_i].kind], bad_lines[_i].line,
           good_lines[bad_lines[_i].kind]);
  const char *path = tmp_text(&t, "bad.jsonl", text);
  snprintf(want, sizeof want, "%s:3: %s", path, bad_lines[_i].want);
  struct example_source src = source(path, 0);
  struct example_options opt = options(bad_lines[_i].kind, tok, 32);
  open_fails(&src, &opt, want);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(too_long_dropped) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  /* context 10: a sequence may hold 11 tokens, <|bos|><|user|>P<|assistant|>R<|eos|> being |P| + |R| + 4 */
  tmp_text(&t, "prefs.jsonl",
           "{\"prompt\": \"ab\", \"chosen\": \"cdefg\", \"rejected\": \"x\"}\n"
           "{\"prompt\": \"ab\", \"chosen\": \"cdefgh\", \"rejected\": \"x\"}\n"
           "{\"prompt\": \"ab\", \"chosen\": \"x\", \"rejected\": \"cdefgh\"}\n"
           "{\"prompt\": \"ab\", \"chosen\": \"x\", \"rejected\": \"y\"}\n");
  struct example_source src = source(tmp_glob(&t, "prefs.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_PREFERENCES, tok, 10);
  struct example_set *s = open_ok(&src, &opt);
  struct example_stats st;
  examples_stats(s, &st);
  ck_assert_uint_eq(st.kept, 2);
  ck_assert_uint_eq(st.dropped_long, 2);
  ck_assert_uint_eq(examples_train_count(s), 2);
  ck_assert_int_eq(examples_train(s, 0)->chosen.len, 11);
  examples_close(s);

  src.max_length = 8; /* the shorter ones too; then nothing is left */
  s = open_ok(&src, &opt);
  examples_stats(s, &st);
  ck_assert_uint_eq(st.kept, 1);
  ck_assert_uint_eq(st.dropped_long, 3);
  examples_close(s);
  src.max_length = 6;
  open_fails(&src, &opt, "data set 'ex' has no examples: 1 file read, 2 longer than the context (11 tokens");
  open_fails(&src, &opt, "2 over max_length = 6 tokens");

  /* prompts: at most the context, <|bos|><|user|>P<|assistant|> being |P| + 3 */
  tmp_text(&t, "rl.jsonl", "{\"prompt\": \"1234567\"}\n{\"prompt\": \"12345678\"}\n");
  src = source(tmp_glob(&t, "rl.jsonl"), 0);
  opt = options(EXAMPLES_PROMPTS, tok, 10);
  s = open_ok(&src, &opt);
  examples_stats(s, &st);
  ck_assert_uint_eq(st.kept, 1);
  ck_assert_uint_eq(st.dropped_long, 1);
  ck_assert_int_eq(examples_train(s, 0)->prompt.len, 10);
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

static int by_text(const void *a, const void *b) { return strcmp(a, b); }

/* The held-out examples' texts, sorted, joined by '|'. */
static void held_out(const struct tokenizer *tok, const struct example_set *s, char *out, size_t size) {
  size_t n = examples_val_count(s);
  char texts[32][128];
  ck_assert_uint_le(n, 32);
  for (size_t i = 0; i < n; i++) text_of(tok, &examples_val(s, i)->chosen, texts[i], sizeof texts[i]);
  qsort(texts, n, sizeof texts[0], by_text);
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    strncat(out, texts[i], size - strlen(out) - 1);
    strncat(out, "|", size - strlen(out) - 1);
  }
}

/* Lines FIRST .. LAST - 1 of twenty feedback examples. */
static void numbered(char *buf, size_t size, int first, int last) {
  size_t at = 0;
  buf[0] = '\0';
  for (int i = first; i < last; i++)
    at += (size_t)snprintf(buf + at, size - at, "{\"prompt\": \"p%02d\", \"completion\": \"c%d\", \"label\": %s}\n",
                           i, i * 7 % 13, i % 3 ? "true" : "false");
}

START_TEST(val_split_by_content) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp a, b;
  tmp_make(&a);
  tmp_make(&b);
  char text[4096];
  numbered(text, sizeof text, 0, 10);
  tmp_text(&a, "1.jsonl", text);
  tmp_text(&b, "2.jsonl", text);
  numbered(text, sizeof text, 10, 20);
  tmp_text(&a, "2.jsonl", text);
  tmp_text(&b, "1.jsonl", text);

  struct example_options opt = options(EXAMPLES_FEEDBACK, tok, 64);
  struct example_source src_a = source(tmp_glob(&a, "*.jsonl"), 0.2);
  struct example_source src_b = source(tmp_glob(&b, "*.jsonl"), 0.2);
  struct example_set *sa = open_ok(&src_a, &opt), *sb = open_ok(&src_b, &opt), *again = open_ok(&src_a, &opt);
  ck_assert_uint_eq(examples_val_count(sa), 4);
  ck_assert_uint_eq(examples_train_count(sa), 16);
  struct example_stats st;
  examples_stats(sa, &st);
  ck_assert_uint_eq(st.files, 2);
  ck_assert_uint_eq(st.kept, 20);
  ck_assert_uint_eq(st.val_kept, 4);
  char held_a[2048], held_b[2048], held_again[2048];
  held_out(tok, sa, held_a, sizeof held_a);
  held_out(tok, sb, held_b, sizeof held_b);
  held_out(tok, again, held_again, sizeof held_again);
  ck_assert_str_eq(held_a, held_b); /* the same examples, whatever file they are in */
  ck_assert_str_eq(held_a, held_again);
  /* training examples in file order: b's first file holds what a's second does */
  char first_a[128], first_b[128];
  ck_assert_str_ne(text_of(tok, &examples_train(sa, 0)->chosen, first_a, sizeof first_a),
                   text_of(tok, &examples_train(sb, 0)->chosen, first_b, sizeof first_b));
  examples_close(sa);
  examples_close(sb);
  examples_close(again);

  opt.split_seed = 8; /* another seed, another choice (these twenty make it differ) */
  sa = open_ok(&src_a, &opt);
  held_out(tok, sa, held_b, sizeof held_b);
  ck_assert_str_ne(held_a, held_b);
  examples_close(sa);

  src_a.val_split = 0.01; /* rounds to none, but one is held out */
  sa = open_ok(&src_a, &opt);
  ck_assert_uint_eq(examples_val_count(sa), 1);
  examples_close(sa);
  tmp_remove(&a);
  tmp_remove(&b);

  tmp_make(&a); /* one example: never held out */
  numbered(text, sizeof text, 0, 1);
  tmp_text(&a, "one.jsonl", text);
  src_a = source(tmp_glob(&a, "one.jsonl"), 0.5);
  sa = open_ok(&src_a, &opt);
  ck_assert_uint_eq(examples_val_count(sa), 0);
  ck_assert_uint_eq(examples_train_count(sa), 1);
  ck_assert_uint_eq(examples_train(sa, 0)->partner, 0); /* its own partner */
  examples_close(sa);
  tmp_remove(&a);
  tokenizer_free(tok);
}
END_TEST

/* The number in the prompt of E, "pNN". */
static int number_of(const struct example *e) {
  return (e->chosen.ids[3] - '0') * 10 + (e->chosen.ids[4] - '0');
}

START_TEST(partners) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  char text[4096];
  numbered(text, sizeof text, 0, 20);
  tmp_text(&t, "kto.jsonl", text);
  struct example_source src = source(tmp_glob(&t, "kto.jsonl"), 0.3);
  struct example_options opt = options(EXAMPLES_FEEDBACK, tok, 64);
  struct example_set *s = open_ok(&src, &opt);
  size_t n = examples_train_count(s);
  ck_assert_uint_eq(n, 14);
  for (size_t i = 0; i < n; i++) {
    const struct example *e = examples_train(s, i);
    ck_assert_uint_eq(e->partner, (i + 1) % n);
    if (i > 0) ck_assert_int_gt(number_of(e), number_of(examples_train(s, i - 1))); /* file order */
  }
  for (size_t i = 0; i < examples_val_count(s); i++) { /* the next training example after it in the file */
    const struct example *e = examples_val(s, i);
    ck_assert_uint_lt(e->partner, n);
    size_t want = 0;
    while (want < n && number_of(examples_train(s, want)) < number_of(e)) want++;
    ck_assert_uint_eq(e->partner, want % n);
  }
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

/* The next N indices of S. */
static void draw(struct example_set *s, size_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = examples_next(s);
}

START_TEST(order_and_resume) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  char text[4096];
  numbered(text, sizeof text, 0, 12);
  tmp_text(&t, "kto.jsonl", text);
  struct example_source src = source(tmp_glob(&t, "kto.jsonl"), 0);
  struct example_options opt = options(EXAMPLES_FEEDBACK, tok, 64);
  struct example_set *s = open_ok(&src, &opt);
  enum { N = 12 };
  size_t seq[3 * N];
  draw(s, seq, 3 * N);
  for (int epoch = 0; epoch < 3; epoch++) { /* each example once per epoch */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
      ck_assert_uint_lt(seq[epoch * N + i], N);
      seen[seq[epoch * N + i]]++;
    }
    for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
  }
  ck_assert_msg(memcmp(seq, seq + N, N * sizeof *seq) != 0, "two epochs in the same order");
  ck_assert_double_eq(examples_epochs(s), 3);
  examples_close(s);

  s = open_ok(&src, &opt); /* the same seed, the same order */
  size_t again[3 * N], other[N];
  draw(s, again, 3 * N);
  ck_assert(memcmp(seq, again, sizeof seq) == 0);
  examples_close(s);
  opt.seed = 2;
  s = open_ok(&src, &opt);
  draw(s, other, N);
  ck_assert_msg(memcmp(seq, other, sizeof other) != 0, "two seeds in the same order");
  examples_close(s);

  /* resuming from a saved position continues the same sequence */
  opt.seed = 1;
  s = open_ok(&src, &opt);
  draw(s, again, 17);
  ck_assert_double_eq_tol(examples_epochs(s), 17.0 / 12, 1e-12);
  json_t *state = examples_state(s);
  ck_assert_int_eq(json_integer_value(json_object_get(state, "epoch")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(state, "position")), 5);
  examples_close(s);
  s = open_ok(&src, &opt);
  char err[256];
  ck_assert_msg(examples_restore(s, state, err, sizeof err), "%s", err);
  json_t *back = examples_state(s);
  ck_assert(json_equal(state, back));
  json_decref(back);
  json_decref(state);
  draw(s, again, 3 * N - 17);
  ck_assert(memcmp(seq + 17, again, (3 * N - 17) * sizeof *seq) == 0);

  /* refused, and the position kept */
  static const char *const refused[] = {"{\"epoch\": 0, \"position\": 12}", "{\"epoch\": -1, \"position\": 0}",
                                        "{\"epoch\": 0, \"position\": -1}", "{\"epoch\": 0}",
                                        "{\"epoch\": \"0\", \"position\": 0}", "[0, 0]"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    json_t *bad = json_loads(refused[i], 0, NULL);
    ck_assert_ptr_nonnull(bad);
    err[0] = '\0';
    ck_assert_msg(!examples_restore(s, bad, err, sizeof err), "accepted %s", refused[i]);
    ck_assert_msg(err[0] != '\0', "no reason for %s", refused[i]);
    json_decref(bad);
  }
  ck_assert_double_eq(examples_epochs(s), 3);
  examples_close(s);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(nothing_to_read) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  struct example_options opt = options(EXAMPLES_PREFERENCES, tok, 32);
  struct example_source src = {.name = "prefs", .pattern = tmp_glob(&t, "*.jsonl")};
  open_fails(&src, &opt, "data set 'prefs': no file matches");
  src.pattern = t.dir; /* a folder is not a file */
  open_fails(&src, &opt, "data set 'prefs': no file matches");
  tmp_text(&t, "empty.jsonl", "\n  \n");
  src.pattern = tmp_glob(&t, "*.jsonl");
  open_fails(&src, &opt, "data set 'prefs' has no examples: 1 file read");
  src.val_split = 1;
  open_fails(&src, &opt, "val_split 1 is not in [0, 1)");
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

/* Several data sets: one list of examples, each set split on its own. */
START_TEST(several_sources) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tmp t;
  tmp_make(&t);
  char text[4096];
  numbered(text, sizeof text, 0, 10);
  tmp_text(&t, "a.jsonl", text);
  numbered(text, sizeof text, 10, 13);
  tmp_text(&t, "b.txt", text);
  char pattern_b[128], none[128];
  snprintf(pattern_b, sizeof pattern_b, "%s/b.txt", t.dir);
  snprintf(none, sizeof none, "%s/*.none", t.dir);
  struct example_source src[2] = {source(tmp_glob(&t, "a.jsonl"), 0.2), source(pattern_b, 0)};
  src[1].name = "second";
  struct example_options opt = options(EXAMPLES_FEEDBACK, tok, 64);
  char err[256];
  struct example_set *s = examples_open(src, 2, &opt, err, sizeof err);
  ck_assert_msg(s != NULL, "%s", err);
  struct example_stats st;
  examples_stats(s, &st);
  ck_assert_uint_eq(st.files, 2);
  ck_assert_uint_eq(st.kept, 13);
  ck_assert_uint_eq(st.val_kept, 2);
  ck_assert_uint_eq(examples_train_count(s), 11);
  ck_assert_int_eq(number_of(examples_train(s, 10)), 12);
  examples_close(s);
  src[1].pattern = none;
  ck_assert_ptr_null(examples_open(src, 2, &opt, err, sizeof err));
  ck_assert_msg(strstr(err, "data set 'second': no file matches") != NULL, "%s", err);
  tmp_remove(&t);
  tokenizer_free(tok);
}
END_TEST

Suite *examples_suite(void) {
  Suite *s = suite_create("examples");
  TCase *tc = tcase_create("examples");
  tcase_add_test(tc, preference_pairs);
  tcase_add_test(tc, conversational_preferences);
  tcase_add_test(tc, feedback_labels);
  tcase_add_test(tc, prompts_for_generation);
  tcase_add_loop_test(tc, bad_line, 0, (int)(sizeof bad_lines / sizeof bad_lines[0]));
  tcase_add_test(tc, too_long_dropped);
  tcase_add_test(tc, val_split_by_content);
  tcase_add_test(tc, partners);
  tcase_add_test(tc, order_and_resume);
  tcase_add_test(tc, nothing_to_read);
  tcase_add_test(tc, several_sources);
  suite_add_tcase(s, tc);
  return s;
}
