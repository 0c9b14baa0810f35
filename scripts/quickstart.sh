#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, builds k2forge, builds a tiny
# Kimi-K2-architecture model from recipes/tiny.toml, exports it as an HF directory, imports it
# back through a second export, and scores token rows with both (the log-probs must agree).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" k2forge
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"

run_dir="$root/runs/quickstart"
echo "== quickstart: fresh run directory $run_dir"
rm -rf "$run_dir"

echo "== 1. inspect the real Kimi-K2 configuration (counted by formula)"
"$k2forge" inspect --hf-config "$root/recipes/kimi_k2_config.json"

echo "== 2. build the tiny model from recipes/tiny.toml and export it (HF layout, bf16)"
"$k2forge" init --recipe "$root/recipes/tiny.toml" --set "train.run_dir=$run_dir"

echo "== 3. import it and export it again (HF directory -> HF directory)"
"$k2forge" export --checkpoint "$run_dir/init-hf" --out "$run_dir/reexported-hf"

echo "== 4. score token rows with both directories"
"$k2forge" score --model "$run_dir/init-hf" --tokens "$root/scripts/quickstart_tokens.json" --out "$run_dir/scores.json"
"$k2forge" score --model "$run_dir/reexported-hf" --tokens "$root/scripts/quickstart_tokens.json" \
  --out "$run_dir/scores-reexported.json"
if ! cmp -s "$run_dir/scores.json" "$run_dir/scores-reexported.json"; then
  echo "quickstart: the re-exported model scores differently" >&2
  exit 1
fi
echo "== done: identical log-probs after export -> import -> export; files in $run_dir"
