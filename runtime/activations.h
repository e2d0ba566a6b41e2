/* Where a backend keeps its activations: the buffers a forward fills and
 * its backward reads, the backward's scratch, and generation's scratch,
 * laid out in one allocation. The CPU backend and the CUDA one share this
 * layout, so the sizes are counted in one place; the layout only computes
 * pointers into BASE, host or device memory alike, and never touches it.
 *
 * Shapes for B = max_batch sequences of T = max_seq tokens, N = B T, C the
 * width, H the heads, V the vocab. A backend that does not train keeps one
 * layer's activations, which every layer reuses (a layer reads its input,
 * the previous residual3, before it writes its own), and no scratch for a
 * backward. */
#ifndef TRAINPIPE_ACTIVATIONS_H
#define TRAINPIPE_ACTIVATIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Consecutive pieces of one allocation, each aligned to ALIGN floats (a
 * power of two). With BASE NULL it only counts: pieces are NULL, USED
 * grows the same. */
struct layout {
  float *base;
  size_t used, align;
};

float *layout_piece(struct layout *l, size_t n);

/* One layer's activations. */
struct layer_acts {
  float *ln1, *ln1_mean, *ln1_rstd; /* ln1 of the layer's input */
  float *qkv, *atty, *att;          /* att: ATT floats */
  float *attproj, *residual2;
  float *ln2, *ln2_mean, *ln2_rstd;
  float *fch, *fch_gelu, *fcproj;
  float *residual3; /* the layer's output */
};

struct activations {
  float *encoded;
  struct layer_acts *layers; /* [L], the caller's array */
  float *lnf, *lnf_mean, *lnf_rstd, *lse;
  float *logits; /* [logit_rows, V] */
  /* the backward's scratch, one layer's worth; NULL without training */
  float *dx, *dln, *dlnf, *datty, *dqkv, *datt, *dfch, *dfch_gelu; /* datt: ATT floats */
};

/* The buffers that a bf16 backend keeps in bf16 elsewhere, and which then
 * get no memory here (NULL). */
enum {
  /* ln1, ln2 and fch_gelu, which only matmuls read; fch, and the
   * gradients dfch and dfch_gelu */
  ACTS_BF16_MATMUL_IO = 1,
  /* qkv and its gradient dqkv */
  ACTS_BF16_QKV = 2,
};

/* Lays out SPEC's activations with LOGIT_ROWS rows of logits and ATT
 * floats for each layer's attention (B H T T for its weights; B H T for
 * fused attention's log-sum-exps), but for the buffers IN_BF16 (ACTS_*)
 * says are elsewhere; A->layers must hold cfg.layers entries. */
void activations_layout(struct activations *a, struct layout *l, const struct backend_spec *spec, size_t logit_rows,
                        size_t att, unsigned in_bf16);

/* Generation's scratch for P = max(gen_rows, max_seq) positions at a time
 * (a prompt, or one token of every row). */
struct gen_scratch {
  float *x, *ln, *mean, *rstd; /* [P, C], [P] */
  float *qkv, *atty, *proj, *fch, *fch_gelu;
  float *att;    /* [H, S, S]: a prompt's attention weights */
  float *scores; /* [R, H, S]: a decode step's */
};

int gen_positions(const struct backend_spec *spec);
void gen_scratch_layout(struct gen_scratch *g, struct layout *l, const struct backend_spec *spec);

#ifdef __cplusplus
}
#endif

#endif
