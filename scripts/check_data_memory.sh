#!/usr/bin/env bash
# Checks that `k2forge data build` streams: builds a store from a ~200 MB JSONL input (the
# embedded corpus repeated) and fails unless peak RSS (GNU time, "Maximum resident set size")
# stays under the limit. Not part of CTest (it takes minutes); run it after changes to data/.
#   scripts/check_data_memory.sh [MEGABYTES=200] [LIMIT_MB=500]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
megabytes=${1:-200}
limit_mb=${2:-500}
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
[ -x "$k2forge" ] || { echo "check_data_memory: build k2forge first (scripts/build.sh k2forge)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "check_data_memory: needs GNU time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus="$root/assets/corpus/python_docs_train.jsonl"
input="$work/input.jsonl"
target=$((megabytes * 1000 * 1000))
: >"$input"
while [ "$(stat -c %s "$input")" -lt "$target" ]; do cat "$corpus" >>"$input"; done
echo "check_data_memory: input $(stat -c %s "$input") bytes"

/usr/bin/time -v -o "$work/time.txt" "$k2forge" data build --input "$input" --tokenizer "$root/assets/tokenizer" \
  --out "$work/out.h5" --json
peak_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
echo "check_data_memory: peak RSS $((peak_kb / 1024)) MB (limit $limit_mb MB), wall $wall, store $(stat -c %s "$work/out.h5") bytes"
if [ "$peak_kb" -ge $((limit_mb * 1024)) ]; then
  echo "check_data_memory: FAILED: peak RSS above $limit_mb MB" >&2
  exit 1
fi
echo "check_data_memory: ok"
