/* The teaching pages of the stage kinds and the ordering table. Every stage
 * kind has a page with every heading; what the stage table knows (states,
 * codes, data kind, reference, reward, learning rate, metrics, objective)
 * is on the page as the table says it; every code a page names exists; and
 * everything fits an 80-column terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/diag.h"
#include "interp/explain_stages.h"
#include "interp/json_line.h"
#include "interp/keys.h"
#include "interp/stages.h"
#include "tests/unit/suites.h"

struct captured {
  bool found;
  char *text;
};

static struct captured capture_stage(const char *name) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(out);
  bool found = explain_stage_print(out, name);
  fclose(out);
  return (struct captured){found, buf};
}

static char *capture(void (*print)(FILE *)) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  ck_assert_ptr_nonnull(out);
  print(out);
  fclose(out);
  return buf;
}

/* TEXT with every run of spaces and newlines made one space, so that a
 * phrase is found wherever the filling broke its lines. */
static char *flat(const char *text) {
  char *out = malloc(strlen(text) + 1), *o = out;
  ck_assert_ptr_nonnull(out);
  for (const char *p = text; *p; p++) {
    if (*p == ' ' || *p == '\n') {
      if (o > out && o[-1] != ' ') *o++ = ' ';
    } else {
      *o++ = *p;
    }
  }
  *o = '\0';
  return out;
}

static void assert_has(const char *where, const char *text, const char *phrase) {
  char *f = flat(text), *p = flat(phrase);
  ck_assert_msg(strstr(f, p) != NULL, "%s: '%s' is missing", where, p);
  free(f);
  free(p);
}

/* Lines of at most 79 columns (code points), the text ending in one newline. */
static void assert_fits(const char *where, const char *text) {
  size_t len = strlen(text);
  ck_assert_msg(len > 0 && text[len - 1] == '\n', "%s: does not end in a newline", where);
  ck_assert_msg(len < 2 || text[len - 2] != '\n', "%s: ends in a blank line", where);
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    size_t columns = 0;
    for (const char *c = line; c < nl; c++) columns += ((unsigned char)*c & 0xC0) != 0x80;
    ck_assert_msg(columns <= 79, "%s: a line of %zu columns: %.*s", where, columns, (int)(nl - line), line);
    ck_assert_msg(nl == line || nl[-1] != ' ', "%s: trailing space: %.*s", where, (int)(nl - line), line);
    line = nl + 1;
  }
}

/* Every E/W/N code followed by four digits must be one that exists. */
static void assert_codes_exist(const char *where, const char *text) {
  for (const char *p = text; *p; p++) {
    if (!strchr("EWN", *p) || (p > text && ((p[-1] >= 'A' && p[-1] <= 'Z') || (p[-1] >= '0' && p[-1] <= '9'))))
      continue;
    size_t digits = strspn(p + 1, "0123456789");
    if (digits != 4) continue;
    enum diag_code code;
    ck_assert_msg(diag_lookup(p, 5, &code), "%s: names %.5s, which is no diagnostic code", where, p);
  }
}

static size_t stage_kind_count(void) {
  size_t n = 0;
  for (int id = 0; id < OWNER_COUNT; id++) n += stage_row((enum owner_id)id) != NULL;
  return n;
}

/* The JSONL fields of each data kind, as the data checks (check_data.c)
 * require them. */
static const char *fields_of_kind(enum owner_id kind) {
  switch (kind) {
  case OWNER_DEMOS: return "prompt response messages";
  case OWNER_PREFS: return "prompt chosen rejected";
  case OWNER_FEEDBACK: return "prompt completion label";
  case OWNER_PROMPTS: return "prompt";
  default: return "";
  }
}

START_TEST(every_stage_kind_has_a_page) {
  static const char *const headings[] = {
      "\n\nGoal: ",
      "\n\nData: ",
      "\n\nObjective:\n\n",
      "\n\nWhat it learns: ",
      "\n\nWhat it cannot learn: ",
      "\n\nKey risks:\n  - ",
      "\n\nWhen to skip it: ",
      "\n\nBefore it: ",
      "\n\nAfter it: ",
      "\n\nIn the stage table:\n\n",
      "\n\nReading: ",
  };
  size_t pages = 0;
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    struct captured page = capture_stage(name);
    ck_assert_msg(page.found, "%s has no page", name);
    pages++;
    char header[64];
    snprintf(header, sizeof header, "%s (stage kind): ", name);
    ck_assert_msg(strncmp(page.text, header, strlen(header)) == 0, "%s: the page starts with %.40s", name,
                  page.text);
    const char *at = page.text;
    for (size_t h = 0; h < sizeof headings / sizeof headings[0]; h++) {
      const char *found = strstr(at, headings[h]);
      ck_assert_msg(found != NULL, "%s: no heading '%s' (in this order)", name, headings[h] + 2);
      at = found + 1;
    }
    assert_fits(name, page.text);
    assert_codes_exist(name, page.text);
    ck_assert_msg(strlen(page.text) > 2500, "%s: a page too short to teach anything", name);
    free(page.text);
  }
  ck_assert_uint_eq(pages, stage_kind_count());
  ck_assert_uint_eq(pages, 12);
}
END_TEST

/* What the stage table knows is on the page as the table says it. */
START_TEST(pages_print_the_stage_table) {
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    struct captured page = capture_stage(name);
    ck_assert(page.found);
    char phrase[256];

    assert_has(name, page.text, row->objective);
    snprintf(phrase, sizeof phrase, "'%s' names a %s data set", row->data_key, owner_spec(row->data_kind)->name);
    assert_has(name, page.text, phrase);
    const char *produces = state_name(row->produces);
    snprintf(phrase, sizeof phrase, "produces %s %s model", strchr("aeiou", produces[0]) ? "an" : "a", produces);
    assert_has(name, page.text, phrase);
    for (const char *m = row->metrics; *m;) {
      size_t n = strcspn(m, "|");
      snprintf(phrase, sizeof phrase, ", %.*s", (int)n, m);
      assert_has(name, page.text, phrase);
      m += n + (m[n] == '|');
    }
    assert_has(name, page.text, "metrics loss, val_loss");
    assert_has(name, page.text, row->reward ? "reward needed: " : "reward none: ");
    static const char *const uses[] = {"none", "optional", "required", "unused"};
    snprintf(phrase, sizeof phrase, "reference %s: ", uses[row->reference]);
    assert_has(name, page.text, phrase);
    if (row->reference == REF_REQUIRED) assert_has(name, page.text, "E0402 missing-reference");
    if (row->reference == REF_UNUSED) assert_has(name, page.text, "W0418 unused-reference");
    if (row->reward) assert_has(name, page.text, "E0412 missing-reward");
    if (row->warn_after) assert_has(name, page.text, "W0407 sft-after-alignment");
    if (row->replay) assert_has(name, page.text, "W0409 no-replay");

    /* Each state under the heading its verdict puts it, with its code. */
    for (int s = 0; s < STATE_COUNT; s++) {
      unsigned bit = 1u << s;
      const char *state = state_name((enum model_state)s);
      if (row->ok & bit) {
        snprintf(phrase, sizeof phrase, "%s (", state);
        char *starts = strstr(page.text, "starts from"), *warns = strstr(page.text, "warns on");
        ck_assert(starts && warns);
        char *found = strstr(starts, phrase);
        ck_assert_msg(found && found < warns, "%s: '%s' is not among the states it starts from", name, state);
        continue;
      }
      const struct diag_info *info = diag_info(s == STATE_UNTRAINED ? E0401
                                               : row->warn & bit     ? row->warn_code
                                               : s == STATE_REWARD   ? E0428
                                                                     : row->error_code);
      snprintf(phrase, sizeof phrase, "%s (%s %s)", state, info->code, info->name);
      assert_has(name, page.text, phrase);
    }
    free(page.text);
  }
}
END_TEST

/* The cases a reader looks for first. */
START_TEST(pages_state_the_well_known_facts) {
  struct captured dpo = capture_stage("dpo");
  ck_assert(dpo.found);
  assert_has("dpo", dpo.text, "reference required: the objective is defined against 'reference = frozen(NAME)'; "
                              "a stage without one is refused (E0402 missing-reference)");
  assert_has("dpo", dpo.text, "warns on base (W0408 preference-on-base)");
  assert_has("dpo", dpo.text, "refuses untrained (E0401 untrained-input), reward (E0428 wrong-input-state)");
  assert_has("dpo", dpo.text, "learning rate 1e-6 unless adamw(lr = ...) sets one");
  assert_has("dpo", dpo.text, "{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}");
  free(dpo.text);

  struct captured pretrain = capture_stage("pretrain");
  ck_assert(pretrain.found);
  assert_has("pretrain", pretrain.text,
             "starts from untrained (a model declaration), base (from pretrain and midtrain)");
  assert_has("pretrain", pretrain.text, "refuses reward (E0428 wrong-input-state)");
  assert_has("pretrain", pretrain.text, "'data' names a corpus data set, or a mix(...) of corpora");
  assert_has("pretrain", pretrain.text, "learning rate 6e-4");
  free(pretrain.text);

  struct captured ppo = capture_stage("ppo");
  ck_assert(ppo.found);
  assert_has("ppo", ppo.text, "base (E0406 rl-without-sft)");
  assert_has("ppo", ppo.text, "reward needed: 'reward' names a reward_model stage or a verifier(...)");
  assert_has("ppo", ppo.text, "reference optional: ");
  free(ppo.text);

  struct captured sft = capture_stage("sft");
  ck_assert(sft.found);
  assert_has("sft", sft.text, "What it cannot learn: New world knowledge.");
  assert_has("sft", sft.text, "produces an instruct model");
  free(sft.text);

  struct captured midtrain = capture_stage("midtrain");
  ck_assert(midtrain.found);
  assert_has("midtrain", midtrain.text, "context may exceed the model's");
  free(midtrain.text);
}
END_TEST

/* Each page gives the JSONL fields of its data kind, by the names the
 * data checks and the JSONL scanner use. */
START_TEST(pages_name_the_jsonl_fields) {
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    struct captured page = capture_stage(name);
    const char *fields = fields_of_kind(row->data_kind);
    for (const char *f = fields; *f;) {
      size_t n = strcspn(f, " ");
      ck_assert_msg(json_field_find(f, n) != JSON_FIELD_COUNT, "%.*s is not a field the scanner knows", (int)n, f);
      char quoted[32];
      snprintf(quoted, sizeof quoted, "\"%.*s\":", (int)n, f);
      ck_assert_msg(strstr(page.text, quoted) != NULL, "%s: the field %s is not shown", name, quoted);
      f += n + (f[n] == ' ');
    }
    if (row->data_kind == OWNER_CORPUS) assert_has(name, page.text, "No JSONL fields");
    free(page.text);
  }
}
END_TEST

START_TEST(unknown_names_print_nothing) {
  static const char *const names[] = {"", "DPO", "dp", "dpo ", " dpo", "corpus", "mix", "frozen", "E0402",
                                      "missing-reference", "order", "sft\n", "online-dpo"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    struct captured page = capture_stage(names[i]);
    ck_assert_msg(!page.found, "'%s' has a page", names[i]);
    ck_assert_msg(page.text[0] == '\0', "'%s' printed: %.40s", names[i], page.text);
    free(page.text);
  }
  struct captured none = capture_stage(NULL);
  ck_assert(!none.found);
  ck_assert_str_eq(none.text, "");
  free(none.text);
}
END_TEST

/* The state table: a header naming every state, then one row per stage
 * kind in the table's order, with "ok" or the code of each state. */
START_TEST(order_has_a_row_per_stage_kind) {
  char *order = capture(explain_order_print);
  assert_fits("order", order);
  assert_codes_exist("order", order);
  const char *header = strstr(order, "\nkind ");
  ck_assert_ptr_nonnull(header);
  for (int s = 0; s < STATE_COUNT; s++) {
    const char *nl = strchr(header + 1, '\n');
    const char *state = strstr(header, state_name((enum model_state)s));
    ck_assert_msg(state && state < nl, "the state table has no column for %s", state_name((enum model_state)s));
  }
  const char *line = strchr(header + 1, '\n') + 1;
  size_t rows = 0;
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    size_t n = strlen(name);
    ck_assert_msg(strncmp(line, name, n) == 0 && line[n] == ' ', "row %zu is not %s: %.30s", rows, name, line);
    const char *nl = strchr(line, '\n');
    char cells[STATE_COUNT + 1][16];
    int got = sscanf(line + n, "%15s %15s %15s %15s %15s %15s", cells[0], cells[1], cells[2], cells[3], cells[4],
                     cells[5]);
    ck_assert_int_eq(got, STATE_COUNT + 1);
    for (int s = 0; s < STATE_COUNT; s++) {
      unsigned bit = 1u << s;
      const char *want = row->ok & bit                ? "ok"
                         : s == STATE_UNTRAINED       ? "E0401"
                         : row->warn & bit            ? diag_info(row->warn_code)->code
                         : s == STATE_REWARD          ? "E0428"
                                                      : diag_info(row->error_code)->code;
      ck_assert_msg(strcmp(cells[s], want) == 0, "%s, %s: '%s', not '%s'", name, state_name((enum model_state)s),
                    cells[s], want);
    }
    ck_assert_str_eq(cells[STATE_COUNT], state_name(row->produces));
    rows++;
    line = nl + 1;
  }
  ck_assert_msg(*line == '\n', "the state table has more rows than stage kinds: %.30s", line);
  ck_assert_uint_eq(rows, stage_kind_count());

  /* The second table: one row per kind again, with its data key and kind. */
  const char *needs = strstr(line, "\nkind ");
  ck_assert_ptr_nonnull(needs);
  line = strchr(needs + 1, '\n') + 1;
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    ck_assert_msg(strncmp(line, name, strlen(name)) == 0, "needs row is not %s: %.30s", name, line);
    char data[64];
    snprintf(data, sizeof data, " %s = %s", row->data_key, owner_spec(row->data_kind)->name);
    const char *nl = strchr(line, '\n');
    const char *found = strstr(line, data);
    ck_assert_msg(found && found < nl, "%s: '%s' is not in its row", name, data + 1);
    line = nl + 1;
  }
  free(order);
}
END_TEST

START_TEST(order_names_the_real_codes) {
  char *order = capture(explain_order_print);
  static const enum diag_code codes[] = {E0401, E0402, E0403, E0404, W0405, E0406, W0407, W0408, W0409,
                                         E0412, E0413, W0414, W0418, E0420, E0421, E0422, E0423, N0424,
                                         W0425, W0426, E0428};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const struct diag_info *info = diag_info(codes[i]);
    char phrase[96];
    snprintf(phrase, sizeof phrase, "%s %s", info->code, info->name);
    assert_has("order", order, phrase);
  }
  assert_has("order", order, "W0407 sft-after-alignment: Supervised fine-tuning after preference optimisation or "
                             "RL");
  assert_has("order", order, "Checked for sft.");
  assert_has("order", order, "Checked for midtrain.");
  free(order);
}
END_TEST

START_TEST(list_has_every_stage_kind) {
  char *list = capture(explain_stages_list);
  assert_fits("list", list);
  const char *line = strchr(list, '\n') + 1;
  ck_assert_msg(strncmp(list, "Stage kinds", 11) == 0, "the list has no heading: %.30s", list);
  int goal_column = -1;
  for (int id = 0; id < OWNER_COUNT; id++) {
    const struct stage_row *row = stage_row((enum owner_id)id);
    if (!row) continue;
    const char *name = owner_spec(row->owner)->name;
    size_t n = strlen(name);
    ck_assert_msg(strncmp(line, name, n) == 0 && line[n] == ' ', "the list lacks %s: %.30s", name, line);
    int column = (int)(n + strspn(line + n, " "));
    if (goal_column < 0) goal_column = column;
    ck_assert_msg(column == goal_column, "%s: its goal is not aligned with the others", name);
    const char *nl = strchr(line, '\n');
    ck_assert_msg(nl - line > column + 10, "%s: no goal", name);
    line = nl + 1;
  }
  ck_assert_msg(*line == '\0', "the list goes on: %.30s", line);
  free(list);
}
END_TEST

Suite *explain_stages_suite(void) {
  Suite *s = suite_create("explain_stages");
  TCase *tc = tcase_create("pages");
  tcase_add_test(tc, every_stage_kind_has_a_page);
  tcase_add_test(tc, pages_print_the_stage_table);
  tcase_add_test(tc, pages_state_the_well_known_facts);
  tcase_add_test(tc, pages_name_the_jsonl_fields);
  tcase_add_test(tc, unknown_names_print_nothing);
  suite_add_tcase(s, tc);
  tc = tcase_create("order");
  tcase_add_test(tc, order_has_a_row_per_stage_kind);
  tcase_add_test(tc, order_names_the_real_codes);
  tcase_add_test(tc, list_has_every_stage_kind);
  suite_add_tcase(s, tc);
  return s;
}
