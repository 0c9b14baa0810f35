#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/) and runs each for a fixed time
# from the seed corpora in fuzz/corpus/. Usage:
#   scripts/fuzz.sh [--seconds N] [--parallel] [target ...]   (default: 600 s each, every target)
# --parallel runs the targets at the same time (one core each) instead of one after another.
# Per target it prints executions, coverage (libFuzzer's cov/ft) and corpus size, and writes them
# to build-fuzz/fuzz-report.jsonl. A crash, hang (-timeout) or sanitizer report leaves its input
# in build-fuzz/crashes/<target>/ and makes the script exit non-zero. token_store reads each input
# in a child process first (libhdf5 1.10 itself crashes on some corrupt files): a fault contained
# there is k2forge's error, not a crash; its report and input go to build-fuzz/contained/<target>/
# and are counted as "contained".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=600
parallel=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --parallel) parallel=1; shift ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (expected --seconds N, --parallel or target names)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all_targets=(safetensors_header hf_index tokenizer tiktoken_pattern chat_template recipe token_store)
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [ -d "$root/fuzz/corpus/$target" ] || { echo "fuzz.sh: unknown target '$target' (expected one of: ${all_targets[*]})" >&2; exit 2; }
done

"$root/scripts/setup.sh" clang libclang-rt-14-dev
build_dir=${K2F_FUZZ_BUILD_DIR:-$root/build-fuzz}
CXX=clang++ cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DK2F_FUZZ=ON -DK2F_BUILD_TESTS=OFF >/dev/null
ninja -C "$build_dir" "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Runs one target; its summary line goes to build-fuzz/fuzz-<target>.json.
run_target() {
  local target=$1
  local corpus=$build_dir/corpus/$target crashes=$build_dir/crashes/$target log=$build_dir/fuzz-$target.log
  local contained=$build_dir/contained/$target
  # Each run reports its own findings: an earlier run's artifacts are triaged into fuzz/regressions/.
  rm -rf "$contained" "$crashes"
  mkdir -p "$corpus" "$crashes" "$contained"
  # libhdf5 allocates whatever size corrupt metadata names; a request that cannot be met fails
  # (allocator_may_return_null) and must surface as an HDF5 error, so only that target lifts
  # libFuzzer's single-allocation limit. Every other target treats an allocation over 4 GB as a bug.
  local malloc_limit=4096 asan_options=$ASAN_OPTIONS
  if [ "$target" = token_store ]; then malloc_limit=$((1 << 30)); fi
  # token_store forks a probe child per input, and fork copies the page tables of every page the
  # process wrote: ASan's default 256 MB quarantine of freed blocks alone kept the process near
  # 350 MB and the target near 40 executions/s; a 16 MB quarantine keeps it near 70 MB (>100/s).
  if [ "$target" = token_store ]; then asan_options=$asan_options:quarantine_size_mb=16; fi
  local status=0
  ASAN_OPTIONS=$asan_options K2F_FUZZ_CONTAINED_DIR=$contained "$build_dir/fuzz/fuzz_$target" "$corpus" "$root/fuzz/corpus/$target" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=4096 -malloc_limit_mb=$malloc_limit -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$crashes/" > "$log" 2>&1 || status=$?
  local executions coverage features corpus_size artifacts
  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2 + 0}')
  features=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2 + 0}')
  corpus_size=$(find "$corpus" -type f | wc -l)
  artifacts=$(find "$crashes" -type f | wc -l)
  local contained_faults
  # Sanitizer reports of probe children (allocation-failure warnings there are not faults).
  contained_faults=$({ grep -l -E "ERROR: |runtime error" "$contained"/report* 2>/dev/null || true; } | wc -l)
  echo "{\"target\": \"$target\", \"seconds\": $seconds, \"executions\": $executions, \"coverage\": ${coverage:-0}, \"features\": ${features:-0}, \"corpus\": $corpus_size, \"contained\": $contained_faults, \"exit\": $status, \"crashes\": $artifacts}" \
    > "$build_dir/fuzz-$target.json"
}

for target in "${targets[@]}"; do
  rm -f "$build_dir/fuzz-$target.json"
  echo "fuzz: $target for ${seconds}s (log: $build_dir/fuzz-$target.log)"
  if [ $parallel -eq 1 ]; then run_target "$target" & else run_target "$target"; fi
done
wait

report=$build_dir/fuzz-report.jsonl
: > "$report"
failed=0
for target in "${targets[@]}"; do
  line=$(cat "$build_dir/fuzz-$target.json")
  echo "$line" | tee -a "$report"
  case "$line" in
    *'"exit": 0, "crashes": 0}') ;;
    *) failed=1
       grep -m5 -E "ERROR|runtime error|SUMMARY|Test unit written" "$build_dir/fuzz-$target.log" >&2 || true ;;
  esac
done
exit $failed
