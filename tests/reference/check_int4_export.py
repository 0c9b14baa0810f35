"""Independent checker of an INT4 pack-quantized HF export (`k2forge export --format hf-int4`), a test reference for k2forge.

Numpy only, no project code. Given the export directory and the fp32 master weights it was made from (HF names,
`<p>.weight`; e.g. a k2forge checkpoint's model-rank00000.safetensors), it checks that:
  - config.json's quantization_config is K2 Thinking's exactly (compressed-tensors, pack-quantized, compressed,
    kv_cache_scheme null, one group_0 {targets ["Linear"], no activation quantisation, weights {num_bits 4, type int,
    symmetric, strategy group, group_size G, dynamic false, observer minmax, observer_kwargs {}, actorder null,
    block_structure null}}, ignore ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
    "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]) and torch_dtype is bfloat16;
  - the index lists exactly the tensors of the shards, total_size is their byte count, and the export holds exactly
    the masters' tensors (each quantised linear as weight_packed / weight_scale / weight_shape);
  - the quantised linears are exactly the routed experts (`.mlp.experts.<e>.(gate|up|down)_proj`);
  - per quantised linear: weight_packed int32 [O, ceil(I/8)], weight_scale bf16 [O, I/G], weight_shape int32 [2] =
    [O, I]; the unpacked codes (column 8j+i in bits 4i..4i+3 of word j, code = nibble - 8; padding nibbles 0) and the
    scales equal an independent recomputation from the master in float32 arithmetic: per group of G inputs,
    scale = bf16_rne(absmax / 7) (grid k2) or bf16_rne(absmax / 7.5) (grid minmax), codes =
    clip(round_half_even(w / scale), -7 | -8, 7), a zero scale giving codes 0; and code * scale (the export's
    dequantisation) equals the fake quantisation of the master (codes * scale in float32) bit for bit;
  - every other tensor is bf16 and equals the master rounded to bf16 (round to nearest even), except
    e_score_correction_bias, which is F32 and equal to the master.
Prints one summary line; on any mismatch exits 1 with a message naming the tensor.

Run:  /usr/bin/python3 tests/reference/check_int4_export.py --export DIR --masters FILE [FILE ...] [--grid k2|minmax]
                                                            [--group-size G]
"""
import argparse, json, os, re, struct, sys

import numpy as np

EXPERT_RE = re.compile(r"\.mlp\.experts\.\d+\.(gate|up|down)_proj$")
K2_IGNORE = ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "u1"}


class Mismatch(Exception):
    pass


def fail(msg):
    raise Mismatch(msg)


def k2_thinking_quantization_config(group_size):
    return {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
            "kv_cache_scheme": None,
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None, "output_activations": None,
                                          "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                      "strategy": "group", "group_size": group_size, "dynamic": False,
                                                      "observer": "minmax", "observer_kwargs": {}, "actorder": None,
                                                      "block_structure": None}}},
            "ignore": K2_IGNORE}


def json_differences(got, want, path="quantization_config"):
    """Paths where two JSON values differ (bool vs int and 4 vs 4.0 count as different)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(got) | set(want)):
            if k not in got:
                out.append(f"{path}.{k} missing (expected {json.dumps(want[k])})")
            elif k not in want:
                out.append(f"{path}.{k} unexpected ({json.dumps(got[k])})")
            else:
                out += json_differences(got[k], want[k], f"{path}.{k}")
        return out
    if type(got) is not type(want) or got != want:
        return [f"{path} is {json.dumps(got)}, expected {json.dumps(want)}"]
    return []


# ----------------------------------------------------------------------------------------------- safetensors
def read_safetensors(path):
    """{name: (dtype, numpy array)} (BF16 as raw uint16 bit patterns); checks offsets are contiguous and in range."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail(f"{path}: shorter than a safetensors header")
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out, spans = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] not in ST_DTYPES:
            fail(f"{path}: tensor \"{name}\" has unsupported dtype {e['dtype']}")
        a, b = e["data_offsets"]
        dt = np.dtype(ST_DTYPES[e["dtype"]])
        count = int(np.prod(e["shape"], dtype=np.int64))
        if b - a != count * dt.itemsize or 8 + n + b > len(data):
            fail(f"{path}: tensor \"{name}\" has data_offsets {[a, b]} for {e['dtype']} {e['shape']}")
        spans.append((a, b))
        out[name] = (e["dtype"], np.frombuffer(data[8 + n + a:8 + n + b], dtype=dt).reshape(e["shape"]))
    spans.sort()
    if spans and (spans[0][0] != 0 or any(p[1] != q[0] for p, q in zip(spans, spans[1:])) or 8 + n + spans[-1][1] != len(data)):
        fail(f"{path}: tensor data is not one contiguous run filling the file")
    return out


def read_export(d):
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    weight_map, tensors, total = index["weight_map"], {}, 0
    for fn in sorted(set(weight_map.values())):
        shard = read_safetensors(os.path.join(d, fn))
        listed = {n for n, f in weight_map.items() if f == fn}
        if set(shard) != listed:
            extra, missing = sorted(set(shard) - listed), sorted(listed - set(shard))
            fail(f"{fn}: index and shard disagree (in the shard only: {extra[:3]}, in the index only: {missing[:3]})")
        for n, (dt, a) in shard.items():
            tensors[n] = (dt, a)
            total += a.nbytes
    if index.get("metadata", {}).get("total_size") != total:
        fail(f"model.safetensors.index.json: metadata.total_size {index.get('metadata', {}).get('total_size')} "
             f"but the tensors hold {total} bytes")
    return config, tensors


def read_masters(paths):
    masters = {}
    for p in paths:
        for n, (dt, a) in read_safetensors(p).items():
            if n in masters:
                fail(f"master tensor \"{n}\" appears in more than one --masters file")
            if dt == "F32":
                w = a.astype(np.float32)
            elif dt == "BF16":
                w = bf16_bits_to_f32(a)
            elif dt == "F16":
                w = a.astype(np.float32)
            else:
                fail(f"{p}: master tensor \"{n}\" is {dt}; expected F32 (or BF16/F16)")
            masters[n] = w
    return masters


# ----------------------------------------------------------------------------------------------- float32 / bf16
def bf16_bits_to_f32(bits):
    u = np.array(bits, dtype=np.uint32, ndmin=1) << np.uint32(16)
    return u.view(np.float32).reshape(np.shape(bits))


def f32_to_bf16_bits(x):
    """Round to nearest, ties to even, on the float32 bit pattern (NaN kept quiet)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, ((u >> np.uint64(16)) | np.uint64(0x40)).astype(np.uint16), rounded)


def quantize_groups(w, group, grid):
    """float32 [O, I] -> (float32 codes [O, I/G, G], bf16 scale bits [O, I/G], float32 scales [O, I/G])."""
    O, I = w.shape
    wg = w.astype(np.float32).reshape(O, I // group, group)
    absmax = np.abs(wg).max(-1)
    scale_f32 = absmax / np.float32(7.0 if grid == "k2" else 7.5)           # float32 division
    assert scale_f32.dtype == np.float32
    scale_bits = f32_to_bf16_bits(scale_f32)
    scale = bf16_bits_to_f32(scale_bits)
    safe = np.where(scale == 0, np.float32(1.0), scale)[..., None]
    codes = np.rint(wg / safe)                                                # rint: half to even
    assert codes.dtype == np.float32
    codes = np.clip(codes, np.float32(-7.0 if grid == "k2" else -8.0), np.float32(7.0)) + np.float32(0.0)
    return codes, scale_bits, scale


def unpack_int4(words, in_features, name):
    """int32 [O, W] -> int codes [O, in_features]; the padding nibbles past in_features must be 0."""
    O, W = words.shape
    u = words.astype(np.int64) & 0xFFFFFFFF
    nibbles = (u[:, :, None] >> (4 * np.arange(8, dtype=np.int64))) & 0xF          # [O, W, 8]: column 8j+i
    flat = nibbles.reshape(O, W * 8)
    if (flat[:, in_features:] != 0).any():
        fail(f"\"{name}\": padding nibbles past column {in_features} are not 0")
    return flat[:, :in_features] - 8


# ----------------------------------------------------------------------------------------------- checks
def first_difference(a, b):
    idx = tuple(int(i) for i in np.argwhere(a != b)[0])
    return idx, a[idx], b[idx]


def check_packed(p, export, master, group, grid, stats):
    packed_name, scale_name, shape_name = p + ".weight_packed", p + ".weight_scale", p + ".weight_shape"
    for n in (scale_name, shape_name):
        if n not in export:
            fail(f"\"{packed_name}\" has no \"{n}\"")
    if master.ndim != 2:
        fail(f"\"{p}.weight\": master has shape {list(master.shape)}, expected [out, in]")
    O, I = master.shape
    dt, shape = export[shape_name]
    if dt != "I32" or list(shape.shape) != [2]:
        fail(f"\"{shape_name}\": expected I32 [2], got {dt} {list(shape.shape)}")
    if shape.tolist() != [O, I]:
        fail(f"\"{shape_name}\" holds {shape.tolist()}, the master is [{O}, {I}]")
    if I % group != 0:
        fail(f"\"{p}.weight\": group size {group} does not divide in_features {I}")
    dt, words = export[packed_name]
    if dt != "I32" or list(words.shape) != [O, -(-I // 8)]:
        fail(f"\"{packed_name}\": expected I32 [{O}, {-(-I // 8)}], got {dt} {list(words.shape)}")
    dt, scale_bits = export[scale_name]
    if dt != "BF16" or list(scale_bits.shape) != [O, I // group]:
        fail(f"\"{scale_name}\": expected BF16 [{O}, {I // group}], got {dt} {list(scale_bits.shape)}")
    if not np.isfinite(master).all():
        fail(f"\"{p}.weight\": the master holds non-finite values")

    codes = unpack_int4(words, I, packed_name)
    low = -7 if grid == "k2" else -8
    if codes.min() < low:
        where = tuple(int(i) for i in np.argwhere(codes < low)[0])
        fail(f"\"{packed_name}\": code {int(codes[where])} at {list(where)} is off the {grid} grid [{low}, 7]")
    want_codes, want_bits, want_scale = quantize_groups(master, group, grid)
    if not (scale_bits == want_bits).all():
        (o, g), got, want = first_difference(scale_bits, want_bits)
        fail(f"\"{scale_name}\" [{o}, {g}]: bf16 0x{int(got):04x} ({float(bf16_bits_to_f32(got)):.9g}), recomputed "
             f"0x{int(want):04x} ({float(bf16_bits_to_f32(want)):.9g}) from absmax "
             f"{float(np.abs(master[o, g * group:(g + 1) * group]).max()):.9g}")
    want_codes_OI = want_codes.reshape(O, I).astype(np.int64)
    if not (codes == want_codes_OI).all():
        (o, i), got, want = first_difference(codes, want_codes_OI)
        fail(f"\"{packed_name}\" [{o}, {i}]: code {int(got)}, recomputed {int(want)} from w = {float(master[o, i]):.9g} "
             f"and scale {float(want_scale[o, i // group]):.9g}")
    # the export's dequantisation vs the fake quantisation of the master, both in float32
    scale = bf16_bits_to_f32(scale_bits)
    dequant = (codes.astype(np.float32).reshape(O, I // group, group) * scale[..., None]).reshape(O, I)
    fake = (want_codes * want_scale[..., None]).reshape(O, I)
    assert dequant.dtype == fake.dtype == np.float32
    diff = float(np.abs(dequant.astype(np.float64) - fake.astype(np.float64)).max()) if dequant.size else 0.0
    stats["max_diff"] = max(stats["max_diff"], diff)
    if diff != 0 or not (dequant.view(np.uint32) == fake.view(np.uint32)).all():
        (o, i), got, want = first_difference(dequant.view(np.uint32), fake.view(np.uint32))
        fail(f"\"{p}\" [{o}, {i}]: dequant {float(dequant[o, i])!r} differs from fake-quant {float(fake[o, i])!r}")
    stats["packed"] += 1
    stats["groups"] += scale_bits.size
    stats["zero_groups"] += int((want_scale == 0).sum())
    stats["codes"] += codes.size
    stats["code_min"] = min(stats["code_min"], int(codes.min()) if codes.size else 0)
    stats["code_max"] = max(stats["code_max"], int(codes.max()) if codes.size else 0)
    stats["max_err"] = max(stats["max_err"], float(np.abs(dequant - master).max()) if dequant.size else 0.0)


def check_plain(n, export, master, stats):
    dt, a = export[n]
    if list(a.shape) != list(master.shape):
        fail(f"\"{n}\": shape {list(a.shape)}, the master is {list(master.shape)}")
    if "e_score_correction_bias" in n:
        if dt != "F32":
            fail(f"\"{n}\": expected F32, got {dt}")
        if not (a.view(np.uint32) == master.astype(np.float32).view(np.uint32)).all():
            idx, got, want = first_difference(a.view(np.uint32), master.view(np.uint32))
            fail(f"\"{n}\" {list(idx)}: {float(a[idx])!r}, the master holds {float(master[idx])!r}")
        stats["f32"] += 1
        return
    if dt != "BF16":
        fail(f"\"{n}\": expected BF16, got {dt}")
    want = f32_to_bf16_bits(master)
    if not (a == want).all():
        idx, got, w = first_difference(a, want)
        fail(f"\"{n}\" {list(idx)}: bf16 0x{int(got):04x}, the master {float(master[idx])!r} rounds to 0x{int(w):04x}")
    stats["bf16"] += 1


def check(args):
    config, export = read_export(args.export)
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        fail(f"{args.export}/config.json: no quantization_config object")
    weights = qc.get("config_groups", {}).get("group_0", {}).get("weights", {}) if isinstance(qc.get("config_groups"), dict) else {}
    group = weights.get("group_size") if isinstance(weights, dict) else None
    if not isinstance(group, int) or isinstance(group, bool) or group <= 0:
        fail(f"{args.export}/config.json: quantization_config.config_groups.group_0.weights.group_size is "
             f"{json.dumps(group)}, expected a positive integer")
    if args.group_size is not None and group != args.group_size:
        fail(f"{args.export}/config.json: group_size {group}, expected {args.group_size}")
    diffs = json_differences(qc, k2_thinking_quantization_config(group))
    if diffs:
        fail(f"{args.export}/config.json: quantization_config differs from K2 Thinking's: " + "; ".join(diffs))
    if config.get("torch_dtype") != "bfloat16":
        fail(f"{args.export}/config.json: torch_dtype {json.dumps(config.get('torch_dtype'))}, expected \"bfloat16\"")

    masters = read_masters(args.masters)
    packed = sorted(n[:-len(".weight_packed")] for n in export if n.endswith(".weight_packed"))
    parts = {p + s for p in packed for s in (".weight_packed", ".weight_scale", ".weight_shape")}
    logical = {p + ".weight" for p in packed} | (set(export) - parts)
    for p in packed:
        if p + ".weight" in export:
            fail(f"\"{p}\" is stored both packed and as \"{p}.weight\"")
    if logical != set(masters):
        only_export, only_master = sorted(logical - set(masters)), sorted(set(masters) - logical)
        fail(f"the export's tensors differ from the masters' (export only: {only_export[:4]}"
             f"{' ...' if len(only_export) > 4 else ''}; masters only: {only_master[:4]}"
             f"{' ...' if len(only_master) > 4 else ''})")
    experts = sorted(n[:-len(".weight")] for n in masters if n.endswith(".weight") and EXPERT_RE.search(n[:-len(".weight")]))
    if packed != experts:
        not_packed, extra = sorted(set(experts) - set(packed)), sorted(set(packed) - set(experts))
        fail(f"the quantised linears are not exactly the routed experts (experts left unquantised: {not_packed[:4]}; "
             f"quantised non-experts: {extra[:4]})")
    if not packed:
        fail("the export quantises no linear (the masters hold no routed expert)")

    stats = {"packed": 0, "groups": 0, "zero_groups": 0, "codes": 0, "code_min": 99, "code_max": -99, "bf16": 0,
             "f32": 0, "max_diff": 0.0, "max_err": 0.0}
    for p in packed:
        check_packed(p, export, masters[p + ".weight"], group, args.grid, stats)
    for n in sorted(set(export) - parts):
        check_plain(n, export, masters[n], stats)
    return group, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", required=True, help="HF directory written by k2forge export --format hf-int4")
    ap.add_argument("--masters", required=True, nargs="+", help="safetensors file(s) of fp32 masters (HF names)")
    ap.add_argument("--grid", choices=["k2", "minmax"], default="k2")
    ap.add_argument("--group-size", type=int, default=None, help="require this group size (default: any)")
    args = ap.parse_args()
    try:
        group, s = check(args)
    except Mismatch as e:
        print(f"check_int4_export: MISMATCH: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"check_int4_export: OK: {s['packed']} packed linears ({s['groups']} groups of {group}, {s['zero_groups']} "
          f"with scale 0, {s['codes']} codes in [{s['code_min']}, {s['code_max']}], grid {args.grid}), "
          f"{s['bf16']} bf16 + {s['f32']} f32 tensors equal to the masters; max |dequant - fake-quant| = {s['max_diff']:g}; "
          f"max |dequant - master| = {s['max_err']:.4g}")


if __name__ == "__main__":
    main()
