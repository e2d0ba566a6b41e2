/* Tokenizers and chat templates: how text becomes token ids, and how a
 * conversation becomes one token sequence with a loss mask.
 *
 * The "bytes" tokenizer maps each byte of the text to its value (ids 0 to
 * 255) and adds five special tokens after them, so any byte string, valid
 * UTF-8 or not, encodes and decodes exactly:
 *
 *   <|bos|> 256   <|eos|> 257   <|user|> 258   <|assistant|> 259   <|pad|> 260
 *
 * (vocabulary 261). Text is never parsed for special tokens: a literal
 * "<|eos|>" in a document stays seven bytes, so data cannot forge a turn.
 * <|pad|> is not <|eos|>, so padding never teaches the model to stop, and
 * padding carries no loss anyway.
 *
 * A tokenizer and a template are recorded by name in checkpoints and stage
 * keys ("bytes", "turns"); unknown names are refused with the reason. */
#ifndef TRAINPIPE_TOKENIZER_H
#define TRAINPIPE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The special tokens, in id order after the bytes. */
#define SPECIAL_TOKENS(X) X(BOS, "<|bos|>") X(EOS, "<|eos|>") X(USER, "<|user|>") X(ASSISTANT, "<|assistant|>") \
  X(PAD, "<|pad|>")

enum special_token {
#define X(id, name) SPECIAL_##id,
  SPECIAL_TOKENS(X)
#undef X
  SPECIAL_COUNT
};

/* The bytes tokenizer's ids, for tests and for code that only ever runs it. */
enum {
  BYTES_BOS = 256 + SPECIAL_BOS,
  BYTES_EOS = 256 + SPECIAL_EOS,
  BYTES_USER = 256 + SPECIAL_USER,
  BYTES_ASSISTANT = 256 + SPECIAL_ASSISTANT,
  BYTES_PAD = 256 + SPECIAL_PAD,
  BYTES_VOCAB = 256 + SPECIAL_COUNT
};

struct tokenizer;

/* The tokenizer called NAME ("bytes"); NULL with the reason in ERR for a
 * name that is unknown or not available in this build ("bpe"). */
struct tokenizer *tokenizer_create(const char *name, char *err, size_t err_size);
void tokenizer_free(struct tokenizer *tok);

const char *tokenizer_name(const struct tokenizer *tok); /* "bytes", for checkpoints */
int tokenizer_vocab(const struct tokenizer *tok);        /* ids are 0 .. vocab - 1 */
int32_t tokenizer_special(const struct tokenizer *tok, enum special_token s);
const char *special_token_name(enum special_token s);    /* "<|eos|>" */

/* The id of the special token spelled NAME ("<|eos|>"), or -1. */
int32_t tokenizer_lookup(const struct tokenizer *tok, const char *name);

/* The name of ID when it is a special token ("<|eos|>"), else NULL. */
const char *tokenizer_token_name(const struct tokenizer *tok, int32_t id);

/* A growing token sequence with one loss-mask byte per token (1: the loss
 * counts this token as a target; 0: context only). Zero-initialise it. */
struct tokens {
  int32_t *ids;
  uint8_t *mask;
  size_t n, cap;
};

void tokens_push(struct tokens *t, int32_t id, uint8_t mask);
void tokens_append(struct tokens *t, const int32_t *ids, const uint8_t *mask, size_t n);
void tokens_free(struct tokens *t);

/* Appends the ids of TEXT (LEN bytes), each with loss mask MASK. */
void tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, uint8_t mask, struct tokens *out);

/* Writes the text of IDS into OUT (SIZE bytes, NUL-terminated, cut short
 * when it does not fit) and returns its full length, as snprintf does.
 * Special tokens appear as their names; an id beyond the tokenizer's (a
 * model may have a larger vocabulary) as "<|id:N|>". Bytes come out as they
 * are: a sequence cut inside a character is not valid UTF-8. */
size_t tokenizer_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, char *out, size_t size);

/* The offset of the first byte of TEXT that is not part of well-formed
 * UTF-8 (overlong forms, surrogates and code points past U+10FFFF are not),
 * or LEN when all of it is. */
size_t utf8_check(const char *text, size_t len);

/* Code points in TEXT, which is valid UTF-8. */
size_t utf8_chars(const char *text, size_t len);

/* Chat templates.
 *
 * turns (the default):
 *   <|bos|><|user|>PROMPT<|assistant|>RESPONSE<|eos|>[<|user|>...<|assistant|>...<|eos|>]
 *   A system message may only come first; its text opens the first user
 *   turn, followed by a blank line ("SYSTEM\n\nPROMPT"), as there is no
 *   system token; when no user message follows it, it is a user turn alone.
 * plain:
 *   PROMPT RESPONSE <|eos|>: the texts back to back, each assistant text
 *   followed by <|eos|>; no other tokens.
 * chatml is named by the language but not available yet, and is refused.
 *
 * The loss mask is 1 on every token of an assistant's text and on the
 * <|eos|> that ends its turn (so the model learns to stop), 0 on everything
 * else: <|bos|>, role tokens, system and user text. */
enum chat_template { TEMPLATE_TURNS, TEMPLATE_PLAIN };

/* The template called NAME; false with the reason in ERR. */
bool template_find(const char *name, enum chat_template *out, char *err, size_t err_size);
const char *template_name(enum chat_template t);

enum chat_role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

/* The role called NAME ("system", "user", "assistant"); false when none. */
bool chat_role_find(const char *name, size_t len, enum chat_role *out);

struct chat_message {
  enum chat_role role;
  const char *text;
  size_t len;
};

/* Appends the N messages laid out by template T, with their loss mask, to
 * OUT. With GENERATE, ends with what opens an assistant turn (turns:
 * <|assistant|>), for sampling a response. False with the reason in ERR
 * ("messages[2]: a system message may only come first"); OUT is then
 * left as it was. */
bool template_render(const struct tokenizer *tok, enum chat_template t, const struct chat_message *m, size_t n,
                     bool generate, struct tokens *out, char *err, size_t err_size);

/* A prompt and its response: template_render of one user and one
 * assistant message. */
void template_pair(const struct tokenizer *tok, enum chat_template t, const char *prompt, size_t prompt_len,
                   const char *response, size_t response_len, struct tokens *out);

#endif
