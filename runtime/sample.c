#include "runtime/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/arena.h"
#include "runtime/rng.h"

/* The next token from LOGITS [V]: the likeliest at temperature 0, else a
 * draw from softmax(logits / temperature) over the top k. */
static int32_t pick(float *logits, int V, const struct sample_options *opt, struct rng *r) {
  int32_t best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > logits[best]) best = v;
  if (opt->temperature <= 0) return best;
  if (opt->top_k > 0 && opt->top_k < V) {
    /* the k-th largest logit, by repeated selection: k is small */
    float *sorted = xmalloc((size_t)V * sizeof *sorted);
    memcpy(sorted, logits, (size_t)V * sizeof *sorted);
    float cut = -INFINITY;
    for (int i = 0; i < opt->top_k; i++) {
      int at = i;
      for (int v = i + 1; v < V; v++)
        if (sorted[v] > sorted[at]) at = v;
      float t = sorted[i];
      sorted[i] = sorted[at];
      sorted[at] = t;
      cut = sorted[i];
    }
    free(sorted);
    for (int v = 0; v < V; v++)
      if (logits[v] < cut) logits[v] = -INFINITY;
  }
  double max = logits[best], total = 0;
  for (int v = 0; v < V; v++) total += exp((logits[v] - max) / opt->temperature);
  double u = rng_uniform(r) * total, seen = 0;
  for (int v = 0; v < V; v++) {
    seen += exp((logits[v] - max) / opt->temperature);
    if (seen > u) return v;
  }
  return best;
}

bool sample_text(struct backend *model, const struct tokenizer *tok, enum chat_template template, const char *prompt,
                 const struct sample_options *opt, FILE *out, char *err, size_t err_size) {
  struct tokens t = {0};
  int32_t eos = tokenizer_special(tok, SPECIAL_EOS);
  if (opt->chat) {
    struct chat_message m = {ROLE_USER, prompt, strlen(prompt)};
    if (!template_render(tok, template, &m, 1, true, &t, err, err_size)) {
      tokens_free(&t);
      return false;
    }
  } else {
    /* documents follow an end-of-text token in pre-training: so does the prompt */
    tokens_push(&t, eos, 0);
    tokenizer_encode(tok, prompt, strlen(prompt), 0, &t);
  }
  int V = model->spec.cfg.vocab, context = model->spec.max_seq;
  float *logits = xmalloc((size_t)V * sizeof *logits);
  struct rng r = rng_seed(opt->seed);
  for (int i = 0; i < opt->max_tokens; i++) {
    size_t from = t.n > (size_t)context ? t.n - (size_t)context : 0;
    model->ops->next_logits(model, t.ids + from, 1, (int)(t.n - from), logits);
    int32_t next = pick(logits, V, opt, &r);
    if (next == eos) break;
    tokens_push(&t, next, 1);
    char text[32];
    size_t n = tokenizer_decode(tok, &next, 1, text, sizeof text);
    fwrite(text, 1, n < sizeof text ? n : sizeof text - 1, out);
    fflush(out);
  }
  fputc('\n', out);
  free(logits);
  tokens_free(&t);
  return true;
}
