"""GPT-2 in PyTorch, written out as trainpipe's runtime/gpt.h lays it out,
for bench/train_cpu_reference.py and bench/train_gpu_reference.py: the
model of tests/reference/gpt_reference.py with one nn.Parameter per
tensor, as an ordinary PyTorch model holds them. Pre-LayerNorm blocks
(eps 1e-5), GELU with the tanh approximation, causal attention through
F.scaled_dot_product_attention (PyTorch's fastest path on each device),
the LM head tied to the token embedding, Linear weights [out, in] with q,
k and v packed in that order, GPT-2's initialisation (gpt_init's).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln1w = nn.Parameter(torch.ones(C))
        self.ln1b = nn.Parameter(torch.zeros(C))
        self.qkvw = nn.Parameter(torch.empty(3 * C, C))
        self.qkvb = nn.Parameter(torch.zeros(3 * C))
        self.attprojw = nn.Parameter(torch.empty(C, C))
        self.attprojb = nn.Parameter(torch.zeros(C))
        self.ln2w = nn.Parameter(torch.ones(C))
        self.ln2b = nn.Parameter(torch.zeros(C))
        self.fcw = nn.Parameter(torch.empty(4 * C, C))
        self.fcb = nn.Parameter(torch.zeros(4 * C))
        self.fcprojw = nn.Parameter(torch.empty(C, 4 * C))
        self.fcprojb = nn.Parameter(torch.zeros(C))

    def forward(self, x):
        B, T, C = x.shape
        H = self.H
        h = F.layer_norm(x, (C,), self.ln1w, self.ln1b, eps=1e-5)
        qkv = F.linear(h, self.qkvw, self.qkvb)
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, self.attprojw, self.attprojb)
        h = F.layer_norm(x, (C,), self.ln2w, self.ln2b, eps=1e-5)
        h = F.gelu(F.linear(h, self.fcw, self.fcb), approximate="tanh")
        return x + F.linear(h, self.fcprojw, self.fcprojb)


class GPT(nn.Module):
    def __init__(self, V, context, L, H, C):
        super().__init__()
        self.wte = nn.Parameter(torch.empty(V, C))
        self.wpe = nn.Parameter(torch.empty(context, C))
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.lnfw = nn.Parameter(torch.ones(C))
        self.lnfb = nn.Parameter(torch.zeros(C))
        # GPT-2's initialisation, as gpt_init: N(0, 0.02), the residual
        # projections N(0, 0.02 / sqrt(2 L)).
        with torch.no_grad():
            for p in (self.wte, self.wpe):
                p.normal_(0.0, 0.02)
            for b in self.blocks:
                b.qkvw.normal_(0.0, 0.02)
                b.fcw.normal_(0.0, 0.02)
                b.attprojw.normal_(0.0, 0.02 / math.sqrt(2 * L))
                b.fcprojw.normal_(0.0, 0.02 / math.sqrt(2 * L))

    def forward(self, tokens):
        B, T = tokens.shape
        x = F.embedding(tokens, self.wte) + self.wpe[:T]
        for b in self.blocks:
            x = b(x)
        x = F.layer_norm(x, (x.shape[-1],), self.lnfw, self.lnfb, eps=1e-5)
        return F.linear(x, self.wte)

    def param_groups(self, weight_decay):
        decay = [p for b in self.blocks for p in (b.qkvw, b.attprojw, b.fcw, b.fcprojw)]
        ids = {id(p) for p in decay}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def flops_per_token(self, T):
        # The position embedding is a lookup, not a matmul; wte is counted
        # once although it is also the LM head.
        n = sum(p.numel() for p in self.parameters()) - self.wpe.numel()
        L, C = len(self.blocks), self.wte.shape[1]
        return 6 * n + 6 * L * T * C
