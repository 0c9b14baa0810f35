#!/usr/bin/env python3
"""The K2-width slice of recipes/k2_slice_h200.toml written in plain PyTorch eager: the baseline
that scripts/device_check.sh runs beside `k2forge bench train` on the same GPU.

Same shapes and the same work per step as k2forge: MLA with the query and KV low-rank paths,
explicit softmax attention in fp32 (the max logit per head is what QK-Clip needs), a sigmoid
router with the bias correction and top-8 routing, routed experts run one after another on their
gathered tokens plus a shared expert, fp32 master weights with bf16 compute (autocast), and the
loss in fp32. Timed: forward + backward of one 4096-token sequence, after warm-up steps.
Prints one JSON object.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return (self.weight * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotate(x, cos, sin):  # x [B, T, H, R]; cos/sin [T, R/2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], -1)


class LatentAttention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        H = a.heads
        self.q_a_proj = nn.Linear(a.hidden, a.q_lora, bias=False)
        self.q_a_layernorm = RMSNorm(a.q_lora)
        self.q_b_proj = nn.Linear(a.q_lora, H * (a.nope + a.rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(a.hidden, a.kv_lora + a.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(a.kv_lora)
        self.kv_b_proj = nn.Linear(a.kv_lora, H * (a.nope + a.v), bias=False)
        self.o_proj = nn.Linear(H * a.v, a.hidden, bias=False)
        self.scale = (a.nope + a.rope) ** -0.5

    def forward(self, x, cos, sin, allowed):
        a, (B, T, _) = self.a, x.shape
        H = a.heads
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, H, a.nope + a.rope)
        q_nope, q_pe = q.split([a.nope, a.rope], -1)
        compressed = self.kv_a_proj_with_mqa(x)
        latent, k_pe = compressed.split([a.kv_lora, a.rope], -1)
        k_pe = rotate(k_pe.unsqueeze(2), cos, sin)
        kv = self.kv_b_proj(self.kv_a_layernorm(latent)).view(B, T, H, a.nope + a.v)
        k_nope, v = kv.split([a.nope, a.v], -1)
        q = torch.cat([q_nope, rotate(q_pe, cos, sin)], -1).transpose(1, 2)
        k = torch.cat([k_nope, k_pe.expand(B, T, H, a.rope)], -1).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2) * self.scale).float().masked_fill(~allowed, float("-inf"))
        self.max_logits = scores.detach().amax((0, 2, 3))
        probs = torch.softmax(scores, -1).to(q.dtype)
        out = (probs @ v.transpose(1, 2)).transpose(1, 2).reshape(B, T, H * a.v)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, hidden, width):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, width, bias=False)
        self.up_proj = nn.Linear(hidden, width, bias=False)
        self.down_proj = nn.Linear(width, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.gate = nn.Parameter(torch.empty(a.experts, a.hidden))
        self.register_buffer("e_score_correction_bias", torch.zeros(a.experts))
        self.experts = nn.ModuleList(MLP(a.hidden, a.expert_width) for _ in range(a.experts))
        self.shared_experts = MLP(a.hidden, a.expert_width * a.shared)

    def forward(self, x):
        a, shape = self.a, x.shape
        x_ND = x.reshape(-1, shape[-1])
        scores = torch.sigmoid(F.linear(x_ND.float(), self.gate.float()))
        idx = torch.topk(scores + self.e_score_correction_bias, a.top_k, -1).indices
        weights = scores.gather(1, idx)
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20) * a.routed_scale
        y = torch.zeros_like(x_ND, dtype=torch.float32)
        counts = torch.bincount(idx.flatten(), minlength=a.experts).tolist()
        for e, count in enumerate(counts):
            if count == 0:
                continue
            rows, slot = torch.where(idx == e)
            out = self.experts[e](x_ND[rows]).float() * weights[rows, slot, None]
            y.index_add_(0, rows, out)
        return (y.to(x.dtype) + self.shared_experts(x_ND)).view(shape)


class Layer(nn.Module):
    def __init__(self, a, dense):
        super().__init__()
        self.input_layernorm = RMSNorm(a.hidden)
        self.self_attn = LatentAttention(a)
        self.post_attention_layernorm = RMSNorm(a.hidden)
        self.mlp = MLP(a.hidden, a.dense_width) if dense else MoE(a)

    def forward(self, h, cos, sin, allowed):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, allowed)
        return h + self.mlp(self.post_attention_layernorm(h))


class Slice(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList(Layer(a, i < a.dense_layers) for i in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        self.lm_head = nn.Linear(a.hidden, a.vocab, bias=False)
        inv = 1.0 / (50000.0 ** (torch.arange(0, a.rope, 2).float() / a.rope))
        angles = torch.outer(torch.arange(a.seq).float(), inv)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, tokens):
        T = tokens.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
        h = self.embed_tokens(tokens)
        for layer in self.layers:
            h = layer(h, self.cos[:T], self.sin[:T], allowed)
        return self.lm_head(self.norm(h))


def gemm_rate(device, sync):
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn_like(a)
    a @ b
    sync()
    best = 1e30
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n**3 / best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in dict(hidden=7168, heads=64, q_lora=1536, kv_lora=512, nope=128, rope=64, v=128,
                            expert_width=2048, experts=32, top_k=8, shared=1, dense_width=18432,
                            layers=3, dense_layers=1, vocab=32768, seq=4096, batch=1, steps=3).items():
        p.add_argument("--" + name.replace("_", "-"), type=int, default=value)
    p.add_argument("--routed-scale", type=float, default=2.827)
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test of small shapes)")
    a = p.parse_args()
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = Slice(a)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.006)
    model.to(device)
    tokens = torch.randint(a.vocab, (a.batch, a.seq + 1), device=device)

    def forward_backward():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        return loss

    for _ in range(1):  # warm-up
        forward_backward()
        model.zero_grad(set_to_none=True)
    sync()
    seconds = 0.0
    for _ in range(a.steps):
        start = time.perf_counter()
        forward_backward()
        sync()
        seconds += time.perf_counter() - start
        model.zero_grad(set_to_none=True)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"benchmark": "k2_slice_eager", "torch": torch.__version__, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "parameters": params, "seq_len": a.seq, "batch": a.batch, "steps": a.steps,
                      "forward_backward_seconds": seconds / a.steps,
                      "forward_backward_tokens_per_s": a.batch * a.seq * a.steps / seconds,
                      "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
                      "gemm_bf16_tflops": gemm_rate(device, sync) / 1e12}))


if __name__ == "__main__":
    main()
