/* Did-you-mean: distances and the cut-off that keeps guesses plausible. */
#include <string.h>

#include "interp/suggest.h"
#include "tests/unit/suites.h"

static size_t dist(const char *a, const char *b) { return edit_distance(a, strlen(a), b, strlen(b), 10); }

START_TEST(distances) {
  ck_assert_uint_eq(dist("dpo", "dpo"), 0);
  ck_assert_uint_eq(dist("dop", "dpo"), 1); /* a swap of neighbours is one edit */
  ck_assert_uint_eq(dist("widht", "width"), 1);
  ck_assert_uint_eq(dist("layer", "layers"), 1);
  ck_assert_uint_eq(dist("kitten", "sitting"), 3);
  ck_assert_uint_eq(dist("", "abc"), 3);
  ck_assert_uint_gt(edit_distance("abcdefgh", 8, "zzzzzzzz", 8, 2), 2); /* cut off past the limit */
}
END_TEST

static const char *best_of(const char *word, const char *const *candidates) {
  struct suggest s;
  suggest_begin(&s, word, strlen(word));
  for (; *candidates; candidates++) suggest_consider(&s, *candidates, strlen(*candidates));
  size_t len;
  const char *best = suggest_result(&s, &len);
  return best;
}

START_TEST(suggestions) {
  static const char *const stages[] = {"pretrain", "midtrain", "sft", "dpo", "ipo", "ppo", "grpo", NULL};
  ck_assert_str_eq(best_of("pretrian", stages), "pretrain");
  ck_assert_str_eq(best_of("dop", stages), "dpo");
  ck_assert_str_eq(best_of("gpro", stages), "grpo");
  ck_assert_ptr_null(best_of("banana", stages));
  ck_assert_ptr_null(best_of("sft", stages)); /* a known word is not misspelt */
  static const char *const short_names[] = {"a", "b", "x", NULL};
  ck_assert_ptr_null(best_of("y", short_names)); /* one-letter names are not guessed */
}
END_TEST

Suite *suggest_suite(void) {
  Suite *s = suite_create("suggest");
  TCase *tc = tcase_create("did-you-mean");
  tcase_add_test(tc, distances);
  tcase_add_test(tc, suggestions);
  suite_add_tcase(s, tc);
  return s;
}
