#!/usr/bin/env python3
"""Builds the embedded default corpus from the Python 3.11 documentation sources shipped by
Debian's python3.11-doc package (reStructuredText under html/_sources, PSF License: see LICENSE).

    apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb x
    /usr/bin/python3 assets/corpus/make_corpus.py x/usr/share/doc/python3.11/html/_sources assets/corpus

Markup is lightly removed (roles such as :func:`x` become x, directive and label lines and
section underlines are dropped), leaving English prose with inline code. One JSON line
{"text": ...} per source file; every 10th file (sorted by path) goes to the held-out split.

    /usr/bin/python3 assets/corpus/make_corpus.py --extra x/usr/share/doc/python3.11/html/_sources DIR

writes DIR/python_docs_extra_train.jsonl instead: the sections the embedded corpus leaves out (the
library reference, "What's New", the C API; about 7 MB, 2.1M tokens), all of it training text, so
that a run longer than the embedded 393,618 tokens need not repeat them (scripts/make_extra_corpus.sh).
The held-out split stays the embedded one.
"""
import json
import os
import re
import sys

SECTIONS = ["tutorial", "howto", "faq", "reference", "using", "extending", "glossary.rst.txt"]
EXTRA_SECTIONS = ["library", "whatsnew", "c-api"]
ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
UNDERLINE = re.compile(r"^\s*([=\-~^*#+\"'`.:])\1{3,}\s*$")
DIRECTIVE = re.compile(r"^\s*\.\. (?:_[^:]*:|[a-z:-]+::).*$")
OPTION_LINE = re.compile(r"^\s+:[a-z-]+:.*$")


def clean(text):
    lines = []
    for line in text.splitlines():
        if UNDERLINE.match(line) or DIRECTIVE.match(line) or OPTION_LINE.match(line):
            continue
        line = ROLE.sub(r"\1", line)
        line = line.replace("``", "`").replace("**", "")
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def source_files(root, sections):
    for section in sections:
        path = os.path.join(root, section)
        if os.path.isfile(path):
            yield path
            continue
        for directory, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                if name.endswith(".rst.txt"):
                    yield os.path.join(directory, name)


def write_extra(root, out):
    with open(os.path.join(out, "python_docs_extra_train.jsonl"), "w", encoding="utf-8") as train:
        for path in sorted(source_files(root, EXTRA_SECTIONS)):
            with open(path, encoding="utf-8") as f:
                train.write(json.dumps({"text": clean(f.read())}, ensure_ascii=False) + "\n")


def main():
    if sys.argv[1] == "--extra":
        write_extra(sys.argv[2], sys.argv[3])
        return
    root, out = sys.argv[1], sys.argv[2]
    files = sorted(source_files(root, SECTIONS))
    with open(os.path.join(out, "python_docs_train.jsonl"), "w", encoding="utf-8") as train, \
         open(os.path.join(out, "python_docs_heldout.jsonl"), "w", encoding="utf-8") as heldout:
        for index, path in enumerate(files):
            with open(path, encoding="utf-8") as f:
                text = clean(f.read())
            record = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            (heldout if index % 10 == 9 else train).write(record)


if __name__ == "__main__":
    main()
