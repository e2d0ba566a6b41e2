/* The scanner, seen through the trees it produces: literals, spans in UTF-8
 * characters, comments kept, lexical errors reported in place. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/suites.h"

/* The value of the first entry of the first item's block. */
static struct expr *first_value(struct parsed *p) {
  ck_assert_ptr_nonnull(p->tree->items);
  ck_assert_ptr_nonnull(p->tree->items->block.entries);
  return p->tree->items->block.entries->value;
}

static struct expr *value_of(struct parsed *p, const char *source_value) {
  char text[256];
  snprintf(text, sizeof text, "model m = gpt2 { layers = %s }", source_value);
  parse_text(p, text);
  return first_value(p);
}

START_TEST(numbers_scale_by_powers_of_ten) {
  static const struct {
    const char *text;
    double value;
    bool integer;
  } cases[] = {
      {"12", 12, true},        {"2M", 2e6, true},   {"500K", 5e5, true}, {"1.5B", 1.5e9, true},
      {"3e-3", 3e-3, false},   {"0.5", 0.5, false}, {"1.5K", 1500, true}, {"7e2", 700, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct parsed p;
    struct expr *e = value_of(&p, cases[i].text);
    ck_assert_int_eq(e->kind, EXPR_NUMBER);
    ck_assert_double_eq_tol(e->u.number.value, cases[i].value, 1e-12 * fabs(cases[i].value));
    ck_assert_msg(e->u.number.integer == cases[i].integer, "%s: integer flag", cases[i].text);
    ck_assert_int_eq(p.diags.count[SEV_ERROR], 0);
    parsed_free(&p);
  }
}
END_TEST

START_TEST(percentages_and_negatives) {
  struct parsed p;
  struct expr *e = value_of(&p, "80%");
  ck_assert_int_eq(e->kind, EXPR_PERCENT);
  ck_assert_double_eq(e->u.number.value, 80);
  parsed_free(&p);
  e = value_of(&p, "-2.5");
  ck_assert_int_eq(e->kind, EXPR_NUMBER);
  ck_assert_double_eq(e->u.number.value, -2.5);
  ck_assert_uint_eq(e->span.start, 26); /* the '-' belongs to the value's span */
  ck_assert_uint_eq(e->span.end, 30);
  parsed_free(&p);
}
END_TEST

START_TEST(bad_numbers_are_reported_at_the_number) {
  struct parsed p;
  value_of(&p, "2Mb");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 1);
  ck_assert_int_eq(p.diags.head->code, E0003);
  ck_assert_uint_eq(p.diags.head->span.col, 27);
  parsed_free(&p);
  value_of(&p, "1e999");
  ck_assert_int_eq(p.diags.head->code, E0003);
  parsed_free(&p);
}
END_TEST

START_TEST(string_escapes_decode) {
  struct parsed p;
  struct expr *e = value_of(&p, "\"a\\tb\\n\\\"q\\\" \\\\ \\u{e9}\\u{1F600}\"");
  ck_assert_int_eq(e->kind, EXPR_STRING);
  ck_assert_str_eq(e->u.string.text, "a\tb\n\"q\" \\ \xC3\xA9\xF0\x9F\x98\x80");
  ck_assert_uint_eq(e->u.string.len, strlen("a\tb\n\"q\" \\ \xC3\xA9\xF0\x9F\x98\x80"));
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 0);
  parsed_free(&p);
}
END_TEST

START_TEST(raw_strings_keep_backslashes) {
  struct parsed p;
  struct expr *e = value_of(&p, "r\"answer: (\\d+)\"");
  ck_assert_str_eq(e->u.string.text, "answer: (\\d+)");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 0);
  parsed_free(&p);
}
END_TEST

START_TEST(unknown_escape_points_at_the_escape) {
  struct parsed p;
  value_of(&p, "\"ab\\qc\"");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 1);
  ck_assert_int_eq(p.diags.head->code, E0004);
  ck_assert_uint_eq(p.diags.head->span.col, 30); /* the backslash */
  ck_assert_uint_eq(p.diags.head->span.end - p.diags.head->span.start, 2);
  parsed_free(&p);
}
END_TEST

START_TEST(unterminated_string_points_at_the_quote) {
  struct parsed p;
  parse_text(&p, "data d = corpus(\"abc\nmodel m = gpt2\n");
  ck_assert_int_ge(p.diags.count[SEV_ERROR], 1);
  ck_assert_int_eq(p.diags.head->code, E0004);
  ck_assert_uint_eq(p.diags.head->span.line, 1);
  ck_assert_uint_eq(p.diags.head->span.col, 17);
  parsed_free(&p);
}
END_TEST

START_TEST(columns_count_characters) {
  struct parsed p;
  /* "é" and "→" are two and three bytes but one column each. */
  parse_text(&p, "data d = corpus(\"é→\") { min_chars = 1 }\n");
  struct entry *e = p.tree->items->block.entries;
  ck_assert_uint_eq(e->key.span.col, 25);
  ck_assert_uint_eq(e->key.span.start, 27);
  parsed_free(&p);
}
END_TEST

START_TEST(comments_are_kept_with_positions) {
  struct parsed p;
  parse_text(&p, "# first\nmodel m = gpt2  # trailing é\n  # indented\n");
  const struct source *src = p.sources.items[0];
  ck_assert_uint_eq(src->n_comments, 3);
  ck_assert_uint_eq(src->comments[0].span.line, 1);
  ck_assert_uint_eq(src->comments[0].span.col, 1);
  ck_assert_uint_eq(src->comments[1].span.line, 2);
  ck_assert_uint_eq(src->comments[1].span.col, 17);
  ck_assert_int_eq(memcmp(src->comments[1].text, " trailing é", src->comments[1].len), 0);
  ck_assert_uint_eq(src->comments[2].span.col, 3);
  ck_assert_ptr_nonnull(p.tree->items);
  parsed_free(&p);
}
END_TEST

START_TEST(invalid_characters_do_not_stop_the_scan) {
  struct parsed p;
  parse_text(&p, "model a = gpt2 ; model b = gpt2 { layers = 2 } @\n");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 2);
  ck_assert_int_eq(p.diags.head->code, E0002);
  ck_assert_uint_eq(p.diags.head->span.col, 16);
  ck_assert_ptr_nonnull(p.tree->items->next); /* model b was still parsed */
  parsed_free(&p);
}
END_TEST

START_TEST(keywords_and_identifiers) {
  struct parsed p;
  parse_text(&p, "model models = gpt2 stage stager = sft(models) { data = d }");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 0);
  ck_assert(ident_is(&p.tree->items->name, "models"));
  ck_assert(ident_is(&p.tree->items->next->name, "stager"));
  ck_assert(ident_is(&p.tree->items->next->block.entries->key, "data"));
  parsed_free(&p);
}
END_TEST

Suite *lexer_suite(void) {
  Suite *s = suite_create("lexer");
  TCase *tc = tcase_create("tokens");
  tcase_add_test(tc, numbers_scale_by_powers_of_ten);
  tcase_add_test(tc, percentages_and_negatives);
  tcase_add_test(tc, bad_numbers_are_reported_at_the_number);
  tcase_add_test(tc, string_escapes_decode);
  tcase_add_test(tc, raw_strings_keep_backslashes);
  tcase_add_test(tc, unknown_escape_points_at_the_escape);
  tcase_add_test(tc, unterminated_string_points_at_the_quote);
  tcase_add_test(tc, columns_count_characters);
  tcase_add_test(tc, comments_are_kept_with_positions);
  tcase_add_test(tc, invalid_characters_do_not_stop_the_scan);
  tcase_add_test(tc, keywords_and_identifiers);
  suite_add_tcase(s, tc);
  return s;
}
