#!/usr/bin/env bash
# Issue 23, acceptance 5: the memory LoRA saves. One seeded model of about 294M parameters
# (recipes/bench_moe.toml with 6 layers: 588 MB in bf16, routed experts 91% of it) is written as a
# bf16 HF directory and as its INT4 export (K2 Thinking's scheme). The same few steps on the same data
# then run three ways, each as its own process: full fine-tuning with INT4 QAT (fp32 masters,
# gradients and MuonClip state for every weight), LoRA on the INT4 directory (experts stay packed,
# only the adapters train) and, for comparison, LoRA on the bf16 directory. Peak resident memory of
# each whole process (loading, steps, checkpoint) comes from getrusage; prints one JSON object,
# also written to runs/lora_memory/report.json. About 5 minutes on 2 cores.
#   scripts/lora_memory.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k2forge="${K2F_BUILD_DIR:-$root/build}/bin/k2forge"
out=runs/lora_memory
rm -rf "$out"
mkdir -p "$out" runs/data
store=runs/data/python_docs_train.h5
[ -f "$store" ] || "$k2forge" data build --input assets/corpus/python_docs_train.jsonl --tokenizer assets/tokenizer \
  --out "$store" --kind text --no-progress
model=(--recipe recipes/bench_moe.toml --set model.num_hidden_layers=6)
"$k2forge" init "${model[@]}" --set "train.run_dir=$out/init" --out "$out/base-bf16" --format hf-bf16
"$k2forge" export --checkpoint "$out/base-bf16" --out "$out/base-int4" --format hf-int4

# Runs a command and prints its peak resident set size in bytes (the child's whole life).
peak_rss() {
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)' "$@"
}
steps=(--set train.steps=3 --set train.global_batch_size=4 --set train.micro_batch_size=2 --set train.seq_len=256
       --set "data.paths=$store" --set checkpoint.interval=3 --set schedule.warmup_steps=0 --set schedule.decay_steps=0)
full=$(peak_rss "$k2forge" train "${model[@]}" "${steps[@]}" --set "train.init_from=$out/base-bf16" --set quant.qat=true \
  --set "train.run_dir=$out/full-qat")
lora_int4=$(peak_rss "$k2forge" train "${model[@]}" "${steps[@]}" --set "train.init_from=$out/base-int4" \
  --set lora.rank=16 --set "train.run_dir=$out/lora-int4")
lora_bf16=$(peak_rss "$k2forge" train "${model[@]}" "${steps[@]}" --set "train.init_from=$out/base-bf16" \
  --set lora.rank=16 --set "train.run_dir=$out/lora-bf16")
python3 - "$out" "$full" "$lora_int4" "$lora_bf16" <<'EOF'
import json, os, sys
out, full, lora_int4, lora_bf16 = sys.argv[1], *map(int, sys.argv[2:])
def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
report = {
    "model": "recipes/bench_moe.toml with model.num_hidden_layers=6",
    "base_bf16_bytes": dir_bytes(f"{out}/base-bf16"),
    "base_int4_bytes": dir_bytes(f"{out}/base-int4"),
    "steps": "3 steps of 4 x 256 tokens, checkpoint at the end",
    "full_qat_peak_rss_bytes": full,
    "lora_int4_peak_rss_bytes": lora_int4,
    "lora_bf16_peak_rss_bytes": lora_bf16,
    "lora_int4_over_full_qat": lora_int4 / full,
    "lora_bf16_over_full_qat": lora_bf16 / full,
}
text = json.dumps(report, indent=2)
open(f"{out}/report.json", "w").write(text + "\n")
print(text)
EOF
