"""FP8 block-scaled twin of a tiny reference model written by make_tiny_k2.py, a test reference for k2forge.

From REF_DIR (REF_DIR/model/{config.json, 2 bf16 shards, index}, REF_DIR/tokens.json) it writes two directories
in the same layout (model/, tokens.json, expected.json):

  FP8_DIR   the model as K2-Instruct ships it: every 2-D linear weight of the decoder layers (q_a_proj, q_b_proj or
            q_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj, dense / routed-expert / shared-expert gate, up and
            down_proj) stored as F8_E4M3 bytes plus `<p>.weight_scale_inv` (F32 [ceil(O/B), ceil(I/B)]), and config.json
            with quantization_config {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
            "weight_block_size": [B, B]}. Embeddings, lm_head, norms, the router weight (bf16) and the router bias
            (F32) are copied unchanged; each tensor stays in the shard it had, its scale right after it.
  TWIN_DIR  its dequantised twin: the same config without quantization_config, every FP8 linear replaced by
            decode(byte) * scale_inv as F32 (exact: see below), every other tensor unchanged.

Both expected.json files hold the twin's log-probs for REF_DIR/tokens.json, computed with make_tiny_k2.py's fp64
forward (checked two ways), so `k2forge score` on FP8_DIR/model and on TWIN_DIR/model must both match them.

Quantisation (per B x B block, partial edge blocks included): scale_inv = amax(block) / 448 rounded UP to a float32
with 20 significant bits, so that w / scale_inv never exceeds 448 and every product decode(byte) * scale_inv
(at most 4 significant bits times 20) is exact in float32: the twin is the dequantised FP8 model exactly, whatever
order or precision the dequantiser multiplies in. A block of zeros gets scale_inv 1. The bytes are w / scale_inv
(float64) rounded to nearest, ties to even, onto the e4m3fn grid (1 sign, 4 exponent bits with bias 7, 3 mantissa
bits, subnormals m * 2^-9, no inf, 0x7F/0xFF NaN never written, largest 448), magnitudes above 448 saturated.
After encoding, a few bytes of every matrix are overwritten ("planted") so that across the model every one of the
254 non-NaN codes occurs, subnormals, -0 (0x80) and +-448 included: the FP8 file is the source of truth and the twin
is its exact decoding, so the test exercises the whole decoding table. The planted positions are shifted (up to 32
tries) until every routing decision of the twin on tokens.json has a margin of at least 1e-3 (the gap between the
k-th and (k+1)-th biased expert score and between the last kept and first dropped group), so an fp32 evaluation
cannot flip an expert choice.

B defaults to 24, which is not a power of two and divides none of the tiny model's dims except 48 and 96, so most
matrices have several blocks with partial last row and column blocks (64 = 2*24 + 16, 40 = 24 + 16, 32 = 24 + 8,
128 = 5*24 + 8). `--block-size 128` gives K2-Instruct's block (every tiny matrix is then one partial block).

Run:  /usr/bin/python3 tests/reference/make_fp8_twin.py REF_DIR FP8_DIR TWIN_DIR [--block-size 24] [--no-plant]
      /usr/bin/python3 tests/reference/make_fp8_twin.py --self-test     (encoder/decoder checks only)
"""
import argparse, json, math, os, struct, sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_k2 as ref  # noqa: E402  (the fp64 forward and the weight list)

E4M3_MAX = 448.0
MIN_MARGIN = 1e-3       # smallest routing-decision gap accepted for the twin (fp32 evaluation stays far from ties)
MAX_PLANT_ATTEMPTS = 32
SCALE_BITS = 20          # significant bits kept in scale_inv (4 + 20 <= 24: exact float32 products)
LINEAR_SUFFIXES = ("q_a_proj.weight", "q_b_proj.weight", "q_proj.weight", "kv_a_proj_with_mqa.weight",
                   "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight", "down_proj.weight")


# ----------------------------------------------------------------------------------------------- e4m3fn by hand
def e4m3_decode(codes):
    """uint8 array -> float64 values (NaN for 0x7F / 0xFF)."""
    c = np.asarray(codes, dtype=np.uint8).astype(np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    exp_field, mant = (c >> 3) & 0xF, c & 0x7
    magnitude = np.where(exp_field == 0, mant * 2.0 ** -9, (8 + mant) * np.exp2(exp_field - 7 - 3.0))
    out = sign * magnitude
    return np.where((c & 0x7F) == 0x7F, np.nan, out)


def e4m3_encode(x):
    """float array -> uint8 e4m3fn codes, round to nearest, ties to even, saturating at +-448 (arithmetic form)."""
    x = np.asarray(x, dtype=np.float64)
    assert np.isfinite(x).all(), "e4m3_encode: non-finite input"
    sign = np.signbit(x).astype(np.int64) << 7
    a = np.minimum(np.abs(x), E4M3_MAX)
    # binade exponent of a (clamped to the smallest normal binade, whose quantum 2^-9 is also the subnormal quantum)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0))).astype(np.int64)
    e = np.maximum(e, -6)
    # log2 may be off by one next to powers of two: fix so that 2^e <= a < 2^(e+1) whenever a >= 2^-6
    e = np.where((a >= 2.0 ** -6) & (np.exp2(e.astype(np.float64)) > a), e - 1, e)
    e = np.where(np.exp2(e + 1.0) <= a, e + 1, e)
    e = np.maximum(e, -6)
    quantum = np.exp2(e - 3.0)
    m = np.rint(a / quantum).astype(np.int64)       # a / quantum is exact (power-of-two scaling); rint: half to even
    # m in [0, 16]: 16 carries into the next binade; below 8 only in the subnormal range (e == -6)
    carry = m == 16
    e, m = np.where(carry, e + 1, e), np.where(carry, 8, m)
    normal = m >= 8
    exp_field = np.where(normal, e + 7, 0)
    mant = np.where(normal, m - 8, m)
    assert (exp_field <= 15).all() and not ((exp_field == 15) & (mant == 7)).any(), "e4m3_encode: overflow into NaN"
    return (sign | (exp_field << 3) | mant).astype(np.uint8)


def e4m3_encode_table(x):
    """The same rounding found a second way: nearest of the 127 non-negative finite values, ties to the even code."""
    x = np.asarray(x, dtype=np.float64)
    values = e4m3_decode(np.arange(0x7F, dtype=np.uint8))          # 0x00..0x7E, strictly increasing
    a = np.minimum(np.abs(x), E4M3_MAX)
    hi = np.clip(np.searchsorted(values, a, side="left"), 1, 126)   # values[hi-1] < a <= values[hi] (or edges)
    lo = hi - 1
    d_lo, d_hi = a - values[lo], values[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = np.where(a <= 0, 0, np.where(pick_hi, hi, lo))
    return (code | (np.signbit(x).astype(np.int64) << 7)).astype(np.uint8)


def self_test():
    codes = np.arange(256, dtype=np.uint8)
    vals = e4m3_decode(codes)
    finite = ~np.isnan(vals)
    assert finite.sum() == 254 and np.isnan(vals[[0x7F, 0xFF]]).all()
    hand = {0x00: 0.0, 0x01: 2.0 ** -9, 0x07: 7 * 2.0 ** -9, 0x08: 2.0 ** -6, 0x38: 1.0, 0x39: 1.125, 0x7E: 448.0,
            0x80: -0.0, 0xC0: -2.0, 0xFE: -448.0, 0x40: 2.0, 0x30: 0.5, 0x3F: 1.875}
    for c, v in hand.items():
        assert vals[c] == v and np.signbit(vals[c]) == np.signbit(v), (hex(c), vals[c], v)
    # every finite code round-trips
    assert (e4m3_encode(vals[finite]) == codes[finite]).all()
    assert (e4m3_encode_table(vals[finite]) == codes[finite]).all()
    # midpoints between neighbours: ties to the even code; just above / below go to the nearer one
    pos = vals[:0x7F]
    mids = (pos[:-1] + pos[1:]) / 2
    even = np.where(np.arange(126) % 2 == 0, np.arange(126), np.arange(1, 127))
    for enc in (e4m3_encode, e4m3_encode_table):
        assert (enc(mids) == even).all()
        assert (enc(-mids) == (even | 0x80)).all()
        assert (enc(np.nextafter(mids, 0)) == np.arange(126)).all()
        assert (enc(np.nextafter(mids, 1e9)) == np.arange(1, 127)).all()
        special = [1000.0, -449.0, 464.0, 2.0 ** -11, 2.0 ** -10, 3 * 2.0 ** -11, 3 * 2.0 ** -10, -(2.0 ** -11), 15 * 2.0 ** -10]
        # saturation; a quarter quantum -> 0; half a quantum ties to 0 (even); 0.75 -> 1; 1.5 ties to 2; -0;
        # 7.5 subnormal quanta tie to 8 * 2^-9 = 2^-6, the smallest normal (0x08)
        assert enc(np.array(special)).tolist() == [0x7E, 0xFE, 0x7E, 0x00, 0x00, 0x01, 0x02, 0x80, 0x08], enc(np.array(special))
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(200000) * 10.0 ** rng.uniform(-4, 2.7, 200000), [0.0, -0.0]])
    a, b = e4m3_encode(x), e4m3_encode_table(x)
    assert (a == b).all(), f"encoders disagree on {int((a != b).sum())} values"
    err = np.abs(e4m3_decode(a) - np.clip(x, -448, 448))
    bound = np.maximum(np.exp2(np.maximum(np.floor(np.log2(np.maximum(np.abs(np.clip(x, -448, 448)), 1e-300))), -6) - 4), 0)
    assert (err <= bound).all(), "rounding error above half a quantum"
    print("e4m3 self-test passed: 256-code table, round trip, ties to even at all 126 midpoints, saturation, "
          "subnormals, 200002 random values (two encoders agree)")


# ----------------------------------------------------------------------------------------------- block scaling
def round_up_bits(x, bits):
    """Positive float64 array -> the smallest float32 >= x with at most `bits` significant bits."""
    x = np.asarray(x, np.float64)
    x32 = x.astype(np.float32)
    x32 = np.where(x32.astype(np.float64) < x, np.nextafter(x32, np.float32(np.inf)), x32)
    u = x32.view(np.uint32).astype(np.uint64)
    drop = 24 - bits
    mask = np.uint64((1 << drop) - 1)
    up = (u & mask) != 0
    u = (u & ~mask) + np.where(up, np.uint64(1 << drop), np.uint64(0))
    return u.astype(np.uint32).view(np.float32)


def quantize_fp8_block(w32, block):
    """float32 [O, I] -> (uint8 codes [O, I], float32 scale_inv [ceil(O/B), ceil(I/B)])."""
    O, I = w32.shape
    RB, CB = -(-O // block), -(-I // block)
    scale_inv = np.ones((RB, CB), np.float32)
    codes = np.zeros((O, I), np.uint8)
    for r in range(RB):
        for c in range(CB):
            tile = w32[r * block:(r + 1) * block, c * block:(c + 1) * block]
            amax = np.abs(tile.astype(np.float64)).max()
            if amax == 0:
                continue
            s = round_up_bits(np.array([amax / E4M3_MAX]), SCALE_BITS)[0]
            scale_inv[r, c] = s
            q = tile.astype(np.float64) / np.float64(s)
            assert np.abs(q).max() <= E4M3_MAX
            codes[r * block:(r + 1) * block, c * block:(c + 1) * block] = e4m3_encode(q)
    return codes, scale_inv


def dequantize_fp8_block(codes, scale_inv, block):
    """uint8 [O, I], float32 scales -> float32 [O, I]; asserts that every product is exact in float32."""
    O, I = codes.shape
    s = np.repeat(np.repeat(scale_inv.astype(np.float64), block, 0)[:O], block, 1)[:, :I]
    exact = e4m3_decode(codes) * s
    w32 = exact.astype(np.float32)
    assert (w32.astype(np.float64) == exact).all(), "decode * scale_inv is not exact in float32"
    return w32


# ----------------------------------------------------------------------------------------------- safetensors by hand
ST_NUMPY = {"BF16": np.uint16, "F32": np.float32, "F8_E4M3": np.uint8}


def read_safetensors(path):
    """{name: (st_dtype, numpy array)}; BF16 comes back as its raw uint16 bit patterns."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = np.dtype(ST_NUMPY[e["dtype"]]).newbyteorder("<")
        out[name] = (e["dtype"], np.frombuffer(data[8 + n + a:8 + n + b], dtype=dt).reshape(e["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, st_dtype, numpy array); returns the data byte count."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, st, arr in tensors:
        b = np.ascontiguousarray(arr).astype(np.dtype(ST_NUMPY[st]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    return off


def to_f64(st, arr):
    if st == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return arr.astype(np.float64)


def is_fp8_linear(name, arr):
    return name.startswith("model.layers.") and arr.ndim == 2 and name.endswith(LINEAR_SUFFIXES) \
        and ".mlp.gate.weight" not in name


# ----------------------------------------------------------------------------------------------- main
def write_dir(out, cfg, shards, rows, expected):
    """shards: list of (file name, [(name, st, array)])."""
    mdir = os.path.join(out, "model")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    total = sum(write_safetensors(os.path.join(mdir, fn), tensors) for fn, tensors in shards)
    weight_map = {name: fn for fn, tensors in shards for name, _, _ in tensors}
    with open(os.path.join(mdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(rows, f)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    return total


def plant_codes(fp8_names, codes_by_name, block, shift):
    """Overwrite a few bytes per matrix so that all 254 non-NaN codes occur across the model; returns the count.
    `shift` moves the positions (main() tries a few to keep the routing decisions far from ties)."""
    wanted = [c for c in range(256) if (c & 0x7F) != 0x7F]
    per = -(-len(wanted) // len(fp8_names))
    k = 0
    for m, name in enumerate(fp8_names):
        codes = codes_by_name[name]
        O, I = codes.shape
        for j in range(per):
            if k >= len(wanted):
                break
            # spread over blocks: step through rows and columns by (block + a few), wrapping
            r, c = (m * 7 + j * (block + 3) + 5 * shift) % O, (m * 11 + j * (block + 5) + 1 + 3 * shift) % I
            codes[r, c] = wanted[k]
            k += 1
    return k


def twin_weights(stored, files, codes, scales, B):
    """(fp64 torch weights for the forward, float32 arrays of the dequantised linears)."""
    W, twin_arrays = {}, {}
    for fn in files:
        for n, (st, a) in stored[fn].items():
            if n in codes:
                twin_arrays[n] = dequantize_fp8_block(codes[n], scales[n], B)
                W[n] = torch.from_numpy(twin_arrays[n].astype(np.float64))
            else:
                W[n] = torch.from_numpy(to_f64(st, a))
    return W, twin_arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ref_dir", nargs="?")
    ap.add_argument("fp8_dir", nargs="?")
    ap.add_argument("twin_dir", nargs="?")
    ap.add_argument("--block-size", type=int, default=24, help="square FP8 block (K2-Instruct: 128; default 24)")
    ap.add_argument("--no-plant", action="store_true", help="do not overwrite bytes to cover all 254 codes")
    ap.add_argument("--self-test", action="store_true", help="run the e4m3 encoder/decoder checks and exit")
    args = ap.parse_args()
    self_test()
    if args.self_test:
        return
    if not (args.ref_dir and args.fp8_dir and args.twin_dir):
        ap.error("REF_DIR FP8_DIR TWIN_DIR are required")
    B = args.block_size
    assert B > 0

    mdir = os.path.join(args.ref_dir, "model")
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    assert "quantization_config" not in cfg, f"{mdir}/config.json is already quantised"
    with open(os.path.join(mdir, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    with open(os.path.join(args.ref_dir, "tokens.json")) as f:
        rows = json.load(f)
    files = sorted(set(weight_map.values()))
    stored = {fn: read_safetensors(os.path.join(mdir, fn)) for fn in files}   # per shard, header order kept
    for fn, tensors in stored.items():
        assert set(tensors) == {n for n, f in weight_map.items() if f == fn}, f"{fn}: index disagrees with shard"

    fp8_names = [n for fn in files for n, (st, a) in stored[fn].items() if is_fp8_linear(n, a)]
    expected_fp8 = {n for n, _, _ in ref.weight_specs(cfg)
                    if n.startswith("model.layers.") and n.endswith(LINEAR_SUFFIXES) and ".mlp.gate.weight" not in n}
    assert set(fp8_names) == expected_fp8, "the FP8 linear set differs from make_tiny_k2.weight_specs"
    codes, scales, roundtrip = {}, {}, 0.0
    for n in fp8_names:
        st, a = next(stored[fn][n] for fn in files if n in stored[fn])
        w = to_f64(st, a).astype(np.float32)
        codes[n], scales[n] = quantize_fp8_block(w, B)
        s = np.repeat(np.repeat(scales[n].astype(np.float64), B, 0)[:w.shape[0]], B, 1)[:, :w.shape[1]]
        rel = np.abs(e4m3_decode(codes[n]) * s - w) / s          # error in units of the block's scale
        q = np.abs(w / s)
        # half a quantum: 2^(e-4) for q in binade e >= -6, 2^-10 below (subnormals)
        half_q = np.exp2(np.maximum(np.floor(np.log2(np.maximum(q, 1e-300))), -6) - 4)
        assert (rel <= half_q * (1 + 1e-12)).all(), f"{n}: FP8 rounding error above half a quantum"
        roundtrip = max(roundtrip, float((rel / np.maximum(q, 2.0 ** -6)).max()))
    base_codes, planted, shift, margin = codes, 0, None, -math.inf
    for attempt in range(1 if args.no_plant else MAX_PLANT_ATTEMPTS):
        trial = {n: c.copy() for n, c in base_codes.items()}
        count = 0 if args.no_plant else plant_codes(fp8_names, trial, B, attempt)
        W_try, arrays_try = twin_weights(stored, files, trial, scales, B)
        m = routing_margin(W_try, cfg, rows)
        if m > margin:
            codes, planted, shift, margin, W, twin_arrays = trial, count, attempt, m, W_try, arrays_try
        if margin >= MIN_MARGIN:
            break
    assert margin >= MIN_MARGIN or args.no_plant, \
        f"no plant position kept the routing margin above {MIN_MARGIN} (best {margin:.3g})"
    used = np.unique(np.concatenate([c.ravel() for c in codes.values()]))
    subnormal_count = sum(int((((c & 0x78) == 0) & ((c & 0x7) != 0)).sum()) for c in codes.values())

    logprobs = [ref.forward(W, cfg, r) for r in rows]
    for r, lp in zip(rows, logprobs):   # loop-based second computation must agree
        assert (ref.forward(W, cfg, r, check=True) - lp).abs().max() == 0
    per_row = [[lp[t, r[t + 1]].item() for t in range(len(r) - 1)] for r, lp in zip(rows, logprobs)]
    flat = [v for row in per_row for v in row]
    expected = {"logprobs": per_row, "nll_mean": -sum(flat) / len(flat)}

    fp8_cfg = dict(cfg)
    fp8_cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [B, B]}
    fp8_shards, twin_shards = [], []
    for fn in files:
        ft, tt = [], []
        for n, (st, a) in stored[fn].items():
            if n in codes:
                ft += [(n, "F8_E4M3", codes[n]), (n[:-len(".weight")] + ".weight_scale_inv", "F32", scales[n])]
                tt += [(n, "F32", twin_arrays[n])]
            else:
                ft.append((n, st, a))
                tt.append((n, st, a))
        fp8_shards.append((fn, ft))
        twin_shards.append((fn, tt))
    fp8_bytes = write_dir(args.fp8_dir, fp8_cfg, fp8_shards, rows, expected)
    twin_bytes = write_dir(args.twin_dir, cfg, twin_shards, rows, expected)

    # read the FP8 directory back and decode it independently of the arrays above
    back = {}
    for fn in files:
        back.update(read_safetensors(os.path.join(args.fp8_dir, "model", fn)))
    for n in fp8_names:
        st, c = back[n]
        ss, s = back[n[:-len(".weight")] + ".weight_scale_inv"]
        assert st == "F8_E4M3" and ss == "F32" and s.shape == (-(-c.shape[0] // B), -(-c.shape[1] // B))
        assert (dequantize_fp8_block(c, s, B) == twin_arrays[n]).all(), n

    nblocks = sum(s.size for s in scales.values())
    partial = sum(((c.shape[0] % B) != 0 or (c.shape[1] % B) != 0) for c in codes.values())
    print(f"wrote {args.fp8_dir}/model ({len(fp8_names)} F8_E4M3 linears + weight_scale_inv, {nblocks} blocks of "
          f"{B}x{B}, {partial} matrices with partial edge blocks; {fp8_bytes} B) and {args.twin_dir}/model "
          f"(F32 twin, {twin_bytes} B), each with tokens.json and expected.json ({len(flat)} logprobs)")
    print(f"codes used: {len(used)} of 254 (planted {planted} bytes, position shift {shift}), subnormal bytes: {subnormal_count}; "
          f"max FP8 rounding error {roundtrip:.4g} x |w| (e4m3: <= 1/16)")
    print(f"twin nll_mean = {expected['nll_mean']!r}; smallest routing margin (k-th vs (k+1)-th biased score, "
          f"kept vs dropped group) = {margin:.3g}; two-way attention/MoE check passed")


def routing_margin(W, cfg, rows):
    """Smallest gap, over MoE layers and tokens, that decides a routing choice (fp32 jitter must stay far below)."""
    best = math.inf
    E, G = cfg["n_routed_experts"], cfg["n_group"]
    for tokens in rows:
        T = len(tokens)
        cos, sin = ref.rope_cos_sin(cfg, T)
        x = W["model.embed_tokens.weight"][torch.tensor(tokens)]
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = x + ref.mla_attention(W, p, cfg, ref.rms_norm(x, W[p + "input_layernorm.weight"], cfg["rms_norm_eps"]),
                                      cos, sin)
            h = ref.rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg["rms_norm_eps"])
            if ref.is_moe_layer(cfg, i):
                _, _, choice = ref.route(W, p, cfg, h)
                gs = choice.view(T, G, E // G).topk(2, dim=-1).values.sum(-1).sort(-1, descending=True).values
                best = min(best, (gs[:, cfg["topk_group"] - 1] - gs[:, cfg["topk_group"]]).min().item())
                idx, _, _ = ref.route(W, p, cfg, h)
                kept = choice.gather(1, idx).min(-1).values
                others = choice.scatter(1, idx, -math.inf)
                group_of = torch.arange(E) // (E // G)
                # only experts in kept groups compete for the k-th place
                gscore = choice.view(T, G, E // G).topk(2, dim=-1).values.sum(-1)
                keep = torch.zeros(T, G, dtype=torch.bool).scatter(1, gscore.topk(cfg["topk_group"], -1).indices, True)
                others = others.masked_fill(~keep[:, group_of], -math.inf)
                best = min(best, (kept - others.max(-1).values).min().item())
                x = x + ref.moe(W, p, cfg, h)
            else:
                x = x + ref.silu_mlp(h, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                                     W[p + "mlp.down_proj.weight"])
    return best


if __name__ == "__main__":
    main()
