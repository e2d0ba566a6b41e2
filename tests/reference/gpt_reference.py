#!/usr/bin/env python3
"""Reference values for the GPT-2 model of runtime/gpt.h, from PyTorch.

A GPT-2 written out from its definition (no model library), on the
parameter layout of runtime/gpt.h: one flat buffer, tensors in the order of
enum gpt_tensor, Linear weights [out, in], q, k and v packed in that order
in qkv with heads contiguous, the LM head tied to wte. Pre-LayerNorm blocks
(eps 1e-5), GELU with the tanh approximation, causal attention scaled by
1 / sqrt(head size).

Weights and inputs come from formulas that the C test computes too:

  w[i] = (float)(0.05 * sin(0.37 * i + 0.11)), plus 1.0 (before rounding)
         for ln1w, ln2w and lnfw; i is the index in the whole buffer.
  tokens[b][t]  = (7 b + 3 t + 1) % V
  targets[b][t] = (5 b + 11 t + 2) % V, or -1 where a case ignores it.

For each case the model runs in float64 (on the float32 weights, so the
values are the exact answer for what an fp32 backend is given) and in
float32. The header records, from the float64 run: the log-probability of
every target, the mean next-token loss over the counted targets, and for
every tensor the loss's gradient: its L2 norm, sum, sum of absolute values,
and 32 elements (the first 16 and the middles of 16 equal slices). From the
float32 run it records how far PyTorch's own fp32 arithmetic lands from
float64, as a yardstick for the backend's errors.

Usage: python3 tests/reference/gpt_reference.py [OUTPUT]
(OUTPUT defaults to gpt_values.h beside this script).
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

# name, vocab, context, layers, heads, width
CONFIGS = {
    "A": (61, 16, 2, 2, 16),
    "B": (261, 32, 3, 4, 32),
}

# name, config, batch, sequence length, which targets are ignored
CASES = [
    ("a", "A", 2, 16, None),
    ("a_short", "A", 2, 7, None),
    ("b_masked", "B", 2, 32, lambda b, t: t < 3 + 2 * b or (t + b) % 7 == 6),
    ("b_short_masked", "B", 2, 20, lambda b, t: t < 2 + 3 * b or (t + b) % 5 == 4),
]

TENSORS = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
           "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
LN_WEIGHTS = {"ln1w", "ln2w", "lnfw"}
SAMPLES = 32

# The tolerances the C test holds the backend to; the float32 run is
# measured against them too.
LOGP_REL, LOGP_ABS = 1e-5, 1e-6
GRAD_REL, GRAD_ABS = 1e-4, 1e-6


def shapes(cfg):
    V, T, L, H, C = cfg
    return {
        "wte": (V, C), "wpe": (T, C),
        "ln1w": (L, C), "ln1b": (L, C), "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C),
        "attprojw": (L, C, C), "attprojb": (L, C),
        "ln2w": (L, C), "ln2b": (L, C), "fcw": (L, 4 * C, C), "fcb": (L, 4 * C),
        "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
        "lnfw": (C,), "lnfb": (C,),
    }


def layout(cfg):
    """(name, offset, shape) of every tensor, and the total size."""
    out, at = [], 0
    for name, shape in shapes(cfg).items():
        n = math.prod(shape)
        out.append((name, at, shape))
        at += n
    return out, at


def formula_weights(cfg):
    """The weights as float32 values (held in float64, exactly)."""
    tensors, n = layout(cfg)
    w = torch.empty(n, dtype=torch.float64)
    vals = [0.05 * math.sin(0.37 * i + 0.11) for i in range(n)]
    for name, off, shape in tensors:
        if name in LN_WEIGHTS:
            size = math.prod(shape)
            for i in range(off, off + size):
                vals[i] = 1.0 + vals[i]
    w[:] = torch.tensor(vals, dtype=torch.float64)
    return w.to(torch.float32).to(torch.float64)


def inputs(V, B, T, ignored):
    tokens = [[(7 * b + 3 * t + 1) % V for t in range(T)] for b in range(B)]
    targets = [[(5 * b + 11 * t + 2) % V for t in range(T)] for b in range(B)]
    if ignored:
        for b in range(B):
            for t in range(T):
                if ignored(b, t):
                    targets[b][t] = -1
    return torch.tensor(tokens, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def views(cfg, flat):
    tensors, _ = layout(cfg)
    return {name: flat[off:off + math.prod(shape)].view(shape) for name, off, shape in tensors}


def attention(qkv, H, fused):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // H
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, H, hs).transpose(1, 2)
    k = k.view(B, T, H, hs).transpose(1, 2)
    v = v.view(B, T, H, hs).transpose(1, 2)
    if fused:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = att @ v
    return y.transpose(1, 2).reshape(B, T, C)


def gpt_logp(cfg, flat, tokens, targets, fused=False):
    """Per-token log-probabilities [B, T] of the targets (0 where ignored)."""
    V, _, L, H, C = cfg
    p = views(cfg, flat)
    B, T = tokens.shape
    x = p["wte"][tokens] + p["wpe"][:T]
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        x = x + attention(qkv, H, fused) @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"].T
    logp = torch.log_softmax(logits, dim=-1)
    counted = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(counted, picked, torch.zeros_like(picked))


def run(cfg, weights, tokens, targets, dtype):
    flat = weights.to(dtype).clone().requires_grad_(True)
    logp = gpt_logp(cfg, flat, tokens, targets)
    count = int((targets >= 0).sum())
    loss = -logp.sum() / count
    loss.backward()
    return logp.detach().to(torch.float64), float(loss.detach()), flat.grad.to(torch.float64)


def sample_indices(n):
    first = list(range(min(n, 16)))
    first += [first[-1]] * (16 - len(first))
    return first + [(2 * j + 1) * n // 32 for j in range(16)]


def ratio(got, want, rel, abs_):
    """The worst |got - want| / max(abs_, rel |want|): at most 1 passes."""
    return float(((got - want).abs() / torch.clamp(want.abs() * rel, min=abs_)).max())


def max_rel(got, want, floor):
    """The largest relative error over the values at least FLOOR in size."""
    big = want.abs() >= floor
    if not bool(big.any()):
        return 0.0
    return float(((got - want).abs()[big] / want.abs()[big]).max())


def c_double(x):
    r = repr(float(x))
    return r if ("e" in r or "." in r or "inf" in r or "nan" in r) else r + ".0"


def c_list(values, per_line, fmt):
    items = [fmt(v) for v in values]
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")
    return "\n".join(lines)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "gpt_values.h")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    body = []
    case_entries = []
    for name, cfg_name, B, T, ignored in CASES:
        cfg = CONFIGS[cfg_name]
        V, context, L, H, C = cfg
        assert T <= context
        weights = formula_weights(cfg)
        tensors, n = layout(cfg)
        tokens, targets = inputs(V, B, T, ignored)
        count = int((targets >= 0).sum())

        logp64, loss64, grad64 = run(cfg, weights, tokens, targets, torch.float64)
        logp32, loss32, grad32 = run(cfg, weights, tokens, targets, torch.float32)

        # The attention written out agrees with PyTorch's fused causal attention.
        with torch.no_grad():
            fused = gpt_logp(cfg, weights, tokens, targets, fused=True)
        assert float((fused - logp64).abs().max()) < 1e-12, "attention disagrees with scaled_dot_product_attention"
        assert abs(loss64 + float(logp64.sum()) / count) < 1e-12

        # How far PyTorch's float32 run lands from float64, by the C test's measures.
        f32_logp_ratio = ratio(logp32, logp64, LOGP_REL, LOGP_ABS)
        f32_logp_rel = max_rel(logp32, logp64, LOGP_ABS / LOGP_REL)
        f32_grad_ratio = 0.0
        f32_grad_rel = 0.0
        recs = []
        for tname, off, shape in tensors:
            size = math.prod(shape)
            g = grad64[off:off + size]
            g32 = grad32[off:off + size]
            idx = sample_indices(size)
            it = torch.tensor(idx)
            f32_grad_ratio = max(f32_grad_ratio, ratio(g32[it], g[it], GRAD_REL, GRAD_ABS))
            f32_grad_rel = max(f32_grad_rel, max_rel(g32[it], g[it], GRAD_ABS / GRAD_REL))
            recs.append((tname, float(g.norm()), float(g.sum()), float(g.abs().sum()), idx, [float(g[i]) for i in idx]))
        print(f"{name}: V={V} T={context} L={L} H={H} C={C}, batch {B}x{T}, {count} counted targets, "
              f"{n} parameters, loss {loss64:.10f} (float32 {loss32:.10f})")
        print(f"  float32 vs float64: logp max rel {f32_logp_rel:.3g} (tolerance used {f32_logp_ratio:.3g}), "
              f"sampled gradients max rel {f32_grad_rel:.3g} (tolerance used {f32_grad_ratio:.3g})")
        if f32_logp_ratio > 1 or f32_grad_ratio > 1:
            print("  warning: PyTorch's own float32 run exceeds the C test's tolerances", file=sys.stderr)

        ident = f"gpt_ref_{name}"
        body.append(f"/* Case {name}: config {cfg_name}, batch {B}, sequence {T}, {count} counted targets. */")
        body.append(f"static const int32_t {ident}_tokens[{B * T}] = {{")
        body.append(c_list(tokens.flatten().tolist(), 16, str))
        body.append("};")
        body.append(f"static const int32_t {ident}_targets[{B * T}] = {{")
        body.append(c_list(targets.flatten().tolist(), 16, str))
        body.append("};")
        body.append(f"static const double {ident}_logp[{B * T}] = {{")
        body.append(c_list(logp64.flatten().tolist(), 4, c_double))
        body.append("};")
        body.append(f"static const struct gpt_ref_tensor {ident}_tensors[GPT_REF_TENSORS] = {{")
        for tname, norm, gsum, gabs, idx, vals in recs:
            body.append(f"  {{\"{tname}\", {c_double(norm)}, {c_double(gsum)}, {c_double(gabs)},")
            body.append("   {" + ", ".join(str(i) for i in idx) + "},")
            body.append("   {")
            body.append(c_list(vals, 4, c_double))
            body.append("   }},")
        body.append("};")
        body.append("")
        case_entries.append(
            f"  {{\"{name}\", {{{V}, {context}, {L}, {H}, {C}}}, {B}, {T}, {count}, {ident}_tokens, {ident}_targets, "
            f"{ident}_logp, {c_double(loss64)}, {c_double(float(grad64.norm()))}, {ident}_tensors,\n"
            f"   {c_double(f32_logp_rel)}, {c_double(f32_grad_rel)}}},")

    head = f"""/* Reference values for tests/unit/test_reference.c: a GPT-2 on the layout
 * of runtime/gpt.h, computed in float64 on the CPU by PyTorch {torch.__version__}.
 * Generated by tests/reference/gpt_reference.py, which says what each value
 * is (see also tests/reference/README.md); do not edit by hand.
 *
 * Weights: w[i] = (float)(0.05 * sin(0.37 * i + 0.11)) over the whole buffer,
 * plus 1.0 (before rounding) for ln1w, ln2w and lnfw. Tokens and targets are
 * listed per case; a target of -1 is ignored. The loss is the mean of
 * -logp over the counted targets; gradients are of that loss. */
#ifndef TRAINPIPE_TESTS_REFERENCE_GPT_VALUES_H
#define TRAINPIPE_TESTS_REFERENCE_GPT_VALUES_H

#include <stdint.h>

#define GPT_REF_TENSORS {len(TENSORS)}
#define GPT_REF_SAMPLES {SAMPLES}

/* One tensor's gradient: its L2 norm, sum and sum of absolute values, and
 * the values at index[] (the first 16 elements, then the middles of 16 equal
 * slices: (2 j + 1) n / 32). */
struct gpt_ref_tensor {{
  const char *name;
  double norm, sum, abs_sum;
  int index[GPT_REF_SAMPLES];
  double grad[GPT_REF_SAMPLES];
}};

struct gpt_ref_case {{
  const char *name;
  struct {{
    int vocab, context, layers, heads, width;
  }} cfg;
  int batch, seq, counted;
  const int32_t *tokens, *targets; /* [batch, seq] */
  const double *logp;               /* [batch, seq]; 0 where ignored */
  double loss, grad_norm;           /* grad_norm over all parameters */
  const struct gpt_ref_tensor *tensors;
  /* PyTorch's float32 run against float64: the largest relative error of
   * the log-probabilities (those at least 0.1 in size) and of the sampled
   * gradient elements (those at least 0.01 in size). */
  double f32_logp_rel, f32_grad_rel;
}};

"""
    tail = ["static const struct gpt_ref_case gpt_ref_cases[] = {"] + case_entries + [
        "};", f"#define GPT_REF_CASES {len(CASES)}", "", "#endif", ""]
    with open(out_path, "w") as f:
        f.write(head + "\n".join(body) + "\n" + "\n".join(tail))
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
