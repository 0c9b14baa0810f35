#!/usr/bin/env bash
# MuonClip vs AdamW on recipes/tiny_pretrain.toml at equal steps, each over a small learning-rate
# sweep. Prints one line per run (final loss = mean of the last 10 steps' losses) and the best
# of each optimizer. Usage: scripts/compare_optimizers.sh [STEPS]   (default 100)
# Writes under runs/ (K2F_RUNS_DIR replaces it): the token store in data/, the runs and the table in
# compare_optimizers/ and compare_optimizers.txt. K2F_COMPARE_SET adds recipe overrides to every run,
# space-separated KEY=VALUE (e.g. K2F_COMPARE_SET="train.seq_len=64 train.global_batch_size=8").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
steps=${1:-100}
runs=${K2F_RUNS_DIR:-runs}
store="$runs/data/python_docs_train.h5"
[ -f "$store" ] || "$k2forge" data build --input assets/corpus/python_docs_train.jsonl --tokenizer assets/tokenizer \
  --out "$store" --kind text >&2
out="$runs/compare_optimizers"
rm -rf "$out"

overrides=()
for override in ${K2F_COMPARE_SET:-}; do overrides+=(--set "$override"); done

run() {  # optimizer lr
  local dir="$out/$1-$2"
  "$k2forge" train --recipe recipes/tiny_pretrain.toml --set "train.run_dir=$dir" --set "data.paths=$store" \
    --set "optim.name=$1" --set "optim.lr=$2" --set "schedule.min_lr=$(awk "BEGIN{print $2/10}")" \
    --set "train.steps=$steps" --set "schedule.warmup_steps=$((steps / 10))" --set "schedule.decay_steps=$((steps / 5))" \
    --set checkpoint.interval=0 --set log.tensorboard=false --set log.peak_tflops=1 "${overrides[@]}" >/dev/null 2>&1
  /usr/bin/python3 - "$dir/metrics.jsonl" "$1" "$2" <<'PY'
import json, sys
losses = [json.loads(line)["loss"] for line in open(sys.argv[1])]
last = losses[-10:]
print(f"{sys.argv[2]:9s} lr {float(sys.argv[3]):<8g} final loss {sum(last) / len(last):.4f}")
PY
}

{
  for lr in 0.01 0.02 0.04; do run muonclip $lr; done
  for lr in 0.001 0.003 0.01; do run adamw $lr; done
} | tee "$out.txt"
echo "best per optimizer:"
sort -k6 -g "$out.txt" | awk '!seen[$1]++'
