/* The scanner behind json_line.h. Its speed is in the strings, which are
 * most of the bytes of a data set: they are crossed sixteen bytes at a time
 * where SSE2 is there, stopping only at a quote, a backslash, a control
 * character or a byte of a multi-byte UTF-8 character. */
#include "interp/json_line.h"

#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "grammar/source.h"

/* Deeper nesting than this goes to jansson, whose own limit is far higher:
 * examples are flat, and a fixed bound keeps the recursion small. */
#define MAX_DEPTH 64

struct scanner {
  const unsigned char *p, *end;
  size_t string_bytes; /* of the last string scanned */
  bool escaped;        /* the last string had an escape */
};

enum json_field json_field_find(const char *name, size_t len) {
  static const struct {
    const char *text;
    size_t len;
  } names[] = {
#define X(id, text) {text, sizeof text - 1},
      JSON_LINE_FIELDS(X)
#undef X
  };
  for (size_t i = 0; i < JSON_FIELD_COUNT; i++)
    if (names[i].len == len && names[i].text[0] == name[0] && memcmp(names[i].text, name, len) == 0)
      return (enum json_field)i;
  return JSON_FIELD_COUNT;
}

static void skip_space(struct scanner *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool take(struct scanner *s, unsigned char c) {
  skip_space(s);
  if (s->p == s->end || *s->p != c) return false;
  s->p++;
  return true;
}

static int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits after "\u", or -1. */
static long hex4(const unsigned char *p, const unsigned char *end) {
  if (end - p < 4) return -1;
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(p[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* An escape after the backslash at s->p: adds its decoded bytes. */
static bool scan_escape(struct scanner *s, size_t *bytes) {
  const unsigned char *p = s->p + 1;
  if (p == s->end) return false;
  if (*p && strchr("\"\\/bfnrt", *p)) {
    s->p = p + 1;
    *bytes += 1;
    return true;
  }
  if (*p != 'u') return false;
  long cp = hex4(p + 1, s->end);
  if (cp <= 0) return false; /* \u0000 is refused by jansson as we call it */
  p += 5;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
    long low = hex4(p + 2, s->end);
    if (low < 0xDC00 || low > 0xDFFF) return false;
    p += 6;
    *bytes += 4;
  } else {
    *bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
  }
  s->p = p;
  return true;
}

/* A string at s->p (the opening quote); its decoded length in s->string_bytes. */
static bool scan_string(struct scanner *s) {
  const unsigned char *p = s->p + 1, *end = s->end;
  size_t bytes = 0;
  s->escaped = false;
  for (;;) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(' ');
    while (end - p >= 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
      /* signed: bytes >= 0x80 are negative, so "less than ' '" catches them too */
      __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                  _mm_cmplt_epi8(v, space));
      int mask = _mm_movemask_epi8(stop);
      if (mask) {
        int skip = __builtin_ctz((unsigned)mask);
        p += skip;
        bytes += (size_t)skip;
        break;
      }
      p += 16;
      bytes += 16;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++, bytes++;
    if (p == end || *p < 0x20) return false;
    if (*p == '"') break;
    if (*p == '\\') {
      s->p = p;
      if (!scan_escape(s, &bytes)) return false;
      p = s->p;
      s->escaped = true;
      continue;
    }
    size_t n = utf8_sequence_length(p, (size_t)(end - p));
    if (n == 0) return false;
    p += n;
    bytes += n;
  }
  s->p = p + 1;
  s->string_bytes = bytes;
  return true;
}

static size_t digits(struct scanner *s) {
  const unsigned char *start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return (size_t)(s->p - start);
}

/* A number, declined when jansson might find it too big: integers past 18
 * digits (int64), reals with a long mantissa or a three-digit exponent. */
static bool scan_number(struct scanner *s) {
  if (*s->p == '-') s->p++;
  if (s->p == s->end) return false;
  size_t whole;
  if (*s->p == '0') {
    s->p++;
    whole = 1;
    if (s->p < s->end && *s->p >= '0' && *s->p <= '9') return false;
  } else if ((whole = digits(s)) == 0) {
    return false;
  }
  bool real = false;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (digits(s) == 0) return false;
    real = true;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    size_t n = digits(s);
    if (n == 0 || n > 2) return false;
    real = true;
  }
  return real ? whole <= 200 : whole <= 18;
}

static bool scan_word(struct scanner *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return false;
  s->p += n;
  return true;
}

/* What a value is to the checks: they read strings, booleans, and the
 * content of messages. */
enum role { ROLE_ANY, ROLE_MESSAGES, ROLE_MESSAGE };
enum value_kind { VALUE_OTHER, VALUE_STRING, VALUE_TRUE, VALUE_FALSE };

static bool scan_value(struct scanner *s, int depth, enum role role, enum value_kind *kind, size_t *content);

/* An object at s->p ('{'). For ROLE_MESSAGE, the decoded bytes of its
 * string "content" are added to *content. */
static bool scan_object(struct scanner *s, int depth, enum role role, size_t *content) {
  s->p++;
  if (take(s, '}')) return true;
  size_t this_content = 0;
  do {
    skip_space(s);
    if (s->p == s->end || *s->p != '"') return false;
    const unsigned char *key = s->p + 1;
    if (!scan_string(s)) return false;
    bool is_content = role == ROLE_MESSAGE && s->string_bytes == 7 && memcmp(key, "content", 7) == 0;
    if (role == ROLE_MESSAGE && s->escaped) return false; /* the key might decode to "content" */
    if (!take(s, ':')) return false;
    enum value_kind kind;
    if (!scan_value(s, depth + 1, ROLE_ANY, &kind, NULL)) return false;
    if (is_content) this_content = kind == VALUE_STRING ? s->string_bytes : 0; /* the last one counts, as in jansson */
  } while (take(s, ','));
  if (!take(s, '}')) return false;
  if (content) *content += this_content;
  return true;
}

static bool scan_array(struct scanner *s, int depth, enum role role, size_t *content) {
  s->p++;
  if (take(s, ']')) return true;
  do {
    enum value_kind kind;
    if (!scan_value(s, depth + 1, role == ROLE_MESSAGES ? ROLE_MESSAGE : ROLE_ANY, &kind, content)) return false;
  } while (take(s, ','));
  return take(s, ']');
}

static bool scan_value(struct scanner *s, int depth, enum role role, enum value_kind *kind, size_t *content) {
  if (depth > MAX_DEPTH) return false;
  skip_space(s);
  if (s->p == s->end) return false;
  *kind = VALUE_OTHER;
  switch (*s->p) {
  case '{': return scan_object(s, depth, role, role == ROLE_MESSAGE ? content : NULL);
  case '[': return scan_array(s, depth, role, role == ROLE_MESSAGES ? content : NULL);
  case '"': *kind = VALUE_STRING; return scan_string(s);
  case 't': *kind = VALUE_TRUE; return scan_word(s, "true");
  case 'f': *kind = VALUE_FALSE; return scan_word(s, "false");
  case 'n': return scan_word(s, "null");
  default: return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) && scan_number(s);
  }
}

bool json_line_scan(const char *text, size_t len, struct json_line *out) {
  struct scanner s = {.p = (const unsigned char *)text, .end = (const unsigned char *)text + len};
  memset(out, 0, sizeof *out);
  out->label = -1;
  if (!take(&s, '{')) return false;
  if (!take(&s, '}')) {
    do {
      skip_space(&s);
      if (s.p == s.end || *s.p != '"') return false;
      const char *key = (const char *)s.p + 1;
      if (!scan_string(&s) || s.escaped) return false; /* an escaped key might decode to a field's name */
      enum json_field field = json_field_find(key, s.string_bytes);
      if (!take(&s, ':')) return false;
      enum value_kind kind;
      size_t content = 0;
      if (!scan_value(&s, 1, field == JSON_FIELD_MESSAGES ? ROLE_MESSAGES : ROLE_ANY, &kind, &content)) return false;
      if (field == JSON_FIELD_COUNT) continue;
      /* a repeated key: the last one counts, as in jansson */
      out->present |= 1u << field;
      out->string_bytes[field] = kind == VALUE_STRING ? s.string_bytes : 0;
      if (field == JSON_FIELD_MESSAGES) out->message_bytes = content;
      if (field == JSON_FIELD_LABEL) out->label = kind == VALUE_TRUE ? 1 : kind == VALUE_FALSE ? 0 : -1;
    } while (take(&s, ','));
    if (!take(&s, '}')) return false;
  }
  skip_space(&s);
  return s.p == s.end;
}

void json_line_from_object(json_t *obj, struct json_line *out) {
  memset(out, 0, sizeof *out);
  out->label = -1;
  const char *key;
  json_t *value;
  json_object_foreach(obj, key, value) {
    enum json_field field = json_field_find(key, strlen(key));
    if (field == JSON_FIELD_COUNT) continue;
    out->present |= 1u << field;
    if (json_is_string(value)) out->string_bytes[field] = json_string_length(value);
    if (field == JSON_FIELD_LABEL && json_is_boolean(value)) out->label = json_is_true(value);
  }
  size_t i;
  json_t *message;
  json_array_foreach(json_object_get(obj, "messages"), i, message) {
    json_t *content = json_object_get(message, "content");
    if (json_is_string(content)) out->message_bytes += json_string_length(content);
  }
}

bool json_line_read(const char *text, size_t len, struct json_line *out, char *reason, size_t size) {
  if (json_line_scan(text, len, out)) return true;
  json_error_t err;
  json_t *obj = json_loadb(text, len, 0, &err);
  if (!obj) {
    snprintf(reason, size, "not JSON: %s", err.text);
    return false;
  }
  bool object = json_is_object(obj);
  if (object) json_line_from_object(obj, out);
  else snprintf(reason, size, "not a JSON object");
  json_decref(obj);
  return object;
}
