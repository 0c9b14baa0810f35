#!/usr/bin/env bash
# A larger training corpus for runs longer than the embedded one (393,618 tokens, which a few hundred
# steps of the tiny recipes already repeat): the embedded training text plus the sections of the
# Python 3.11 documentation it leaves out (library reference, "What's New", C API; PSF License, see
# assets/corpus/LICENSE), about 2.5M tokens in all, written to runs/data/python_docs_large_train.h5
# (K2F_RUNS_DIR replaces runs/).
# The held-out split stays assets/corpus/python_docs_heldout.jsonl. The documentation comes from
# Debian's python3.11-doc package: `apt-get download` (network), or K2F_PYDOC_DEB=path/to/the.deb.
#   K2F_BUILD_DIR=build scripts/make_extra_corpus.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
store=${K2F_RUNS_DIR:-runs}/data/python_docs_large_train.h5
if [ -f "$store" ]; then
  echo "make_extra_corpus.sh: $store exists already"
  exit 0
fi
work=$(mktemp -d)
partial="$store.partial"
trap 'rm -rf "$work" "$partial"' EXIT
deb=${K2F_PYDOC_DEB:-}
if [ -z "$deb" ]; then
  (cd "$work" && apt-get download python3.11-doc) || {
    echo "make_extra_corpus.sh: apt-get download python3.11-doc failed; set K2F_PYDOC_DEB to the .deb" >&2
    exit 1
  }
  deb=$(ls "$work"/python3.11-doc_*.deb)
fi
test -f "$deb" || { echo "make_extra_corpus.sh: K2F_PYDOC_DEB ($deb): no such file" >&2; exit 1; }
dpkg -x "$deb" "$work/x"
sources="$work/x/usr/share/doc/python3.11/html/_sources"
test -d "$sources/library" || { echo "make_extra_corpus.sh: $deb has no $sources/library" >&2; exit 1; }
/usr/bin/python3 assets/corpus/make_corpus.py --extra "$sources" "$work"
mkdir -p runs/data
rm -f "$partial"
# Written under a temporary name and renamed when complete.
"$k2forge" data build --input assets/corpus/python_docs_train.jsonl "$work/python_docs_extra_train.jsonl" \
  --tokenizer assets/tokenizer --out "$partial" --kind text --no-progress
mv "$partial" "$store"
echo "make_extra_corpus.sh: $store from $(basename "$deb")"
