#!/usr/bin/env python3
"""The PyTorch side of bench/train-cpu: the training step that trainpipe's
CPU backend makes, in PyTorch eager mode, timed the same way.

The model (bench/torch_gpt.py) is GPT-2 as tests/reference/gpt_reference.py
writes it out (no model library): pre-LayerNorm blocks (eps 1e-5), GELU with the tanh
approximation, causal attention scaled by 1 / sqrt(head size), the LM head
tied to the token embedding, Linear weights [out, in] with q, k and v packed
in that order. Each tensor is its own nn.Parameter, one per layer, as an
ordinary PyTorch model holds them (one flat buffer with views, as the
reference test uses, would make every backward scatter each layer's
gradient into the full stacked tensor). Attention is
F.scaled_dot_product_attention(is_causal=True), PyTorch's fastest CPU path
for it.

One step, as runtime/train.c makes it: zero_grad, forward, the mean
next-token cross-entropy, backward, the global gradient norm with clipping
at 1.0 (clip_grad_norm_), and torch.optim.AdamW (lr 6e-4, betas 0.9/0.95,
eps 1e-8, weight decay 0.1 on the matmul weights only). WARMUP untimed
steps, then STEPS timed ones on one fixed random batch; prints `key value`
lines: the median and the spread of the step time, the loss before and
after, the peak RSS, the torch version and its BLAS, and, with --sgemm,
the best square torch.mm rate on the same threads.

The settings (threads, OMP_WAIT_POLICY, the malloc thresholds) come from
the environment and the options; bench/train-cpu runs this script once in
PyTorch's best setting and once with its defaults.
"""

import argparse
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from torch_gpt import GPT


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def torch_sgemm(sizes, reps):
    best = 0.0
    for n in sizes:
        a = torch.rand(n, n) - 0.5
        b = torch.rand(n, n) - 0.5
        c = torch.empty(n, n)
        t_best = math.inf
        for r in range(reps + 1):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            t = time.perf_counter() - t0
            if r > 0:
                t_best = min(t_best, t)
        gflops = 2.0 * n ** 3 / t_best * 1e-9
        print(f"torch_sgemm {n} {t_best:.6f} {gflops:.2f}")
        best = max(best, gflops)
    print(f"torch_sgemm_peak_gflops {best:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.AdamW's implementation (default: what PyTorch picks on the CPU)")
    ap.add_argument("--sgemm", type=int, nargs="*", default=[], help="also time torch.mm of these square sizes")
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch_version {torch.__version__}")
    print(f"torch_threads {torch.get_num_threads()}")
    blas = "MKL" if torch.backends.mkl.is_available() else "unknown"
    print(f"torch_blas {blas}")
    print(f"torch_cpu_capability {torch.backends.cpu.get_cpu_capability()}")
    if args.sgemm:
        torch_sgemm(args.sgemm, 5)

    torch.manual_seed(1)
    V, B, T = args.vocab, args.batch, args.seq
    model = GPT(V, args.context, args.layers, args.heads, args.width)
    params = list(model.parameters())
    print(f"params {sum(p.numel() for p in params)}")
    kw = {}
    if args.adamw == "foreach":
        kw["foreach"] = True
    elif args.adamw == "fused":
        kw["fused"] = True
    impl = args.adamw
    try:
        opt = torch.optim.AdamW(model.param_groups(0.1), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **kw)
    except (RuntimeError, ValueError):
        # PyTorch before 2.4 has no fused AdamW on the CPU: the multi-tensor one is next best.
        impl = "foreach (no fused AdamW on the CPU in this PyTorch)"
        opt = torch.optim.AdamW(model.param_groups(0.1), lr=6e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    print(f"adamw_impl {impl}")

    g = torch.Generator().manual_seed(7)
    seq = torch.randint(0, V, (B * T + 1,), generator=g)
    tokens = seq[:-1].view(B, T).clone()
    targets = seq[1:].view(B, T).clone()

    times, losses = [], []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t = time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if s >= args.warmup:
            times.append(t)
    print(f"tokens_per_step {B * T}")
    print(f"steps {args.steps}")
    print(f"warmup {args.warmup}")
    print(f"step_median_s {statistics.median(times):.6f}")
    print(f"step_min_s {min(times):.6f}")
    print(f"step_max_s {max(times):.6f}")
    print(f"loss_first {losses[0]:.4f}")
    print(f"loss_last {losses[-1]:.4f}")
    print(f"rss_peak_kib {peak_rss_kib()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
