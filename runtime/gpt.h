/* The GPT-2 model's shape and the layout of its parameters.
 *
 * All parameters live in one contiguous fp32 buffer, tensor after tensor in
 * the order of enum gpt_tensor (as in llm.c), so that a backend allocates,
 * zeroes, clips and updates them as one array. A Linear layer's weight is
 * [out, in] as in PyTorch: y = x W^T + b. The LM head is tied to wte.
 *
 *   wte [V, C]     wpe [T, C]
 *   per layer l (stacked on a leading [L] axis):
 *   ln1w, ln1b [C]   qkvw [3C, C]  qkvb [3C]   attprojw [C, C]  attprojb [C]
 *   ln2w, ln2b [C]   fcw [4C, C]   fcb [4C]    fcprojw [C, 4C]  fcprojb [C]
 *   lnfw, lnfb [C]
 *   headw [C]  headb [1]   the scalar head, when cfg.head (else both [0])
 *
 * The scalar head is last, so that a model without one has exactly the
 * layout (and the initialisation) it had before heads existed; its value
 * at a position is lnf_out . headw + headb.
 *
 * qkv packs queries, keys and values in that order, each C wide, heads
 * contiguous within each (head h owns columns h*C/H ... (h+1)*C/H - 1). */
#ifndef TRAINPIPE_GPT_H
#define TRAINPIPE_GPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gpt_config {
  int vocab;   /* V */
  int context; /* T, the longest sequence */
  int layers;  /* L */
  int heads;   /* H; divides width */
  int width;   /* C */
  int head;    /* 1: a scalar head (reward or value) on the final LayerNorm's output; 0: none */
};

#define GPT_TENSORS(X)                                                                                         \
  X(WTE, "wte") X(WPE, "wpe") X(LN1W, "ln1w") X(LN1B, "ln1b") X(QKVW, "qkvw") X(QKVB, "qkvb")                  \
  X(ATTPROJW, "attprojw") X(ATTPROJB, "attprojb") X(LN2W, "ln2w") X(LN2B, "ln2b") X(FCW, "fcw") X(FCB, "fcb") \
  X(FCPROJW, "fcprojw") X(FCPROJB, "fcprojb") X(LNFW, "lnfw") X(LNFB, "lnfb")                                  \
  X(HEADW, "headw") X(HEADB, "headb")

enum gpt_tensor {
#define X(id, name) GPT_##id,
  GPT_TENSORS(X)
#undef X
  GPT_TENSOR_COUNT
};

/* The name of a tensor in checkpoints ("wte"). */
const char *gpt_tensor_name(enum gpt_tensor t);

/* A tensor's shape: up to 3 dimensions (the layer axis first); returns the
 * number of dimensions. The head's tensors of a model without one have the
 * one dimension 0. */
int gpt_tensor_shape(const struct gpt_config *cfg, enum gpt_tensor t, size_t shape[3]);

/* Elements of each tensor, and their sum. */
size_t gpt_tensor_size(const struct gpt_config *cfg, enum gpt_tensor t);
size_t gpt_param_count(const struct gpt_config *cfg);

/* Where each tensor starts in the one buffer (offsets in floats). */
void gpt_tensor_offsets(const struct gpt_config *cfg, size_t offsets[GPT_TENSOR_COUNT]);

/* Whether AdamW's weight decay applies: the matmul weights and the scalar
 * head's weight, not biases, LayerNorms or embeddings. */
bool gpt_tensor_decays(enum gpt_tensor t);

/* Why CFG cannot be built ("heads must divide width"); NULL when it can. */
const char *gpt_config_problem(const struct gpt_config *cfg);

/* GPT-2's initialisation from SEED: weights N(0, 0.02), the two residual
 * projections (attprojw, fcprojw) N(0, 0.02 / sqrt(2 L)), biases 0,
 * LayerNorm weights 1; the scalar head's weight N(0, 0.02) drawn after
 * everything else, its bias 0. Deterministic for a seed on every
 * machine. */
void gpt_init(const struct gpt_config *cfg, float *params, uint64_t seed);

#endif
