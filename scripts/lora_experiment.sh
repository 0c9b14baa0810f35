#!/usr/bin/env bash
# Issue 23, acceptance 2: LoRA on an INT4 base, end to end on the tiny model, against a full
# fine-tune with the same steps and data. The base is what a user is given: the tiny pretraining
# run (runs/quickstart/step-000200, trained when absent) fine-tuned with INT4 QAT
# (recipes/tiny_qat_int4.toml) and exported as K2 Thinking ships (routed experts INT4). The user's
# data is of another kind than the base's Python-docs corpus: thinking conversations with
# calculator calls (`k2forge data synth-think`), a training file and a held-out file of other
# problems. Both fine-tunes run recipes/tiny_think_sft.toml's settings for the same steps on the
# same store: full fine-tuning (every weight, MuonClip) and LoRA (rank 16 on every Linear, routed
# experts and lm_head included, AdamW at lr 0.006; the INT4 experts stay packed and frozen). Held-out loss is `k2forge score --store` on the
# held-out chat store: the mean NLL of what the assistant writes. Prints one JSON object, also
# runs/lora_experiment/report.json. About 12 minutes on 2 cores.
#   scripts/lora_experiment.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
out=runs/lora_experiment
steps=${LORA_EXPERIMENT_STEPS:-150}
rm -rf "$out"
mkdir -p "$out" runs/data

embedded_store=runs/data/python_docs_train.h5
pretrained=runs/quickstart/step-000200
[ -f "$embedded_store" ] || "$k2forge" data build --input assets/corpus/python_docs_train.jsonl \
  --tokenizer assets/tokenizer --out "$embedded_store" --kind text --no-progress
[ -d "$pretrained" ] || "$k2forge" train --recipe recipes/tiny_pretrain.toml \
  --set "train.run_dir=$(dirname "$pretrained")" --set "data.paths=$embedded_store"

# The base: QAT fine-tuning, then the INT4 export.
"$k2forge" train --recipe recipes/tiny_qat_int4.toml --set "train.run_dir=$out/qat" \
  --set "train.init_from=$pretrained" --set "data.paths=$embedded_store" --fresh
"$k2forge" export --checkpoint "$out/qat/$(cat "$out/qat/latest")" --out "$out/base-int4" --format hf-int4

# The user's chat data: training and held-out conversations (other seeds, so other problems).
"$k2forge" data synth-think --out "$out/chat_train.jsonl" --count 2000 --seed 101 --tool-fraction 0.5
"$k2forge" data synth-think --out "$out/chat_heldout.jsonl" --count 200 --seed 202 --tool-fraction 0.5
for split in train heldout; do
  "$k2forge" data build --input "$out/chat_$split.jsonl" --tokenizer assets/tokenizer --out "$out/chat_$split.h5" \
    --kind chat --no-progress
done

common=(--recipe recipes/tiny_think_sft.toml --set "train.init_from=$out/base-int4" --set "data.paths=$out/chat_train.h5"
        --set "train.steps=$steps" --fresh)
start=$SECONDS
"$k2forge" train "${common[@]}" --set "train.run_dir=$out/full"
echo $((SECONDS - start)) > "$out/full.seconds"
start=$SECONDS
"$k2forge" train "${common[@]}" --set "train.run_dir=$out/lora" \
  --set lora.rank=16 --set lora.alpha=32 --set optim.lr=0.006 --set schedule.min_lr=0.0006 \
  --set lora.targets=Linear --set 'lora.ignore=re:^$'
echo $((SECONDS - start)) > "$out/lora.seconds"

score() {
  "$k2forge" score --model "$1" --store "$out/chat_heldout.h5" --row-tokens 256 --out "$2" 2>/dev/null
}
score "$out/base-int4" "$out/score_base.json"
score "$out/full/$(cat "$out/full/latest")" "$out/score_full.json"
score "$out/lora/$(cat "$out/lora/latest")" "$out/score_lora.json"

python3 - "$out" "$steps" <<'EOF'
import json, sys
out, steps = sys.argv[1], int(sys.argv[2])
nll = {name: json.load(open(f"{out}/score_{name}.json"))["nll_mean"] for name in ("base", "full", "lora")}
def losses(run):
    rows = [json.loads(line) for line in open(f"{out}/{run}/metrics.jsonl")]
    return rows[0]["loss"], rows[-1]["loss"]
report = {
    "steps": steps,
    "heldout_nll": nll,
    "heldout_drop_full": nll["base"] - nll["full"],
    "heldout_drop_lora": nll["base"] - nll["lora"],
    "lora_share_of_full_drop": (nll["base"] - nll["lora"]) / (nll["base"] - nll["full"]),
    "train_loss_full": losses("full"),
    "train_loss_lora": losses("lora"),
    "seconds_full": float(open(f"{out}/full.seconds").read().split()[-1]),
    "seconds_lora": float(open(f"{out}/lora.seconds").read().split()[-1]),
}
text = json.dumps(report, indent=2)
open(f"{out}/report.json", "w").write(text + "\n")
print(text)
EOF
