#!/usr/bin/env bash
# Does INT4 QAT work? On the tiny model: held-out NLL of the bf16 model, of INT4 by plain rounding
# (post-training quantisation, no QAT), and of INT4 after QAT fine-tuning (recipes/tiny_qat_int4.toml);
# plus a control that fine-tunes the same steps without QAT and then rounds, so the gain is not just
# "more training". K2F_QAT_FROM starts both runs from another bf16 checkpoint (e.g. a fine-tuned one),
# K2F_QAT_SET adds recipe overrides to both. Prints one JSON object. Starting from the default, it needs the tiny
# pretraining checkpoint: it trains recipes/tiny_pretrain.toml into runs/quickstart when runs/quickstart/step-000200
# is absent. Everything it writes is under runs/ (K2F_RUNS_DIR replaces it); the experiment in qat_experiment/.
#
# --large: the fair setting. The embedded store (393,618 tokens) is too small to train the tiny model
# until more training moves it little: fine-tuning alone then improves it as much as the rounding
# costs, and the QAT-vs-control difference drowns in run-to-run noise. With --large, both runs start
# from recipes/tiny_continue_large.toml's bf16 model (trained on scripts/make_extra_corpus.sh's
# 2.5M-token store, both made when absent), fine-tune 400 steps on that store (lr 0.002 after 10 warmup
# steps, cosine-decayed to 1e-4, so QAT has room to move weights across rounding boundaries and time to
# settle), and every linear is INT4 (K2F_QAT_* variables still override).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
runs=${K2F_RUNS_DIR:-runs}
out=$runs/qat_experiment
large=false
case "${1:-}" in
  --large) large=true ;;
  "") ;;
  *) echo "usage: scripts/qat_experiment.sh [--large]" >&2; exit 2 ;;
esac
large_store=$runs/data/python_docs_large_train.h5
large_start=$runs/tiny_continue_large/step-000600
embedded_store=$runs/data/python_docs_train.h5
pretrained=$runs/quickstart/step-000200
# The token store both fine-tuning runs read (default: the embedded corpus; K2F_QAT_STORE names
# another, e.g. scripts/make_extra_corpus.sh's, so a long run does not repeat its data).
store=${K2F_QAT_STORE:-$embedded_store}
# The bf16 checkpoint both fine-tuning runs start from (default: the tiny pretraining run's end).
start=${K2F_QAT_FROM:-$pretrained}
if $large; then
  store=${K2F_QAT_STORE:-$large_store}
  start=${K2F_QAT_FROM:-$large_start}
  K2F_QAT_IGNORE=${K2F_QAT_IGNORE-'re:^$'}
  K2F_QAT_SET="train.steps=400 checkpoint.interval=400 optim.lr=0.002 schedule.name=wsd schedule.warmup_steps=10 schedule.decay_steps=390 schedule.min_lr=0.0001 ${K2F_QAT_SET:-}"
fi
# The held-out text every model is scored on (JSONL documents).
heldout=${K2F_QAT_HELDOUT:-assets/corpus/python_docs_heldout.jsonl}
group=${K2F_QAT_GROUP_SIZE:-32}  # INT4 group size of the experiment (coarser groups: a larger rounding gap)
# Linears kept bf16 (comma-separated; default K2 Thinking's: only routed experts are INT4).
# K2F_QAT_IGNORE=lm_head quantises every other linear: attention, dense and shared MLPs too.
ignore=${K2F_QAT_IGNORE:-}
# train.seed of the QAT and control fine-tuning runs (their data order); default: the recipe's.
seed=${K2F_QAT_SEED:-}
seed_args=()
if [ -n "$seed" ]; then seed_args=(--set "train.seed=$seed"); fi
# More recipe overrides for both fine-tuning runs, space-separated KEY=VALUE
# (e.g. K2F_QAT_SET="optim.lr=0.0005 schedule.name=constant").
for override in ${K2F_QAT_SET:-}; do seed_args+=(--set "$override"); done
ignore_train=()
ignore_export=()
if [ -n "$ignore" ]; then
  ignore_train=(--set "quant.ignore=$ignore")
  ignore_export=(--ignore "$ignore")
fi

# The embedded store and the tiny pretraining run, made only when this run needs them.
ensure_embedded_store() {
  [ -f "$embedded_store" ] || "$k2forge" data build --input assets/corpus/python_docs_train.jsonl \
    --tokenizer assets/tokenizer --out "$embedded_store" --kind text
}
ensure_pretrained() {
  ensure_embedded_store
  [ -d "$pretrained" ] || "$k2forge" train --recipe recipes/tiny_pretrain.toml \
    --set "train.run_dir=$(dirname "$pretrained")" --set "data.paths=$embedded_store"
}
if [ "$store" = "$embedded_store" ]; then ensure_embedded_store; fi
if [ "$start" = "$pretrained" ]; then ensure_pretrained; fi
if $large && [ "$store" = "$large_store" ] && [ ! -f "$large_store" ]; then K2F_RUNS_DIR=$runs scripts/make_extra_corpus.sh; fi
if $large && [ "$start" = "$large_start" ] && [ ! -d "$large_start" ]; then
  ensure_pretrained
  "$k2forge" train --recipe recipes/tiny_continue_large.toml --set "train.run_dir=$(dirname "$large_start")" \
    --set "train.init_from=$pretrained" --set "data.paths=$large_store"
fi
test -f "$store" || { echo "qat_experiment.sh: token store $store: no such file" >&2; exit 1; }
test -d "$start" || { echo "qat_experiment.sh: start checkpoint $start: no such directory" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"

# Held-out mean NLL (fp32 compute) of a model directory or checkpoint.
nll() {
  "$k2forge" score --model "$1" --text "$heldout" --tokenizer assets/tokenizer --out "$out/scores.json" "${@:2}" >/dev/null 2>&1
  /usr/bin/python3 -c "import json; print(json.load(open('$out/scores.json'))['nll_mean'])"
}

"$k2forge" export --checkpoint "$start" --out "$out/bf16" --format hf-bf16
"$k2forge" export --checkpoint "$start" --out "$out/rounded-int4" --format hf-int4 --group-size "$group" "${ignore_export[@]}"
bf16=$(nll "$out/bf16")
rounded=$(nll "$out/rounded-int4")

for qat in true false; do
  "$k2forge" train --recipe recipes/tiny_qat_int4.toml --set "train.run_dir=$out/run-qat-$qat" \
    --set "train.init_from=$start" --set "data.paths=$store" --set "quant.qat=$qat" --set "quant.group_size=$group" "${seed_args[@]}" \
    "${ignore_train[@]}" >/dev/null 2>&1
  "$k2forge" export --checkpoint "$out/run-qat-$qat/$(cat "$out/run-qat-$qat/latest")" --out "$out/int4-qat-$qat" --format hf-int4 \
    --group-size "$group" "${ignore_export[@]}"
done
qat_int4=$(nll "$out/int4-qat-true")
qat_int4_dequantized=$(nll "$out/int4-qat-true" --dequantize)
control_int4=$(nll "$out/int4-qat-false")
qat_checkpoint=$(nll "$out/run-qat-true/$(cat "$out/run-qat-true/latest")")
control_checkpoint=$(nll "$out/run-qat-false/$(cat "$out/run-qat-false/latest")")

/usr/bin/python3 - "$bf16" "$rounded" "$qat_int4" "$qat_int4_dequantized" "$control_int4" "$qat_checkpoint" "$group" "$ignore" "$control_checkpoint" "$seed" "${K2F_QAT_SET:-}" "$start" <<'PY'
import json, sys
bf16, rounded, qat, qat_deq, control, qat_ckpt = map(float, sys.argv[1:7])
control_fp32 = float(sys.argv[9])
gap = rounded - bf16
# The same fine-tuning without QAT, before and after rounding: the rounding gap at the point QAT
# reached, so the comparison is not helped by QAT's extra training steps.
control_gap = control - control_fp32
print(json.dumps({
    "group_size": int(sys.argv[7]),
    "seed": sys.argv[10] or "recipes/tiny_qat_int4.toml's",
    "overrides": sys.argv[11],
    "start": sys.argv[12],
    "ignore": sys.argv[8] or "K2 Thinking's list (routed experts INT4)",
    "heldout_nll": {"bf16": bf16, "int4_rounded_no_qat": rounded, "int4_after_qat": qat,
                    "int4_after_qat_dequantized": qat_deq, "qat_checkpoint_fake_quant": qat_ckpt,
                    "control_finetuned_without_qat": control_fp32,
                    "control_finetuned_without_qat_then_rounded": control},
    "rounding_gap": gap,
    "gap_closed_by_qat": (rounded - qat) / gap if gap > 0 else None,
    "control_rounding_gap": control_gap,
    "control_gap_closed_by_qat": (control - qat) / control_gap if control_gap > 0 else None,
}, indent=2))
PY
