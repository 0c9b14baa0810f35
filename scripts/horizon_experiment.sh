#!/usr/bin/env bash
# Acceptance 2 of issue 24: the horizon. SFT on key chains of 1 to 8 lookups (recipes/
# tiny_chain_sft.toml, from the quickstart's thinking SFT checkpoint), then RL on chains of up to
# 16 (recipes/tiny_chain_rl.toml) for each seed (default 1 2 3). Held-out success (greedy) and tool
# calls per episode of the SFT model and of every RL model at 4, 16, 64 and 256 lookups, the same
# held-out chains for every model; the table and runs/horizon_experiment/report.json at the end.
# Needs the quickstart's runs/quickstart_sft. About 30 minutes on 2 cores.
#   scripts/horizon_experiment.sh [SEED...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
out="runs/horizon_experiment"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
lengths=(4 16 64 256)
start="runs/quickstart_sft/$(cat runs/quickstart_sft/latest)"
mkdir -p "$out" runs/data
if [ ! -f runs/data/chain_sft.h5 ]; then
  "$k2forge" data synth-chain --out runs/data/chain_sft.jsonl --count 4000 --seed 0 --min-length 1 --max-length 8
  "$k2forge" data build --input runs/data/chain_sft.jsonl --tokenizer assets/tokenizer --out runs/data/chain_sft.h5 \
    --kind chat --no-progress
fi
if [ ! -f "$out/sft/latest" ]; then
  rm -rf "$out/sft"
  /usr/bin/time -f "sft: %e s wall" "$k2forge" train --recipe recipes/tiny_chain_sft.toml --set "train.init_from=$start" \
    --set "train.run_dir=$out/sft" --set data.paths=runs/data/chain_sft.h5 2>&1 | tail -n 2
fi

# evaluate MODEL TAG: held-out chains of every length, greedy, budget and calls for the longest.
evaluate() {
  for n in "${lengths[@]}"; do
    "$k2forge" rl --recipe recipes/tiny_chain_rl.toml --eval-only --model "$1" --set "rl.chain_length=$n" \
      --set rl.chain_min_length=0 --set "rl.max_response_tokens=$((n * 30 + 64))" --set rl.max_tool_calls=300 \
      --set rl.eval_problems=32 --set rl.eval_temperature=0 --set "train.run_dir=$out/eval" \
      2>/dev/null > "$out/eval-$2-n$n.json"
  done
}
evaluate "$out/sft" sft
for seed in "${seeds[@]}"; do
  rm -rf "$out/rl-seed$seed"
  /usr/bin/time -f "rl seed $seed: %e s wall" "$k2forge" rl --recipe recipes/tiny_chain_rl.toml --quiet \
    --set "train.init_from=$out/sft" --set "train.run_dir=$out/rl-seed$seed" --set "train.seed=$seed" >/dev/null
  evaluate "$out/rl-seed$seed" "rl-seed$seed"
done
/usr/bin/python3 - "$out" "${lengths[*]}" "${seeds[*]}" <<'PY'
import json, sys
out, lengths, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def heldout(tag, n):
    return json.load(open(f"{out}/eval-{tag}-n{n}.json"))["heldout"]
tags = ["sft"] + [f"rl-seed{s}" for s in seeds]
report = {tag: {n: heldout(tag, n) for n in lengths} for tag in tags}
print("held-out success (greedy, 32 chains) / tool calls per episode")
print("%-12s" % "model" + "".join("%18s" % f"N={n}" for n in lengths))
for tag in tags:
    print("%-12s" % tag + "".join("%18s" % ("%.3f / %.1f" % (report[tag][n]["accuracy"], report[tag][n]["tool_calls_per_episode"])) for n in lengths))
gains = [report[f"rl-seed{s}"]["16"]["accuracy"] - report["sft"]["16"]["accuracy"] for s in seeds]
print("N=16 gain of RL over SFT: " + ", ".join("%+.1f" % (100 * g) for g in gains) + " points (mean %+.1f)" % (100 * sum(gains) / len(gains)))
json.dump({"heldout": report, "gain_at_16_points": [100 * g for g in gains]}, open(f"{out}/report.json", "w"), indent=1)
PY
