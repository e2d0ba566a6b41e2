/* One JSONL line, looked at for the data checks: a strict one-pass scanner
 * that validates the line as one JSON object and records what the checks
 * need of it, without building a tree.
 *
 * It is conservative: it says yes only to lines jansson would accept with
 * the same meaning. Anything it is unsure of (an error, an escaped key, a
 * number jansson might call too big, a deep nesting) it declines, and the
 * caller parses that line with jansson, which has the last word and the
 * error message. The fields recorded are the same either way. */
#ifndef TRAINPIPE_JSON_LINE_H
#define TRAINPIPE_JSON_LINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The top-level fields of an example that the data checks read, TRL's names. */
#define JSON_LINE_FIELDS(X) X(PROMPT, "prompt") X(RESPONSE, "response") X(MESSAGES, "messages") \
  X(CHOSEN, "chosen") X(REJECTED, "rejected") X(COMPLETION, "completion") X(LABEL, "label") X(ANSWER, "answer")

enum json_field {
#define X(id, name) JSON_FIELD_##id,
  JSON_LINE_FIELDS(X)
#undef X
  JSON_FIELD_COUNT
};

struct json_line {
  unsigned present;                          /* bit 1 << field: the key is there, whatever its value */
  size_t string_bytes[JSON_FIELD_COUNT];     /* bytes of the decoded value when it is a string, else 0 */
  size_t message_bytes;                      /* messages[].content strings, decoded bytes summed */
  int label;                                 /* -1: not a boolean; else false 0, true 1 */
};

/* The field called NAME (LEN bytes), or JSON_FIELD_COUNT when it is none. */
enum json_field json_field_find(const char *name, size_t len);

/* True when TEXT (LEN bytes, no newline) is one valid JSON object: *OUT
 * describes it. False when the line must go to jansson. */
bool json_line_scan(const char *text, size_t len, struct json_line *out);

/* The scanner, then jansson for what it declines: true when the line is
 * one JSON object, described in *OUT; else false, and why in REASON
 * ("not JSON: ..." in jansson's words, or "not a JSON object"). */
bool json_line_read(const char *text, size_t len, struct json_line *out, char *reason, size_t size);

/* The same description, taken from an object jansson parsed. */
void json_line_from_object(json_t *obj, struct json_line *out);

#endif
