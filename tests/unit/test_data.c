/* The byte tokenizer, the chat templates and the data loaders: exact
 * tokens and loss masks, packing and the target shift, the held-out split,
 * the order and the mix drawn from the seed, resuming from a saved
 * position, and the errors a stage stops on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/data.h"
#include "runtime/tokenizer.h"
#include "tests/unit/suites.h"

enum { BOS = BYTES_BOS, EOS = BYTES_EOS, USR = BYTES_USER, AST = BYTES_ASSISTANT, PAD = BYTES_PAD };

/* A temporary folder and the files written into it, removed at the end. */
struct tmp {
  char dir[64];
  char files[64][96];
  int n;
};

static void tmp_make(struct tmp *t) {
  memset(t, 0, sizeof *t);
  snprintf(t->dir, sizeof t->dir, "/tmp/trainpipe-data-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

static const char *tmp_write(struct tmp *t, const char *name, const char *data, size_t len) {
  ck_assert_int_lt(t->n, 64);
  char path[sizeof t->files[0]];
  snprintf(path, sizeof path, "%s/%s", t->dir, name);
  memcpy(t->files[t->n++], path, sizeof path);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, len, f), len);
  fclose(f);
  return t->files[t->n - 1];
}

static const char *tmp_text(struct tmp *t, const char *name, const char *text) {
  return tmp_write(t, name, text, strlen(text));
}

static void tmp_remove(struct tmp *t) {
  for (int i = 0; i < t->n; i++) unlink(t->files[i]);
  rmdir(t->dir);
}

static char *tmp_glob(const struct tmp *t, const char *pattern, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", t->dir, pattern);
  return buf;
}

static struct tokenizer *bytes_tokenizer(void) {
  char err[200];
  struct tokenizer *tok = tokenizer_create("bytes", err, sizeof err);
  ck_assert_msg(tok != NULL, "%s", err);
  return tok;
}

static struct data_options options(const struct tokenizer *tok, int context, uint64_t seed) {
  return (struct data_options){.tok = tok, .template = TEMPLATE_TURNS, .context = context, .seed = seed,
                               .packing = true};
}

static struct data_source corpus(const char *name, const char *pattern) {
  return (struct data_source){.name = name, .kind = DATA_CORPUS, .pattern = pattern};
}

static struct data_loader *open_ok(const struct data_source *s, size_t n, const struct data_options *opt) {
  char err[512];
  struct data_loader *d = data_open(s, n, opt, err, sizeof err);
  ck_assert_msg(d != NULL, "%s", err);
  return d;
}

/* The error data_open gives, which must exist and contain WANT. */
static void open_fails(const struct data_source *s, size_t n, const struct data_options *opt, const char *want) {
  char err[512] = "";
  struct data_loader *d = data_open(s, n, opt, err, sizeof err);
  ck_assert_msg(d == NULL, "opened; expected an error with '%s'", want);
  ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

static void assert_ids(const int32_t *got, const int32_t *want, size_t n) {
  for (size_t i = 0; i < n; i++) ck_assert_msg(got[i] == want[i], "at %zu: %d, expected %d", i, got[i], want[i]);
}

/* The text of row R's inputs, padding left out. */
static void row_text(const struct tokenizer *tok, const struct data_batch *b, int r, char *buf, size_t size) {
  const int32_t *ids = b->tokens + (size_t)r * (size_t)b->T;
  size_t n = 0;
  while (n < (size_t)b->T && ids[n] != PAD) n++;
  tokenizer_decode(tok, ids, n, buf, size);
}

START_TEST(tokenizer_round_trip) {
  struct tokenizer *tok = bytes_tokenizer();
  ck_assert_str_eq(tokenizer_name(tok), "bytes");
  ck_assert_int_eq(tokenizer_vocab(tok), 261);
  ck_assert_int_eq(tokenizer_special(tok, SPECIAL_BOS), 256);
  ck_assert_int_eq(tokenizer_special(tok, SPECIAL_EOS), 257);
  ck_assert_int_eq(tokenizer_special(tok, SPECIAL_USER), 258);
  ck_assert_int_eq(tokenizer_special(tok, SPECIAL_ASSISTANT), 259);
  ck_assert_int_eq(tokenizer_special(tok, SPECIAL_PAD), 260);

  const char *text = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82 <|eos|>"; /* é, 世界, an emoji, a fake special */
  struct tokens t = {0};
  tokenizer_encode(tok, text, strlen(text), 1, &t);
  ck_assert_uint_eq(t.n, strlen(text)); /* one token per byte; the literal "<|eos|>" stays bytes */
  for (size_t i = 0; i < t.n; i++) {
    ck_assert_int_eq(t.ids[i], (unsigned char)text[i]);
    ck_assert_int_eq(t.mask[i], 1);
  }
  char out[128];
  ck_assert_uint_eq(tokenizer_decode(tok, t.ids, t.n, out, sizeof out), strlen(text));
  ck_assert_str_eq(out, text);

  int32_t ids[] = {BOS, USR, 'a', AST, 0xc3, 0xa9, EOS, PAD, 300};
  const char *want = "<|bos|><|user|>a<|assistant|>\xc3\xa9<|eos|><|pad|><|id:300|>";
  ck_assert_uint_eq(tokenizer_decode(tok, ids, 9, out, sizeof out), strlen(want));
  ck_assert_str_eq(out, want);
  char small[10];
  ck_assert_uint_eq(tokenizer_decode(tok, ids, 9, small, sizeof small), strlen(want)); /* the length it needs */
  ck_assert_str_eq(small, "<|bos|><|");

  for (int s = 0; s < SPECIAL_COUNT; s++) {
    int32_t id = tokenizer_special(tok, (enum special_token)s);
    ck_assert_int_eq(tokenizer_lookup(tok, special_token_name((enum special_token)s)), id);
    ck_assert_str_eq(tokenizer_token_name(tok, id), special_token_name((enum special_token)s));
  }
  ck_assert_int_eq(tokenizer_lookup(tok, "<|system|>"), -1);
  ck_assert_ptr_null(tokenizer_token_name(tok, 'a'));
  tokens_free(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(names_refused) {
  char err[200];
  ck_assert_ptr_null(tokenizer_create("bpe", err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "'bpe' is not available yet"));
  ck_assert_ptr_null(tokenizer_create("sentencepiece", err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "unknown tokenizer 'sentencepiece'"));
  enum chat_template t;
  ck_assert(template_find("turns", &t, err, sizeof err) && t == TEMPLATE_TURNS);
  ck_assert(template_find("plain", &t, err, sizeof err) && t == TEMPLATE_PLAIN);
  ck_assert_str_eq(template_name(TEMPLATE_TURNS), "turns");
  ck_assert(!template_find("chatml", &t, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "'chatml' is not available yet"));
  ck_assert(!template_find("alpaca", &t, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "unknown template 'alpaca'"));
  enum demo_format f;
  ck_assert(demo_format_find("messages", &f, err, sizeof err) && f == FORMAT_MESSAGES);
  ck_assert(!demo_format_find("sharegpt", &f, err, sizeof err));
}
END_TEST

START_TEST(utf8) {
  static const struct {
    const char *text;
    size_t bad;
  } cases[] = {
      {"plain", 5},           {"h\xc3\xa9", 3},         {"\xf0\x9f\x99\x82", 4}, {"\xc0\xaf", 0}, /* overlong '/' */
      {"ab\xed\xa0\x80", 2},  /* a surrogate */           {"a\xe2\x82", 1},        /* cut short */
      {"\xf4\x90\x80\x80", 0}, /* past U+10FFFF */        {"ok\xff", 2},           {"\xe2\x28\xa1", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(utf8_check(cases[i].text, strlen(cases[i].text)) == cases[i].bad, "case %zu", i);
  ck_assert_uint_eq(utf8_chars("h\xc3\xa9llo \xf0\x9f\x99\x82", 11), 7);
}
END_TEST

START_TEST(template_pair_tokens) {
  struct tokenizer *tok = bytes_tokenizer();
  struct tokens t = {0};
  template_pair(tok, TEMPLATE_TURNS, "Hi", 2, "Yo", 2, &t);
  int32_t want[] = {BOS, USR, 'H', 'i', AST, 'Y', 'o', EOS};
  uint8_t mask[] = {0, 0, 0, 0, 0, 1, 1, 1};
  ck_assert_uint_eq(t.n, 8);
  assert_ids(t.ids, want, 8);
  ck_assert_mem_eq(t.mask, mask, 8);
  tokens_free(&t);

  template_pair(tok, TEMPLATE_PLAIN, "Hi", 2, "Yo", 2, &t);
  int32_t plain[] = {'H', 'i', 'Y', 'o', EOS};
  uint8_t plain_mask[] = {0, 0, 1, 1, 1};
  ck_assert_uint_eq(t.n, 5);
  assert_ids(t.ids, plain, 5);
  ck_assert_mem_eq(t.mask, plain_mask, 5);
  tokens_free(&t);
  tokenizer_free(tok);
}
END_TEST

START_TEST(template_messages) {
  struct tokenizer *tok = bytes_tokenizer();
  char err[200];
  struct tokens t = {0};
  struct chat_message m[] = {{ROLE_SYSTEM, "S", 1}, {ROLE_USER, "U", 1}, {ROLE_ASSISTANT, "A", 1},
                             {ROLE_USER, "V", 1},   {ROLE_ASSISTANT, "B", 1}};
  ck_assert(template_render(tok, TEMPLATE_TURNS, m, 5, false, &t, err, sizeof err));
  int32_t want[] = {BOS, USR, 'S', '\n', '\n', 'U', AST, 'A', EOS, USR, 'V', AST, 'B', EOS};
  uint8_t mask[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1};
  ck_assert_uint_eq(t.n, 14);
  assert_ids(t.ids, want, 14);
  ck_assert_mem_eq(t.mask, mask, 14);
  tokens_free(&t);

  /* a system message with no user message after it is a user turn alone */
  struct chat_message lone[] = {{ROLE_SYSTEM, "S", 1}, {ROLE_ASSISTANT, "A", 1}};
  ck_assert(template_render(tok, TEMPLATE_TURNS, lone, 2, false, &t, err, sizeof err));
  int32_t want_lone[] = {BOS, USR, 'S', AST, 'A', EOS};
  ck_assert_uint_eq(t.n, 6);
  assert_ids(t.ids, want_lone, 6);
  tokens_free(&t);

  /* for sampling: the prompt, then what opens the answer */
  ck_assert(template_render(tok, TEMPLATE_TURNS, m + 1, 1, true, &t, err, sizeof err));
  int32_t want_gen[] = {BOS, USR, 'U', AST};
  ck_assert_uint_eq(t.n, 4);
  assert_ids(t.ids, want_gen, 4);
  tokens_free(&t);

  ck_assert(template_render(tok, TEMPLATE_PLAIN, m, 5, false, &t, err, sizeof err));
  int32_t want_plain[] = {'S', 'U', 'A', EOS, 'V', 'B', EOS};
  uint8_t mask_plain[] = {0, 0, 1, 1, 0, 1, 1};
  ck_assert_uint_eq(t.n, 7);
  assert_ids(t.ids, want_plain, 7);
  ck_assert_mem_eq(t.mask, mask_plain, 7);
  tokens_free(&t);

  struct chat_message late[] = {{ROLE_USER, "U", 1}, {ROLE_SYSTEM, "S", 1}, {ROLE_ASSISTANT, "A", 1}};
  tokens_push(&t, 'x', 0);
  ck_assert(!template_render(tok, TEMPLATE_TURNS, late, 3, false, &t, err, sizeof err));
  ck_assert_str_eq(err, "messages[1]: a system message may only come first");
  ck_assert_uint_eq(t.n, 1); /* left as it was */
  tokens_free(&t);
  tokenizer_free(tok);
}
END_TEST

/* Two documents, context 4: <|eos|> a b c <|eos|> d e <|eos|> in windows of
 * 5 tokens sharing their edges, the last one padded. */
START_TEST(corpus_packing) {
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "a.txt", "abc");
  tmp_text(&t, "b.txt", "de");
  tmp_text(&t, "c.md", "not matched");
  char pattern[128];
  struct data_source s = corpus("web", tmp_glob(&t, "*.txt", pattern, sizeof pattern));
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 4, 1);
  struct data_loader *d = open_ok(&s, 1, &opt);
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.files, 2);
  ck_assert_uint_eq(st.kept, 2);
  ck_assert_uint_eq(st.train_sequences, 2);
  ck_assert_uint_eq(st.train_counted, 7);
  ck_assert_uint_eq(st.val_sequences, 0);

  struct data_batch b;
  data_batch_init(&b, 2, 4);
  data_next(d, &b);
  ck_assert_int_eq(b.rows, 2);
  ck_assert_uint_eq(b.counted, 7);
  int first = b.tokens[1] == 'a' ? 0 : 1, second = 1 - first;
  int32_t tok0[] = {EOS, 'a', 'b', 'c'}, tgt0[] = {'a', 'b', 'c', EOS};
  int32_t tok1[] = {EOS, 'd', 'e', PAD}, tgt1[] = {'d', 'e', EOS, -1};
  float w1[] = {1, 1, 1, 0};
  assert_ids(b.tokens + first * 4, tok0, 4);
  assert_ids(b.targets + first * 4, tgt0, 4);
  assert_ids(b.tokens + second * 4, tok1, 4);
  assert_ids(b.targets + second * 4, tgt1, 4);
  for (int i = 0; i < 4; i++) {
    ck_assert(b.weights[first * 4 + i] == 1);
    ck_assert(b.weights[second * 4 + i] == w1[i]);
  }
  ck_assert_int_eq(b.source[0], 0);
  ck_assert(data_epochs(d) == 1.0);
  data_close(d);

  /* without packing, each document is a sequence of its own */
  opt.packing = false;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.train_sequences, 2);
  data_next(d, &b);
  first = b.tokens[1] == 'a' ? 0 : 1, second = 1 - first;
  int32_t own1[] = {EOS, 'd', 'e', PAD};
  assert_ids(b.tokens + first * 4, tok0, 4);
  assert_ids(b.tokens + second * 4, own1, 4);
  data_close(d);

  /* a document longer than the context: windows sharing their edge token */
  opt.packing = true;
  opt.context = 3;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.train_sequences, 3); /* 8 tokens: [0,4) [3,7) [6,8) */
  ck_assert_uint_eq(st.train_tokens, 7);
  ck_assert_uint_eq(st.train_counted, 7);
  data_close(d);

  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

/* N one-line documents "doc-NN", each its own sequence. */
static void write_docs(struct tmp *t, int n) {
  for (int i = 0; i < n; i++) {
    char name[32], text[32];
    snprintf(name, sizeof name, "d%02d.txt", i);
    snprintf(text, sizeof text, "doc-%02d", i);
    tmp_text(t, name, text);
  }
}

/* The document index of each row of B ("doc-NN" in its text). */
static int row_doc(const struct tokenizer *tok, const struct data_batch *b, int r) {
  char text[256];
  row_text(tok, b, r, text, sizeof text);
  const char *at = strstr(text, "doc-");
  ck_assert_ptr_nonnull(at);
  return atoi(at + 4);
}

/* Which of the 20 documents D holds out. */
static void held_out(struct data_loader *d, const struct tokenizer *tok, bool held[20]) {
  memset(held, 0, 20 * sizeof *held);
  struct data_batch b;
  data_batch_init(&b, 3, 16);
  for (size_t first = 0; first < data_val_sequences(d); first += 3) {
    int rows = data_val_batch(d, first, &b);
    for (int r = 0; r < rows; r++) held[row_doc(tok, &b, r)] = true;
    for (int r = rows; r < 3; r++) ck_assert_int_eq(b.source[r], -1);
  }
  data_batch_free(&b);
}

START_TEST(val_split) {
  struct tmp t;
  tmp_make(&t);
  write_docs(&t, 20);
  char pattern[128];
  struct data_source s = corpus("web", tmp_glob(&t, "*.txt", pattern, sizeof pattern));
  s.val_split = 0.25;
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 16, 7);
  opt.packing = false;
  struct data_loader *d = open_ok(&s, 1, &opt);
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.kept, 20);
  ck_assert_uint_eq(st.val_kept, 5);
  ck_assert_uint_eq(st.val_sequences, 5);
  ck_assert_uint_eq(st.train_sequences, 15);
  bool held[20];
  held_out(d, tok, held);

  /* one epoch of training visits each training document once, and no held-out one */
  int seen[20] = {0};
  struct data_batch b;
  data_batch_init(&b, 5, 16);
  for (int k = 0; k < 3; k++) {
    data_next(d, &b);
    for (int r = 0; r < 5; r++) seen[row_doc(tok, &b, r)]++;
  }
  for (int i = 0; i < 20; i++) ck_assert_int_eq(seen[i], held[i] ? 0 : 1);
  data_close(d);

  /* the same split again, and from any shuffle seed; another split seed, another split */
  opt.seed = 99;
  d = open_ok(&s, 1, &opt);
  bool again[20];
  held_out(d, tok, again);
  ck_assert_mem_eq(held, again, sizeof held);
  data_close(d);
  opt.split_seed = 1;
  d = open_ok(&s, 1, &opt);
  held_out(d, tok, again);
  ck_assert(memcmp(held, again, sizeof held) != 0);
  data_close(d);

  /* two documents and 1%: one held out; one document: none */
  char two[128];
  s.pattern = tmp_glob(&t, "d0[01].txt", two, sizeof two);
  s.val_split = 0.01;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.val_kept, 1);
  ck_assert_uint_eq(st.train_sequences, 1);
  data_close(d);
  s.pattern = tmp_glob(&t, "d00.txt", two, sizeof two);
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.val_kept, 0);
  ck_assert_uint_eq(data_val_sequences(d), 0);
  data_close(d);

  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

/* The documents of the next N batches of 4 rows. */
static void draw_docs(struct data_loader *d, const struct tokenizer *tok, int n, int *docs) {
  struct data_batch b;
  data_batch_init(&b, 4, 16);
  for (int k = 0; k < n; k++) {
    data_next(d, &b);
    for (int r = 0; r < 4; r++) docs[k * 4 + r] = row_doc(tok, &b, r);
  }
  data_batch_free(&b);
}

START_TEST(order_from_seed) {
  struct tmp t;
  tmp_make(&t);
  write_docs(&t, 20);
  char pattern[128];
  struct data_source s = corpus("web", tmp_glob(&t, "*.txt", pattern, sizeof pattern));
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 16, 5);
  opt.packing = false;
  int a[40], b[40], c[40];
  struct data_loader *d = open_ok(&s, 1, &opt);
  draw_docs(d, tok, 10, a); /* two epochs */
  ck_assert(data_epochs(d) == 2.0);
  data_close(d);
  d = open_ok(&s, 1, &opt);
  draw_docs(d, tok, 10, b);
  data_close(d);
  ck_assert_mem_eq(a, b, sizeof a);
  opt.seed = 6;
  d = open_ok(&s, 1, &opt);
  draw_docs(d, tok, 10, c);
  data_close(d);
  ck_assert(memcmp(a, c, sizeof a) != 0);

  /* each epoch is a permutation of all documents, and the next one another */
  for (int e = 0; e < 2; e++) {
    int seen[20] = {0};
    for (int i = 0; i < 20; i++) seen[a[e * 20 + i]]++;
    for (int i = 0; i < 20; i++) ck_assert_int_eq(seen[i], 1);
  }
  ck_assert(memcmp(a, a + 20, 20 * sizeof *a) != 0);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

/* Two corpora, one of 'a' documents and one of 'b' documents. */
static void write_two(struct tmp *t) {
  for (int i = 0; i < 6; i++) {
    char name[32];
    snprintf(name, sizeof name, "a%d.txt", i);
    tmp_text(t, name, i % 2 ? "aaaa aaa" : "aa aaaaa");
    snprintf(name, sizeof name, "b%d.txt", i);
    tmp_text(t, name, i % 2 ? "bbbbbbbbbbbbbbbb" : "bbbb bbbbbbbbb");
  }
}

START_TEST(mix_shares) {
  struct tmp t;
  tmp_make(&t);
  write_two(&t);
  char pa[128], pb[128];
  struct data_source s[2] = {corpus("a", tmp_glob(&t, "a*.txt", pa, sizeof pa)),
                             corpus("b", tmp_glob(&t, "b*.txt", pb, sizeof pb))};
  s[0].share = 0.7;
  s[1].share = 0.3;
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 8, 3);
  struct data_loader *d = open_ok(s, 2, &opt);
  ck_assert_uint_eq(data_source_count(d), 2);
  struct data_batch b;
  data_batch_init(&b, 8, 8);
  int from[2] = {0, 0};
  for (int k = 0; k < 2500; k++) {
    data_next(d, &b);
    for (int r = 0; r < 8; r++) {
      int src = b.source[r];
      from[src]++;
      /* a row holds the source's own text */
      for (int i = 0; i < 8; i++) {
        int32_t x = b.tokens[r * 8 + i];
        ck_assert(x == EOS || x == ' ' || x == PAD || x == (src ? 'b' : 'a'));
      }
    }
  }
  double share = (double)from[0] / 20000;
  ck_assert_msg(share > 0.69 && share < 0.71, "share of a: %f", share);
  data_close(d);

  /* a share of 0 is never drawn */
  s[0].share = 1;
  s[1].share = 0;
  d = open_ok(s, 2, &opt);
  for (int k = 0; k < 50; k++) {
    data_next(d, &b);
    for (int r = 0; r < 8; r++) ck_assert_int_eq(b.source[r], 0);
  }
  data_close(d);
  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

static void same_batches(struct data_loader *x, struct data_loader *y, int n) {
  struct data_batch a, b;
  data_batch_init(&a, 3, 8);
  data_batch_init(&b, 3, 8);
  for (int k = 0; k < n; k++) {
    data_next(x, &a);
    data_next(y, &b);
    ck_assert_mem_eq(a.tokens, b.tokens, 24 * sizeof *a.tokens);
    ck_assert_mem_eq(a.targets, b.targets, 24 * sizeof *a.targets);
    ck_assert_mem_eq(a.source, b.source, 3 * sizeof *a.source);
    ck_assert_uint_eq(a.counted, b.counted);
  }
  data_batch_free(&a);
  data_batch_free(&b);
}

START_TEST(resume) {
  struct tmp t;
  tmp_make(&t);
  write_two(&t);
  char pa[128], pb[128];
  struct data_source s[2] = {corpus("a", tmp_glob(&t, "a*.txt", pa, sizeof pa)),
                             corpus("b", tmp_glob(&t, "b*.txt", pb, sizeof pb))};
  s[0].share = 0.6;
  s[1].share = 0.4;
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 8, 11);
  struct data_loader *run = open_ok(s, 2, &opt);
  struct data_batch b;
  data_batch_init(&b, 3, 8);
  for (int k = 0; k < 13; k++) data_next(run, &b); /* several epochs of each */
  data_batch_free(&b);

  ck_assert_uint_eq(data_state_size(run), 5);
  int64_t state[5];
  data_state_get(run, state);
  ck_assert_int_eq(state[0], 39);
  ck_assert_int_gt(state[1] + state[3], 0);
  json_t *saved = data_state_to_json(run);
  char *text = json_dumps(saved, JSON_COMPACT);
  json_decref(saved);

  /* from the integers */
  struct data_loader *resumed = open_ok(s, 2, &opt);
  char err[300];
  ck_assert_msg(data_state_set(resumed, state, 5, err, sizeof err), "%s", err);
  struct data_loader *copy = open_ok(s, 2, &opt);
  json_t *parsed = json_loads(text, 0, NULL);
  ck_assert_msg(data_state_from_json(copy, parsed, err, sizeof err), "%s", err);
  json_decref(parsed);
  same_batches(run, resumed, 20);
  data_close(resumed);
  /* from the JSON: the same continuation as from the integers */
  struct data_loader *again = open_ok(s, 2, &opt);
  ck_assert(data_state_set(again, state, 5, err, sizeof err));
  same_batches(copy, again, 20);
  free(text);

  /* states that do not fit are refused, and change nothing */
  int64_t bad[5] = {0, 0, 99, 0, 0};
  ck_assert(!data_state_set(again, bad, 5, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "data set 'a': position 99"));
  ck_assert(!data_state_set(again, bad, 3, err, sizeof err));
  parsed = json_loads("{\"draws\": 0, \"sources\": [{\"name\": \"web\", \"epoch\": 0, \"position\": 0},"
                      " {\"epoch\": 0, \"position\": 0}]}", 0, NULL);
  ck_assert(!data_state_from_json(again, parsed, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "for data set 'web'"));
  json_decref(parsed);
  data_close(again);
  data_close(copy);
  data_close(run);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

START_TEST(corpus_errors) {
  struct tmp t;
  tmp_make(&t);
  tmp_text(&t, "good.txt", "fine text");
  const char *bad = tmp_write(&t, "latin1.txt", "caf\xe9 au lait", 12);
  tmp_text(&t, "short.txt", "hi");
  tmp_text(&t, "empty.txt", "");
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 8, 0);
  char pattern[128], want[256];

  struct data_source s = corpus("web", tmp_glob(&t, "*.txt", pattern, sizeof pattern));
  snprintf(want, sizeof want, "%s: not UTF-8 at byte 3", bad);
  open_fails(&s, 1, &opt, want);

  s.pattern = tmp_glob(&t, "*.csv", pattern, sizeof pattern);
  open_fails(&s, 1, &opt, "data set 'web': no file matches");
  s.pattern = t.dir; /* a folder is not a file */
  open_fails(&s, 1, &opt, "no file matches");

  s.min_chars = 5;
  s.pattern = tmp_glob(&t, "[es]*.txt", pattern, sizeof pattern);
  open_fails(&s, 1, &opt, "data set 'web' has no documents: 2 files read, 2 documents empty or under min_chars = 5");
  s.pattern = tmp_glob(&t, "[gs]*.txt", pattern, sizeof pattern);
  struct data_loader *d = open_ok(&s, 1, &opt); /* "hi" is dropped, "fine text" kept */
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.kept, 1);
  ck_assert_uint_eq(st.dropped_short, 1);
  data_close(d);
  s.min_chars = 0;
  s.max_length = 4;
  s.pattern = tmp_glob(&t, "g*.txt", pattern, sizeof pattern);
  open_fails(&s, 1, &opt, "data set 'web' has no documents: 1 file read, 1 over max_length = 4 tokens");

  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

static struct data_source demos(const char *pattern) {
  return (struct data_source){.name = "chat", .kind = DATA_DEMONSTRATIONS, .pattern = pattern};
}

START_TEST(demonstrations_both_formats) {
  struct tmp t;
  tmp_make(&t);
  const char *path = tmp_text(&t, "chat.jsonl",
                              "{\"prompt\": \"Hi\", \"response\": \"Yo\"}\n"
                              "\n"
                              "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", "
                              "\"content\": \"U\"}, {\"role\": \"assistant\", \"content\": \"A\"}]}\r\n");
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 12, 0);
  opt.packing = false;
  struct data_source s = demos(path);
  struct data_loader *d = open_ok(&s, 1, &opt);
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.kept, 2);
  ck_assert_uint_eq(st.train_sequences, 2);
  ck_assert_uint_eq(st.train_counted, 3 + 2);
  struct data_batch b;
  data_batch_init(&b, 2, 12);
  data_next(d, &b);
  ck_assert_uint_eq(b.counted, 5);
  int pair = b.tokens[2] == 'H' ? 0 : 1, chat = 1 - pair;
  /* <|bos|><|user|>Hi<|assistant|>Yo<|eos|>: the loss on Y, o and <|eos|> */
  int32_t tok0[] = {BOS, USR, 'H', 'i', AST, 'Y', 'o', PAD, PAD, PAD, PAD, PAD};
  int32_t tgt0[] = {-1, -1, -1, -1, 'Y', 'o', EOS, -1, -1, -1, -1, -1};
  assert_ids(b.tokens + pair * 12, tok0, 12);
  assert_ids(b.targets + pair * 12, tgt0, 12);
  for (int i = 0; i < 12; i++) ck_assert(b.weights[pair * 12 + i] == (tgt0[i] >= 0));
  /* <|bos|><|user|>S\n\nU<|assistant|>A<|eos|> */
  int32_t tok1[] = {BOS, USR, 'S', '\n', '\n', 'U', AST, 'A', PAD, PAD, PAD, PAD};
  int32_t tgt1[] = {-1, -1, -1, -1, -1, -1, 'A', EOS, -1, -1, -1, -1};
  assert_ids(b.tokens + chat * 12, tok1, 12);
  assert_ids(b.targets + chat * 12, tgt1, 12);
  data_close(d);

  /* loss = all: every token after the first */
  opt.loss_all = true;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.train_counted, 7 + 8);
  data_close(d);
  opt.loss_all = false;

  /* a forced format: the other layout is an error, with file and line */
  char want[256];
  s.format = FORMAT_MESSAGES;
  snprintf(want, sizeof want, "%s:1: no 'messages' field", path);
  open_fails(&s, 1, &opt, want);
  s.format = FORMAT_PROMPT_RESPONSE;
  snprintf(want, sizeof want, "%s:3: no 'prompt' field", path);
  open_fails(&s, 1, &opt, want);
  s.format = FORMAT_AUTO;

  /* a template that is not available never gets this far; plain lays out the same data */
  opt.template = TEMPLATE_PLAIN;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.train_counted, 3 + 2);
  data_close(d);

  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

START_TEST(demonstrations_errors) {
  struct tmp t;
  tmp_make(&t);
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 32, 0);
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n", ":2: no 'response' field"},
      {"{\"prompt\": \"a\", \"response\": 3}\n", ":1: 'response' is not a string"},
      {"{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\",\n", ":2: not JSON: "},
      {"[1, 2]\n", ":1: not a JSON object"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n", ":1: no assistant message"},
      {"{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}\n", ":1: messages[0]: unknown role 'tool'"},
      {"{\"messages\": [{\"role\": \"user\"}]}\n", ":1: messages[0]: no 'content' string"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"s\"}, "
       "{\"role\": \"assistant\", \"content\": \"b\"}]}\n",
       ":1: messages[1]: a system message may only come first"},
      {"{\"messages\": []}\n", ":1: 'messages' is not a list of messages"},
      {"\n  \n", "data set 'chat' has no examples: 1 file read"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%zu.jsonl", i);
    struct data_source s = demos(tmp_text(&t, name, cases[i].text));
    open_fails(&s, 1, &opt, cases[i].want);
  }
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

START_TEST(demonstrations_truncated) {
  struct tmp t;
  tmp_make(&t);
  /* 4 + 2 + 2 = 8 tokens; 4 + 6 + 2 = 12; 4 + 2 + 10 = 16 */
  const char *path = tmp_text(&t, "chat.jsonl",
                              "{\"prompt\": \"ab\", \"response\": \"cd\"}\n"
                              "{\"prompt\": \"abcdef\", \"response\": \"gh\"}\n"
                              "{\"prompt\": \"ab\", \"response\": \"cdefghijkl\"}\n");
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 7, 0); /* sequences of 8 */
  opt.packing = false;
  struct data_source s = demos(path);
  struct data_loader *d = open_ok(&s, 1, &opt);
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.kept, 3);
  ck_assert_uint_eq(st.truncated, 2);
  ck_assert_uint_eq(st.truncated_blank, 1); /* the long prompt leaves none of its response */
  ck_assert_uint_eq(st.train_counted, 3 + 0 + 3);
  /* the start is kept: <|bos|><|user|>ab<|assistant|>cde */
  struct data_batch b;
  data_batch_init(&b, 3, 7);
  data_next(d, &b);
  bool found = false;
  for (int r = 0; r < 3; r++) {
    char text[128];
    row_text(tok, &b, r, text, sizeof text);
    if (strcmp(text, "<|bos|><|user|>ab<|assistant|>cd") == 0 && b.targets[r * 7 + 6] == 'e') found = true;
  }
  ck_assert(found);
  data_close(d);

  /* max_length drops instead */
  s.max_length = 12;
  d = open_ok(&s, 1, &opt);
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.kept, 2);
  ck_assert_uint_eq(st.dropped_long, 1);
  ck_assert_uint_eq(st.truncated, 1);
  data_close(d);
  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

/* Packed demonstrations: whole examples while they fit, the loss of each on
 * its own response, none on the next one's opening. */
START_TEST(demonstrations_packed) {
  struct tmp t;
  tmp_make(&t);
  const char *path = tmp_text(&t, "chat.jsonl",
                              "{\"prompt\": \"ab\", \"response\": \"cd\"}\n"
                              "{\"prompt\": \"ef\", \"response\": \"gh\"}\n"
                              "{\"prompt\": \"ij\", \"response\": \"kl\"}\n");
  struct tokenizer *tok = bytes_tokenizer();
  struct data_options opt = options(tok, 15, 0); /* 16 tokens: two examples of 8 */
  struct data_source s = demos(path);
  struct data_loader *d = open_ok(&s, 1, &opt);
  struct data_stats st;
  data_source_stats(d, 0, &st);
  ck_assert_uint_eq(st.train_sequences, 2);
  ck_assert_uint_eq(st.train_counted, 9);
  struct data_batch b;
  data_batch_init(&b, 2, 15);
  data_next(d, &b);
  ck_assert_uint_eq(b.counted, 9);
  int two = b.tokens[2] == 'a' ? 0 : 1;
  int32_t tok0[] = {BOS, USR, 'a', 'b', AST, 'c', 'd', EOS, BOS, USR, 'e', 'f', AST, 'g', 'h'};
  int32_t tgt0[] = {-1, -1, -1, -1, 'c', 'd', EOS, -1, -1, -1, -1, -1, 'g', 'h', EOS};
  assert_ids(b.tokens + two * 15, tok0, 15);
  assert_ids(b.targets + two * 15, tgt0, 15);
  char text[128];
  row_text(tok, &b, 1 - two, text, sizeof text);
  ck_assert_str_eq(text, "<|bos|><|user|>ij<|assistant|>kl");
  data_close(d);
  data_batch_free(&b);
  tokenizer_free(tok);
  tmp_remove(&t);
}
END_TEST

Suite *data_suite(void) {
  Suite *s = suite_create("data");
  TCase *tc = tcase_create("data");
  tcase_add_test(tc, tokenizer_round_trip);
  tcase_add_test(tc, names_refused);
  tcase_add_test(tc, utf8);
  tcase_add_test(tc, template_pair_tokens);
  tcase_add_test(tc, template_messages);
  tcase_add_test(tc, corpus_packing);
  tcase_add_test(tc, val_split);
  tcase_add_test(tc, order_from_seed);
  tcase_add_test(tc, mix_shares);
  tcase_add_test(tc, resume);
  tcase_add_test(tc, corpus_errors);
  tcase_add_test(tc, demonstrations_both_formats);
  tcase_add_test(tc, demonstrations_errors);
  tcase_add_test(tc, demonstrations_truncated);
  tcase_add_test(tc, demonstrations_packed);
  suite_add_tcase(s, tc);
  return s;
}
