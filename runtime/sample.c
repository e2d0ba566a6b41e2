#include "runtime/sample.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/generate.h"

/* The prompt's tokens as the stage saw its data: a user turn of the chat
 * template, or a document after an end-of-text token. */
static bool prompt_tokens(const struct tokenizer *tok, enum chat_template template, const char *prompt, bool chat,
                          struct tokens *t, char *err, size_t err_size) {
  if (chat) {
    struct chat_message m = {ROLE_USER, prompt, strlen(prompt)};
    return template_render(tok, template, &m, 1, true, t, err, err_size);
  }
  /* documents follow an end-of-text token in pre-training: so does the prompt */
  tokens_push(t, tokenizer_special(tok, SPECIAL_EOS), 0);
  tokenizer_encode(tok, prompt, strlen(prompt), 0, t);
  return true;
}

bool sample_text(struct backend *model, const struct tokenizer *tok, enum chat_template template, const char *prompt,
                 const struct sample_options *opt, FILE *out, char *err, size_t err_size) {
  struct tokens t = {0};
  if (!prompt_tokens(tok, template, prompt, opt->chat, &t, err, err_size)) {
    tokens_free(&t);
    return false;
  }
  int32_t eos = tokenizer_special(tok, SPECIAL_EOS);
  /* The KV cache holds max_seq positions, prompt and text together. A
   * longer prompt keeps its last max_seq - 1 tokens, so that at least one
   * can follow, and the text ends when the row is full (recomputing a
   * sliding window of the last max_seq tokens, as sampling once did,
   * would cost the whole window each token). */
  int context = model->spec.max_seq;
  size_t keep = t.n;
  if (keep > (size_t)context - 1) keep = context > 1 ? (size_t)context - 1 : 1;
  int room = context - (int)keep;
  struct generate_options g = {
      .temperature = opt->temperature,
      .top_k = opt->top_k,
      .top_p = opt->top_p,
      .max_new_tokens = opt->max_tokens < room ? opt->max_tokens : room,
      .stop = eos,
      .seed = opt->seed,
      .first_row = 0,
  };
  int32_t *text = xmalloc((size_t)(g.max_new_tokens > 0 ? g.max_new_tokens : 1) * sizeof *text);
  struct completion c = {.prompt = t.ids + (t.n - keep), .prompt_len = (int)keep, .tokens = text};
  bool ok = generate(model, &c, 1, &g, err, err_size);
  if (ok) {
    /* the end-of-turn token ends the text and is not part of it */
    int shown = c.stopped ? c.len - 1 : c.len;
    for (int i = 0; i < shown; i++) {
      char piece[32];
      size_t n = tokenizer_decode(tok, &text[i], 1, piece, sizeof piece);
      fwrite(piece, 1, n < sizeof piece ? n : sizeof piece - 1, out);
    }
    fputc('\n', out);
  }
  free(text);
  tokens_free(&t);
  return ok;
}
