/* Prints the KEYS section of trainpipe.pipe(5), from `.SH KEYS` up to (not
 * including) the next section, generated from the key table
 * (interp/keys.def). The page holds a copy of this output:
 * tests/man/keys.test checks that the two agree, and `make update-man`
 * rewrites the page's section from it.
 *
 * Everything about an owner or a key comes from the table; the only fixed
 * text is the section's opening paragraph, the word each value type has
 * under VALUES, the synopsis shape of each family, and a few sentences
 * about owners whose arguments the table cannot describe (mix, frozen). */
#include "interp/keys.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Source lines of running text are filled to this many characters. */
enum { FILL_WIDTH = 72 };

static const char intro[] =
    ".SH KEYS\n"
    "Every key of every architecture, loader, data kind, stage kind and\n"
    "function, with its type (see\n"
    ".BR VALUES ),\n"
    "its range, its unit and its default.\n"
    "A key marked\n"
    ".I required\n"
    "must be given; a key whose default is\n"
    ".I none\n"
    "is absent unless given.\n"
    "A key that is not given takes its default.\n";

/* Owners whose arguments are not keys of the table: the arguments of their
 * synopsis (NULL: derived from the positional type) and roff text printed
 * after it. */
struct owner_text {
  enum owner_id id;
  const char *args;
  const char *prose;
};

static const struct owner_text owner_texts[] = {
    {OWNER_MIX, "\\fIDATA\\fR = \\fISHARE\\fR, ...",
     "Each \\fIDATA\\fR is the name of a data set and each \\fISHARE\\fR a share\n"
     "in [0%,\\ 100%].\n"},
    {OWNER_FROZEN, NULL, "\\fINAME\\fR is the name of a model or a stage.\n"},
};

static const struct owner_text *find_owner_text(enum owner_id id) {
  for (size_t i = 0; i < sizeof owner_texts / sizeof owner_texts[0]; i++)
    if (owner_texts[i].id == id) return &owner_texts[i];
  return NULL;
}

/* The name of each type as the VALUES section lists it. */
static const char *type_word(enum value_type type) {
  switch (type) {
  case T_NONE: return "Nothing";
  case T_INT: return "Integer";
  case T_NUMBER: return "Number";
  case T_SHARE: return "Share";
  case T_STRING: return "String";
  case T_PATH: return "Path";
  case T_PATTERN: return "Pattern";
  case T_BOOL: return "Boolean";
  case T_ENUM: return "Choice";
  case T_DATA: return "Data set";
  case T_MODEL: return "Model";
  case T_REFERENCE: return "Reference";
  case T_REWARD: return "Reward";
  case T_OPTIMIZER: return "Optimizer";
  }
  return "Value";
}

static bool type_has_range(enum value_type type) {
  return type == T_INT || type == T_NUMBER || type == T_SHARE;
}

/* Writes n bytes of s escaped for roff: a backslash as \e, and, where
 * `literal` (numbers, names, choices), a hyphen as the minus sign \-. */
static void put_escaped(FILE *out, const char *s, size_t n, bool literal) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\') fputs("\\e", out);
    else if (s[i] == '-' && literal) fputs("\\-", out);
    else putc(s[i], out);
  }
}

static void put_literal(FILE *out, const char *s) { put_escaped(out, s, strlen(s), true); }

static void put_bold(FILE *out, const char *s) {
  fputs("\\fB", out);
  put_literal(out, s);
  fputs("\\fR", out);
}

/* Writes a doc string as a sentence (capitalised, with a final period),
 * filled to FILL_WIDTH, one source line after another. */
static void put_sentence(FILE *out, const char *doc) {
  size_t len = strlen(doc);
  char *text = malloc(len + 2);
  if (!text) {
    perror("keys-roff");
    exit(EXIT_FAILURE);
  }
  memcpy(text, doc, len + 1);
  if (len > 0) text[0] = (char)toupper((unsigned char)text[0]);
  if (len == 0 || text[len - 1] != '.') {
    text[len++] = '.';
    text[len] = '\0';
  }
  size_t column = 0;
  const char *p = text;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    size_t n = strcspn(p, " ");
    if (column > 0 && column + 1 + n > FILL_WIDTH) {
      putc('\n', out);
      column = 0;
    }
    if (column > 0) {
      putc(' ', out);
      column++;
    } else if (*p == '.' || *p == '\'') {
      fputs("\\&", out); /* not a request */
    }
    put_escaped(out, p, n, false);
    column += n;
    p += n;
  }
  putc('\n', out);
  free(text);
}

/* A range from key_range_text ("in [1, 1024]", ">= 0"), with the spaces
 * inside the bounds unbreakable. */
static void put_range(FILE *out, const struct key_spec *key) {
  char text[128];
  key_range_text(key, text, sizeof text);
  const char *p = text;
  if (strncmp(p, "in ", 3) == 0) {
    fputs("in ", out);
    p += 3;
  }
  for (; *p; p++) {
    if (*p == ' ') fputs("\\ ", out);
    else put_escaped(out, p, 1, true);
  }
}

/* "\fBa\fR\nor \fBb\fR", "\fBa\fR,\n\fBb\fR,\nor \fBc\fR" */
static void put_choices(FILE *out, const char *choices) {
  size_t count = 1;
  for (const char *p = choices; *p; p++) count += *p == '|';
  const char *p = choices;
  for (size_t i = 0; i < count; i++) {
    size_t n = strcspn(p, "|");
    if (i > 0) fputs(i + 1 == count ? "\nor " : "\n", out);
    fputs("\\fB", out);
    put_escaped(out, p, n, true);
    fputs("\\fR", out);
    if (count > 2 && i + 1 < count) putc(',', out);
    p += n + (p[n] == '|');
  }
}

static void put_key(FILE *out, const struct key_spec *key) {
  fputs(".TP\n.B ", out);
  put_literal(out, key->name);
  putc('\n', out);
  fputs(type_word(key->type), out);
  if (key->type == T_ENUM) {
    fputs(":\n", out);
    put_choices(out, key->choices);
  } else if (type_has_range(key->type) && key->range != R_ANY) {
    putc(' ', out);
    put_range(out, key);
  }
  if (key->unit[0]) fprintf(out, "; unit: %s", key->unit);
  if (key_required(key)) {
    fputs("; required", out);
  } else if (strcmp(key->default_text, "-") == 0) {
    fputs("; default: none", out);
  } else {
    fputs("; default: ", out);
    put_bold(out, key->default_text);
    if (key->type == T_SHARE) {
      char *end;
      double v = strtod(key->default_text, &end);
      if (end != key->default_text && *end == '\0') fprintf(out, " (%g%%)", v * 100);
    }
  }
  fputs(".\n.br\n", out);
  put_sentence(out, key->doc);
}

/* Appends to a synopsis line; the lines are short and fixed in shape. */
struct line {
  char text[1024];
  size_t len;
};

static void add(struct line *line, const char *s) {
  size_t n = strlen(s);
  if (line->len + n >= sizeof line->text) {
    fputs("keys-roff: synopsis too long\n", stderr);
    exit(EXIT_FAILURE);
  }
  memcpy(line->text + line->len, s, n + 1);
  line->len += n;
}

/* The width of a synopsis line once set, roughly: without font escapes. */
static size_t visible_width(const char *s) {
  size_t width = 0;
  while (*s) {
    if (s[0] == '\\' && s[1] == 'f' && s[2]) s += 3;
    else {
      width++;
      s++;
    }
  }
  return width;
}

static const char block[] = "[{ \\fIKEY\\fR = \\fIVALUE\\fR ... }]";

/* name(ARGS), with the positional argument and the keys a call takes. */
static void add_call(struct line *line, const struct owner_spec *owner, const struct owner_text *text,
                     bool keys) {
  add(line, "\\fB");
  add(line, owner->name);
  add(line, "(\\fR");
  if (text && text->args) {
    add(line, text->args);
  } else {
    const char *positional = NULL;
    switch (owner->positional) {
    case T_NONE: break;
    case T_PATH: positional = owner->family == FAMILY_LOADER ? "\"\\fIDIR\\fR\"" : "\"\\fIPATH\\fR\""; break;
    case T_MODEL:
    case T_REFERENCE: positional = "\\fINAME\\fR"; break;
    case T_DATA: positional = "\\fIDATA\\fR"; break;
    default: positional = "\\fIVALUE\\fR"; break;
    }
    if (positional) {
      add(line, positional);
      if (keys) add(line, " [, \\fIKEY\\fR = \\fIVALUE\\fR ...]");
    } else if (keys) {
      add(line, "\\fIKEY\\fR = \\fIVALUE\\fR, ...");
    }
  }
  add(line, "\\fB)\\fR");
}

static void put_synopsis(FILE *out, const struct owner_spec *owner, const struct owner_text *text,
                         bool keys) {
  struct line line = {.len = 0};
  line.text[0] = '\0';
  bool with_block = keys;
  switch (owner->family) {
  case FAMILY_ARCH:
    add(&line, "\\fBmodel\\fR \\fINAME\\fR = \\fB");
    add(&line, owner->name);
    add(&line, "\\fR");
    break;
  case FAMILY_LOADER:
    add(&line, "\\fBmodel\\fR \\fINAME\\fR = ");
    add_call(&line, owner, text, keys);
    break;
  case FAMILY_DATA:
    add(&line, "\\fBdata\\fR \\fINAME\\fR = ");
    add_call(&line, owner, text, keys);
    break;
  case FAMILY_STAGE:
    add(&line, "\\fBstage\\fR \\fINAME\\fR = \\fB");
    add(&line, owner->name);
    add(&line, "(\\fR\\fIFROM\\fR\\fB)\\fR");
    break;
  case FAMILY_FUNCTION:
    add_call(&line, owner, text, keys);
    with_block = false;
    break;
  }
  fputs(".PP\n.nf\n", out);
  fputs(line.text, out);
  if (with_block) {
    /* Data kinds set their block on a line of its own, as does any line
     * too wide for the page. */
    bool wrap = owner->family == FAMILY_DATA ||
                visible_width(line.text) + 1 + visible_width(block) > FILL_WIDTH;
    fputs(wrap ? "\n    " : " ", out);
    fputs(block, out);
  }
  fputs("\n.fi\n", out);
}

static void put_owner(FILE *out, const struct key_index *index, enum owner_id id) {
  const struct owner_spec *owner = owner_spec(id);
  const struct owner_text *text = find_owner_text(id);
  size_t n_keys = index->n_keys[id];

  fprintf(out, ".SS \"%s (%s)\"\n", owner->name, family_name(owner->family));
  put_sentence(out, owner->doc);
  put_synopsis(out, owner, text, n_keys > 0);
  if (text && text->prose) {
    fputs(".PP\n", out);
    fputs(text->prose, out);
  }
  if (n_keys == 0) {
    if (!(text && text->prose)) fputs(".PP\n", out);
    put_bold(out, owner->name);
    fputs(" takes no keys.\n", out);
  }
  for (size_t k = 0; k < n_keys; k++) put_key(out, index->keys[id][k]);
}

int main(void) {
  struct key_index index;
  key_index_init(&index);
  fputs(intro, stdout);
  for (int id = 0; id < OWNER_COUNT; id++) put_owner(stdout, &index, (enum owner_id)id);
  key_index_free(&index);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("keys-roff: stdout");
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
