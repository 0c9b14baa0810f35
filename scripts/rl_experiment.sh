#!/usr/bin/env bash
# Acceptance 4 of issue 7: held-out accuracy of the embedded reasoning task after SFT and after
# RL, for several RL seeds (default 1 2 3), each RL run timed. Needs the quickstart's pretraining
# checkpoint (runs/quickstart). SFT runs once (recipes/tiny_think_sft.toml) and every seed's RL
# starts from it (recipes/tiny_think_rl.toml, train.seed = the seed). Prints one line per seed.
#   scripts/rl_experiment.sh [SEED...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
out="runs/rl_experiment"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
pretrain="runs/quickstart/$(cat runs/quickstart/latest)"
mkdir -p "$out" runs/data
if [ ! -f runs/data/think_sft.h5 ]; then
  "$k2forge" data synth-think --out runs/data/think_sft.jsonl --count 2000 --seed 0 --tool-fraction 0.5
  "$k2forge" data build --input runs/data/think_sft.jsonl --tokenizer assets/tokenizer --out runs/data/think_sft.h5 --kind chat
fi
if [ ! -f "$out/sft/latest" ]; then
  rm -rf "$out/sft"
  /usr/bin/time -f "sft: %e s wall, %U s user + %S s system CPU" "$k2forge" train --recipe recipes/tiny_think_sft.toml \
    --set "train.init_from=$pretrain" --set "train.run_dir=$out/sft" 2>&1 | tail -n 3
fi
for seed in "${seeds[@]}"; do
  rm -rf "$out/rl-seed$seed"
  /usr/bin/time -f "rl seed $seed: %e s wall, %U s user + %S s system CPU" "$k2forge" rl --recipe recipes/tiny_think_rl.toml --quiet \
    --set "train.init_from=$out/sft" --set "train.run_dir=$out/rl-seed$seed" --set "train.seed=$seed" >/dev/null
  /usr/bin/python3 -c "import json,sys; e=json.load(open(sys.argv[1])); b,a=e['before']['accuracy'],e['after']['accuracy']; print('seed %s: held-out accuracy after SFT %.3f, after RL %.3f (%+.1f points)' % (sys.argv[2], b, a, 100*(a-b)))" "$out/rl-seed$seed/eval.json" "$seed"
done
