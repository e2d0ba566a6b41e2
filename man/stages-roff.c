/* Prints trainpipe-stages(7), the whole page, from the stage table
 * (interp/stages.def), its prose (interp/stage_pages.def), the key table
 * and the diagnostic codes. man/trainpipe-stages.7 holds a copy of this
 * output: tests/man/stages.test checks that the two agree, and
 * `make update-man` rewrites the page from it.
 *
 * A stage kind's section says what `trainpipe explain KIND` says, and
 * ORDERING RULES what `trainpipe explain order` says, in roff; the only
 * text written here is the frame: the opening paragraph, the headings and
 * the words that join table values into sentences. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "interp/diag.h"
#include "interp/keys.h"
#include "interp/stage_pages.h"
#include "interp/stages.h"

/* Source lines of running text are filled to this many characters. */
enum { FILL_WIDTH = 72 };
/* A formula is set without filling, indented in a subsection; lines longer
 * than this would run past an 80-column terminal. */
enum { FORMULA_WIDTH = 66 };



/* --- roff text ---------------------------------------------------------------- */

/* Writes N bytes of S escaped for roff: a backslash as \e and, where
 * `literal` (formulas, names, codes), a hyphen as the minus sign \-. */
static void put_escaped(FILE *out, const char *s, size_t n, bool literal) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\') fputs("\\e", out);
    else if (s[i] == '-' && literal) fputs("\\-", out);
    else putc(s[i], out);
  }
}

static void put_literal(FILE *out, const char *s) { put_escaped(out, s, strlen(s), true); }

/* Whether WORD (N bytes), followed by NEXT, ends a sentence: roff puts
 * more space after a sentence, and knows one only by a period at the end
 * of a source line. */
static bool ends_sentence(const char *word, size_t n, const char *next) {
  while (n > 0 && strchr(")\"'", word[n - 1])) n--;
  if (n == 0 || !strchr(".?!", word[n - 1])) return false;
  static const char *const abbreviations[] = {"al.", "e.g.", "i.e.", "vs."};
  for (size_t i = 0; i < sizeof abbreviations / sizeof abbreviations[0]; i++) {
    size_t len = strlen(abbreviations[i]);
    if (n >= len && memcmp(word + n - len, abbreviations[i], len) == 0) return false;
  }
  return !next || isupper((unsigned char)*next) || isdigit((unsigned char)*next);
}

/* Running text, one sentence to a source line and no line longer than
 * FILL_WIDTH; roff fills it. Text arrives in pieces, prose to escape or
 * roff to keep, and a piece may end inside a word: words are held, already
 * escaped, until a space or the end of the text settles them. */
struct filler {
  FILE *out;
  size_t col;
  bool after_sentence;
  char word[512];
  size_t word_len;
};

static void flush_word(struct filler *f, const char *next) {
  if (f->word_len == 0) return;
  bool sentence_end = ends_sentence(f->word, f->word_len, next);
  if (f->col > 0 && (f->after_sentence || f->col + 1 + f->word_len > FILL_WIDTH)) {
    putc('\n', f->out);
    f->col = 0;
  }
  if (f->col > 0) {
    putc(' ', f->out);
    f->col++;
  } else if (f->word[0] == '.' || f->word[0] == '\'') {
    fputs("\\&", f->out); /* not a request */
  }
  /* Names (reward_model, chosen_logratio, wrong-input-state) are not
   * hyphenated: a reader would take the hyphen for part of the name. */
  bool name = false;
  for (size_t i = 0; i < f->word_len; i++)
    name |= f->word[i] == '_' || (f->word[i] == '\\' && i + 1 < f->word_len && f->word[i + 1] == '-');
  if (name) {
    fputs("\\%", f->out);
    f->col += 2;
  }
  fwrite(f->word, 1, f->word_len, f->out);
  f->col += f->word_len;
  /* A period that does not end a sentence must not look like one. */
  size_t n = f->word_len;
  while (n > 0 && strchr(")\"'", f->word[n - 1])) n--;
  if (!sentence_end && n > 0 && strchr(".?!", f->word[n - 1])) {
    fputs("\\&", f->out);
    f->col += 2;
  }
  f->after_sentence = sentence_end;
  f->word_len = 0;
}

static void fill_begin(struct filler *f, FILE *out) {
  f->out = out;
  f->col = 0;
  f->after_sentence = false;
  f->word_len = 0;
}

static void add_byte(struct filler *f, char c) {
  if (f->word_len == sizeof f->word) flush_word(f, NULL);
  f->word[f->word_len++] = c;
}

enum escape { ESCAPE_PROSE, ESCAPE_LITERAL, ESCAPE_NONE };

static void fill_addn(struct filler *f, const char *s, size_t n, enum escape escape) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ' || s[i] == '\n') {
      size_t j = i;
      while (j < n && (s[j] == ' ' || s[j] == '\n')) j++;
      flush_word(f, j < n ? s + j : NULL);
      i = j - 1;
    } else if (s[i] == '\\' && escape != ESCAPE_NONE) {
      add_byte(f, '\\');
      add_byte(f, 'e');
    } else if (s[i] == '-' && escape == ESCAPE_LITERAL) {
      add_byte(f, '\\');
      add_byte(f, '-');
    } else {
      add_byte(f, s[i]);
    }
  }
}

static void fill_text(struct filler *f, const char *s) { fill_addn(f, s, strlen(s), ESCAPE_PROSE); }
static void fill_roff(struct filler *f, const char *s) { fill_addn(f, s, strlen(s), ESCAPE_NONE); }

static void fill_bold(struct filler *f, const char *name) {
  fill_roff(f, "\\fB");
  fill_addn(f, name, strlen(name), ESCAPE_LITERAL);
  fill_roff(f, "\\fR");
}

static void fill_end(struct filler *f) {
  flush_word(f, NULL);
  if (f->col > 0) putc('\n', f->out);
  f->col = 0;
}

static void put_text(FILE *out, const char *text, size_t n) {
  struct filler f;
  fill_begin(&f, out);
  fill_addn(&f, text, n, ESCAPE_PROSE);
  fill_end(&f);
}

/* Prose paragraphs ("\n" between them); the first follows a bold LABEL
 * when there is one. */
static void put_paragraphs(FILE *out, const char *label, const char *text) {
  fputs(".PP\n", out);
  if (label) fprintf(out, ".B %s\n", label);
  for (;;) {
    size_t n = strcspn(text, "\n");
    put_text(out, text, n);
    if (!text[n]) return;
    text += n + 1;
    fputs(".PP\n", out);
  }
}

/* Each paragraph of TEXT as an item of a bulleted list. */
static void put_items(FILE *out, const char *text) {
  for (;;) {
    size_t n = strcspn(text, "\n");
    fputs(".IP \\(bu 2\n", out);
    put_text(out, text, n);
    if (!text[n]) return;
    text += n + 1;
  }
}

/* A formula, unfilled; a line too long for the page breaks before an
 * operator, preferring the least nested one in the second half of the
 * line, so that the break falls between terms. */
static void put_formula(FILE *out, const char *formula) {
  fputs(".PP\n.RS 4\n.nf\n", out);
  const char *p = formula;
  size_t avail = FORMULA_WIDTH;
  int depth = 0;
  for (;;) {
    size_t len = strlen(p);
    size_t cut = 0;
    if (len > avail) {
      size_t best = 0, fallback = 0;
      int best_rank = 0, d = depth;
      for (size_t i = 0; i < len && i <= avail; i++) {
        if (strchr("([{", p[i])) d++;
        else if (strchr(")]}", p[i])) d--;
        if (p[i] != ' ' || i == 0) continue;
        fallback = i;
        const char *next = p + i + 1;
        size_t word = strcspn(next, " ");
        bool additive = (word == 1 && strchr("-+", next[0])) || (word == 4 && strncmp(next, "plus", 4) == 0);
        bool op = additive || (word == 1 && strchr("*/", next[0]));
        /* outer brackets first, then sums before products */
        int rank = 2 * d + !additive;
        if (op && i >= avail / 2 && (best == 0 || rank <= best_rank)) {
          best = i;
          best_rank = rank;
        }
      }
      cut = best ? best : fallback;
      if (cut == 0) cut = strcspn(p, " ");
    }
    if (cut == 0 || p[cut] == '\0') {
      if (avail < FORMULA_WIDTH) fputs("    ", out);
      put_literal(out, p);
      fputs("\n.fi\n.RE\n", out);
      return;
    }
    if (avail < FORMULA_WIDTH) fputs("    ", out);
    put_escaped(out, p, cut, true);
    putc('\n', out);
    for (size_t i = 0; i < cut; i++) depth += strchr("([{", p[i]) ? 1 : strchr(")]}", p[i]) ? -1 : 0;
    p += cut + 1;
    avail = FORMULA_WIDTH - 4;
  }
}


static void fill_code(struct filler *f, enum diag_code code) {
  const struct diag_info *info = diag_info(code);
  fill_text(f, info->code);
  fill_text(f, " ");
  fill_addn(f, info->name, strlen(info->name), ESCAPE_LITERAL);
}

/* TEXT as a sentence: capitalised, ending in a period. */
static void fill_sentence(struct filler *f, const char *text) {
  char first[2] = {(char)toupper((unsigned char)text[0]), '\0'};
  fill_text(f, first);
  fill_text(f, text + 1);
  if (text[0] && text[strlen(text) - 1] != '.') fill_text(f, ".");
}

static void put_sentence(FILE *out, const char *text) {
  struct filler f;
  fill_begin(&f, out);
  fill_sentence(&f, text);
  fill_end(&f);
}

/* "a, b and c": the stage kinds for which KEEP(row, arg) holds. */
static void fill_kinds(struct filler *f, bool (*keep)(const struct stage_row *, const void *), const void *arg,
                       const char *last_sep) {
  size_t total = 0, done = 0;
  FOR_EACH_ROW(row) total += keep(row, arg);
  FOR_EACH_ROW(row) {
    if (!keep(row, arg)) continue;
    done++;
    if (done > 1) fill_text(f, done == total ? last_sep : ", ");
    fill_bold(f, kind_name(row));
  }
}

static bool produces_state(const struct stage_row *row, const void *state) {
  return row->produces == *(const enum model_state *)state;
}

static bool in_classes(const struct stage_row *row, const void *classes) {
  return (row->class & *(const unsigned *)classes) != 0;
}

/* "base (from pretrain and midtrain)" */
static void fill_state_sources(struct filler *f, enum model_state state) {
  fill_bold(f, state_name(state));
  bool any = false;
  FOR_EACH_ROW(row) any |= row->produces == state;
  if (any) {
    fill_text(f, " (from ");
    fill_kinds(f, produces_state, &state, " and ");
    fill_text(f, ")");
  } else if (state == STATE_UNTRAINED) {
    fill_text(f, " (a model declaration)");
  }
}

/* --- the page ------------------------------------------------------------------- */

static void put_header(FILE *out) {
  fputs(".\\\" trainpipe-stages(7): the stage kinds and the order they run in.\n"
        ".\\\" Generated by man/stages-roff from interp/stages.def,\n"
        ".\\\" interp/stage_pages.def, interp/keys.def and interp/diag_codes.def;\n"
        ".\\\" edit those and run `make update-man`.\n",
        out);
  fprintf(out, ".TH TRAINPIPE-STAGES 7 2026-11-26 \"%s\" \"trainpipe manual\"\n", PACKAGE_STRING);
  fputs(".SH NAME\n"
        "trainpipe-stages \\- the stages of a training pipeline and their order\n",
        out);
}

static void put_description(FILE *out) {
  fputs(".SH DESCRIPTION\n"
        "A pipeline file (see\n"
        ".BR trainpipe.pipe (5))\n"
        "trains a language model in stages.\n"
        "Each stage starts from a model, trains it on one kind of data with one\n"
        "objective, and hands on a model in a new state.\n"
        "This page says, for each stage kind, what it is for, what data and\n"
        "objective it uses, what it can and cannot teach, its risks, when to skip\n"
        "it, and which stages come before and after it and why.\n"
        "The same text is printed by\n"
        ".B trainpipe explain\n"
        ".IR KIND ,\n"
        "and the rules of\n"
        ".B ORDERING RULES\n"
        "by\n"
        ".BR \"trainpipe explain order\" .\n"
        ".SS \"Model states\"\n"
        "The checker follows the state of every model from stage to stage.\n",
        out);
  for (int s = 0; s < STATE_COUNT; s++) {
    struct filler f;
    fputs(".TP\n.B ", out);
    put_literal(out, state_name((enum model_state)s));
    putc('\n', out);
    fill_begin(&f, out);
    fill_sentence(&f, state_docs[s]);
    bool produced = false;
    FOR_EACH_ROW(row) produced |= row->produces == (enum model_state)s;
    if (produced) {
      enum model_state state = (enum model_state)s;
      fill_text(&f, " Produced by ");
      fill_kinds(&f, produces_state, &state, " and ");
      fill_text(&f, ".");
    }
    fill_end(&f);
  }
  fputs(".SS \"Why this order\"\n", out);
  for (size_t i = 0; i < order_why_count; i++) {
    if (i > 0) fputs(".PP\n", out);
    put_text(out, order_why[i], strlen(order_why[i]));
  }
}

/* The states of the row that get VERDICT: "base (W0408 preference-on-base)",
 * or with SOURCES, the stage kinds that produce each state. */
static void fill_states(struct filler *f, const struct stage_row *row, enum input_verdict verdict, bool sources) {
  size_t total = 0, done = 0;
  for (int s = 0; s < STATE_COUNT; s++) {
    enum diag_code code = DIAG_COUNT;
    total += stage_input_verdict(row, (enum model_state)s, &code) == verdict;
  }
  if (total == 0) fill_text(f, "none");
  for (int s = 0; s < STATE_COUNT; s++) {
    enum diag_code code = DIAG_COUNT;
    if (stage_input_verdict(row, (enum model_state)s, &code) != verdict) continue;
    done++;
    if (done > 1) fill_text(f, done == total ? " and " : ", ");
    if (sources) {
      fill_state_sources(f, (enum model_state)s);
    } else {
      fill_bold(f, state_name((enum model_state)s));
      if (verdict != INPUT_TRAINS) {
        fill_text(f, " (");
        fill_code(f, code);
        fill_text(f, ")");
      }
    }
  }
}

/* What a value of the reference or reward column means, and the code that
 * enforces it: as a sentence, or as the rest of one. */
static void fill_use(struct filler *f, const struct use_doc *doc, bool sentence) {
  if (sentence) fill_sentence(f, doc->meaning);
  else fill_text(f, doc->meaning);
  if (doc->code != DIAG_COUNT) {
    fill_text(f, sentence ? " See " : " (");
    fill_code(f, doc->code);
    fill_text(f, sentence ? "." : ")");
  }
}

/* One entry of a list of table facts: a tagged paragraph, the tag beside
 * it (the longest, "learning rate", fits the indent). */
static void fact_begin(struct filler *f, FILE *out, const char *label) {
  fprintf(out, ".TP 15\n%s\n", label);
  fill_begin(f, out);
}

static void put_facts(FILE *out, const struct stage_row *row) {
  struct filler f;
  /* One fact to a line and words not spread apart, as in a table. */
  fputs(".PP\n.B In the stage table:\n.PD 0\n.ad l\n", out);
  fact_begin(&f, out, "starts from");
  fill_states(&f, row, INPUT_TRAINS, true);
  fill_end(&f);
  fact_begin(&f, out, "warns on");
  fill_states(&f, row, INPUT_WARNS, false);
  fill_end(&f);
  fact_begin(&f, out, "refuses");
  fill_states(&f, row, INPUT_REFUSED, false);
  fill_end(&f);
  fact_begin(&f, out, "produces");
  fill_text(&f, article(state_name(row->produces)));
  fill_text(&f, " ");
  fill_bold(&f, state_name(row->produces));
  fill_text(&f, " model");
  fill_end(&f);
  if (row->warn_after) {
    fact_begin(&f, out, "warns after");
    fill_kinds(&f, in_classes, &row->warn_after, " or ");
    fill_text(&f, " in its lineage (");
    fill_code(&f, W0407);
    fill_text(&f, ")");
    fill_end(&f);
  }
  if (row->replay) {
    fact_begin(&f, out, "replays");
    fill_text(&f, "a share of the corpora of the ");
    fill_kinds(&f, in_classes, &row->replay, " or ");
    fill_text(&f, " stages in its lineage (");
    fill_code(&f, W0409);
    fill_text(&f, " without it)");
    fill_end(&f);
  }
  fact_begin(&f, out, "reference");
  fill_bold(&f, reference_docs[row->reference].word);
  fill_text(&f, ": ");
  fill_use(&f, &reference_docs[row->reference], false);
  fill_end(&f);
  fact_begin(&f, out, "reward");
  fill_bold(&f, reward_docs[row->reward].word);
  fill_text(&f, ": ");
  fill_use(&f, &reward_docs[row->reward], false);
  fill_end(&f);
  fact_begin(&f, out, "context");
  if (row->extends_context) {
    fill_text(&f, "may exceed the model's: this stage can extend it");
  } else {
    fill_text(&f, "at most the model's, or that of a stage that extended it (");
    fill_code(&f, W0425);
    fill_text(&f, ")");
  }
  fill_end(&f);
  char rate[32];
  rate_text(row->default_lr, rate, sizeof rate);
  fact_begin(&f, out, "learning rate");
  fill_bold(&f, rate);
  fill_text(&f, " unless adamw(lr = ...) sets one");
  fill_end(&f);
  fact_begin(&f, out, "metrics");
  fill_bold(&f, "loss");
  fill_text(&f, ", ");
  fill_bold(&f, "val_loss");
  for (const char *m = row->metrics; *m;) {
    char name[64];
    size_t n = strcspn(m, "|");
    snprintf(name, sizeof name, "%.*s", (int)n, m);
    fill_text(&f, ", ");
    fill_bold(&f, name);
    m += n + (m[n] == '|');
  }
  fill_text(&f, " (for ");
  fill_bold(&f, "assert");
  fill_text(&f, ")");
  fill_end(&f);
  fputs(".PD\n.ad\n", out);
}

static void put_data(FILE *out, const struct stage_row *row, const char *prose) {
  const struct owner_spec *kind = owner_spec(row->data_kind);
  struct filler f;
  fputs(".PP\n.B Data:\n", out);
  fill_begin(&f, out);
  fill_bold(&f, row->data_key);
  fill_text(&f, " names ");
  fill_text(&f, article(kind->name));
  fill_text(&f, " ");
  fill_bold(&f, kind->name);
  fill_text(&f, " data set");
  if (row->mix) fill_text(&f, ", or a mix(...) of corpora");
  fill_text(&f, ": ");
  fill_text(&f, kind->doc);
  fill_text(&f, ". ");
  size_t n = strcspn(prose, "\n");
  fill_addn(&f, prose, n, ESCAPE_PROSE);
  fill_end(&f);
  if (prose[n]) put_paragraphs(out, NULL, prose + n + 1);
}

static void put_stage(FILE *out, const struct stage_row *row) {
  const struct owner_spec *owner = owner_spec(row->owner);
  const struct stage_page *page = page_of(row->owner);
  fputs(".SS ", out);
  put_literal(out, owner->name);
  putc('\n', out);
  put_sentence(out, owner->doc);
  if (!page) return;
  put_paragraphs(out, "Goal:", page->goal);
  put_data(out, row, page->data);
  fputs(".PP\n.B Objective:\n", out);
  put_formula(out, row->objective);
  put_paragraphs(out, NULL, page->objective);
  put_paragraphs(out, "What it learns:", page->learns);
  put_paragraphs(out, "What it cannot learn:", page->cannot);
  fputs(".PP\n.B Key risks:\n", out);
  put_items(out, page->risks);
  put_paragraphs(out, "When to skip it:", page->skip);
  put_paragraphs(out, "Before it:", page->before);
  put_paragraphs(out, "After it:", page->after);
  put_facts(out, row);
  put_paragraphs(out, "Reading:", page->reading);
}

static void put_code_tag(FILE *out, enum diag_code code) {
  const struct diag_info *info = diag_info(code);
  fprintf(out, ".TP\n.B \"%s ", info->code);
  put_literal(out, info->name);
  fputs("\"\n", out);
}

struct rule_side {
  enum diag_code code;
  bool checked;
};

static bool on_side(const struct stage_row *row, const void *side) {
  const struct rule_side *s = side;
  return rule_applies(s->code, row) == s->checked;
}

static void put_rule(FILE *out, const struct order_rule *rule) {
  struct filler f;
  put_code_tag(out, rule->code);
  fill_begin(&f, out);
  fill_text(&f, rule->text);
  size_t n = 0, total = 0;
  FOR_EACH_ROW(row) {
    total++;
    n += rule_applies(rule->code, row);
  }
  /* Name the shorter side: the kinds checked, or those that are not. */
  struct rule_side side = {rule->code, 2 * n <= total};
  if (n > 0 && n < total) {
    fill_text(&f, side.checked ? " Checked for " : " Checked for every stage kind but ");
    fill_kinds(&f, on_side, &side, " and ");
    fill_text(&f, ".");
  }
  fill_end(&f);
}

static void put_uses(FILE *out, const char *key, const struct use_doc *docs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct filler f;
    fprintf(out, ".TP\n.BR %s \": %s\"\n", key, docs[i].word);
    fill_begin(&f, out);
    fill_use(&f, &docs[i], true);
    fill_end(&f);
  }
}

static void put_ordering(FILE *out) {
  fputs(".SH \"ORDERING RULES\"\n"
        "Each stage kind trains models in some states silently, trains others\n"
        "with a warning and refuses the rest with an error; the code names the\n"
        "rule.\n"
        "An\n"
        ".B untrained\n"
        "model is refused by every kind but the one that trains random weights.\n"
        ".SS \"Stage kinds\"\n",
        out);
  FOR_EACH_ROW(row) {
    struct filler f;
    fputs(".TP 14\n.B ", out);
    put_literal(out, kind_name(row));
    putc('\n', out);
    fill_begin(&f, out);
    fill_text(&f, "Trains ");
    fill_states(&f, row, INPUT_TRAINS, false);
    fill_text(&f, " models; warns on ");
    fill_states(&f, row, INPUT_WARNS, false);
    fill_text(&f, "; refuses ");
    fill_states(&f, row, INPUT_REFUSED, false);
    fill_text(&f, ". Produces ");
    fill_text(&f, article(state_name(row->produces)));
    fill_text(&f, " ");
    fill_bold(&f, state_name(row->produces));
    fill_text(&f, " model.");
    fill_end(&f);
    fputs(".br\n", out);
    fill_begin(&f, out);
    fill_text(&f, "Data: ");
    fill_bold(&f, row->data_key);
    fill_text(&f, " = ");
    fill_text(&f, owner_spec(row->data_kind)->name);
    if (row->mix) fill_text(&f, " or a mix(...) of corpora");
    fill_text(&f, "; reference: ");
    fill_text(&f, reference_docs[row->reference].word);
    fill_text(&f, "; reward: ");
    fill_text(&f, reward_docs[row->reward].word);
    char rate[32];
    rate_text(row->default_lr, rate, sizeof rate);
    fill_text(&f, "; learning rate: ");
    fill_bold(&f, rate);
    fill_text(&f, ".");
    fill_end(&f);
  }
  fputs(".SS \"Codes of the input states\"\n", out);
  bool seen[DIAG_COUNT] = {false};
  FOR_EACH_ROW(row) {
    for (int s = 0; s < STATE_COUNT; s++) {
      enum diag_code code = DIAG_COUNT;
      if (stage_input_verdict(row, (enum model_state)s, &code) != INPUT_TRAINS) seen[code] = true;
    }
  }
  for (int code = 0; code < DIAG_COUNT; code++) {
    if (!seen[code]) continue;
    put_code_tag(out, (enum diag_code)code);
    put_sentence(out, diag_info((enum diag_code)code)->summary);
  }
  fputs(".SS \"References and rewards\"\n", out);
  put_uses(out, "reference", reference_docs, reference_docs_count);
  put_uses(out, "reward", reward_docs, reward_docs_count);
  fputs(".SS \"Rules across stages\"\n", out);
  for (size_t i = 0; i < order_rules_count; i++) put_rule(out, &order_rules[i]);
}

int main(void) {
  put_header(stdout);
  put_description(stdout);
  fputs(".SH \"STAGE KINDS\"\n", stdout);
  FOR_EACH_ROW(row) put_stage(stdout, row);
  put_ordering(stdout);
  fputs(".SH \"SEE ALSO\"\n"
        ".BR trainpipe (1),\n"
        ".BR trainpipe.pipe (5)\n",
        stdout);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("stages-roff: stdout");
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
