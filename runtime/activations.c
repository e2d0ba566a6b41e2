#include "runtime/activations.h"

float *layout_piece(struct layout *l, size_t n) {
  float *p = l->base ? l->base + l->used : NULL;
  l->used += (n + l->align - 1) & ~(l->align - 1);
  return p;
}

void activations_layout(struct activations *a, struct layout *l, const struct backend_spec *spec, size_t logit_rows,
                        size_t att, unsigned in_bf16) {
  const struct gpt_config *cfg = &spec->cfg;
  size_t N = (size_t)spec->max_batch * spec->max_seq, C = (size_t)cfg->width, L = (size_t)cfg->layers;
  size_t kept = spec->train ? L : (L ? 1 : 0);
  bool io32 = !(in_bf16 & ACTS_BF16_MATMUL_IO), qkv32 = !(in_bf16 & ACTS_BF16_QKV);
  a->encoded = layout_piece(l, N * C);
  for (size_t i = 0; i < L; i++) {
    struct layer_acts *la = &a->layers[i];
    if (i >= kept) {
      *la = a->layers[0];
      continue;
    }
    la->ln1 = io32 ? layout_piece(l, N * C) : NULL;
    la->ln1_mean = layout_piece(l, N);
    la->ln1_rstd = layout_piece(l, N);
    la->qkv = qkv32 ? layout_piece(l, 3 * N * C) : NULL;
    la->atty = layout_piece(l, N * C);
    la->att = layout_piece(l, att);
    la->attproj = layout_piece(l, N * C);
    la->residual2 = layout_piece(l, N * C);
    la->ln2 = io32 ? layout_piece(l, N * C) : NULL;
    la->ln2_mean = layout_piece(l, N);
    la->ln2_rstd = layout_piece(l, N);
    la->fch = io32 ? layout_piece(l, 4 * N * C) : NULL;
    la->fch_gelu = io32 ? layout_piece(l, 4 * N * C) : NULL;
    la->fcproj = layout_piece(l, N * C);
    la->residual3 = layout_piece(l, N * C);
  }
  a->lnf = layout_piece(l, N * C);
  a->lnf_mean = layout_piece(l, N);
  a->lnf_rstd = layout_piece(l, N);
  a->lse = layout_piece(l, N);
  a->logits = layout_piece(l, logit_rows * (size_t)cfg->vocab);
  a->dx = a->dln = a->dlnf = a->datty = a->dqkv = a->datt = a->dfch = a->dfch_gelu = NULL;
  if (!spec->train) return;
  a->dx = layout_piece(l, N * C);
  a->dln = layout_piece(l, N * C);
  a->dlnf = layout_piece(l, N * C);
  a->datty = layout_piece(l, N * C);
  a->dqkv = qkv32 ? layout_piece(l, 3 * N * C) : NULL;
  a->datt = layout_piece(l, att);
  a->dfch = io32 ? layout_piece(l, 4 * N * C) : NULL;
  a->dfch_gelu = io32 ? layout_piece(l, 4 * N * C) : NULL;
}

int gen_positions(const struct backend_spec *spec) {
  return spec->gen_rows > spec->max_seq ? spec->gen_rows : spec->max_seq;
}

void gen_scratch_layout(struct gen_scratch *g, struct layout *l, const struct backend_spec *spec) {
  size_t R = (size_t)spec->gen_rows, S = (size_t)spec->max_seq, C = (size_t)spec->cfg.width;
  size_t H = (size_t)spec->cfg.heads, P = (size_t)gen_positions(spec);
  g->x = layout_piece(l, P * C);
  g->ln = layout_piece(l, P * C);
  g->mean = layout_piece(l, P);
  g->rstd = layout_piece(l, P);
  g->qkv = layout_piece(l, 3 * P * C);
  g->atty = layout_piece(l, P * C);
  g->proj = layout_piece(l, P * C);
  g->fch = layout_piece(l, 4 * P * C);
  g->fch_gelu = layout_piece(l, 4 * P * C);
  g->att = layout_piece(l, H * S * S);
  g->scores = layout_piece(l, R * H * S);
}
