/* The byte tokenizer and the chat templates (see tokenizer.h). */
#include "runtime/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "grammar/source.h"

struct tokenizer {
  const char *name;
  int vocab;
};

static const char *const special_names[SPECIAL_COUNT] = {
#define X(id, name) name,
    SPECIAL_TOKENS(X)
#undef X
};

struct tokenizer *tokenizer_create(const char *name, char *err, size_t err_size) {
  if (name && strcmp(name, "bytes") == 0) {
    struct tokenizer *tok = xmalloc(sizeof *tok);
    *tok = (struct tokenizer){.name = "bytes", .vocab = BYTES_VOCAB};
    return tok;
  }
  if (name && strcmp(name, "bpe") == 0)
    snprintf(err, err_size, "tokenizer 'bpe' is not available yet: this runtime has the byte tokenizer only "
                            "(tokenizer = bytes)");
  else
    snprintf(err, err_size, "unknown tokenizer '%s': the runtime knows 'bytes'", name ? name : "(none)");
  return NULL;
}

void tokenizer_free(struct tokenizer *tok) { free(tok); }

const char *tokenizer_name(const struct tokenizer *tok) { return tok->name; }
int tokenizer_vocab(const struct tokenizer *tok) { return tok->vocab; }

/* The specials follow the 256 bytes; a larger vocabulary (BPE) would put
 * them after its merges, which is why callers ask instead of assuming. */
int32_t tokenizer_special(const struct tokenizer *tok, enum special_token s) {
  return tok->vocab - SPECIAL_COUNT + (int32_t)s;
}

const char *special_token_name(enum special_token s) { return s < SPECIAL_COUNT ? special_names[s] : NULL; }

int32_t tokenizer_lookup(const struct tokenizer *tok, const char *name) {
  for (int s = 0; s < SPECIAL_COUNT; s++)
    if (strcmp(name, special_names[s]) == 0) return tokenizer_special(tok, (enum special_token)s);
  return -1;
}

const char *tokenizer_token_name(const struct tokenizer *tok, int32_t id) {
  int32_t first = tokenizer_special(tok, SPECIAL_BOS);
  return id >= first && id < first + SPECIAL_COUNT ? special_names[id - first] : NULL;
}

/* Room for NEED tokens in all. */
static void tokens_reserve(struct tokens *t, size_t need) {
  if (need <= t->cap) return;
  size_t cap = t->cap;
  t->ids = xgrow(t->ids, &cap, need, sizeof *t->ids);
  t->mask = xrealloc(t->mask, cap * sizeof *t->mask);
  t->cap = cap;
}

void tokens_push(struct tokens *t, int32_t id, uint8_t mask) {
  tokens_reserve(t, t->n + 1);
  t->ids[t->n] = id;
  t->mask[t->n++] = mask;
}

void tokens_append(struct tokens *t, const int32_t *ids, const uint8_t *mask, size_t n) {
  if (n == 0) return; /* memcpy may not be given the NULL of an empty sequence */
  tokens_reserve(t, t->n + n);
  memcpy(t->ids + t->n, ids, n * sizeof *ids);
  memcpy(t->mask + t->n, mask, n * sizeof *mask);
  t->n += n;
}

void tokens_free(struct tokens *t) {
  free(t->ids);
  free(t->mask);
  *t = (struct tokens){0};
}

void tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, uint8_t mask, struct tokens *out) {
  (void)tok; /* one id per byte, whatever the tokenizer's vocabulary beyond */
  if (len == 0) return;
  tokens_reserve(out, out->n + len);
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < len; i++) out->ids[out->n + i] = s[i];
  memset(out->mask + out->n, mask, len);
  out->n += len;
}

size_t tokenizer_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, char *out, size_t size) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    char piece[32];
    const char *text = piece;
    size_t len;
    const char *special = tokenizer_token_name(tok, ids[i]);
    if (special) {
      text = special;
      len = strlen(special);
    } else if (ids[i] >= 0 && ids[i] < 256) {
      piece[0] = (char)ids[i];
      len = 1;
    } else {
      len = (size_t)snprintf(piece, sizeof piece, "<|id:%ld|>", (long)ids[i]);
    }
    if (size > 0 && total < size - 1) {
      size_t room = size - 1 - total;
      memcpy(out + total, text, len < room ? len : room);
    }
    total += len;
  }
  if (size > 0) out[total < size - 1 ? total : size - 1] = '\0';
  return total;
}

size_t utf8_check(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < len;) {
    size_t n = utf8_sequence_length(s + i, len - i);
    if (n == 0) return i;
    i += n;
  }
  return len;
}

size_t utf8_chars(const char *text, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += utf8_starts_char((unsigned char)text[i]);
  return n;
}

static const char *const template_names[] = {[TEMPLATE_TURNS] = "turns", [TEMPLATE_PLAIN] = "plain"};

bool template_find(const char *name, enum chat_template *out, char *err, size_t err_size) {
  for (size_t i = 0; i < sizeof template_names / sizeof template_names[0]; i++)
    if (name && strcmp(name, template_names[i]) == 0) {
      *out = (enum chat_template)i;
      return true;
    }
  if (name && strcmp(name, "chatml") == 0)
    snprintf(err, err_size, "template 'chatml' is not available yet: this runtime lays out chats with 'turns' "
                            "(the default) or 'plain'");
  else
    snprintf(err, err_size, "unknown template '%s': the runtime knows 'turns' and 'plain'", name ? name : "(none)");
  return false;
}

const char *template_name(enum chat_template t) { return template_names[t]; }

bool chat_role_find(const char *name, size_t len, enum chat_role *out) {
  static const char *const roles[] = {[ROLE_SYSTEM] = "system", [ROLE_USER] = "user", [ROLE_ASSISTANT] = "assistant"};
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strlen(roles[i]) == len && memcmp(name, roles[i], len) == 0) {
      *out = (enum chat_role)i;
      return true;
    }
  return false;
}

bool template_render(const struct tokenizer *tok, enum chat_template t, const struct chat_message *m, size_t n,
                     bool generate, struct tokens *out, char *err, size_t err_size) {
  for (size_t i = 1; i < n; i++)
    if (m[i].role == ROLE_SYSTEM) {
      snprintf(err, err_size, "messages[%zu]: a system message may only come first", i);
      return false;
    }
  int32_t user = tokenizer_special(tok, SPECIAL_USER), assistant = tokenizer_special(tok, SPECIAL_ASSISTANT);
  int32_t eos = tokenizer_special(tok, SPECIAL_EOS);
  if (t == TEMPLATE_PLAIN) {
    for (size_t i = 0; i < n; i++) {
      bool answer = m[i].role == ROLE_ASSISTANT;
      tokenizer_encode(tok, m[i].text, m[i].len, answer, out);
      if (answer) tokens_push(out, eos, 1);
    }
    return true;
  }
  tokens_push(out, tokenizer_special(tok, SPECIAL_BOS), 0);
  const struct chat_message *system = NULL;
  for (size_t i = 0; i < n; i++) {
    switch (m[i].role) {
    case ROLE_SYSTEM:
      system = &m[i];
      if (i + 1 < n && m[i + 1].role == ROLE_USER) break; /* it opens the next turn */
      tokens_push(out, user, 0);
      tokenizer_encode(tok, system->text, system->len, 0, out);
      system = NULL;
      break;
    case ROLE_USER:
      tokens_push(out, user, 0);
      if (system) {
        tokenizer_encode(tok, system->text, system->len, 0, out);
        tokenizer_encode(tok, "\n\n", 2, 0, out);
        system = NULL;
      }
      tokenizer_encode(tok, m[i].text, m[i].len, 0, out);
      break;
    case ROLE_ASSISTANT:
      tokens_push(out, assistant, 0);
      tokenizer_encode(tok, m[i].text, m[i].len, 1, out);
      tokens_push(out, eos, 1); /* counted: ending the turn is part of the answer */
      break;
    }
  }
  if (generate) tokens_push(out, assistant, 0);
  return true;
}

void template_pair(const struct tokenizer *tok, enum chat_template t, const char *prompt, size_t prompt_len,
                   const char *response, size_t response_len, struct tokens *out) {
  struct chat_message m[2] = {{ROLE_USER, prompt, prompt_len}, {ROLE_ASSISTANT, response, response_len}};
  char err[80];
  (void)template_render(tok, t, m, 2, false, out, err, sizeof err); /* cannot fail: no system message */
}
