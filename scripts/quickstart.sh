#!/usr/bin/env bash
# The main job on embedded defaults, end to end: installs what is missing, builds k2forge,
# tokenises the embedded corpus (assets/) into an HDF5 store, pretrains a tiny Kimi-K2-architecture
# model with MuonClip (recipes/tiny_pretrain.toml), is interrupted half way and resumes, exports
# the result as an HF directory, and scores held-out text with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" k2forge
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"

run_dir="runs/quickstart"
store="runs/data/python_docs_train.h5"
echo "== quickstart: fresh run directory $run_dir"
rm -rf "$run_dir"

echo "== 1. count the real Kimi-K2 configuration (by formula)"
"$k2forge" inspect --hf-config recipes/kimi_k2_config.json

echo "== 2. tokenise the embedded corpus (assets/corpus) with the embedded tokenizer"
if [ ! -f "$store" ]; then
  mkdir -p "$(dirname "$store")"
  "$k2forge" data build --input assets/corpus/python_docs_train.jsonl --tokenizer assets/tokenizer --out "$store" --kind text
fi

echo "== 3. pretrain recipes/tiny_pretrain.toml, stopping half way (as if interrupted)"
"$k2forge" train --recipe recipes/tiny_pretrain.toml --set "train.run_dir=$run_dir" --set "data.paths=$store" \
  --stop-after 100

echo "== 4. resume from the checkpoint and finish"
"$k2forge" train --recipe recipes/tiny_pretrain.toml --set "train.run_dir=$run_dir" --set "data.paths=$store"

echo "== 5. export the final checkpoint as an HF directory (bf16 safetensors)"
latest=$(cat "$run_dir/latest")
"$k2forge" export --checkpoint "$run_dir/$latest" --out "$run_dir/hf"

echo "== 6. score held-out text (assets/corpus/python_docs_heldout.jsonl)"
"$k2forge" score --model "$run_dir/hf" --text assets/corpus/python_docs_heldout.jsonl --tokenizer assets/tokenizer \
  --out "$run_dir/heldout_scores.json"
echo "== done: checkpoints, metrics.jsonl, tensorboard/ and hf/ in $run_dir"
