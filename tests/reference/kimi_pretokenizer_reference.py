#!/usr/bin/python3
"""Independent reference for the released Kimi tokenizer's meaning (tests/data/test_tokenizer.cpp).

Made with Debian's python3-regex (mrab-regex 2022.10.31) and no k2forge code:
  /usr/bin/python3 tests/reference/kimi_pretokenizer_reference.py assets/tokenizer \
      > tests/reference/kimi_released_pattern_ids.json
The pattern is the released tokenization_kimi.py's pat_str, in tiktoken's (Rust regex) syntax.
mrab-regex's VERSION1 mode reads `[X&&[^Y]]` as class intersection, as Rust does, and its bare
`\\p{Han}` is the Han script, as in Rust. Rust's `\\s` is Unicode White_Space, spelled here as
`\\p{White_Space}` (mrab-regex's own `\\s` follows str.isspace). Pieces are byte-pair merged as
tiktoken does: repeatedly merge the adjacent pair whose bytes have the lowest rank (leftmost first).
"""
import base64
import json
import sys

import regex

RELEASED_PIECES = [
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
]

TEXTS = [
    "Hello world's 12345 你好世界!!\n\n  x",
    "你好、世界。日本語のテキストです「引用」",
    "中文，English混合text，和123数字",
    "CamelCaseWords XMLHttpRequest iPhone McDonald's",
    "I'M HAPPY we'LL see they've I'd you're don't",
    "3.14159 1,000,000 2026-12-05 0x7fff 12345678901",
    "a   b\t\t\tc\n\n\n   d  \r\n  e    ",
    "end with spaces   \n",
    "nel\u0085\u0085next\u00a0nbsp\u3000ideographic",
    "Ωμέγα Привет мир 한국어 ελληνικά naïve café e\u0301",
    "emoji 🙂👍🏽 and symbols $$$ ### @user a_b x=y+z;",
    "<|im_end|> [EOS] <think>reasoning</think>",
]


def released_pattern():
    pattern = "|".join(RELEASED_PIECES)
    return pattern.replace(r"\s", r"\p{White_Space}").replace(r"\S", r"\P{White_Space}")


def load_ranks(path):
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def merge(piece, ranks):
    if piece in ranks:
        return [ranks[piece]]
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return [ranks[p] for p in parts]


def main():
    ranks = load_ranks(sys.argv[1] + "/tiktoken.model")
    compiled = regex.compile(released_pattern(), flags=regex.VERSION1)
    cases = []
    for text in TEXTS:
        pieces = compiled.findall(text)
        assert "".join(pieces) == text, text
        ids = [i for p in pieces for i in merge(p.encode("utf-8"), ranks)]
        cases.append({"text": text, "pieces": pieces, "ids": ids})
    json.dump({"pattern": "|".join(RELEASED_PIECES), "released_pieces": RELEASED_PIECES, "cases": cases}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
