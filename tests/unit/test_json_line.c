/* The fast JSONL line scanner: what it records, what it declines, and that
 * it never disagrees with jansson, on fixed lines and on many mutations. */
#include <stdlib.h>
#include <string.h>

#include "interp/json_line.h"
#include "tests/unit/suites.h"

static bool scan(const char *text, struct json_line *out) { return json_line_scan(text, strlen(text), out); }

START_TEST(records_fields) {
  struct json_line ex;
  ck_assert(scan("{\"prompt\": \"ab\\n\\u00e9\\ud83d\\ude00\", \"chosen\": \"xyz\", \"rejected\": 3, \"x\": [1, {}]}", &ex));
  ck_assert_uint_eq(ex.present, 1u << JSON_FIELD_PROMPT | 1u << JSON_FIELD_CHOSEN | 1u << JSON_FIELD_REJECTED);
  ck_assert_uint_eq(ex.string_bytes[JSON_FIELD_PROMPT], 2 + 1 + 2 + 4); /* ab, \n, é, one emoji */
  ck_assert_uint_eq(ex.string_bytes[JSON_FIELD_CHOSEN], 3);
  ck_assert_uint_eq(ex.string_bytes[JSON_FIELD_REJECTED], 0); /* present, not a string */
  ck_assert_int_eq(ex.label, -1);

  ck_assert(scan("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"content\": \"h\\u00e9llo\"}, 7]}", &ex));
  ck_assert_uint_eq(ex.message_bytes, 2 + 6);
  ck_assert(scan("{\"label\": true, \"label\": false}", &ex)); /* the last of a repeated key counts */
  ck_assert_int_eq(ex.label, 0);
  ck_assert(scan(" { } ", &ex));
  ck_assert_uint_eq(ex.present, 0);
  ck_assert(scan("{\"a\": -0.5e+10, \"b\": [true, null, \"\\/\"]}", &ex));
}
END_TEST

START_TEST(declines) {
  struct json_line ex;
  static const char *const lines[] = {
      "", "[1]", "{", "{\"a\" 1}", "{\"a\": 1,}", "{\"a\": 01}", "{\"a\": 1.}", "{\"a\": .5}", "{\"a\": tru}",
      "{} x", "{\"a\": \"\x01\"}", "{\"a\": \"\\x\"}", "{\"a\": \"\\u0000\"}", "{\"a\": \"\\ud800\"}",
      "{\"a\": \"\\udc00\\ud800\"}", "{\"a\": \"\xc0\xaf\"}", "{\"a\": \"\xed\xa0\x80\"}", "{\"a\": \"\xf4\x90\x80\x80\"}",
      "{\"a\": \"\xe2\x82\"}", "{\"a\": 1234567890123456789}", "{\"a\": 1e400}", "{\"pro\\u006dpt\": 1}",
      "{\"messages\": [{\"con\\u0074ent\": \"x\"}]}", "{\"a\": \"unterminated",
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) ck_assert_msg(!scan(lines[i], &ex), "accepted %s", lines[i]);
}
END_TEST

static bool same(const struct json_line *a, const struct json_line *b) {
  return a->present == b->present && a->message_bytes == b->message_bytes && a->label == b->label &&
         memcmp(a->string_bytes, b->string_bytes, sizeof a->string_bytes) == 0;
}

/* Where the scanner accepts a line, jansson must accept it too and describe
 * it the same way. */
static bool agrees_with_jansson(const char *text, size_t len) {
  struct json_line fast, slow;
  if (!json_line_scan(text, len, &fast)) return false;
  json_error_t err;
  json_t *obj = json_loadb(text, len, 0, &err);
  ck_assert_msg(obj != NULL, "jansson refuses what the scanner accepted: %.*s (%s)", (int)len, text, err.text);
  ck_assert(json_is_object(obj));
  json_line_from_object(obj, &slow);
  json_decref(obj);
  ck_assert_msg(same(&fast, &slow), "different descriptions of %.*s", (int)len, text);
  return true;
}

START_TEST(mutations_agree) {
  static const char *const seeds[] = {
      "{\"prompt\": \"Why is the sky blue?\", \"chosen\": \"Rayleigh scattering: short wavelengths scatter most.\", "
      "\"rejected\": \"Because it reflects the sea.\"}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9 \xc3\xa9 \xf0\x9f\x98\x80\"}, "
      "{\"role\": \"assistant\", \"content\": \"ok\\n\"}]}",
      "{\"prompt\": \"2+2?\", \"completion\": \"4\", \"label\": true, \"n\": -12.5e3, \"x\": [null, false, {}]}",
  };
  /* bytes that matter to JSON, and some that break UTF-8 */
  static const char alphabet[] = "{}[]\":,\\ u0123456789.eE+-tfnlr\x80\xbf\xc3\xe2\xed\xf0\xf4\x01";
  unsigned seed = 12345;
  char buf[512];
  for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
    ck_assert(agrees_with_jansson(seeds[s], strlen(seeds[s])));
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
      size_t len = strlen(seeds[s]);
      memcpy(buf, seeds[s], len);
      int edits = 1 + (int)(rand_r(&seed) % 3);
      for (int e = 0; e < edits && len > 1; e++) {
        size_t at = (size_t)rand_r(&seed) % len;
        char c = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
        switch (rand_r(&seed) % 3) {
        case 0: buf[at] = c; break;                                                 /* replace */
        case 1: memmove(buf + at, buf + at + 1, len - at - 1); len--; break;          /* delete */
        default:                                                                    /* insert */
          if (len + 1 < sizeof buf) memmove(buf + at + 1, buf + at, len - at), buf[at] = c, len++;
        }
      }
      accepted += agrees_with_jansson(buf, len);
    }
    ck_assert_int_ge(accepted, 2000); /* the property was tested on many lines, not only on refusals */
  }
}
END_TEST

Suite *json_line_suite(void) {
  Suite *s = suite_create("json_line");
  TCase *t = tcase_create("scan");
  tcase_add_test(t, records_fields);
  tcase_add_test(t, declines);
  tcase_add_test(t, mutations_agree);
  suite_add_tcase(s, t);
  return s;
}
