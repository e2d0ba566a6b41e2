/* Sources and spans. A span is a byte range [start, end) of one source file
 * plus the line and column (1-based, in UTF-8 characters) of its start, so a
 * diagnostic can name a position without rescanning. Line texts and end
 * positions are computed on demand from a line table built at most once. */
#ifndef TRAINPIPE_SOURCE_H
#define TRAINPIPE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grammar/arena.h"

struct span {
  uint32_t file;       /* index into the source set */
  uint32_t start, end; /* byte offsets */
  uint32_t line, col;  /* of start */
};

struct comment {
  struct span span; /* the '#' up to the end of the line */
  const char *text; /* into the source text, after '#' */
  uint32_t len;
};

struct source {
  const char *path;    /* as given or resolved; shown in diagnostics */
  char *text;          /* NUL-terminated, with a second NUL for the scanner */
  size_t len;
  uint32_t *line_starts; /* lazily built */
  size_t n_lines;
  struct comment *comments;
  size_t n_comments, cap_comments;
};

struct source_set {
  struct source **items;
  size_t n, cap;
};

/* Why a file could not be taken as pipeline text. */
enum source_status {
  SOURCE_OK,
  SOURCE_UNREADABLE, /* errno says why */
  SOURCE_TOO_LARGE,
  SOURCE_NUL_BYTE,
  SOURCE_BAD_UTF8,
  SOURCE_NOT_REGULAR, /* a device, FIFO or directory where a file was required */
};

struct source_result {
  enum source_status status;
  int error;          /* errno for SOURCE_UNREADABLE */
  uint32_t id;        /* the file, also when its content was refused */
  uint32_t offset;    /* of the offending byte */
};

/* Reads a file into the set ("-" is standard input, shown as <stdin>). The
 * file is added even when its content is refused, so a diagnostic can point
 * into it. With regular_only, devices and FIFOs are refused before they are
 * opened (an import of /dev/zero must not read forever); reading stops at
 * the first NUL byte either way. */
struct source_result source_read(struct source_set *set, const char *path, bool regular_only);
struct source_result source_add(struct source_set *set, const char *path,
                                const char *text, size_t len);
void source_set_free(struct source_set *set);

/* The text of a 1-based line, without its newline. */
const char *source_line(struct source *src, uint32_t line, size_t *len);
/* Line and column of a byte offset. */
void source_position(struct source *src, uint32_t offset, uint32_t *line, uint32_t *col);
void source_add_comment(struct source *src, struct span span, const char *text, uint32_t len);

/* Columns count characters: every byte that does not continue a UTF-8
 * sequence starts one. */
static inline bool utf8_starts_char(unsigned char c) { return (c & 0xC0) != 0x80; }
/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
size_t utf8_sequence_length(const unsigned char *p, size_t n);

#endif
