#!/usr/bin/env bash
# The main job on embedded defaults, end to end: installs what is missing, builds k2forge,
# tokenises the embedded corpus (assets/) into an HDF5 store, pretrains a tiny Kimi-K2-architecture
# model with MuonClip (recipes/tiny_pretrain.toml), is interrupted half way and resumes, exports
# the result as an HF directory, and scores held-out text with it. Then the thinking model:
# synthetic reasoning conversations with calculator tool calls (k2forge data synth-think), SFT
# from the pretrained checkpoint (recipes/tiny_think_sft.toml), and RL with tool calls
# (recipes/tiny_think_rl.toml), printing held-out accuracy after SFT and after RL. Last, the README's
# tour (own chat data -> SFT -> INT4 export -> generate) on the model it trained.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" k2forge
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"

run_dir="runs/quickstart"
sft_dir="runs/quickstart_sft"
rl_dir="runs/quickstart_rl"
store="runs/data/python_docs_train.h5"
think_jsonl="runs/data/think_sft.jsonl"
think_store="runs/data/think_sft.h5"
echo "== quickstart: fresh run directories $run_dir $sft_dir $rl_dir"
rm -rf "$run_dir" "$sft_dir" "$rl_dir"

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
echo "== 7. synthetic thinking conversations with calculator tool calls, as a chat store"
if [ ! -f "$think_store" ]; then
  "$k2forge" data synth-think --out "$think_jsonl" --count 2000 --seed 0 --tool-fraction 0.5
  "$k2forge" data build --input "$think_jsonl" --tokenizer assets/tokenizer --out "$think_store" --kind chat
fi

echo "== 8. thinking SFT from the pretrained checkpoint (recipes/tiny_think_sft.toml)"
"$k2forge" train --recipe recipes/tiny_think_sft.toml --set "train.init_from=$run_dir/$latest" \
  --set "train.run_dir=$sft_dir" --set "data.paths=$think_store"

echo "== 9. RL with tool calls (recipes/tiny_think_rl.toml): held-out accuracy after SFT and after RL"
"$k2forge" rl --recipe recipes/tiny_think_rl.toml --set "train.init_from=$sft_dir" --set "train.run_dir=$rl_dir"
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); print('held-out accuracy after SFT: %.3f, after RL: %.3f' % (e['before']['accuracy'], e['after']['accuracy']))" "$rl_dir/eval.json"
echo "== 10. the README's tour on this model, as a new user runs it (scripts/check_docs.py --run, in a scratch directory)"
/usr/bin/python3 "$root/scripts/check_docs.py" --run --quickstart-run "$run_dir"
echo "== done: checkpoints, metrics.jsonl, tensorboard/ and hf/ in $run_dir; SFT in $sft_dir; RL in $rl_dir (eval.json)"
