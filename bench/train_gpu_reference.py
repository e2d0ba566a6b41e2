#!/usr/bin/env python3
"""The PyTorch side of bench/train-gpu: the training step that trainpipe's
CUDA backend makes, in PyTorch on the same GPU, timed with CUDA events.

The model is bench/torch_gpt.py's, which bench/train_cpu_reference.py
uses too (GPT-2 as tests/reference/gpt_reference.py has it, no model
library): pre-LayerNorm
blocks (eps 1e-5), GELU with the tanh approximation, causal attention
through F.scaled_dot_product_attention(is_causal=True) (flash or memory-
efficient attention, whichever PyTorch picks for the precision), the LM
head tied to the token embedding, one nn.Parameter per tensor. It is
initialised on the CPU from the same seed, so its weights are those of
the CPU reference, then moved to the GPU.

The parameters stay in fp32 (master weights). --precision bf16 (the
default) runs the forward pass and the loss under
torch.autocast("cuda", dtype=torch.bfloat16); fp32 runs without autocast
and with TF32 matmuls off; tf32 runs without autocast and with TF32
matmuls on. --mode compile wraps the model in torch.compile (the loss and
the optimiser stay eager); the compilation happens in the first warm-up
step, whose time is printed as compile_s.

One step, as runtime/train.c makes it: zero_grad(set_to_none=True),
forward, the mean next-token cross-entropy, backward,
clip_grad_norm_(1.0), and torch.optim.AdamW (fused on CUDA, else the
multi-tensor one; lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on
the matmul weights only). WARMUP untimed steps, then STEPS timed ones on
one fixed random batch, each between a pair of CUDA events with the device
idle before it, so a step's time includes the host's launch gaps as a
training loop that reads its loss every step sees them.

--batch 0 picks the largest power of two from 1 to 64 whose step fits in
the GPU's memory, trying each size in this process, in eager mode and in
the chosen precision (torch.compile usually needs less memory than eager,
so the size eager fits is one compile fits too); the timed run then starts
again from the initial weights.

FLOPs: a token costs 6N + 6*L*T*C (Kaplan et al. 2020, the convention of
interp/plan.c), N every parameter but the position embedding (the token
embedding counts once: it is the tied LM head) and T the sequence length.
The achieved rate over --peak-tflops (989: the H100 SXM's dense bf16 peak;
pass the peak of the precision measured) is the MFU.

Prints `key value` lines on stdout: the versions and the device, the
settings, the batch, the median and the spread of the step time, tokens a
second, the model TFLOP/s and the MFU, the loss before and after, the peak
memory, and with --profile N the 15 kernels with the most GPU time over N
more steps, as `kernel_share NAME PERCENT`. Without a CUDA device it
prints one `error ...` line on stderr and exits 1.
"""

import argparse
import gc
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from torch_gpt import GPT


def error(msg):
    print(f"error {msg}", file=sys.stderr)
    return 1


def build(args, device):
    # Initialised on the CPU so that the weights are those of the CPU
    # reference for the same seed, whatever the GPU's generator does.
    torch.manual_seed(args.seed)
    model = GPT(args.vocab, args.context, args.layers, args.heads, args.width).to(device)
    kw = dict(lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    try:
        opt = torch.optim.AdamW(model.param_groups(0.1), fused=True, **kw)
        impl = "fused"
    except (RuntimeError, ValueError):
        opt = torch.optim.AdamW(model.param_groups(0.1), foreach=True, **kw)
        impl = "foreach (fused AdamW refused)"
    return model, opt, impl


def make_step(model, forward, opt, V, precision):
    params = list(model.parameters())
    autocast = precision == "bf16"

    def step(tokens, targets):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = forward(tokens)
            loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.detach()

    return step


def batch_of(args, B, device):
    # The CPU generator, so that the batch is the CPU reference's: that
    # seeds its model with 1 and its data with 7, and --seed 1 here does
    # the same.
    g = torch.Generator().manual_seed(args.seed + 6)
    seq = torch.randint(0, args.vocab, (B * args.seq + 1,), generator=g)
    tokens = seq[:-1].view(B, args.seq).to(device)
    targets = seq[1:].view(B, args.seq).to(device)
    return tokens, targets


def free_cuda():
    gc.collect()
    torch.cuda.empty_cache()


def largest_batch(args, device):
    """The largest power of two from 1 to 64 whose step fits, or 0."""
    model, opt, _ = build(args, device)
    step = make_step(model, model, opt, args.vocab, args.precision)
    fits = 0
    B = 1
    while B <= 64:
        oom = False
        try:
            tokens, targets = batch_of(args, B, device)
            step(tokens, targets)
            torch.cuda.synchronize(device)
        except torch.cuda.OutOfMemoryError:
            oom = True
        # Out of the except block, so that the traceback's frames, which
        # hold the step's tensors, are gone before the cache is emptied.
        tokens = targets = None
        opt.zero_grad(set_to_none=True)
        free_cuda()
        if oom:
            break
        fits = B
        B *= 2
    del model, opt, step
    free_cuda()
    return fits


def profile(step, tokens, targets, n, device):
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step(tokens, targets)
        torch.cuda.synchronize(device)
    # The kernels' own intervals (and the copies'), summed by name, rather
    # than key_averages' device totals: those need the CPU side recorded to
    # attribute time. User annotations mirrored onto the GPU's timeline
    # span kernels already counted, so they are left out, as torch's own
    # table leaves them out of its total.
    per_name = {}
    for e in prof.events():
        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False):
            per_name[e.name] = per_name.get(e.name, 0.0) + e.time_range.elapsed_us()
    total = sum(per_name.values())
    print(f"profile_steps {n}")
    print(f"profile_cuda_s {total * 1e-6:.6f}")
    if total <= 0:
        print("error the profiler recorded no CUDA time", file=sys.stderr)
        return
    for name, us in sorted(per_name.items(), key=lambda kv: -kv[1])[:15]:
        label = name[:60].replace(" ", "_") or "?"
        print(f"kernel_share {label} {100.0 * us / total:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="a CUDA device: cuda or cuda:N (default cuda)")
    ap.add_argument("--precision", choices=["bf16", "fp32", "tf32"], default="bf16")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--compile-mode", default=None,
                    help="torch.compile's mode, e.g. max-autotune-no-cudagraphs (default: its default)")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=0,
                    help="sequences a step; 0: the largest power of two up to 64 that fits (default 0)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the device's peak for the precision, for the MFU (default 989: H100 SXM dense bf16)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the timed steps, profile N more and print the 15 kernels with the most GPU time")
    args = ap.parse_args()

    if args.width % args.heads:
        return error(f"--width {args.width} is not a multiple of --heads {args.heads}")
    if not 1 <= args.seq <= args.context:
        return error(f"--seq {args.seq} must be from 1 to --context {args.context}")
    if args.batch < 0 or args.steps < 1 or args.warmup < 0 or args.profile < 0 or args.peak_tflops <= 0:
        return error("--batch, --warmup and --profile must be >= 0, --steps >= 1, --peak-tflops > 0")
    if args.mode == "compile" and args.warmup < 1:
        return error("--mode compile needs --warmup >= 1: the first step compiles")
    if not args.device.startswith("cuda"):
        return error(f"--device {args.device}: this benchmark runs on CUDA devices only")
    if not torch.cuda.is_available():
        return error(f"no CUDA device available to torch {torch.__version__} "
                     f"(built with CUDA {torch.version.cuda or 'none'})")
    device = torch.device(args.device)
    if device.index is None:
        # set_device and the memory statistics want an index, not "cuda".
        device = torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        return error(f"--device {args.device}: there are {torch.cuda.device_count()} CUDA devices")
    torch.cuda.set_device(device)

    tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32

    print(f"torch_version {torch.__version__}")
    print(f"cuda_version {torch.version.cuda}")
    print(f"device_name {torch.cuda.get_device_name(device).replace(' ', '_')}")
    print(f"precision {args.precision}")
    print(f"mode {args.mode}")
    if args.mode == "compile":
        print(f"compile_mode {args.compile_mode or 'default'}")

    B = args.batch
    if B == 0:
        B = largest_batch(args, device)
        if B == 0:
            return error(f"not even one sequence of {args.seq} tokens fits in the device's memory")
    print(f"batch {B}")
    V, T = args.vocab, args.seq

    model, opt, impl = build(args, device)
    print(f"adamw_impl {impl}")
    forward = torch.compile(model, mode=args.compile_mode) if args.mode == "compile" else model
    step = make_step(model, forward, opt, V, args.precision)
    params = sum(p.numel() for p in model.parameters())
    fpt = model.flops_per_token(T)
    print(f"params {params}")
    print(f"flops_per_token {fpt}")
    print(f"tokens_per_step {B * T}")

    tokens, targets = batch_of(args, B, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)

    times, losses = [], []
    for s in range(args.warmup + args.steps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        try:
            loss = step(tokens, targets)
        except torch.cuda.OutOfMemoryError:
            return error(f"out of memory at batch {B} ({args.precision}, {args.mode})")
        end.record()
        end.synchronize()
        wall = time.perf_counter() - t0
        losses.append(float(loss))
        if s == 0 and args.mode == "compile":
            # Wall time: compilation is host work the events do not see.
            print(f"compile_s {wall:.3f}")
        if s >= args.warmup:
            times.append(start.elapsed_time(end) * 1e-3)

    med = statistics.median(times)
    tokens_per_s = B * T / med
    tflops = fpt * tokens_per_s * 1e-12
    print(f"steps {args.steps}")
    print(f"warmup {args.warmup}")
    print(f"step_median_s {med:.6f}")
    print(f"step_min_s {min(times):.6f}")
    print(f"step_max_s {max(times):.6f}")
    print(f"tokens_per_s {tokens_per_s:.1f}")
    print(f"model_tflops {tflops:.2f}")
    print(f"peak_tflops {args.peak_tflops:g}")
    print(f"mfu {tflops / args.peak_tflops:.4f}")
    print(f"loss_first {losses[0]:.4f}")
    print(f"loss_last {losses[-1]:.4f}")
    print(f"peak_memory_gib {torch.cuda.max_memory_allocated(device) / 2**30:.3f}")

    if args.profile:
        profile(step, tokens, targets, args.profile, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
