#include "grammar/source.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pipelines are small text files; this bounds what a mistaken argument
 * (a checkpoint, a data set) can make us read. */
#define SOURCE_MAX_BYTES ((size_t)1 << 30)

size_t utf8_sequence_length(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len;
  uint32_t min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static struct source_result validate(const char *text, size_t len) {
  struct source_result r = {.status = SOURCE_OK};
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    if (p[i] >= 0x80) {
      size_t n = utf8_sequence_length(p + i, len - i);
      if (n == 0) {
        r.status = SOURCE_BAD_UTF8;
        r.offset = (uint32_t)i;
        return r;
      }
      i += n;
      continue;
    }
    if (p[i] == 0) {
      r.status = SOURCE_NUL_BYTE;
      r.offset = (uint32_t)i;
      return r;
    }
    i++;
  }
  return r;
}

static uint32_t add_entry(struct source_set *set, const char *path, char *text, size_t len) {
  struct source *src = xmalloc(sizeof *src);
  memset(src, 0, sizeof *src);
  size_t plen = strlen(path);
  char *copy = xmalloc(plen + 1);
  memcpy(copy, path, plen + 1);
  src->path = copy;
  src->text = text;
  src->len = len;
  set->items = xgrow(set->items, &set->cap, set->n + 1, sizeof *set->items);
  set->items[set->n] = src;
  return (uint32_t)set->n++;
}

/* Text is kept with two trailing NULs: flex scans a buffer in place when it
 * ends that way. */
static char *terminated_copy(const char *text, size_t len) {
  char *buf = xmalloc(len + 2);
  memcpy(buf, text, len);
  buf[len] = buf[len + 1] = '\0';
  return buf;
}

struct source_result source_add(struct source_set *set, const char *path, const char *text,
                                size_t len) {
  struct source_result r;
  if (len > SOURCE_MAX_BYTES) {
    r = (struct source_result){.status = SOURCE_TOO_LARGE};
    r.id = add_entry(set, path, terminated_copy("", 0), 0);
    return r;
  }
  r = validate(text, len);
  r.id = add_entry(set, path, terminated_copy(text, len), len);
  return r;
}

struct source_result source_read(struct source_set *set, const char *path, bool regular_only) {
  struct source_result r = {.status = SOURCE_UNREADABLE};
  bool from_stdin = strcmp(path, "-") == 0;
  if (from_stdin) path = "<stdin>";
  struct stat st;
  if (regular_only && (from_stdin || (stat(path, &st) == 0 && !S_ISREG(st.st_mode)))) {
    r.status = SOURCE_NOT_REGULAR;
    r.id = add_entry(set, path, terminated_copy("", 0), 0);
    return r;
  }
  FILE *f = from_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    r.error = errno;
    r.id = add_entry(set, path, terminated_copy("", 0), 0);
    return r;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    buf = xgrow(buf, &cap, len + 65536 + 2, 1);
    size_t got = fread(buf + len, 1, cap - len - 2, f);
    const char *nul = memchr(buf + len, '\0', got);
    len += got;
    if (nul) { /* the content is refused anyway; do not read on */
      len = (size_t)(nul - buf) + 1;
      break;
    }
    if (len > SOURCE_MAX_BYTES) {
      if (!from_stdin) fclose(f);
      free(buf);
      r.status = SOURCE_TOO_LARGE;
      r.id = add_entry(set, path, terminated_copy("", 0), 0);
      return r;
    }
    if (got == 0) break;
  }
  if (ferror(f)) {
    r.error = errno ? errno : EIO;
    if (!from_stdin) fclose(f);
    free(buf);
    r.id = add_entry(set, path, terminated_copy("", 0), 0);
    return r;
  }
  if (!from_stdin) fclose(f);
  buf[len] = buf[len + 1] = '\0';
  r = validate(buf, len);
  r.id = add_entry(set, path, buf, len);
  return r;
}

void source_set_free(struct source_set *set) {
  for (size_t i = 0; i < set->n; i++) {
    struct source *src = set->items[i];
    free((char *)src->path);
    free(src->text);
    free(src->line_starts);
    free(src->comments);
    free(src);
  }
  free(set->items);
  set->items = NULL;
  set->n = set->cap = 0;
}

static void build_lines(struct source *src) {
  if (src->line_starts) return;
  size_t n = 1;
  for (size_t i = 0; i < src->len; i++) n += src->text[i] == '\n';
  src->line_starts = xmalloc(n * sizeof *src->line_starts);
  src->n_lines = n;
  size_t k = 0;
  src->line_starts[k++] = 0;
  for (size_t i = 0; i < src->len; i++)
    if (src->text[i] == '\n') src->line_starts[k++] = (uint32_t)(i + 1);
}

const char *source_line(struct source *src, uint32_t line, size_t *len) {
  build_lines(src);
  if (line == 0 || line > src->n_lines) {
    *len = 0;
    return "";
  }
  uint32_t start = src->line_starts[line - 1];
  uint32_t end = line < src->n_lines ? src->line_starts[line] - 1 : (uint32_t)src->len;
  if (end > start && src->text[end - 1] == '\r') end--;
  *len = end - start;
  return src->text + start;
}

void source_position(struct source *src, uint32_t offset, uint32_t *line, uint32_t *col) {
  build_lines(src);
  if (offset > src->len) offset = (uint32_t)src->len;
  size_t lo = 0, hi = src->n_lines; /* last line start <= offset */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (src->line_starts[mid] <= offset) lo = mid;
    else hi = mid;
  }
  uint32_t c = 1;
  for (uint32_t i = src->line_starts[lo]; i < offset; i++)
    c += utf8_starts_char((unsigned char)src->text[i]);
  *line = (uint32_t)lo + 1;
  *col = c;
}

void source_add_comment(struct source *src, struct span span, const char *text, uint32_t len) {
  src->comments = xgrow(src->comments, &src->cap_comments, src->n_comments + 1,
                        sizeof *src->comments);
  src->comments[src->n_comments++] = (struct comment){span, text, len};
}
