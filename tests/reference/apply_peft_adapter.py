"""Scores token rows with an HF base model plus an HF PEFT LoRA adapter directory, a test reference for k2forge.

Written independently of the k2forge C++ code, from PEFT's LoRA definitions: adapter_config.json (peft_type "LORA",
r, lora_alpha, use_rslora, target_modules, fan_in_fan_out false, bias "none") and adapter_model.safetensors holding
`base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r]. A module is targeted when its name
equals an entry of target_modules or ends with "." + entry (a string target_modules is a regex matched against the
whole name), as PEFT's check_target_module_exists does; every targeted module must have both tensors and no other
may. Each adapted weight becomes W + s * B @ A with s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora), which
is what PEFT's LoRA layer computes (W x + s B A x without dropout) and what merge_and_unload stores; the forward is
make_tiny_k2.py's float64 HF DeepseekV3 forward on the base's stored (F32 or BF16) weights.
Run:  /usr/bin/python3 tests/reference/apply_peft_adapter.py BASE_DIR ADAPTER_DIR TOKENS_JSON OUT_JSON
      OUT_JSON gets {"logprobs": [[log p(row[t+1] | row[..t]) ...] per row]}.
"""
import json, math, os, re, struct, sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_k2  # noqa: E402  (the independent float64 forward)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[a:b]
        if e["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif e["dtype"] == "BF16":   # bf16 bits are the high half of a float32
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(bits.view(np.float32).copy())
        else:
            raise SystemExit(f"{path}: {name}: dtype {e['dtype']} not handled by this reference")
        out[name] = t.reshape(e["shape"]).to(torch.float64)
    return out


def read_base(base_dir):
    files = sorted(f for f in os.listdir(base_dir) if f.endswith(".safetensors"))
    weights = {}
    for f in files:
        weights.update(read_safetensors(os.path.join(base_dir, f)))
    with open(os.path.join(base_dir, "config.json")) as f:
        return json.load(f), weights


def targeted(name, target_modules):
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def main():
    base_dir, adapter_dir, tokens_path, out_path = sys.argv[1:5]
    cfg, W = read_base(base_dir)
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    assert ac["peft_type"] == "LORA" and ac.get("bias", "none") == "none" and not ac.get("fan_in_fan_out", False), ac
    r, alpha = ac["r"], ac["lora_alpha"]
    s = alpha / math.sqrt(r) if ac.get("use_rslora", False) else alpha / r
    lora = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    prefix = "base_model.model."
    # Linear layers of the HF model: 2-D weights other than the embedding and the MoE router (MoEGate, not nn.Linear).
    linears = [n[:-len(".weight")] for n, t in W.items()
               if n.endswith(".weight") and t.dim() == 2 and n != "model.embed_tokens.weight" and not n.endswith("mlp.gate.weight")]
    adapted = 0
    for m in linears:
        a_name, b_name = f"{prefix}{m}.lora_A.weight", f"{prefix}{m}.lora_B.weight"
        has = a_name in lora and b_name in lora
        assert has == targeted(m, ac["target_modules"]), f"{m}: targeted {targeted(m, ac['target_modules'])}, tensors {has}"
        if not has:
            continue
        A, B = lora.pop(a_name), lora.pop(b_name)
        assert A.shape == (r, W[m + ".weight"].shape[1]) and B.shape == (W[m + ".weight"].shape[0], r), m
        W[m + ".weight"] = W[m + ".weight"] + s * (B @ A)
        adapted += 1
    assert not lora, f"adapter tensors for no Linear of the base: {sorted(lora)[:3]}"
    with open(tokens_path) as f:
        rows = json.load(f)
    per_row = []
    for row in rows:
        lp = make_tiny_k2.forward(W, cfg, row)
        per_row.append([lp[t, row[t + 1]].item() for t in range(len(row) - 1)])
    with open(out_path, "w") as f:
        json.dump({"logprobs": per_row}, f)
    print(f"applied {adapted} LoRA adapters (r {r}, scale {s}) and scored {len(rows)} rows")


if __name__ == "__main__":
    main()
