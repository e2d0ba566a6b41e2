/* The key table is data that every command trusts: each row must be
 * well-formed, its default a valid value of its own type and range, and
 * every owner must be reachable by name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp/keys.h"
#include "interp/stages.h"
#include "tests/unit/suites.h"

START_TEST(every_key_is_documented_and_owned) {
  for (size_t i = 0; i < key_table_size; i++) {
    const struct key_spec *k = &key_table[i];
    ck_assert_msg(k->owners != 0, "%s has no owner", k->name);
    ck_assert_msg(k->doc && strlen(k->doc) > 8, "%s has no doc", k->name);
    ck_assert_msg(k->type != T_NONE, "%s has no type", k->name);
    ck_assert_msg(k->owners >> OWNER_COUNT == 0, "%s names an owner that does not exist", k->name);
    if (k->range != R_ANY) ck_assert_msg(k->min <= k->max, "%s: min > max", k->name);
    if (k->type == T_ENUM) ck_assert_msg(strchr(k->choices, '|') != NULL, "%s: fewer than two choices", k->name);
    else ck_assert_msg(k->choices[0] == '\0', "%s: choices on a non-choice key", k->name);
  }
}
END_TEST

/* A default must be a value the key accepts. */
START_TEST(defaults_are_valid_values) {
  for (size_t i = 0; i < key_table_size; i++) {
    const struct key_spec *k = &key_table[i];
    const char *def = k->default_text;
    if (def[0] == '\0' || strcmp(def, "-") == 0) continue;
    char *end;
    switch (k->type) {
    case T_INT:
    case T_NUMBER:
    case T_SHARE: {
      double v = strtod(def, &end);
      ck_assert_msg(*end == '\0', "%s: default '%s' is not a number", k->name, def);
      ck_assert_msg(key_in_range(k, v), "%s: default %s out of range", k->name, def);
      if (k->type == T_INT) ck_assert_msg(v == floor(v), "%s: default %s not an integer", k->name, def);
      break;
    }
    case T_BOOL:
      ck_assert_msg(strcmp(def, "true") == 0 || strcmp(def, "false") == 0, "%s: default %s", k->name, def);
      break;
    case T_ENUM:
      ck_assert_msg(key_choice_ok(k, def, strlen(def)), "%s: default %s is not a choice", k->name, def);
      break;
    default:
      break;
    }
  }
}
END_TEST

START_TEST(no_owner_has_a_key_twice) {
  struct key_index index;
  key_index_init(&index);
  for (int o = 0; o < OWNER_COUNT; o++)
    for (size_t i = 0; i < index.n_keys[o]; i++)
      for (size_t j = i + 1; j < index.n_keys[o]; j++)
        ck_assert_msg(strcmp(index.keys[o][i]->name, index.keys[o][j]->name) != 0, "%s has '%s' twice",
                      owner_spec(o)->name, index.keys[o][i]->name);
  key_index_free(&index);
}
END_TEST

START_TEST(every_stage_says_what_it_trains_on) {
  struct key_index index;
  key_index_init(&index);
  for (int o = 0; o < OWNER_COUNT; o++) {
    if (owner_spec(o)->family != FAMILY_STAGE) continue;
    const struct key_spec *data = key_find(&index, o, "data", 4);
    const struct key_spec *prompts = key_find(&index, o, "prompts", 7);
    ck_assert_msg((data != NULL) != (prompts != NULL), "%s: needs exactly one of data, prompts", owner_spec(o)->name);
    ck_assert(key_required(data ? data : prompts));
  }
  key_index_free(&index);
}
END_TEST

/* Every stage kind has a row in the stage table, and the row names a data
 * key the stage takes and a data kind that exists. */
START_TEST(every_stage_kind_has_a_row) {
  struct key_index index;
  key_index_init(&index);
  for (int o = 0; o < OWNER_COUNT; o++) {
    const struct stage_row *row = stage_row((enum owner_id)o);
    if (owner_spec(o)->family != FAMILY_STAGE) {
      ck_assert_msg(row == NULL, "%s is not a stage kind but has a row", owner_spec(o)->name);
      continue;
    }
    ck_assert_msg(row != NULL, "stage kind %s has no row in stages.def", owner_spec(o)->name);
    ck_assert_msg(key_find(&index, o, row->data_key, strlen(row->data_key)) != NULL, "%s: no key '%s'",
                  owner_spec(o)->name, row->data_key);
    ck_assert_int_eq(owner_spec(row->data_kind)->family, FAMILY_DATA);
    ck_assert_msg(row->ok != 0, "%s trains no state", owner_spec(o)->name);
    ck_assert_msg((row->ok & row->warn) == 0, "%s: a state both ok and warned", owner_spec(o)->name);
    ck_assert_msg(row->objective[0] != '\0', "%s has no objective", owner_spec(o)->name);
    bool takes_reference = key_find(&index, o, "reference", 9) != NULL;
    ck_assert_msg(takes_reference == (row->reference != REF_NONE), "%s: reference key and row disagree",
                  owner_spec(o)->name);
    ck_assert_msg(row->reward == (key_find(&index, o, "reward", 6) != NULL), "%s: reward key and row disagree",
                  owner_spec(o)->name);
  }
  key_index_free(&index);
}
END_TEST

START_TEST(lookups) {
  struct key_index index;
  key_index_init(&index);
  const struct owner_spec *dpo = owner_find(FAMILY_STAGE, "dpo", 3);
  ck_assert_ptr_nonnull(dpo);
  const struct key_spec *beta = key_find(&index, dpo->id, "beta", 4);
  ck_assert_ptr_nonnull(beta);
  ck_assert_str_eq(beta->default_text, "0.1");
  ck_assert(!key_in_range(beta, 0));
  ck_assert(key_in_range(beta, 0.05));
  const struct owner_spec *simpo = owner_find(FAMILY_STAGE, "simpo", 5);
  ck_assert_str_eq(key_find(&index, simpo->id, "beta", 4)->default_text, "2.5");
  ck_assert_ptr_null(key_find(&index, dpo->id, "group", 5));
  ck_assert_ptr_null(owner_find(FAMILY_STAGE, "gpt2", 4));
  ck_assert_ptr_nonnull(owner_find(FAMILY_ARCH, "gpt2", 4));
  char range[64];
  key_range_text(beta, range, sizeof range);
  ck_assert_str_eq(range, "in (0, 1000]");
  const struct owner_spec *corpus = owner_find(FAMILY_DATA, "corpus", 6);
  key_range_text(key_find(&index, corpus->id, "min_chars", 9), range, sizeof range);
  ck_assert_str_eq(range, ">= 0");
  key_index_free(&index);
}
END_TEST

START_TEST(diagnostic_codes_are_well_formed) {
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    ck_assert_uint_eq(strlen(info->code), 5);
    char letter = info->level == SEV_ERROR ? 'E' : info->level == SEV_WARNING ? 'W' : 'N';
    ck_assert_msg(info->code[0] == letter, "%s: letter does not match its level", info->code);
    enum diag_code found;
    ck_assert(diag_lookup(info->code, 5, &found) && found == (enum diag_code)i);
    ck_assert(diag_lookup(info->name, strlen(info->name), &found) && found == (enum diag_code)i);
    for (int j = 0; j < i; j++) {
      ck_assert_str_ne(diag_info((enum diag_code)j)->code + 1, info->code + 1);
      ck_assert_str_ne(diag_info((enum diag_code)j)->name, info->name);
    }
  }
}
END_TEST

Suite *keys_suite(void) {
  Suite *s = suite_create("keys");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, every_key_is_documented_and_owned);
  tcase_add_test(tc, defaults_are_valid_values);
  tcase_add_test(tc, no_owner_has_a_key_twice);
  tcase_add_test(tc, every_stage_says_what_it_trains_on);
  tcase_add_test(tc, every_stage_kind_has_a_row);
  tcase_add_test(tc, lookups);
  tcase_add_test(tc, diagnostic_codes_are_well_formed);
  suite_add_tcase(s, tc);
  return s;
}
