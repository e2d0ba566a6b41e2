#include "interp/explain_stages.h"

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "interp/diag.h"
#include "interp/keys.h"
#include "interp/stage_pages.h"
#include "interp/stages.h"

/* Pages are read in a terminal of 80 columns; one is left for the cursor. */
enum { PAGE_WIDTH = 79 };


/* --- what the checker does with an input state ---------------------------- */


/* --- filled text ------------------------------------------------------------ */

/* Columns that S (N bytes of UTF-8) takes: one per code point. */
static size_t columns(const char *s, size_t n) {
  size_t width = 0;
  for (size_t i = 0; i < n; i++) width += ((unsigned char)s[i] & 0xC0) != 0x80;
  return width;
}

/* Words go to the line until the next one would pass PAGE_WIDTH; lines
 * after the first are indented. Text may arrive in pieces that split a
 * word, so a word is held until a space ends it. */
struct filler {
  FILE *out;
  size_t indent, col;
  bool line_has_word;
  char word[256];
  size_t word_len;
};

static void flush_word(struct filler *f) {
  if (f->word_len == 0) return;
  size_t width = columns(f->word, f->word_len);
  if (f->line_has_word && f->col + 1 + width > PAGE_WIDTH) {
    fprintf(f->out, "\n%*s", (int)f->indent, "");
    f->col = f->indent;
    f->line_has_word = false;
  }
  if (f->line_has_word) {
    putc(' ', f->out);
    f->col++;
  }
  fwrite(f->word, 1, f->word_len, f->out);
  f->col += width;
  f->line_has_word = true;
  f->word_len = 0;
}

static void fill_begin(struct filler *f, FILE *out, const char *lead, size_t indent) {
  f->out = out;
  f->indent = indent;
  f->col = columns(lead, strlen(lead));
  f->line_has_word = false;
  f->word_len = 0;
  fputs(lead, out);
}

static void fill_addn(struct filler *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ' || s[i] == '\n') {
      flush_word(f);
      continue;
    }
    if (f->word_len == sizeof f->word) flush_word(f);
    f->word[f->word_len++] = s[i];
  }
}

static void fill_add(struct filler *f, const char *s) { fill_addn(f, s, strlen(s)); }

static void fill_addf(struct filler *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fill_addf(struct filler *f, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) fill_addn(f, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void fill_end(struct filler *f) {
  flush_word(f);
  putc('\n', f->out);
}

/* The paragraphs of a prose text ("\n" between them), separated by blank
 * lines; the first one follows LEAD. */
static void put_paragraphs(FILE *out, const char *lead, const char *text) {
  struct filler f;
  fill_begin(&f, out, lead, 0);
  for (;;) {
    size_t n = strcspn(text, "\n");
    fill_addn(&f, text, n);
    fill_end(&f);
    if (!text[n]) return;
    text += n + 1;
    fputc('\n', out);
    fill_begin(&f, out, "", 0);
  }
}

/* Each paragraph of TEXT as an item of a dashed list. */
static void put_items(FILE *out, const char *text) {
  for (;;) {
    size_t n = strcspn(text, "\n");
    struct filler f;
    fill_begin(&f, out, "  - ", 4);
    fill_addn(&f, text, n);
    fill_end(&f);
    if (!text[n]) return;
    text += n + 1;
  }
}

/* A formula, on one line when it fits. Otherwise it breaks before an
 * operator, preferring the least nested one in the second half of the
 * line, so that the break falls between terms rather than inside one. */
static void put_formula(FILE *out, const char *formula) {
  enum { INDENT = 4, CONTINUED = 8 };
  const char *p = formula;
  size_t indent = INDENT;
  int depth = 0; /* brackets open at p */
  for (;;) {
    size_t avail = PAGE_WIDTH - indent, len = strlen(p);
    if (columns(p, len) <= avail) {
      fprintf(out, "%*s%s\n", (int)indent, "", p);
      return;
    }
    size_t best = 0, fallback = 0;
    int best_rank = 0, d = depth;
    for (size_t i = 0; i < len && columns(p, i) <= avail; i++) {
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
      if (op && columns(p, i) >= avail / 2 && (best == 0 || rank <= best_rank)) {
        best = i;
        best_rank = rank;
      }
    }
    size_t cut = best ? best : fallback;
    if (cut == 0) cut = strcspn(p, " "); /* one word wider than the line */
    if (p[cut] == '\0') {
      fprintf(out, "%*s%s\n", (int)indent, "", p);
      return;
    }
    fprintf(out, "%*s%.*s\n", (int)indent, "", (int)cut, p);
    for (size_t i = 0; i < cut; i++) depth += strchr("([{", p[i]) ? 1 : strchr(")]}", p[i]) ? -1 : 0;
    p += cut + 1;
    indent = CONTINUED;
  }
}


/* --- the page of one stage kind --------------------------------------------- */

/* "instruct (from sft and orpo)": a state and the stage kinds that produce
 * it, which are the stages that can come right before. */
static void add_state_sources(struct filler *f, enum model_state state) {
  fill_add(f, state_name(state));
  size_t producers = 0, done = 0;
  FOR_EACH_ROW(row) producers += row->produces == state;
  FOR_EACH_ROW(row) {
    if (row->produces != state) continue;
    done++;
    fill_addf(f, "%s%s", done == 1 ? " (from " : done == producers ? " and " : ", ", kind_name(row));
  }
  if (producers) fill_add(f, ")");
  else if (state == STATE_UNTRAINED) fill_add(f, " (a model declaration)");
}

/* The kinds whose class is in CLASSES, "a, b or c". */
static void add_kinds_of_classes(struct filler *f, unsigned classes) {
  size_t total = 0, done = 0;
  FOR_EACH_ROW(row) total += (row->class & classes) != 0;
  FOR_EACH_ROW(row) {
    if (!(row->class & classes)) continue;
    done++;
    fill_addf(f, "%s%s", done == 1 ? "" : done == total ? " or " : ", ", kind_name(row));
  }
}

static void add_code(struct filler *f, enum diag_code code) {
  const struct diag_info *info = diag_info(code);
  fill_addf(f, "%s %s", info->code, info->name);
}

/* The states of the row that get VERDICT, "base (W0408 preference-on-base)". */
static void add_states(struct filler *f, const struct stage_row *row, enum input_verdict verdict, bool sources) {
  bool any = false;
  for (int s = 0; s < STATE_COUNT; s++) {
    enum diag_code code = DIAG_COUNT;
    if (stage_input_verdict(row, (enum model_state)s, &code) != verdict) continue;
    if (any) fill_add(f, ", ");
    any = true;
    if (sources) {
      add_state_sources(f, (enum model_state)s);
    } else {
      fill_addf(f, "%s (", state_name((enum model_state)s));
      add_code(f, code);
      fill_add(f, ")");
    }
  }
  if (!any) fill_add(f, "none");
}

static void add_use(struct filler *f, const struct use_doc *doc) {
  fill_addf(f, "%s: %s", doc->word, doc->meaning);
  if (doc->code != DIAG_COUNT) {
    fill_add(f, " (");
    add_code(f, doc->code);
    fill_add(f, ")");
  }
}

enum { FACT_LABEL = 13 };

static void fact_begin(struct filler *f, FILE *out, const char *label) {
  char lead[32];
  snprintf(lead, sizeof lead, "  %-*s  ", FACT_LABEL, label);
  fill_begin(f, out, lead, 2 + FACT_LABEL + 2);
}

/* What the stage table says of the kind: the part of the page that is data,
 * not prose. */
static void put_facts(FILE *out, const struct stage_row *row) {
  struct filler f;
  fputs("In the stage table:\n\n", out);

  fact_begin(&f, out, "starts from");
  add_states(&f, row, INPUT_TRAINS, true);
  fill_end(&f);
  fact_begin(&f, out, "warns on");
  add_states(&f, row, INPUT_WARNS, false);
  fill_end(&f);
  fact_begin(&f, out, "refuses");
  add_states(&f, row, INPUT_REFUSED, false);
  fill_end(&f);
  fact_begin(&f, out, "produces");
  fill_addf(&f, "%s %s model", article(state_name(row->produces)), state_name(row->produces));
  fill_end(&f);
  if (row->warn_after) {
    fact_begin(&f, out, "warns after");
    add_kinds_of_classes(&f, row->warn_after);
    fill_add(&f, " in its lineage (");
    add_code(&f, W0407);
    fill_add(&f, ")");
    fill_end(&f);
  }
  if (row->replay) {
    fact_begin(&f, out, "replays");
    fill_add(&f, "a share of the corpora of the ");
    add_kinds_of_classes(&f, row->replay);
    fill_add(&f, " stages in its lineage (");
    add_code(&f, W0409);
    fill_add(&f, " without it)");
    fill_end(&f);
  }
  fact_begin(&f, out, "reference");
  add_use(&f, &reference_docs[row->reference]);
  fill_end(&f);
  fact_begin(&f, out, "reward");
  add_use(&f, &reward_docs[row->reward]);
  fill_end(&f);
  fact_begin(&f, out, "context");
  if (row->extends_context) {
    fill_add(&f, "may exceed the model's: this stage can extend it");
  } else {
    fill_add(&f, "at most the model's, or that of a stage that extended it (");
    add_code(&f, W0425);
    fill_add(&f, ")");
  }
  fill_end(&f);
  char rate[32];
  rate_text(row->default_lr, rate, sizeof rate);
  fact_begin(&f, out, "learning rate");
  fill_addf(&f, "%s unless adamw(lr = ...) sets one", rate);
  fill_end(&f);
  fact_begin(&f, out, "metrics");
  fill_add(&f, "loss, val_loss");
  for (const char *m = row->metrics; *m;) {
    size_t n = strcspn(m, "|");
    fill_add(&f, ", ");
    fill_addn(&f, m, n);
    m += n + (m[n] == '|');
  }
  fill_add(&f, " (for 'assert')");
  fill_end(&f);
}

static void put_data(FILE *out, const struct stage_row *row, const char *prose) {
  const struct owner_spec *kind = owner_spec(row->data_kind);
  struct filler f;
  fill_begin(&f, out, "Data: ", 0);
  fill_addf(&f, "'%s' names %s %s data set", row->data_key, article(kind->name), kind->name);
  if (row->mix) fill_add(&f, ", or a mix(...) of corpora");
  fill_addf(&f, ": %s. ", kind->doc);
  size_t n = strcspn(prose, "\n");
  fill_addn(&f, prose, n);
  fill_end(&f);
  if (prose[n]) {
    fputc('\n', out);
    put_paragraphs(out, "", prose + n + 1);
  }
}

bool explain_stage_print(FILE *out, const char *name) {
  if (!name) return false;
  const struct owner_spec *owner = owner_find(FAMILY_STAGE, name, strlen(name));
  const struct stage_row *row = owner ? stage_row(owner->id) : NULL;
  const struct stage_page *page = owner ? page_of(owner->id) : NULL;
  if (!row || !page) return false;

  struct filler f;
  char lead[64];
  snprintf(lead, sizeof lead, "%s (%s): ", owner->name, family_name(owner->family));
  fill_begin(&f, out, lead, 4);
  fill_add(&f, owner->doc);
  fill_end(&f);
  fputc('\n', out);
  put_paragraphs(out, "Goal: ", page->goal);
  fputc('\n', out);
  put_data(out, row, page->data);
  fputs("\nObjective:\n\n", out);
  put_formula(out, row->objective);
  fputc('\n', out);
  put_paragraphs(out, "", page->objective);
  fputc('\n', out);
  put_paragraphs(out, "What it learns: ", page->learns);
  fputc('\n', out);
  put_paragraphs(out, "What it cannot learn: ", page->cannot);
  fputs("\nKey risks:\n", out);
  put_items(out, page->risks);
  fputc('\n', out);
  put_paragraphs(out, "When to skip it: ", page->skip);
  fputc('\n', out);
  put_paragraphs(out, "Before it: ", page->before);
  fputc('\n', out);
  put_paragraphs(out, "After it: ", page->after);
  fputc('\n', out);
  put_facts(out, row);
  fputc('\n', out);
  put_paragraphs(out, "Reading: ", page->reading);
  return true;
}

/* --- the ordering rules ----------------------------------------------------- */

static int kind_width(void) {
  int width = (int)strlen("kind");
  FOR_EACH_ROW(row) {
    int n = (int)strlen(kind_name(row));
    if (n > width) width = n;
  }
  return width;
}

/* The input states against each kind: "ok", or the code the state gets. */
static void put_state_table(FILE *out, int kind_w) {
  int state_w[STATE_COUNT];
  fprintf(out, "%-*s", kind_w, "kind");
  for (int s = 0; s < STATE_COUNT; s++) {
    state_w[s] = (int)strlen(state_name((enum model_state)s));
    if (state_w[s] < 5) state_w[s] = 5; /* a code */
    fprintf(out, "  %-*s", state_w[s], state_name((enum model_state)s));
  }
  fputs("  produces\n", out);
  FOR_EACH_ROW(row) {
    fprintf(out, "%-*s", kind_w, kind_name(row));
    for (int s = 0; s < STATE_COUNT; s++) {
      enum diag_code code = DIAG_COUNT;
      enum input_verdict v = stage_input_verdict(row, (enum model_state)s, &code);
      fprintf(out, "  %-*s", state_w[s], v == INPUT_TRAINS ? "ok" : diag_info(code)->code);
    }
    fprintf(out, "  %s\n", state_name(row->produces));
  }
}

/* What each kind consumes and needs. */
static void put_needs_table(FILE *out, int kind_w) {
  char data[64];
  int data_w = (int)strlen("data"), ref_w = (int)strlen("reference"), reward_w = (int)strlen("reward");
  FOR_EACH_ROW(row) {
    int n = snprintf(data, sizeof data, "%s = %s%s", row->data_key, owner_spec(row->data_kind)->name,
                     row->mix ? " or mix" : "");
    if (n > data_w) data_w = n;
    n = (int)strlen(reference_docs[row->reference].word);
    if (n > ref_w) ref_w = n;
    n = (int)strlen(reward_docs[row->reward].word);
    if (n > reward_w) reward_w = n;
  }
  fprintf(out, "%-*s  %-*s  %-*s  %-*s  lr\n", kind_w, "kind", data_w, "data", ref_w, "reference", reward_w,
          "reward");
  FOR_EACH_ROW(row) {
    char rate[32];
    snprintf(data, sizeof data, "%s = %s%s", row->data_key, owner_spec(row->data_kind)->name,
             row->mix ? " or mix" : "");
    rate_text(row->default_lr, rate, sizeof rate);
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", kind_w, kind_name(row), data_w, data, ref_w,
            reference_docs[row->reference].word, reward_w, reward_docs[row->reward].word, rate);
  }
}

static void put_code_item(FILE *out, enum diag_code code, const char *text) {
  const struct diag_info *info = diag_info(code);
  struct filler f;
  char lead[64];
  snprintf(lead, sizeof lead, "  %s %s: ", info->code, info->name);
  fill_begin(&f, out, lead, 4);
  fill_add(&f, text ? text : info->summary);
  fill_end(&f);
}

/* The codes of the state table, once each, in the order of the codes. */
static void put_state_codes(FILE *out) {
  bool seen[DIAG_COUNT] = {false};
  FOR_EACH_ROW(row) {
    for (int s = 0; s < STATE_COUNT; s++) {
      enum diag_code code = DIAG_COUNT;
      if (stage_input_verdict(row, (enum model_state)s, &code) != INPUT_TRAINS) seen[code] = true;
    }
  }
  for (int code = 0; code < DIAG_COUNT; code++)
    if (seen[code]) put_code_item(out, (enum diag_code)code, NULL);
}

static void put_uses(FILE *out, const char *heading, const struct use_doc *docs, size_t n) {
  fprintf(out, "%s:\n", heading);
  for (size_t i = 0; i < n; i++) {
    struct filler f;
    char lead[32];
    snprintf(lead, sizeof lead, "  %s: ", docs[i].word);
    fill_begin(&f, out, lead, 4);
    fill_add(&f, docs[i].meaning);
    if (docs[i].code != DIAG_COUNT) {
      fill_add(&f, " (");
      add_code(&f, docs[i].code);
      fill_add(&f, ")");
    }
    fill_end(&f);
  }
}

static void put_rule(FILE *out, const struct order_rule *rule) {
  const struct diag_info *info = diag_info(rule->code);
  struct filler f;
  char lead[64];
  snprintf(lead, sizeof lead, "  %s %s: ", info->code, info->name);
  fill_begin(&f, out, lead, 4);
  fill_add(&f, rule->text);
  size_t n = 0, total = 0;
  FOR_EACH_ROW(row) {
    total++;
    n += rule_applies(rule->code, row);
  }
  /* Name the shorter side: the kinds checked, or those that are not. */
  bool checked = 2 * n <= total;
  if (n > 0 && n < total) {
    size_t listed = checked ? n : total - n, done = 0;
    fill_add(&f, checked ? " Checked for " : " Checked for every stage kind but ");
    FOR_EACH_ROW(row) {
      if (rule_applies(rule->code, row) != checked) continue;
      done++;
      fill_addf(&f, "%s%s", done == 1 ? "" : done == listed ? " and " : ", ", kind_name(row));
    }
    fill_add(&f, ".");
  }
  fill_end(&f);
}

void explain_order_print(FILE *out) {
  int kind_w = kind_width();
  fputs("order (stage ordering): which stage kind may follow which, from the stage table\n\n", out);
  for (size_t i = 0; i < order_why_count; i++) {
    put_paragraphs(out, "", order_why[i]);
    fputc('\n', out);
  }
  fputs("Model states:\n", out);
  for (int s = 0; s < STATE_COUNT; s++) {
    struct filler f;
    char lead[32];
    snprintf(lead, sizeof lead, "  %s: ", state_name((enum model_state)s));
    fill_begin(&f, out, lead, 4);
    fill_add(&f, state_docs[s]);
    fill_add(&f, ".");
    size_t producers = 0, done = 0;
    FOR_EACH_ROW(row) producers += row->produces == (enum model_state)s;
    FOR_EACH_ROW(row) {
      if (row->produces != (enum model_state)s) continue;
      done++;
      fill_addf(&f, "%s%s", done == 1 ? " Produced by " : done == producers ? " and " : ", ", kind_name(row));
    }
    if (producers) fill_add(&f, ".");
    fill_end(&f);
  }
  fputs("\nInput states: 'ok' trains the model silently; a W code trains it with that\n"
        "warning; an E code refuses it.\n\n",
        out);
  put_state_table(out, kind_w);
  fputc('\n', out);
  put_state_codes(out);
  fputs("\nWhat each stage kind takes: the key naming its data and the data kind;\n"
        "how it uses a reference and a reward; its learning rate when adamw(...)\n"
        "gives none.\n\n",
        out);
  put_needs_table(out, kind_w);
  fputc('\n', out);
  put_uses(out, "The reference column", reference_docs, reference_docs_count);
  put_uses(out, "The reward column", reward_docs, reward_docs_count);
  fputs("\nRules across stages:\n", out);
  for (size_t i = 0; i < order_rules_count; i++) put_rule(out, &order_rules[i]);
  fputs("\n'trainpipe explain KIND' prints the page of a stage kind, 'trainpipe\n"
        "explain CODE' the page of a code.\n",
        out);
}

void explain_stages_list(FILE *out) {
  int kind_w = kind_width();
  fputs("Stage kinds (trainpipe explain KIND; trainpipe explain order for the rules):\n", out);
  FOR_EACH_ROW(row) {
    const struct stage_page *page = page_of(row->owner);
    fprintf(out, "%-*s  %s\n", kind_w, kind_name(row), page ? page->goal_line : owner_spec(row->owner)->doc);
  }
}
