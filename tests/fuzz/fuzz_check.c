/* Robustness test for `trainpipe check`: no input may crash it, hang it,
 * leak memory or trip a sanitizer, and every run must end with exit status
 * 0, 1 or 2.
 *
 *   fuzz_check [options] SEED...
 *
 * For each seed file this runs the unmutated seed, the empty file and COUNT
 * mutants of the seed through cli_main(), the function main() calls, in
 * process. A mutant stacks one to four mutations: truncation, byte flips,
 * deletion or duplication of a range, a chunk of a seed spliced in, a token
 * of the language inserted, UTF-8 sequences (valid and not), line moves,
 * and generated extremes (deep nesting, long chains, huge tokens). Mutants
 * are deterministic: mutant K of a seed depends only on --seed, K and the
 * seed files given (their content and order, for splices), so a failure
 * can be reproduced with --mutant K. The format cycles through text, gcc
 * and json; --werror and --color=always are added to some runs, and some
 * check a second file too. Last come the generated inputs: a fixed table of
 * inputs that random mutation reaches only by luck (a chain of a million
 * operators, a line carrying twenty thousand diagnostics), each checked in
 * the three formats.
 *
 * Every seed and mutant that parses without errors also goes through
 * `trainpipe fmt` in process: its canonical text must parse to the same tree (the same
 * values, spellings and comments) and be its own canonical text. An input
 * that breaks this is reported with the reason, as a crash would be.
 *
 * Each mutant is written into a temporary directory under the seed's base
 * name, next to copies of the seeds from the same source directory,
 * symbolic links to everything else there (so "imports/x.pipe" resolves as
 * it does in place) and an "x.pipe" that imports the mutant back, so import
 * cycles happen; "std/" imports go to the standard library.
 *
 * The inputs of a seed run in a forked worker, which tells this process
 * over a pipe which input it starts and what each returned. A worker that
 * dies (a signal, a sanitizer report, SIGALRM after --timeout seconds on one
 * input) is blamed on the input it had started; one that fails only at exit
 * (LeakSanitizer) is narrowed down by bisection. The offending input is
 * saved under --save DIR and named in the report, and the run goes on with
 * the next input.
 *
 * Output is TAP: one test per seed, then one for the generated inputs, each
 * preceded by a comment with the exit statuses seen and the slowest input. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "grammar/parse.h"
#include "interp/cli.h"
#include "interp/fmt.h"

#define MAX_MUTANT ((size_t)8 << 20) /* mutations stop growing a mutant here */
#define DESC_SIZE 320
#define RC_STARTED INT32_MIN

/* What a worker reports instead of an exit status when the input broke a
 * property of `trainpipe fmt`. */
enum fmt_failure {
  FMT_HOLDS = 0,
  FMT_UNPARSABLE = 100, /* the canonical text does not parse */
  FMT_CHANGES_TREE,     /* it parses to another tree */
  FMT_NOT_IDEMPOTENT,   /* formatting it again changes it */
};

/* --- options and seeds ------------------------------------------------------ */

struct seed {
  const char *path; /* as given */
  const char *base; /* its last component */
  unsigned char *text;
  size_t len;
  size_t dir;     /* its temporary directory */
  bool generated; /* not a file: the table of generated inputs below */
};

struct fuzz {
  struct seed *seeds;
  size_t n_seeds; /* the files, then the generated inputs unless --no-generated */
  size_t n_files;
  size_t n_dirs;
  char root[PATH_MAX]; /* the temporary directory */
  const char *stdlib_dir;
  const char *save_dir;
  uint64_t seed;
  unsigned long count;
  unsigned timeout;
  unsigned max_failures; /* per seed */
  unsigned stop_after;   /* failures in all, after which the remaining seeds are skipped */
  long only;            /* --mutant K, or -1 */
  bool no_generated;    /* --no-generated */
  const char *dump_dir; /* --dump DIR: write the inputs, run nothing */
  const char *format;   /* --format: one format instead of all three in turn */
  bool no_fmt;          /* --no-fmt: skip the properties of fmt */
};

/* --- a growable byte buffer ---------------------------------------------- */

struct buf {
  unsigned char *p;
  size_t len, cap;
};

static void *xrealloc_or_die(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "fuzz_check: out of memory\n");
    exit(99);
  }
  return q;
}

static void buf_reserve(struct buf *b, size_t need) {
  if (need <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  b->p = xrealloc_or_die(b->p, cap);
  b->cap = cap;
}

static void buf_set(struct buf *b, const void *data, size_t len) {
  buf_reserve(b, len);
  if (len) memcpy(b->p, data, len);
  b->len = len;
}

/* Inserts at pos; refuses (returns false) past MAX_MUTANT. */
static bool buf_insert(struct buf *b, size_t pos, const void *data, size_t len) {
  if (len == 0) return true;
  if (b->len + len > MAX_MUTANT) return false;
  if (pos > b->len) pos = b->len;
  buf_reserve(b, b->len + len);
  memmove(b->p + pos + len, b->p + pos, b->len - pos);
  memcpy(b->p + pos, data, len);
  b->len += len;
  return true;
}

static void buf_erase(struct buf *b, size_t pos, size_t len) {
  if (pos >= b->len) return;
  if (len > b->len - pos) len = b->len - pos;
  memmove(b->p + pos, b->p + pos + len, b->len - pos - len);
  b->len -= len;
}

static void buf_append_repeat(struct buf *b, const char *unit, size_t times) {
  size_t n = strlen(unit);
  if (n == 0 || times == 0) return;
  buf_reserve(b, b->len + n * times);
  for (size_t i = 0; i < times; i++) memcpy(b->p + b->len + i * n, unit, n);
  b->len += n * times;
}

static void buf_append(struct buf *b, const char *s) { buf_append_repeat(b, s, 1); }

/* --- descriptions of what was done ---------------------------------------- */

struct desc {
  char text[DESC_SIZE];
  size_t len;
};

static void desc_add(struct desc *d, const char *fmt, ...) {
  if (d->len + 4 >= sizeof d->text) return;
  if (d->len) {
    d->text[d->len++] = ';';
    d->text[d->len++] = ' ';
    d->text[d->len] = '\0';
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(d->text + d->len, sizeof d->text - d->len, fmt, ap);
  va_end(ap);
  if (n > 0) d->len += (size_t)n < sizeof d->text - d->len ? (size_t)n : sizeof d->text - d->len - 1;
}

/* A short, printable rendering of bytes, for a description. */
static void quote_bytes(char *out, size_t size, const unsigned char *p, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 6 < size; i++) {
    if (o + 12 >= size) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    unsigned char c = p[i];
    if (c == '\n') o += (size_t)snprintf(out + o, size - o, "\\n");
    else if (c == '"' || c == '\\') o += (size_t)snprintf(out + o, size - o, "\\%c", c);
    else if (c >= 0x20 && c < 0x7F) out[o++] = (char)c;
    else o += (size_t)snprintf(out + o, size - o, "\\x%02X", c);
  }
  out[o] = '\0';
}

/* --- a deterministic random source (splitmix64) ---------------------------- */

struct rng {
  uint64_t state;
};

static uint64_t rng_next(struct rng *r) {
  uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n is 0. */
static size_t rng_below(struct rng *r, size_t n) { return n ? (size_t)(rng_next(r) % n) : 0; }

static bool rng_chance(struct rng *r, unsigned one_in) { return rng_below(r, one_in) == 0; }

/* Mostly short lengths, sometimes long ones: at least 1, at most max. */
static size_t rng_length(struct rng *r, size_t max) {
  if (max == 0) return 0;
  size_t limit = rng_chance(r, 4) ? max : (max < 16 ? max : 16);
  return 1 + rng_below(r, limit);
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * UINT64_C(0x100000001B3);
  return h;
}

/* --- what mutations insert ------------------------------------------------- */

static const char *const dictionary[] = {
    /* keywords */
    "pipeline", "import", "model", "data", "stage", "order", "assert", "true", "false", "and", "or", "not",
    /* stage kinds, architectures, data kinds, functions */
    "pretrain", "midtrain", "sft", "reward_model", "ppo", "grpo", "dpo", "ipo", "kto", "simpo", "orpo",
    "online_dpo", "gpt2", "load", "corpus", "demonstrations", "preferences", "feedback", "prompts", "mix",
    "adamw", "verifier", "frozen", "frozen(", "mix(", "adamw(", "verifier(", "load(\"ckpt\")",
    "frozen(base)", "frozen(frozen(base))", "mix(web = 70%, code = 30%)", "mix()", "mix(web)",
    "verifier(match = r\"(\\d+)\", against = \"answer\")", "adamw(lr = 3e-4, warmup = 100)",
    /* keys */
    "layers", "heads", "width", "context", "vocab", "tokenizer", "dropout", "state", "val_split", "max_length",
    "min_chars", "blocklist", "dedup", "format", "optimizer", "batch", "micro_batch", "seed", "steps", "tokens",
    "epochs", "eval_every", "log_every", "reference", "reward", "beta", "lr", "data =", "prompts =",
    "reference = frozen(base)", "seed = 4294967296", "steps = 0", "tokenizer = \"bpe\"", "tokenizer = bytes",
    "layers = 1.5", "val_split = 51%", "val_split = 0.7", "val_split = 30", "x = 1",
    /* punctuation */
    "{", "}", "(", ")", "[", "]", ",", "=", ".", "<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "/", ";", "'",
    "{}", "()", "[]", "[,]", "(,)", "= =", "< <", "..",
    /* strings */
    "\"", "r\"", "\"\"", "r\"\"", "\"a\\", "\"\\u{1F600}\"", "\"\\u{110000}\"", "\"\\u{D800}\"", "\"\\u{0}\"",
    "\"\\u{\"", "\"\\u{}\"", "\"\\u{1234567}\"", "\"\\u{41\"", "\"\\q\"", "\"\\\"", "r\"\\\"", "\"\\n\\t\\r\\\\\\\"\"",
    "\"tiny/data/*.txt\"", "\"std/models.pipe\"",
    /* numbers */
    "%", "2M", "500K", "1.5B", "1e999", "1e-999", "1e999%", "0.5", "-1", "- -1", "100%", "12abc", "1.", ".5",
    "0x10", "007", "1e", "1e+", "9007199254740993", "4294967295", "1M%", "2MB", "0%", "-0",
    ("123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
     "123456789012345678901234567890123456789012345678901234567890"),
    /* comments and suppressions */
    "#", "# trainpipe: allow W0103", "# trainpipe: allow unused-name, bad-suppression -- why",
    "# trainpipe: allow E0001", "# trainpipe: allow W9999 nope", "# trainpipe: allow", "# trainpipe:allow W0103",
    "# trainpipe: allow ,,, --", "#trainpipe: allow -", "# trainpipe: allow W0015 W0103 N0005",
    /* comments that end their line, so the input may still parse: for fmt */
    "# a comment\n", "\n# a comment on its own line\n",
    /* layout */
    "\n", "\r\n", "\r", "\t", " ", "\n\n\n", "\f", "\v",
    /* imports */
    "import \"std/models.pipe\"", "import \"x.pipe\"", "import \"std/nope.pipe\"", "import \"std/\"",
    "import \"\"", "import \".\"", "import \"/\"", "import \"..\"", "import \"nope/\"",
    "import \"\\u{1F600}.pipe\"", "import \"a\\u{0}b\"", "import r\"x.pipe\"", "import x.pipe", "import",
    /* whole declarations */
    "model m = gpt2 { layers = 2 }", "model m = gpt2", "model m = load(\"ckpt\")", "model m = nope(1, 2, 3)",
    "data d = corpus(\"x\")", "data d = mix(web = 50%, web = 50%)", "stage s = sft(tiny) { data = d }",
    "stage s = dpo(s) { data = d reference = frozen(s) }", "stage s = nope(m)", "order a < b < a",
    "assert s.accuracy >= 0.5 and not s.loss > 1", "assert f(x)", "assert [1]", "pipeline p",
    "pipeline p pipeline q",
};

static const char *const valid_utf8[] = {
    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xC2\xA0", "\xEF\xBB\xBF", "\xE2\x80\x8F", "\xE2\x80\x8D",
    "\xCC\x81", "\xEF\xBC\x88", "\xE4\xB8\xAD\xE6\x96\x87", "\xF4\x8F\xBF\xBF", "\xE2\x80\xA8", "\xEF\xBF\xBD",
    "\xE3\x80\x80", "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",
};

static const char *const invalid_utf8[] = {
    "\x80", "\xBF", "\xC0\xAF", "\xC1\xBF", "\xC2", "\xE2\x82", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
    "\xF8\x88\x80\x80\x80", "\xFE", "\xFF", "\xE0\x80\x80", "\xF0\x80\x80\x80", "\xC3\xA9\xA9",
};

/* Bytes a flip writes: mostly ones that matter to the scanner. */
static const char flip_bytes[] = "\n\"{}()[]=,.<>#%\\-+*/ \t\r_09erKMB;'!";
static const unsigned char bad_bytes[] = {0x00, 0xFF, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                          0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFE, 0x7F, 0x01, 0x1B};

#define COUNT_OF(a) (sizeof(a) / sizeof(a)[0])

/* Generated extremes: deep nesting, long chains, huge tokens, many items. */
static const char *quoted(char *out, size_t size, const char *s) {
  quote_bytes(out, size, (const unsigned char *)s, strlen(s));
  return out;
}
#define QUOTE(buf, s) quoted(buf, sizeof buf, s)

static void make_extreme(struct rng *r, const struct seed *self, struct buf *out, struct desc *d) {
  char q[3][64];
  static const size_t sizes[] = {10, 100, 1000, 5000, 9999, 10001, 20000, 50000};
  size_t k = sizes[rng_below(r, COUNT_OF(sizes))];
  /* Rarely, as deep as a recursive walk of the tree cannot go. */
  if (rng_chance(r, 64)) k = 1000000;
  out->len = 0;
  switch (rng_below(r, 8)) {
  case 0: { /* nested brackets where a value or an expression is expected */
    static const char *const prefix[] = {"", "assert ", "model m = gpt2 { layers = ", " x = ", "assert not ",
                                         "data d = corpus(", "stage s = sft(m) { data = mix(a = "};
    static const char *const unit[] = {"[", "(", "{", "f(", "[1, ", "(-", "not ", "- ", "-", "mix(a = "};
    const char *p = prefix[rng_below(r, COUNT_OF(prefix))], *u = unit[rng_below(r, COUNT_OF(unit))];
    bool close = rng_chance(r, 2);
    buf_append(out, p);
    buf_append_repeat(out, u, k);
    if (close) {
      buf_append(out, "1");
      buf_append_repeat(out, u[0] == '[' ? "]" : u[0] == '{' ? "}" : ")", k);
    }
    desc_add(d, "nesting \"%s\" + %zu x \"%s\"%s", QUOTE(q[0], p), k, QUOTE(q[1], u), close ? " closed" : "");
    break;
  }
  case 1: { /* long left-recursive chains */
    static const char *const unit[] = {".b", " + a", " or a", " and not a", " < a", " * 2", ".data", " - -1"};
    const char *u = unit[rng_below(r, COUNT_OF(unit))];
    buf_append(out, "\nassert a");
    buf_append_repeat(out, u, k);
    buf_append(out, "\n");
    desc_add(d, "chain \"\\nassert a\" + %zu x \"%s\"", k, QUOTE(q[0], u));
    break;
  }
  case 2: { /* long lists, argument lists, order chains */
    static const char *const what[][3] = {{" x = [", "1, ", "1]"},
                                          {" x = f(", "a = 1, ", ")"},
                                          {"\norder a", " < a", "\n"},
                                          {" data = mix(", "web = 1%, ", ")"}};
    size_t w = rng_below(r, COUNT_OF(what));
    buf_append(out, what[w][0]);
    buf_append_repeat(out, what[w][1], k);
    buf_append(out, what[w][2]);
    desc_add(d, "long \"%s\" + %zu x \"%s\"", QUOTE(q[0], what[w][0]), k, QUOTE(q[1], what[w][1]));
    break;
  }
  case 3: { /* huge single tokens */
    static const char *const unit[] = {"a", "9", "\xC3\xA9", " ", "\t", "\n", "\\n", "\xE4\xB8\xAD"};
    static const char *const wrap[][2] = {{"", ""}, {"\"", "\""}, {"r\"", "\""}, {"# ", "\n"}, {"1.", "e5"}};
    const char *u = unit[rng_below(r, COUNT_OF(unit))];
    size_t w = rng_below(r, COUNT_OF(wrap));
    buf_append(out, wrap[w][0]);
    buf_append_repeat(out, u, k);
    buf_append(out, wrap[w][1]);
    desc_add(d, "token \"%s\" + %zu x \"%s\" + \"%s\"", QUOTE(q[0], wrap[w][0]), k, QUOTE(q[1], u),
             QUOTE(q[2], wrap[w][1]));
    break;
  }
  case 4: { /* many declarations and entries */
    static const char *const unit[] = {"\nmodel m = gpt2", "\ndata d = corpus(\"x\")", "\nstage s = sft(s)",
                                       " layers = 1", " x = 1", "\nimport \"x.pipe\"", "\npipeline p",
                                       "\n# trainpipe: allow W0103\n", "\n}", "\n=", "\n;"};
    const char *u = unit[rng_below(r, COUNT_OF(unit))];
    size_t n = k > 5000 ? 5000 : k;
    buf_append_repeat(out, u, n);
    desc_add(d, "%zu x \"%s\"", n, QUOTE(q[0], u));
    break;
  }
  case 5: { /* many distinct names, so suggestions and the symbol table work */
    size_t n = k > 3000 ? 3000 : k;
    char line[96];
    for (size_t i = 0; i < n; i++) {
      snprintf(line, sizeof line, "\nmodel m%zu = gpt2 { layers = %zu }\nstage s%zu = sft(m%zu)", i, i % 9, i,
               (i * 7) % n);
      buf_append(out, line);
    }
    desc_add(d, "%zu generated models and stages", n);
    break;
  }
  case 6: { /* an import of the file itself, or of the file that imports it */
    char line[PATH_MAX + 32];
    snprintf(line, sizeof line, "\nimport \"%s\"\n", rng_chance(r, 2) ? self->base : "x.pipe");
    buf_append(out, line);
    desc_add(d, "self import");
    break;
  }
  default: { /* many syntax errors */
    static const char *const unit[] = {") ", "= ", "model ", "{ ] ", "\"\n", "1 "};
    const char *u = unit[rng_below(r, COUNT_OF(unit))];
    buf_append_repeat(out, u, k > 2000 ? 2000 : k);
    desc_add(d, "%zu x \"%s\"", k > 2000 ? 2000 : k, QUOTE(q[0], u));
    break;
  }
  }
}

/* --- mutations --------------------------------------------------------------- */

/* A line of b around a random offset: [*start, *end) including its newline. */
static void random_line(struct rng *r, const struct buf *b, size_t *start, size_t *end) {
  size_t at = rng_below(r, b->len);
  size_t s = at, e = at;
  while (s > 0 && b->p[s - 1] != '\n') s--;
  while (e < b->len && b->p[e] != '\n') e++;
  if (e < b->len) e++;
  *start = s;
  *end = e;
}

static void mutate_once(struct rng *r, const struct fuzz *f, const struct seed *self, struct buf *b,
                        struct buf *scratch, struct desc *d) {
  char q[64];
  static const unsigned weights[] = {2, 6, 4, 4, 4, 10, 2, 4, 1}; /* by case below */
  unsigned total = 0, pick;
  for (size_t i = 0; i < COUNT_OF(weights); i++) total += weights[i];
  pick = (unsigned)rng_below(r, total);
  size_t op = 0;
  while (pick >= weights[op]) pick -= weights[op++];

  switch (op) {
  case 0: { /* truncation */
    size_t at = rng_below(r, b->len + 1);
    b->len = at;
    desc_add(d, "truncate at %zu", at);
    break;
  }
  case 1: { /* byte flips */
    size_t n = rng_length(r, 8);
    desc_add(d, "flip %zu", n);
    for (size_t i = 0; i < n; i++) {
      unsigned char c;
      size_t kind = rng_below(r, 8);
      if (kind < 4) c = (unsigned char)flip_bytes[rng_below(r, sizeof flip_bytes - 1)];
      else if (kind < 6) c = (unsigned char)(0x20 + rng_below(r, 0x5F));
      else if (kind < 7) c = bad_bytes[rng_below(r, sizeof bad_bytes)];
      else c = 0; /* xor below */
      if (b->len == 0) {
        buf_insert(b, 0, &c, 1);
        continue;
      }
      size_t at = rng_below(r, b->len);
      if (kind == 7) b->p[at] ^= (unsigned char)(1u << rng_below(r, 8));
      else b->p[at] = c;
      desc_add(d, "@%zu=0x%02X", at, b->p[at]);
    }
    break;
  }
  case 2: { /* deletion of a range */
    size_t at = rng_below(r, b->len), n = rng_length(r, b->len - at);
    buf_erase(b, at, n);
    desc_add(d, "delete %zu at %zu", n, at);
    break;
  }
  case 3: { /* duplication of a range */
    if (b->len == 0) break;
    size_t from = rng_below(r, b->len), n = rng_length(r, b->len - from), to = rng_below(r, b->len + 1);
    buf_set(scratch, b->p + from, n);
    if (buf_insert(b, to, scratch->p, scratch->len)) desc_add(d, "copy %zu from %zu to %zu", n, from, to);
    break;
  }
  case 4: { /* a chunk of a seed spliced in, possibly replacing a range */
    const struct seed *other = &f->seeds[rng_below(r, f->n_files)];
    if (other->len == 0) break;
    size_t from = rng_below(r, other->len), n = rng_length(r, other->len - from);
    if (rng_chance(r, 3)) n = other->len - from;
    size_t to = rng_below(r, b->len + 1), replace = rng_chance(r, 2) ? rng_length(r, b->len - to) : 0;
    buf_erase(b, to, replace);
    if (buf_insert(b, to, other->text + from, n))
      desc_add(d, "splice %zu from %s@%zu at %zu over %zu", n, other->base, from, to, replace);
    break;
  }
  case 5: { /* a token of the language */
    const char *tok = dictionary[rng_below(r, COUNT_OF(dictionary))];
    size_t to = rng_below(r, b->len + 1);
    /* At a token boundary more often than not. */
    if (rng_chance(r, 2))
      while (to < b->len && b->p[to] != ' ' && b->p[to] != '\n') to++;
    char spaced[256];
    snprintf(spaced, sizeof spaced, "%s%s%s", rng_chance(r, 2) ? " " : "", tok, rng_chance(r, 2) ? " " : "");
    if (buf_insert(b, to, spaced, strlen(spaced))) {
      quote_bytes(q, sizeof q, (const unsigned char *)spaced, strlen(spaced));
      desc_add(d, "insert \"%s\" at %zu", q, to);
    }
    break;
  }
  case 6: { /* a UTF-8 sequence, mostly valid */
    const char *seq = rng_chance(r, 3) ? invalid_utf8[rng_below(r, COUNT_OF(invalid_utf8))]
                                       : valid_utf8[rng_below(r, COUNT_OF(valid_utf8))];
    size_t to = rng_below(r, b->len + 1);
    if (buf_insert(b, to, seq, strlen(seq))) {
      quote_bytes(q, sizeof q, (const unsigned char *)seq, strlen(seq));
      desc_add(d, "insert \"%s\" at %zu", q, to);
    }
    break;
  }
  case 7: { /* a whole line deleted, duplicated or moved */
    if (b->len == 0) break;
    size_t s, e;
    random_line(r, b, &s, &e);
    buf_set(scratch, b->p + s, e - s);
    size_t how = rng_below(r, 3);
    if (how != 1) buf_erase(b, s, e - s);
    if (how != 0) {
      size_t ls, le;
      if (b->len) random_line(r, b, &ls, &le);
      else ls = 0;
      buf_insert(b, ls, scratch->p, scratch->len);
    }
    desc_add(d, "%s line at %zu", how == 0 ? "delete" : how == 1 ? "duplicate" : "move", s);
    break;
  }
  default: { /* a generated extreme */
    make_extreme(r, self, scratch, d);
    size_t to = rng_below(r, b->len + 1);
    if (!rng_chance(r, 4))
      while (to < b->len && b->p[to] != '\n') to++;
    if (!buf_insert(b, to, scratch->p, scratch->len)) desc_add(d, "(too large, dropped)");
    break;
  }
  }
}

/* --- generated inputs -------------------------------------------------------- */

/* Inputs that random mutation reaches only by luck: nesting and chains
 * deeper than a recursive walk may go, and lines carrying thousands of
 * diagnostics. Each runs once in each format. */
struct generated {
  const char *what, *prefix, *unit, *suffix;
  size_t times;
};

static const struct generated generated_inputs[] = {
    {"a chain of 1000000 'or'", "stage a = sft(a)\nassert a", " or a", "\n", 1000000},
    {"a chain of 1000000 '+'", "stage a = sft(a)\nassert a", " + a", "\n", 1000000},
    {"a chain of 1000000 members", "stage a = sft(a)\nassert a", ".b", "\n", 1000000},
    {"an order of 50000 undefined stages", "order a", " < a", "\n", 50000},
    {"100000 nested '- '", "assert ", "- ", "1\n", 100000},
    {"100000 nested 'not'", "assert ", "not ", "a\n", 100000},
    {"100000 nested '('", "assert ", "(", "a\n", 100000},
    {"100000 nested '['", "model m = gpt2 { layers = ", "[", "1 }\n", 100000},
    {"100000 nested calls", "model m = gpt2 { layers = ", "f(", "1 }\n", 100000},
    {"20000 undefined names on one line", "assert a", " + a", "\n", 20000},
    {"20000 invalid characters on one line", "model m = gpt2 ", "\xE4\xB8\xAD", "\n", 20000},
    {"20000 duplicate shares on one line", "stage s = sft(m) { data = mix(", "web = 1%, ", ") }\n", 20000},
    {"20000 syntax errors on one line", "", ") ", "\n", 20000},
    {"20000 declarations of one name", "", "model m = gpt2\n", "", 20000},
    {"20000 suppressions", "", "# trainpipe: allow W0103 unused-name\n", "model m = gpt2\n", 20000},
    {"a suppression naming 300000 codes", "# trainpipe: allow", " x", "\nmodel m = gpt2\n", 300000},
    {"20000 imports", "", "import \"x.pipe\"\n", "", 20000},
    {"1000000 lines", "", "\n", "model m = nope\n", 1000000},
    {"a 1000000-character name", "model ", "a", " = gpt2\n", 1000000},
    {"a 1000000-character string", "data d = corpus(\"", "a", "\")\n", 1000000},
    {"a 1000000-digit number", "model m = gpt2 { layers = ", "9", " }\n", 1000000},
    {"a 1000000-character comment", "#", "\xC3\xA9", "\n", 1000000},
    {"1000000 invalid characters", "model m = gpt2\n", "\\", "\n", 1000000},
    {"1000000 bad escapes", "data d = corpus(\"", "\\q", "\")\n", 1000000},
};

#define N_GENERATED (sizeof generated_inputs / sizeof generated_inputs[0])

/* --- inputs ------------------------------------------------------------------ */

/* Input 0 of a seed is the seed itself, input 1 the empty file, input i >= 2
 * mutant i - 2. Input i of the generated inputs is entry i / 3 of the table,
 * checked in format i % 3. */
static void input_label(const struct fuzz *f, size_t s, size_t i, char *out, size_t size) {
  if (f->seeds[s].generated) snprintf(out, size, "generated input %zu (%s)", i, generated_inputs[i / 3].what);
  else if (i == 0) snprintf(out, size, "the unmutated seed");
  else if (i == 1) snprintf(out, size, "the empty file");
  else snprintf(out, size, "mutant %zu", i - 2);
}

static void make_input(const struct fuzz *f, size_t s, size_t i, struct buf *out, struct buf *scratch,
                       struct desc *d) {
  const struct seed *self = &f->seeds[s];
  d->len = 0;
  d->text[0] = '\0';
  if (self->generated) {
    const struct generated *g = &generated_inputs[i / 3];
    out->len = 0;
    buf_append(out, g->prefix);
    buf_append_repeat(out, g->unit, g->times);
    buf_append(out, g->suffix);
    return;
  }
  if (i == 1) {
    out->len = 0;
    return;
  }
  buf_set(out, self->text, self->len);
  if (i == 0) return;
  uint64_t h = hash_bytes(UINT64_C(0xCBF29CE484222325), self->base, strlen(self->base));
  struct rng r = {f->seed ^ h ^ ((uint64_t)(i - 2) * UINT64_C(0xD1342543DE82EF95))};
  rng_next(&r);
  size_t n = 1 + rng_below(&r, 4);
  for (size_t k = 0; k < n; k++) mutate_once(&r, f, self, out, scratch, d);
}

/* The command line of input i: the format cycles, --werror and --color vary,
 * and some runs check a second file as well. */
struct command {
  char *argv[10];
  int argc;
  char format[16], werror[16], color[24];
};

static void make_command(struct command *c, const struct fuzz *f, size_t i, char *path, char *other) {
  static const char *const formats[] = {"text", "gcc", "json"};
  c->argc = 0;
  c->argv[c->argc++] = "trainpipe";
  c->argv[c->argc++] = "check";
  snprintf(c->format, sizeof c->format, "--format=%s", f->format ? f->format : formats[i % 3]);
  c->argv[c->argc++] = c->format;
  if (i % 7 < 3) {
    snprintf(c->werror, sizeof c->werror, "--werror");
    c->argv[c->argc++] = c->werror;
  }
  if (i % 5 == 4) {
    snprintf(c->color, sizeof c->color, "--color=always");
    c->argv[c->argc++] = c->color;
  }
  if (i % 11 == 10) c->argv[c->argc++] = other;
  c->argv[c->argc++] = path;
  if (i % 13 == 12) c->argv[c->argc++] = path;
  c->argv[c->argc] = NULL;
}

static char *dir_path(const struct fuzz *f, size_t dir, const char *name) {
  size_t n = strlen(f->root) + strlen(name) + 32;
  char *p = xrealloc_or_die(NULL, n);
  snprintf(p, n, "%s/d%zu%s%s", f->root, dir, *name ? "/" : "", name);
  return p;
}

/* Never through a symbolic link: those lead into the source tree. */
static bool write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0666);
  if (fd < 0) return false;
  FILE *fp = fdopen(fd, "wb");
  if (!fp) {
    close(fd);
    return false;
  }
  bool ok = len == 0 || fwrite(data, 1, len, fp) == len;
  return fclose(fp) == 0 && ok;
}

/* --- the properties of fmt ---------------------------------------------------- */

/* An input that parses without errors has a canonical text; that text
 * must parse to the same tree and be its own canonical text. */
static enum fmt_failure check_fmt(const unsigned char *text, size_t len) {
  struct source_set set = {0};
  struct arena arena = {0};
  struct diag_list diags;
  diag_list_init(&diags, &arena);
  enum fmt_failure result = FMT_HOLDS;
  /* an empty input may have no buffer at all */
  struct source_result r = source_add(&set, "input", len ? (const char *)text : "", len);
  struct ast_file *tree = r.status == SOURCE_OK ? parse_file(&set, r.id, &arena, &diags) : NULL;
  if (tree && !tree->syntax_errors && !diags.count[SEV_ERROR]) {
    size_t canonical_len;
    char *canonical = fmt_format(set.items[r.id], tree, &canonical_len);
    struct source_result r2 = source_add(&set, "canonical", canonical, canonical_len);
    struct ast_file *again = r2.status == SOURCE_OK ? parse_file(&set, r2.id, &arena, &diags) : NULL;
    if (!again || again->syntax_errors || diags.count[SEV_ERROR]) {
      result = FMT_UNPARSABLE;
    } else if (!fmt_same_tree(set.items[r.id], tree, set.items[r2.id], again, NULL)) {
      result = FMT_CHANGES_TREE;
    } else {
      size_t twice_len;
      char *twice = fmt_format(set.items[r2.id], again, &twice_len);
      if (twice_len != canonical_len || memcmp(twice, canonical, canonical_len) != 0) result = FMT_NOT_IDEMPOTENT;
      free(twice);
    }
    free(canonical);
  }
  source_set_free(&set);
  arena_free(&arena);
  return result;
}

static void describe_status(int rc, char *out, size_t size) {
  switch (rc) {
  case FMT_UNPARSABLE: snprintf(out, size, "fmt: the canonical text does not parse"); break;
  case FMT_CHANGES_TREE: snprintf(out, size, "fmt: the canonical text has another tree"); break;
  case FMT_NOT_IDEMPOTENT: snprintf(out, size, "fmt: formatting the canonical text changes it"); break;
  default: snprintf(out, size, "exit status %d (expected 0, 1 or 2)", rc); break;
  }
}

/* --- the worker -------------------------------------------------------------- */

struct record {
  uint32_t index;
  int32_t rc; /* RC_STARTED before the input runs */
};

static bool send_record(int fd, size_t index, int rc) {
  struct record rec = {(uint32_t)index, (int32_t)rc};
  const char *p = (const char *)&rec;
  size_t left = sizeof rec;
  while (left) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= (size_t)n;
  }
  return true;
}

/* Runs inputs [lo, hi) of seed s; stops at the first status outside 0..2. */
static int worker(const struct fuzz *f, size_t s, size_t lo, size_t hi, int fd) {
  FILE *out = fopen("/dev/null", "w"), *err = fopen("/dev/null", "w");
  if (!out || !err) {
    perror("fuzz_check: /dev/null");
    return 98;
  }
  const struct seed *self = &f->seeds[s];
  char *path = dir_path(f, self->dir, self->base), *other = dir_path(f, self->dir, "x.pipe");
  struct buf input = {0}, scratch = {0};
  struct desc d;
  int status = 0;
  for (size_t i = lo; i < hi; i++) {
    if (!send_record(fd, i, RC_STARTED)) break;
    make_input(f, s, i, &input, &scratch, &d);
    if (!write_file(path, input.p, input.len)) {
      fprintf(stderr, "fuzz_check: cannot write %s: %s\n", path, strerror(errno));
      status = 97;
      break;
    }
    struct command cmd;
    make_command(&cmd, f, i, path, other);
    struct cli_env env = {.stdlib_dir = f->stdlib_dir, .no_color = i % 2 == 0, .out_is_tty = false};
    alarm(f->timeout);
    int rc = cli_main(cmd.argc, cmd.argv, out, err, &env);
    /* Not the generated inputs: their million-node trees would double the
     * run time, and tests/fmt/fmt.test formats trees that deep. */
    if (rc >= 0 && rc <= 2 && !f->no_fmt && !self->generated) {
      enum fmt_failure failure = check_fmt(input.p, input.len);
      if (failure != FMT_HOLDS) rc = (int)failure;
    }
    alarm(0);
    if (!send_record(fd, i, rc)) break;
    if (rc < 0 || rc > 2) break;
  }
  free(input.p);
  free(scratch.p);
  free(path);
  free(other);
  fclose(out);
  fclose(err);
  return status;
}

/* --- running workers and judging what they did --------------------------------- */

enum outcome_kind {
  RUN_OK,
  RUN_DIED,       /* the worker died during input `index` */
  RUN_BAD_STATUS, /* input `index` returned `rc` */
  RUN_AT_EXIT,    /* every input returned, then the worker failed */
};

struct outcome {
  enum outcome_kind kind;
  size_t index;
  int rc;
  int wstatus;
};

/* How often each exit status came back, counting each input once even
 * when a range of inputs runs again, and the slowest input. */
struct tally {
  unsigned long status[3];
  size_t next; /* inputs below this are counted */
  double started, slowest;
  size_t slowest_index;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct outcome run_worker(const struct fuzz *f, size_t s, size_t lo, size_t hi, bool quiet,
                                 struct tally *tally) {
  struct outcome o = {.kind = RUN_AT_EXIT, .index = hi};
  int fds[2];
  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0) {
    perror("fuzz_check: pipe");
    exit(99);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("fuzz_check: fork");
    exit(99);
  }
  if (pid == 0) {
    close(fds[0]);
    signal(SIGALRM, SIG_DFL);
    if (quiet) {
      FILE *null = freopen("/dev/null", "w", stderr);
      (void)null;
    }
    exit(worker(f, s, lo, hi, fds[1]));
  }
  close(fds[1]);
  bool started = false, returned = false;
  struct record rec = {0};
  for (;;) {
    size_t got = 0;
    while (got < sizeof rec) {
      ssize_t n = read(fds[0], (char *)&rec + got, sizeof rec - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got < sizeof rec) break;
    started = true;
    returned = rec.rc != RC_STARTED;
    o.index = rec.index;
    o.rc = rec.rc;
    if (tally && rec.rc == RC_STARTED) tally->started = now();
    if (tally && rec.rc >= 0 && rec.rc <= 2 && rec.index >= tally->next) {
      double took = now() - tally->started;
      tally->status[rec.rc]++;
      tally->next = rec.index + 1;
      if (took > tally->slowest) tally->slowest = took, tally->slowest_index = rec.index;
    }
  }
  close(fds[0]);
  while (waitpid(pid, &o.wstatus, 0) < 0) {
    if (errno != EINTR) {
      perror("fuzz_check: waitpid");
      exit(99);
    }
  }
  bool clean = WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0;
  if (started && !returned) o.kind = RUN_DIED;
  else if (started && (o.rc < 0 || o.rc > 2)) o.kind = RUN_BAD_STATUS;
  else if (started && o.index + 1 == hi && clean) o.kind = RUN_OK;
  else if (!started && lo == hi && clean) o.kind = RUN_OK;
  else o.kind = RUN_AT_EXIT, o.index = hi;
  return o;
}

static void describe_wstatus(int wstatus, unsigned timeout, char *out, size_t size) {
  if (WIFSIGNALED(wstatus)) {
    int sig = WTERMSIG(wstatus);
    if (sig == SIGALRM) snprintf(out, size, "no result within %u s (a hang)", timeout);
    else snprintf(out, size, "killed by signal %d (%s)", sig, strsignal(sig));
  } else if (WIFEXITED(wstatus)) {
    snprintf(out, size, "the worker exited with status %d (see the sanitizer report above)", WEXITSTATUS(wstatus));
  } else {
    snprintf(out, size, "the worker stopped with wait status 0x%x", (unsigned)wstatus);
  }
}

/* Every input of [lo, hi) returned, yet the worker failed at exit: finds one
 * input that fails on its own, or returns hi when none does. */
static size_t bisect_exit_failure(const struct fuzz *f, size_t s, size_t lo, size_t hi) {
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (run_worker(f, s, lo, mid, true, NULL).kind != RUN_OK) {
      hi = mid;
    } else if (run_worker(f, s, mid, hi, true, NULL).kind != RUN_OK) {
      lo = mid;
    } else {
      return SIZE_MAX;
    }
  }
  return lo;
}

static char *seed_stem(const struct seed *seed) {
  size_t n = strlen(seed->base);
  if (n > 5 && strcmp(seed->base + n - 5, ".pipe") == 0) n -= 5;
  char *stem = xrealloc_or_die(NULL, n + 1);
  memcpy(stem, seed->base, n);
  stem[n] = '\0';
  return stem;
}

/* Reports one failing input on the TAP stream and saves it. */
static void report_failure(const struct fuzz *f, size_t s, size_t i, const char *why) {
  const struct seed *self = &f->seeds[s];
  struct buf input = {0}, scratch = {0};
  struct desc d;
  char label[128], saved[PATH_MAX];
  make_input(f, s, i, &input, &scratch, &d);
  input_label(f, s, i, label, sizeof label);

  char *stem = seed_stem(self);
  if (self->generated) snprintf(saved, sizeof saved, "%s/%s.%zu.pipe", f->save_dir, stem, i);
  else if (i >= 2) snprintf(saved, sizeof saved, "%s/%s.%" PRIu64 ".%zu.pipe", f->save_dir, stem, f->seed, i - 2);
  else snprintf(saved, sizeof saved, "%s/%s.%s.pipe", f->save_dir, stem, i ? "empty" : "orig");
  free(stem);
  if (mkdir(f->save_dir, 0777) != 0 && errno != EEXIST) snprintf(saved, sizeof saved, "(not saved: %s)", strerror(errno));
  else if (!write_file(saved, input.p, input.len)) snprintf(saved, sizeof saved, "(not saved: %s)", strerror(errno));

  char path[] = "FILE", other[] = "x.pipe";
  struct command cmd;
  make_command(&cmd, f, i, path, other);
  char line[256] = "";
  size_t used = 0;
  for (int a = 1; a < cmd.argc && used < sizeof line; a++)
    used += (size_t)snprintf(line + used, sizeof line - used, " %s", cmd.argv[a]);

  printf("# %s: %s: %s\n", self->path, label, why);
  if (d.len) printf("#   mutations: %s\n", d.text);
  printf("#   input (%zu bytes) saved to %s\n", input.len, saved);
  printf("#   ran: trainpipe%s   (FILE is the input, named %s, next to the seeds of its directory)\n", line, self->base);
  if (strncmp(why, "fmt:", 4) == 0) printf("#   then: tests/fmt/fmt_check FILE   (says where the canonical text differs)\n");
  if (i >= 2 && !self->generated)
    printf("#   regenerate: fuzz_check --seed %" PRIu64 " --mutant %zu with the same seed files in the same order"
           " (FUZZ_SEED=%" PRIu64 " FUZZ_MUTANT=%zu tests/fuzz/mutate.test)\n",
           f->seed, i - 2, f->seed, i - 2);
  free(input.p);
  free(scratch.p);
}

/* Runs every input of seed s; returns the number of failures, with the
 * first one's reason in why. */
static unsigned fuzz_seed(const struct fuzz *f, size_t s, size_t first, size_t last, char *why, size_t why_size,
                          struct tally *tally) {
  unsigned failures = 0;
  size_t next = first;
  /* The generated inputs are few and each tests something else: all of
   * their failures are worth reporting. */
  unsigned cap = f->seeds[s].generated ? f->stop_after : f->max_failures;
  while (next < last && failures < cap) {
    struct outcome o = run_worker(f, s, next, last, false, tally);
    char reason[160];
    size_t at;
    switch (o.kind) {
    case RUN_OK:
      return failures;
    case RUN_DIED:
      describe_wstatus(o.wstatus, f->timeout, reason, sizeof reason);
      at = o.index;
      break;
    case RUN_BAD_STATUS:
      describe_status(o.rc, reason, sizeof reason);
      at = o.index;
      break;
    case RUN_AT_EXIT:
    default: {
      char how[128];
      describe_wstatus(o.wstatus, f->timeout, how, sizeof how);
      at = bisect_exit_failure(f, s, next, last);
      if (at == SIZE_MAX) {
        printf("# %s: inputs %zu..%zu all returned, then %s; no single input fails alone\n", f->seeds[s].path, next,
               last - 1, how);
        if (!failures++) snprintf(why, why_size, "failed at exit: %s", how);
        return failures;
      }
      /* Once more, alone, so that its report shows in the log. */
      run_worker(f, s, at, at + 1, false, NULL);
      snprintf(reason, sizeof reason, "failed at exit (a leak?): %s", how);
      break;
    }
    }
    report_failure(f, s, at, reason);
    if (!failures++) {
      char label[128];
      input_label(f, s, at, label, sizeof label);
      snprintf(why, why_size, "%.100s: %s", label, reason);
    }
    next = at + 1;
  }
  return failures;
}

/* --- setup --------------------------------------------------------------------- */

static bool read_file(const char *path, unsigned char **text, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return false;
  struct buf b = {0};
  for (;;) {
    buf_reserve(&b, b.len + 65536);
    size_t n = fread(b.p + b.len, 1, b.cap - b.len, fp);
    b.len += n;
    if (n == 0) break;
  }
  bool ok = !ferror(fp);
  fclose(fp);
  *text = b.p;
  *len = b.len;
  return ok;
}

/* The length of a path's directory part, without the slash. */
static size_t dir_len(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? (size_t)(slash - path) : 0;
}

/* Links everything else of a seed's source directory (subdirectories of
 * imported files, data) into its temporary directory, so that the seed's
 * relative imports resolve as they do in place. */
static void link_siblings(const struct fuzz *f, const struct seed *seed) {
  char dir[PATH_MAX], abs[PATH_MAX];
  size_t n = dir_len(seed->path);
  if (n >= sizeof dir) return;
  if (n == 0 && seed->path[0] == '/') n = 1;
  if (n) memcpy(dir, seed->path, n);
  else dir[n++] = '.';
  dir[n] = '\0';
  if (!realpath(dir, abs)) return;
  DIR *d = opendir(abs);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || strcmp(e->d_name, "x.pipe") == 0) continue;
    char *link = dir_path(f, seed->dir, e->d_name), target[PATH_MAX * 2];
    struct stat st;
    snprintf(target, sizeof target, "%s/%s", abs, e->d_name);
    if (lstat(link, &st) != 0) {
      if (symlink(target, link) != 0) { /* the seeds' imports just will not resolve */
      }
    }
    free(link);
  }
  closedir(d);
}

/* Puts every seed into a temporary directory per source directory. */
static bool prepare_dirs(struct fuzz *f) {
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/fuzz_check.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->root)) {
    fprintf(stderr, "fuzz_check: cannot create a directory in %s: %s\n", tmp && *tmp ? tmp : "/tmp", strerror(errno));
    return false;
  }
  for (size_t s = 0; s < f->n_seeds; s++) {
    struct seed *seed = &f->seeds[s];
    seed->dir = f->n_dirs;
    for (size_t t = 0; t < s; t++) {
      const struct seed *o = &f->seeds[t];
      size_t n = dir_len(seed->path);
      if (dir_len(o->path) == n && strncmp(o->path, seed->path, n) == 0) {
        seed->dir = o->dir;
        break;
      }
    }
    if (seed->dir == f->n_dirs) {
      char *d = dir_path(f, f->n_dirs++, "");
      bool ok = mkdir(d, 0777) == 0;
      free(d);
      if (!ok) return false;
    }
    char *p = dir_path(f, seed->dir, seed->base);
    bool ok = write_file(p, seed->text, seed->len);
    free(p);
    if (!ok) return false;
  }
  for (size_t s = 0; s < f->n_seeds; s++)
    if (!f->seeds[s].generated) link_siblings(f, &f->seeds[s]);
  return true;
}

/* Removes the temporary directories: files and symbolic links only. */
static void remove_dirs(const struct fuzz *f) {
  for (size_t k = 0; k < f->n_dirs; k++) {
    char *p = dir_path(f, k, "");
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *entry = dir_path(f, k, e->d_name);
      unlink(entry);
      free(entry);
    }
    if (d) closedir(d);
    rmdir(p);
    free(p);
  }
  rmdir(f->root);
}

/* x.pipe, which mutants may import, imports the seed back. */
static bool write_companion(const struct fuzz *f, size_t s) {
  const struct seed *seed = &f->seeds[s];
  if (strcmp(seed->base, "x.pipe") == 0) return true;
  char *p = dir_path(f, seed->dir, "x.pipe");
  char text[PATH_MAX + 128];
  int n = snprintf(text, sizeof text, "# imported by mutants\nimport \"%s\"\nmodel x_model = gpt2 { layers = 2 }\n",
                   seed->base);
  bool ok = n > 0 && write_file(p, text, (size_t)n);
  free(p);
  return ok;
}

/* --dump: the inputs as files, to read or to feed to another tool. */
static bool dump_inputs(const struct fuzz *f) {
  if (mkdir(f->dump_dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "fuzz_check: cannot create %s: %s\n", f->dump_dir, strerror(errno));
    return false;
  }
  struct buf input = {0}, scratch = {0};
  struct desc d;
  bool ok = true;
  for (size_t s = 0; s < f->n_seeds && ok; s++) {
    char *stem = seed_stem(&f->seeds[s]);
    bool generated = f->seeds[s].generated;
    size_t first = 2, last = f->count + 2;
    if (f->only >= 0) first = (size_t)f->only + 2, last = first + 1;
    if (generated) first = 0, last = 3 * N_GENERATED;
    for (size_t i = first; i < last && ok; i += generated ? 3 : 1) {
      char path[PATH_MAX];
      make_input(f, s, i, &input, &scratch, &d);
      snprintf(path, sizeof path, "%s/%s.%zu.pipe", f->dump_dir, stem, generated ? i / 3 : i - 2);
      if (generated) snprintf(d.text, sizeof d.text, "%s", generated_inputs[i / 3].what);
      ok = write_file(path, input.p, input.len);
      if (!ok) fprintf(stderr, "fuzz_check: cannot write %s: %s\n", path, strerror(errno));
      else printf("%s: %s\n", path, d.text);
    }
    free(stem);
  }
  free(input.p);
  free(scratch.p);
  return ok;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: fuzz_check [options] SEED.pipe...\n"
          "\n"
          "Runs `trainpipe check` in process on each seed, the empty file and COUNT\n"
          "mutants of each seed, and requires exit status 0, 1 or 2 of every run;\n"
          "an input that parses must also keep its tree through `trainpipe fmt`,\n"
          "whose output must be its own canonical text.\n"
          "Prints TAP, one test per seed.\n"
          "\n"
          "options:\n"
          "  --count N         mutants per seed (default 1000)\n"
          "  --seed S          the random seed (default 1)\n"
          "  --mutant K        run only mutant K of each seed\n"
          "  --timeout SECS    limit per input (default 10)\n"
          "  --max-failures N  stop a seed after N failing inputs (default 3)\n"
          "                    (the generated inputs stop after --stop-after)\n"
          "  --stop-after N    skip the remaining seeds after N failing inputs in all (default 10)\n"
          "  --save DIR        where failing inputs are written (default fuzz-findings)\n"
          "  --format FMT      check with --format=FMT only (default: text, gcc and json in turn)\n"
          "  --no-generated    skip the generated inputs (deep nesting, long lines), tested last\n"
          "  --no-fmt          skip the properties of fmt (the canonical text of an input\n"
          "                    that parses has the same tree and is its own canonical text)\n"
          "  --dump DIR        write the inputs into DIR as STEM.K.pipe instead of running them\n"
          "  --stdlib DIR      the standard library (default $top_srcdir/stdlib-pipelines)\n");
}

static bool parse_number(const char *text, unsigned long long max, unsigned long long *out) {
  char *end;
  errno = 0;
  if (!text || !*text || *text == '-') return false;
  unsigned long long v = strtoull(text, &end, 0);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

/* "--name value" or "--name=value": the value, or NULL when a is not --name. */
static const char *option(const char *name, int argc, char **argv, int *i) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] == '\0') return *i + 1 < argc ? argv[++*i] : "";
  return NULL;
}

int main(int argc, char **argv) {
  struct fuzz f = {.seed = 1, .count = 1000, .timeout = 10, .max_failures = 3, .stop_after = 10, .only = -1,
                   .save_dir = "fuzz-findings"};
  char stdlib[PATH_MAX];
  const char *top = getenv("top_srcdir");
  snprintf(stdlib, sizeof stdlib, "%s/stdlib-pipelines", top && *top ? top : ".");
  f.stdlib_dir = stdlib;

  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *v;
    unsigned long long n;
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if ((v = option("--count", argc, argv, &i))) {
      if (!parse_number(v, 100000000, &n)) goto bad;
      f.count = (unsigned long)n;
    } else if ((v = option("--seed", argc, argv, &i))) {
      if (!parse_number(v, UINT64_MAX, &n)) goto bad;
      f.seed = (uint64_t)n;
    } else if ((v = option("--mutant", argc, argv, &i))) {
      if (!parse_number(v, 100000000, &n)) goto bad;
      f.only = (long)n;
    } else if ((v = option("--timeout", argc, argv, &i))) {
      if (!parse_number(v, 3600, &n) || n == 0) goto bad;
      f.timeout = (unsigned)n;
    } else if ((v = option("--max-failures", argc, argv, &i))) {
      if (!parse_number(v, 1000000, &n) || n == 0) goto bad;
      f.max_failures = (unsigned)n;
    } else if ((v = option("--stop-after", argc, argv, &i))) {
      if (!parse_number(v, 1000000, &n) || n == 0) goto bad;
      f.stop_after = (unsigned)n;
    } else if ((v = option("--save", argc, argv, &i))) {
      if (!*v) goto bad;
      f.save_dir = v;
    } else if (strcmp(argv[i], "--no-generated") == 0) {
      f.no_generated = true;
    } else if (strcmp(argv[i], "--no-fmt") == 0) {
      f.no_fmt = true;
    } else if ((v = option("--format", argc, argv, &i))) {
      if (strcmp(v, "text") != 0 && strcmp(v, "gcc") != 0 && strcmp(v, "json") != 0) goto bad;
      f.format = v;
    } else if ((v = option("--dump", argc, argv, &i))) {
      if (!*v) goto bad;
      f.dump_dir = v;
    } else if ((v = option("--stdlib", argc, argv, &i))) {
      if (!*v) goto bad;
      f.stdlib_dir = v;
    } else {
      goto bad;
    }
  }
  if (i == argc) {
    usage(stderr);
    return 2;
  }

  if (f.only >= 0) f.no_generated = true;
  size_t n_files = (size_t)(argc - i);
  f.n_files = n_files;
  f.n_seeds = n_files + !f.no_generated;
  f.seeds = xrealloc_or_die(NULL, f.n_seeds * sizeof *f.seeds);
  memset(f.seeds, 0, f.n_seeds * sizeof *f.seeds);
  if (!f.no_generated) {
    struct seed *g = &f.seeds[n_files];
    g->path = "generated inputs";
    g->base = "generated.pipe";
    g->generated = true;
  }
  int status = 0;
  for (size_t s = 0; s < n_files; s++) {
    struct seed *seed = &f.seeds[s];
    seed->path = argv[i + (int)s];
    const char *slash = strrchr(seed->path, '/');
    seed->base = slash ? slash + 1 : seed->path;
    if (!*seed->base || !read_file(seed->path, &seed->text, &seed->len)) {
      printf("Bail out! cannot read seed %s: %s\n", seed->path, *seed->base ? strerror(errno) : "not a file");
      status = 1;
    }
  }
  if (status == 0 && f.dump_dir) {
    status = dump_inputs(&f) ? 0 : 1;
  } else if (status == 0 && !prepare_dirs(&f)) {
    printf("Bail out! cannot set up %s: %s\n", f.root, strerror(errno));
    status = 1;
  }

  if (status == 0 && !f.dump_dir) {
    printf("1..%zu\n", f.n_seeds);
    size_t first = 0, last = f.count + 2;
    if (f.only >= 0) first = (size_t)f.only + 2, last = first + 1;
    unsigned all_failures = 0;
    for (size_t s = 0; s < f.n_seeds; s++) {
      char why[384] = "";
      struct tally tally = {.next = 0};
      unsigned failures;
      if (all_failures >= f.stop_after) {
        printf("ok %zu - %s # SKIP after %u failing inputs\n", s + 1, f.seeds[s].path, all_failures);
        continue;
      }
      if (!write_companion(&f, s)) {
        failures = 1;
        snprintf(why, sizeof why, "cannot write x.pipe: %s", strerror(errno));
      } else if (f.seeds[s].generated) {
        failures = fuzz_seed(&f, s, 0, 3 * N_GENERATED, why, sizeof why, &tally);
      } else {
        failures = fuzz_seed(&f, s, first, last, why, sizeof why, &tally);
      }
      char slowest[128];
      input_label(&f, s, tally.slowest_index, slowest, sizeof slowest);
      printf("# %s: exit status 0: %lu, 1: %lu, 2: %lu; slowest: %s, %.2f s\n", f.seeds[s].path, tally.status[0],
             tally.status[1], tally.status[2], slowest, tally.slowest);
      /* Put the seed back for the seeds that import it. */
      char *p = dir_path(&f, f.seeds[s].dir, f.seeds[s].base);
      write_file(p, f.seeds[s].text, f.seeds[s].len);
      free(p);
      if (failures == 0) {
        if (f.seeds[s].generated) printf("ok %zu - %s: %zu in 3 formats\n", s + 1, f.seeds[s].path, N_GENERATED);
        else if (f.only >= 0) printf("ok %zu - %s: mutant %ld\n", s + 1, f.seeds[s].path, f.only);
        else printf("ok %zu - %s: %lu mutants\n", s + 1, f.seeds[s].path, f.count);
      } else {
        printf("not ok %zu - %s: %u failing input%s; first: %s\n", s + 1, f.seeds[s].path, failures,
               failures == 1 ? "" : "s", why);
        status = 1;
      }
      all_failures += failures;
      fflush(stdout);
    }
    remove_dirs(&f);
  }

  for (size_t s = 0; s < f.n_seeds; s++) free(f.seeds[s].text);
  free(f.seeds);
  return status;

bad:
  fprintf(stderr, "fuzz_check: bad option '%s'\n", argv[i]);
  usage(stderr);
  return 2;
}
