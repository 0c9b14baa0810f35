#!/usr/bin/env bash
# Acceptance 2 of issue 24: the horizon. SFT on key chains of 1 to 8 lookups (recipes/
# tiny_chain_sft.toml, from the quickstart's thinking SFT checkpoint), then RL on chains of 8 to 16
# (recipes/tiny_chain_rl.toml: the exact answer plus partial credit per lookup done right) for each
# seed (default 1 2 3). Held-out success (greedy), tool calls and lookups reached per episode of the
# SFT model and of every RL model at 4, 16, 64 and 256 lookups, the same held-out chains for every
# model; the table and runs/horizon_experiment/report.json at the end. The seeds' RL runs, and then
# the evaluations, run side by side, one thread each (one-thread runs of the tiny model lose little;
# two threads on two cores shared with another run lose much). Needs the quickstart's
# runs/quickstart_sft. Extra `--set` overrides for the RL runs come from HORIZON_RL_SET.
#   scripts/horizon_experiment.sh [SEED...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
out="runs/horizon_experiment"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
lengths=(4 16 64 256)
lanes=$(nproc)
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

# RL, every seed at once.
pids=()
for seed in "${seeds[@]}"; do
  rm -rf "$out/rl-seed$seed"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 /usr/bin/time -f "rl seed $seed: %e s wall" -o "$out/rl-seed$seed.time" \
    "$k2forge" rl --recipe recipes/tiny_chain_rl.toml --quiet --set "train.init_from=$out/sft" \
    --set "train.run_dir=$out/rl-seed$seed" --set "train.seed=$seed" ${HORIZON_RL_SET:-} > "$out/rl-seed$seed.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
cat "$out"/rl-seed*.time

# Evaluations: every model at every length, greedy, a budget of 30 tokens a lookup, `lanes` at a time.
evaluate_one() {  # MODEL TAG N
  OMP_NUM_THREADS=1 "$k2forge" rl --recipe recipes/tiny_chain_rl.toml --eval-only --model "$1" \
    --set "rl.chain_length=$3" --set rl.chain_min_length=0 --set "rl.max_response_tokens=$(($3 * 30 + 64))" \
    --set rl.max_tool_calls=300 --set rl.eval_problems=32 --set rl.eval_temperature=0 \
    --set "train.run_dir=$out/eval-$2-n$3" 2>/dev/null > "$out/eval-$2-n$3.json"
}
export -f evaluate_one
export k2forge out
tags=(sft)
for seed in "${seeds[@]}"; do tags+=("rl-seed$seed"); done
for tag in "${tags[@]}"; do
  for n in "${lengths[@]}"; do echo "$out/$tag $tag $n"; done
done | xargs -P "$lanes" -L 1 bash -c 'evaluate_one "$@"' _
rm -rf "$out"/eval-*-n*/

/usr/bin/python3 - "$out" "${lengths[*]}" "${seeds[*]}" <<'PY'
import json, sys
out, lengths, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def heldout(tag, n):
    return json.load(open(f"{out}/eval-{tag}-n{n}.json"))["heldout"]
tags = ["sft"] + [f"rl-seed{s}" for s in seeds]
report = {tag: {n: heldout(tag, n) for n in lengths} for tag in tags}
print("held-out success (greedy, 32 chains) / tool calls per episode / lookups reached in order per episode")
print("%-12s" % "model" + "".join("%24s" % f"N={n}" for n in lengths))
for tag in tags:
    cells = ["%.3f / %.1f / %.1f" % (r["accuracy"], r["tool_calls_per_episode"], r["progress"] * int(n))
             for n, r in report[tag].items()]
    print("%-12s" % tag + "".join("%24s" % c for c in cells))
gains = [report[f"rl-seed{s}"]["16"]["accuracy"] - report["sft"]["16"]["accuracy"] for s in seeds]
print("N=16 gain of RL over SFT: " + ", ".join("%+.1f" % (100 * g) for g in gains) + " points (mean %+.1f)" % (100 * sum(gains) / len(gains)))
json.dump({"heldout": report, "gain_at_16_points": [100 * g for g in gains]}, open(f"{out}/report.json", "w"), indent=1)
PY
