"""Tiny random Kimi-K2 (DeepseekV3 architecture) checkpoint + expected log-probs, a test reference for k2forge.

Written independently of the k2forge C++ code, straight from the HuggingFace DeepseekV3 forward math
(MLA attention with YaRN RoPE, noaux_tc sigmoid router with group-limited top-k, shared experts), in float64
on exactly the stored (bf16-rounded) weights. Self-checking: attention and MoE are computed twice, two ways.
Run:  /usr/bin/python3 tests/reference/make_tiny_k2.py OUTDIR [--seed 1234] [--q-lora-rank-null] [--first-k-dense N]
"""
import argparse, cmath, json, math, os, struct
import torch

F64 = torch.float64
ROW_LENGTHS = [23, 40, 2]


def make_config(q_lora_null, first_k_dense):
    return {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2", "vocab_size": 320, "hidden_size": 64,
            "intermediate_size": 96, "moe_intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 4, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1,
            "first_k_dense_replace": first_k_dense, "moe_layer_freq": 1, "q_lora_rank": None if q_lora_null else 48,
            "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "rope_theta": 50000.0,
            "rope_scaling": {"type": "yarn", "factor": 32.0, "original_max_position_embeddings": 256, "beta_fast": 32.0,
                             "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
            "max_position_embeddings": 8192, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "n_group": 4,
            "topk_group": 2, "norm_topk_prob": True, "routed_scaling_factor": 2.827, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "aux_loss_alpha": 0.001, "seq_aux": True,
            "num_nextn_predict_layers": 0, "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0,
            "initializer_range": 0.02, "torch_dtype": "bfloat16", "use_cache": True,
            "some_unknown_future_field": {"kept": True}}


def is_moe_layer(cfg, i):
    return cfg["n_routed_experts"] is not None and i >= cfg["first_k_dense_replace"] and i % cfg["moe_layer_freq"] == 0


# ----------------------------------------------------------------------------------------------- weights
def weight_specs(cfg):
    """Ordered list of (name, shape, init) with init in {'linear', 'norm', 'embed', 'head', 'router', 'bias'}."""
    D, H, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["vocab_size"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv, I, Ie, E = cfg["q_lora_rank"], cfg["kv_lora_rank"], cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    specs = [("model.embed_tokens.weight", [V, D], "embed")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", [D], "norm"), (p + "post_attention_layernorm.weight", [D], "norm")]
        if rq is None:
            specs += [(p + "self_attn.q_proj.weight", [H * (dn + dr), D], "linear")]
        else:
            specs += [(p + "self_attn.q_a_proj.weight", [rq, D], "linear"), (p + "self_attn.q_a_layernorm.weight", [rq], "norm"),
                      (p + "self_attn.q_b_proj.weight", [H * (dn + dr), rq], "linear")]
        specs += [(p + "self_attn.kv_a_proj_with_mqa.weight", [rkv + dr, D], "linear"),
                  (p + "self_attn.kv_a_layernorm.weight", [rkv], "norm"),
                  (p + "self_attn.kv_b_proj.weight", [H * (dn + dv), rkv], "linear"),
                  (p + "self_attn.o_proj.weight", [D, H * dv], "linear")]
        if not is_moe_layer(cfg, i):
            specs += [(p + "mlp.gate_proj.weight", [I, D], "linear"), (p + "mlp.up_proj.weight", [I, D], "linear"),
                      (p + "mlp.down_proj.weight", [D, I], "linear")]
            continue
        specs += [(p + "mlp.gate.weight", [E, D], "router"), (p + "mlp.gate.e_score_correction_bias", [E], "bias")]
        for e in range(E):
            q = p + f"mlp.experts.{e}."
            specs += [(q + "gate_proj.weight", [Ie, D], "linear"), (q + "up_proj.weight", [Ie, D], "linear"),
                      (q + "down_proj.weight", [D, Ie], "linear")]
        Is = Ie * cfg["n_shared_experts"]
        specs += [(p + "mlp.shared_experts.gate_proj.weight", [Is, D], "linear"),
                  (p + "mlp.shared_experts.up_proj.weight", [Is, D], "linear"),
                  (p + "mlp.shared_experts.down_proj.weight", [D, Is], "linear")]
    return specs + [("model.norm.weight", [D], "norm"), ("lm_head.weight", [V, D], "head")]


def make_weights(cfg, g):
    """Stored tensors: bf16 for everything except the router bias (float32)."""
    D, W = cfg["hidden_size"], {}
    for name, shape, init in weight_specs(cfg):
        if init == "bias":
            W[name] = (torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1) * 0.04
            continue
        n = torch.randn(shape, generator=g, dtype=torch.float32)
        t = {"linear": lambda: n / math.sqrt(shape[-1]), "norm": lambda: 1 + 0.1 * n, "embed": lambda: n,
             "head": lambda: n / math.sqrt(D), "router": lambda: n / math.sqrt(D)}[init]()
        W[name] = t.to(torch.bfloat16)
    return W


# ----------------------------------------------------------------------------------------------- math (fp64)
def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps))


def silu_mlp(x, gate_w, up_w, down_w):
    g = x @ gate_w.T
    return (g * torch.sigmoid(g) * (x @ up_w.T)) @ down_w.T


def yarn_get_mscale(scale, m):
    return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0


def yarn_inv_freq(cfg):
    rs, d, theta = cfg["rope_scaling"], cfg["qk_rope_head_dim"], cfg["rope_theta"]
    L0, factor = rs["original_max_position_embeddings"], rs["factor"]
    find_dim = lambda r: d * math.log(L0 / (r * 2 * math.pi)) / (2 * math.log(theta))
    low = max(math.floor(find_dim(rs["beta_fast"])), 0)
    high = min(math.ceil(find_dim(rs["beta_slow"])), d - 1)
    if low == high:
        high += 0.001
    i = torch.arange(d // 2, dtype=F64)
    mask = 1 - torch.clamp((i - low) / (high - low), 0, 1)
    extra = theta ** (-2 * i / d)
    return (extra / factor) * (1 - mask) + extra * mask


def rope_mscale(cfg):
    rs = cfg["rope_scaling"]
    return yarn_get_mscale(rs["factor"], rs["mscale"]) / yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])


def softmax_scale(cfg):
    rs, scale = cfg["rope_scaling"], (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    if rs is not None and rs.get("type") == "yarn" and rs["factor"] > 1 and rs.get("mscale_all_dim"):
        m = yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])
        scale *= m * m
    return scale


def rope_cos_sin(cfg, T):
    freqs = torch.outer(torch.arange(T, dtype=F64), yarn_inv_freq(cfg))
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos() * rope_mscale(cfg), emb.sin() * rope_mscale(cfg)


def apply_rope(x, cos, sin):
    """x [..., T, dr]: HF de-interleave (pairs (2i,2i+1) -> (i, i+dr/2)), then x*cos + rotate_half(x)*sin."""
    d = x.shape[-1]
    x = x.reshape(*x.shape[:-1], d // 2, 2).transpose(-1, -2).reshape(x.shape)
    rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def q_projection(W, p, cfg, x):
    if cfg["q_lora_rank"] is None:
        return x @ W[p + "self_attn.q_proj.weight"].T
    qa = rms_norm(x @ W[p + "self_attn.q_a_proj.weight"].T, W[p + "self_attn.q_a_layernorm.weight"], 1e-6)
    return qa @ W[p + "self_attn.q_b_proj.weight"].T


def mla_attention(W, p, cfg, x, cos, sin):
    T, H = x.shape[0], cfg["num_attention_heads"]
    dn, dr, dv, rkv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    q = q_projection(W, p, cfg, x).view(T, H, dn + dr).transpose(0, 1)           # [H,T,dn+dr]
    q_nope, q_pe = q[..., :dn], q[..., dn:]
    ckv = x @ W[p + "self_attn.kv_a_proj_with_mqa.weight"].T                      # [T,rkv+dr]
    c, k_pe = ckv[:, :rkv], ckv[:, rkv:]
    kv = rms_norm(c, W[p + "self_attn.kv_a_layernorm.weight"], 1e-6) @ W[p + "self_attn.kv_b_proj.weight"].T
    kv = kv.view(T, H, dn + dv).transpose(0, 1)                                   # [H,T,dn+dv]
    k_nope, v = kv[..., :dn], kv[..., dn:]
    q_pe, k_pe = apply_rope(q_pe, cos, sin), apply_rope(k_pe, cos, sin)           # k_pe [T,dr]: one key for all heads
    Q = torch.cat([q_nope, q_pe], -1)
    K = torch.cat([k_nope, k_pe.unsqueeze(0).expand(H, T, dr)], -1)
    scores = Q @ K.transpose(-1, -2) * softmax_scale(cfg)                         # [H,T,T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), -1)
    out = (probs @ v).transpose(0, 1).reshape(T, H * dv)
    return out @ W[p + "self_attn.o_proj.weight"].T


def route(W, p, cfg, x, use_bias=True):
    """noaux_tc sigmoid routing; returns (idx [T,K], weights [T,K], biased choice scores [T,E])."""
    T, E, G = x.shape[0], cfg["n_routed_experts"], cfg["n_group"]
    s = torch.sigmoid(x @ W[p + "mlp.gate.weight"].T)
    choice = s + W[p + "mlp.gate.e_score_correction_bias"] if use_bias else s.clone()
    group_scores = choice.view(T, G, E // G).topk(2, dim=-1).values.sum(-1)
    keep_groups = group_scores.topk(cfg["topk_group"], dim=-1).indices
    group_mask = torch.zeros(T, G, dtype=torch.bool).scatter(1, keep_groups, True)
    masked = choice.masked_fill(~group_mask.repeat_interleave(E // G, dim=1), 0.0)
    idx = masked.topk(cfg["num_experts_per_tok"], dim=-1).indices
    w = s.gather(1, idx)
    if cfg["norm_topk_prob"]:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    return idx, w * cfg["routed_scaling_factor"], choice


def moe(W, p, cfg, x):
    idx, w, _ = route(W, p, cfg, x)
    out = torch.zeros_like(x)
    for e in range(cfg["n_routed_experts"]):
        q = p + f"mlp.experts.{e}."
        y = silu_mlp(x, W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])
        out += (w * (idx == e)).sum(-1, keepdim=True) * y
    q = p + "mlp.shared_experts."
    return out + silu_mlp(x, W[q + "gate_proj.weight"], W[q + "up_proj.weight"], W[q + "down_proj.weight"])


# ----------------------------------------------------------------------------------------------- second way (loops)
def attention_loop(W, p, cfg, x):
    """Per-token, per-head Python loop; RoPE as complex rotation of the interleaved pairs (2i, 2i+1)."""
    T, H = x.shape[0], cfg["num_attention_heads"]
    dn, dr, dv, rkv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    rs, theta = cfg["rope_scaling"], cfg["rope_theta"]   # YaRN constants again, as scalars (factor > 1 here)
    corr = lambda r: dr * math.log(rs["original_max_position_embeddings"] / (r * 2 * math.pi)) / (2 * math.log(theta))
    lo, hi = max(math.floor(corr(rs["beta_fast"])), 0), min(math.ceil(corr(rs["beta_slow"])), dr - 1)
    hi = hi + 0.001 if hi == lo else hi
    ramps = [min(max((i - lo) / (hi - lo), 0.0), 1.0) for i in range(dr // 2)]   # 0: keep theta^(-2i/dr), 1: divide by factor
    inv_freq = [theta ** (-2 * i / dr) * (1 - r + r / rs["factor"]) for i, r in enumerate(ramps)]
    m_all = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1
    ms, scale = (0.1 * rs["mscale"] * math.log(rs["factor"]) + 1) / m_all, (dn + dr) ** -0.5 * m_all ** 2
    rot = lambda vec, t: [complex(vec[2 * i], vec[2 * i + 1]) * cmath.exp(1j * t * inv_freq[i]) * ms for i in range(dr // 2)]
    sa = p + "self_attn."
    vnorm = lambda v, w: v / math.sqrt(sum(z * z for z in v.tolist()) / len(v) + 1e-6) * w
    qs, ks, vs = [], [], []
    for t in range(T):
        if cfg["q_lora_rank"] is None:
            q = torch.mv(W[sa + "q_proj.weight"], x[t]).view(H, dn + dr)
        else:
            q = torch.mv(W[sa + "q_b_proj.weight"], vnorm(torch.mv(W[sa + "q_a_proj.weight"], x[t]), W[sa + "q_a_layernorm.weight"]))
            q = q.view(H, dn + dr)
        ckv = torch.mv(W[sa + "kv_a_proj_with_mqa.weight"], x[t])
        kv = torch.mv(W[sa + "kv_b_proj.weight"], vnorm(ckv[:rkv], W[sa + "kv_a_layernorm.weight"])).view(H, dn + dv)
        kpe = rot(ckv[rkv:].tolist(), t)
        qs.append([(q[h, :dn].tolist(), rot(q[h, dn:].tolist(), t)) for h in range(H)])
        ks.append([(kv[h, :dn].tolist(), kpe) for h in range(H)])
        vs.append([kv[h, dn:] for h in range(H)])
    out = torch.zeros(T, H * dv, dtype=F64)
    for t in range(T):
        for h in range(H):
            qn, qp = qs[t][h]
            sc = []
            for u in range(t + 1):
                kn, kp = ks[u][h]
                dot = sum(a * b for a, b in zip(qn, kn)) + sum((a * b.conjugate()).real for a, b in zip(qp, kp))
                sc.append(dot * scale)
            mx = max(sc)
            ex = [math.exp(z - mx) for z in sc]
            out[t, h * dv:(h + 1) * dv] = sum(e / sum(ex) * vs[u][h] for u, e in enumerate(ex))
    return out @ W[sa + "o_proj.weight"].T


def moe_loop(W, p, cfg, x):
    """Per-token loop: plain-Python routing (groups by sorting, candidates restricted to kept groups)."""
    E, G, K = cfg["n_routed_experts"], cfg["n_group"], cfg["num_experts_per_tok"]
    gw, bias = W[p + "mlp.gate.weight"], W[p + "mlp.gate.e_score_correction_bias"].tolist()
    silu = lambda v: v / (1 + torch.exp(-v))
    mlp = lambda q, v: torch.mv(W[q + "down_proj.weight"],
                                silu(torch.mv(W[q + "gate_proj.weight"], v)) * torch.mv(W[q + "up_proj.weight"], v))
    out, chosen = torch.zeros_like(x), []
    for t in range(x.shape[0]):
        s = [1.0 / (1.0 + math.exp(-float(torch.dot(gw[e], x[t])))) for e in range(E)]
        c = [s[e] + bias[e] for e in range(E)]
        members = [list(range(g * E // G, (g + 1) * E // G)) for g in range(G)]
        gscore = [sum(sorted((c[e] for e in m), reverse=True)[:2]) for m in members]
        kept = sorted(range(G), key=lambda g: -gscore[g])[:cfg["topk_group"]]
        top = sorted([e for g in kept for e in members[g]], key=lambda e: -c[e])[:K]
        total = sum(s[e] for e in top) if cfg["norm_topk_prob"] else 1.0
        for e in top:
            out[t] += s[e] / total * cfg["routed_scaling_factor"] * mlp(p + f"mlp.experts.{e}.", x[t])
        out[t] += mlp(p + "mlp.shared_experts.", x[t])
        chosen.append(sorted(top))
    return out, chosen


# ----------------------------------------------------------------------------------------------- model
def forward(W, cfg, tokens, check=False, stats=None):
    """Log-probs [T,V] for one row. check: assert both ways agree; stats: dict collecting router facts."""
    eps, T = cfg["rms_norm_eps"], len(tokens)
    cos, sin = rope_cos_sin(cfg, T)
    x = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        a = mla_attention(W, p, cfg, h, cos, sin)
        if check:
            assert (a - attention_loop(W, p, cfg, h)).abs().max() < 1e-10, f"attention mismatch layer {i}"
        x = x + a
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if is_moe_layer(cfg, i):
            m = moe(W, p, cfg, h)
            idx, _, choice = route(W, p, cfg, h)
            if stats is not None:
                idx0 = route(W, p, cfg, h, use_bias=False)[0]
                stats["changed"] += sum(set(a.tolist()) != set(b.tolist()) for a, b in zip(idx, idx0))
                key = p + "mlp.gate.e_score_correction_bias"
                stats["min_choice"][key] = min(stats["min_choice"].get(key, 1.0), choice.min().item())
            if check:
                m2, chosen = moe_loop(W, p, cfg, h)
                assert chosen == [sorted(r.tolist()) for r in idx], f"routing mismatch layer {i}"
                assert (m - m2).abs().max() < 1e-10, f"moe mismatch layer {i}"
        else:
            m = silu_mlp(h, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"], W[p + "mlp.down_proj.weight"])
        x = x + m
    logits = rms_norm(x, W["model.norm.weight"], eps) @ W["lm_head.weight"].T
    return torch.log_softmax(logits, -1)


# ----------------------------------------------------------------------------------------------- files
def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors:
        t = t.contiguous()
        bf16 = t.dtype == torch.bfloat16   # bf16: raw bit patterns as little-endian int16
        b = (t.view(torch.int16).numpy().astype("<i2") if bf16 else t.numpy().astype("<f4")).tobytes()
        header[name] = {"dtype": {torch.bfloat16: "BF16", torch.float32: "F32"}[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    return off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--q-lora-rank-null", action="store_true")
    ap.add_argument("--first-k-dense", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    cfg = make_config(args.q_lora_rank_null, args.first_k_dense)
    stored = make_weights(cfg, g)
    rows = [torch.randint(0, cfg["vocab_size"], (n,), generator=g).tolist() for n in ROW_LENGTHS]
    has_moe = any(is_moe_layer(cfg, i) for i in range(cfg["num_hidden_layers"]))
    bias_names = [n for n in stored if n.endswith("e_score_correction_bias")]
    doubled = shifted = 0
    for attempt in range(20):   # grow the router bias until it changes at least one top-k choice
        W = {n: t.to(F64) for n, t in stored.items()}
        stats = {"changed": 0, "min_choice": {}}
        logprobs = [forward(W, cfg, r, stats=stats) for r in rows]
        low = {n: v for n, v in stats["min_choice"].items() if v < 0.01}
        if low:   # adding a constant to a layer's bias changes none of its choices; it keeps every biased score > 0
            for n, v in low.items():
                stored[n] = stored[n] + (0.02 - v)
            shifted += 1
            continue
        if not has_moe or stats["changed"] > 0:
            break
        for n in bias_names:
            stored[n] = stored[n] * 2
        doubled += 1
    min_choice = min(stats["min_choice"].values(), default=float("nan"))
    assert not has_moe or min_choice > 0, "a biased choice score is not positive"
    assert not has_moe or stats["changed"] > 0, "router bias never changed a top-k choice"
    for r, lp in zip(rows, logprobs):   # second, loop-based computation must agree
        assert (forward(W, cfg, r, check=True) - lp).abs().max() == 0
    per_row = [[lp[t, r[t + 1]].item() for t in range(len(r) - 1)] for r, lp in zip(rows, logprobs)]
    flat = [v for row in per_row for v in row]
    nll_mean = -sum(flat) / len(flat)

    mdir = os.path.join(args.outdir, "model")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = [n for n, _, _ in weight_specs(cfg)]
    sizes = [stored[n].numel() * stored[n].element_size() for n in names]
    total, acc, split = sum(sizes), 0, len(names)
    for k, sz in enumerate(sizes):   # first shard: leading tensors up to about half the bytes
        if acc + sz / 2 > total / 2:
            split = k
            break
        acc += sz
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [names[:split], names[split:]]
    written = [write_safetensors(os.path.join(mdir, fn), [(n, stored[n]) for n in part]) for fn, part in zip(files, parts)]
    assert sum(written) == total
    weight_map = {n: fn for fn, part in zip(files, parts) for n in part}
    with open(os.path.join(mdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(args.outdir, "tokens.json"), "w") as f:
        json.dump(rows, f)
    with open(os.path.join(args.outdir, "expected.json"), "w") as f:
        json.dump({"logprobs": per_row, "nll_mean": nll_mean}, f)

    print(f"wrote {mdir}/config.json, {files[0]} ({written[0]} B, {len(parts[0])} tensors), "
          f"{files[1]} ({written[1]} B, {len(parts[1])} tensors), model.safetensors.index.json")
    print(f"wrote {args.outdir}/tokens.json (rows of {ROW_LENGTHS}), {args.outdir}/expected.json ({len(flat)} logprobs)")
    print(f"nll_mean = {nll_mean!r}  (uniform would be {math.log(cfg['vocab_size']):.4f})")
    print(f"router bias changed top-k choice of {stats['changed']} token-layer(s) (bias doubled {doubled}x, shifted {shifted}x); "
          f"min biased choice score {min_choice:.4f}; two-way attention/MoE check passed")


if __name__ == "__main__":
    main()
