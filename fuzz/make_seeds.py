#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (committed; rerun
only to change them). Seeds are small valid inputs, so libFuzzer starts from deep inside each
format instead of rediscovering its syntax: a safetensors file with several dtypes, an HF index,
tokenizer inputs, tiktoken patterns, the embedded chat examples, the recipes, and an HDF5 token store."""
import json
import pathlib
import shutil
import struct
import sys

import h5py
import numpy as np

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def reset(target):
    path = corpus / target
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def safetensors_bytes(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_safetensors_seeds():
    out = reset("safetensors_header")
    f32 = np.arange(6, dtype=np.float32).tobytes()
    bf16 = (np.arange(4, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    (out / "mixed").write_bytes(safetensors_bytes({
        "model.embed_tokens.weight": ("F32", [2, 3], f32),
        "lm_head.weight": ("BF16", [4], bf16),
        "model.layers.0.mlp.experts.0.down_proj.weight_shape": ("I32", [2], np.array([7, 64], np.int32).tobytes()),
        "model.layers.0.mlp.gate.e_score_correction_bias": ("F32", [0], b""),
        "fp8": ("F8_E4M3", [2, 2], bytes([0x38, 0x40, 0xB8, 0x00])),
    }, {"format": "pt"}))
    (out / "empty").write_bytes(safetensors_bytes({}))


def write_index_seeds():
    out = reset("hf_index")
    index = {"metadata": {"total_size": 24},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (out / "two_shards").write_text(json.dumps(index, indent=2))
    (out / "escape").write_text(json.dumps({"weight_map": {"x": "../../etc/passwd"}}))


def write_tokenizer_seeds():
    out = reset("tokenizer")
    (out / "encode_code").write_bytes(b"\x00def f(x):\n    return x ** 2  # caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 <|im_end|>[EOS]")
    (out / "encode_bytes").write_bytes(b"\x00\xff\xfe\x80 \t\r\n1234567 !!!???" + bytes(range(1, 32)))
    model_lines = (root / "assets" / "tokenizer" / "tiktoken.model").read_bytes().splitlines(keepends=True)
    (out / "load_model").write_bytes(b"\x01" + b"".join(model_lines[:300]))


def write_chat_seeds():
    out = reset("chat_template")
    lines = (root / "assets" / "chat" / "example.jsonl").read_text().splitlines()
    for number, line in enumerate(lines):
        (out / f"example_{number}").write_text(line)


def write_recipe_seeds():
    out = reset("recipe")
    for recipe in sorted((root / "recipes").glob("*.toml")):
        shutil.copy(recipe, out / recipe.name)


def write_token_store_seeds():
    out = reset("token_store")
    for name, with_mask in (("plain", False), ("masked", True)):
        path = out / name
        with h5py.File(path, "w") as f:
            tokens = np.array([5, 6, 7, 4097, 8, 9, 4097], dtype=np.int32)
            f.create_dataset("tokens", data=tokens)
            f.create_dataset("doc_offsets", data=np.array([0, 4, 7], dtype=np.int64))
            if with_mask:
                f.create_dataset("loss_mask", data=np.array([0, 1, 1, 1, 0, 1, 1], dtype=np.uint8))
            f.attrs["format_version"] = np.int64(1)
            f.attrs["vocab_size"] = np.int64(4160)
            # Fixed-length, as `k2forge data build` writes it (variable-length strings are refused).
            f.attrs["tokenizer_hash"] = np.bytes_("sha256:" + "0" * 64)


def write_tiktoken_pattern_seeds():
    """A pattern, a NUL byte, a text: the released Kimi pattern and one seed per construct."""
    out = reset("tiktoken_pattern")
    kimi = (root / "assets" / "tokenizer" / "pattern.txt").read_text().rstrip("\n")
    text = "Hello world's 12345 你好、世界!!\n\n  x I'M café"
    seeds = {
        "kimi": kimi,
        "intersection": r"[a-z&&[^aeiou]]+|[\p{L}--\p{Lu}]+|[ab~~bc]|.",
        "nested": r"[^a[bc]]+|[]a-]|\s+(?!\S)|\S",
        "properties": r"\p{Han}+|\p{scx=Han}|\p{gc=Nd}{1,3}|\P{ASCII}|\pL+|(?s:.)",
        "escapes": r"\x{41}\u0042|\v|(?i:'s)|a++|\d|$|.",
    }
    for name, pattern in seeds.items():
        (out / name).write_bytes(pattern.encode() + b"\0" + text.encode())


def main():
    write_safetensors_seeds()
    write_index_seeds()
    write_tokenizer_seeds()
    write_tiktoken_pattern_seeds()
    write_chat_seeds()
    write_recipe_seeds()
    write_token_store_seeds()
    for target in sorted(corpus.iterdir()):
        print(target.name, sum(1 for _ in target.iterdir()), "seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
