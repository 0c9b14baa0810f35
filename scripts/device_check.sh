#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and Python torch (a CUDA LibTorch ships inside
# it), build k2forge against that LibTorch with -DK2F_CUDA=ON, run the unit tests and the GPU
# tests (label gpu: CUDA vs CPU parity, grouped expert GEMM, NCCL and Gloo collectives on GPU and
# host tensors), train two ranks on the one GPU (ep 2, pp 2) against one CPU process, then time one training step of
# the K2-width slice (recipes/k2_slice_h200.toml) with `k2forge bench train` beside the same slice
# in PyTorch eager (scripts/k2_slice_eager.py), and print both with MFU against the bf16 GEMM rate
# measured on the same GPU.
#
#   scripts/device_check.sh [--debs DIR] [--out DIR] [--skip-unit]
#
# --debs DIR: a folder of Debian .deb files (HDF5, PCRE2, toml++, cxxopts, nlohmann-json, GTest,
#   Gloo headers, pkgconf) for machines without apt: they are unpacked under /tmp/k2f-deps, never
#   into /, and only libraries the system lacks are put on LD_LIBRARY_PATH. Without it the
#   packages of scripts/setup.sh must be installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
debs="" out="$root/build-cuda/device_check" skip_unit=0
while [ $# -gt 0 ]; do
  case "$1" in
    --debs) debs=$(cd "$2" && pwd); shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --skip-unit) skip_unit=1; shift ;;
    *) echo "device_check: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
build="$root/build-cuda"
python=${PYTHON:-python3}
step() { echo; echo "== $* ($(date +%T))"; }

step "GPU and torch"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
torch_prefix=$("$python" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print(torch.utils.cmake_prefix_path)')
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'

cmake_prefix="$torch_prefix"
cxx_flags=""
pkg_config=()
if [ -n "$debs" ]; then
  step "unpacking $(ls "$debs"/*.deb | wc -l) packages from $debs"
  deps=/tmp/k2f-deps
  rm -rf "$deps" && mkdir -p "$deps/runtime"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$deps"; done
  arch_lib="$deps/usr/lib/x86_64-linux-gnu"
  # .pc files name /usr: point them at the unpacked tree; hdf5.pc is an alternatives link on Debian.
  for pc in "$arch_lib"/pkgconfig/*.pc "$deps"/usr/share/pkgconfig/*.pc; do
    [ -f "$pc" ] && sed -i "s|/usr/|$deps/usr/|g; s|=/usr\$|=$deps/usr|" "$pc"
  done
  [ -f "$arch_lib/pkgconfig/hdf5.pc" ] || cp "$arch_lib/pkgconfig/hdf5-serial.pc" "$arch_lib/pkgconfig/hdf5.pc"
  # Only libraries the system lacks go on the library path: the system's own stay in charge.
  for lib in $(find "$arch_lib" -maxdepth 1 -name 'lib*.so.*' \( -type f -o -type l \)); do
    soname=$(basename "$lib")
    ldconfig -p | grep -q " $soname " || ln -sf "$lib" "$deps/runtime/$soname"
  done
  export LD_LIBRARY_PATH="$deps/runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_LIBDIR="$arch_lib/pkgconfig:$deps/usr/share/pkgconfig"
  if ! command -v pkg-config >/dev/null; then
    pkg_config=(-DPKG_CONFIG_EXECUTABLE="$deps/usr/bin/pkgconf")
  fi
  cmake_prefix="$torch_prefix;$deps/usr"
  cxx_flags="-isystem $deps/usr/include"
  echo "libraries the system lacks: $(ls "$deps/runtime" | tr '\n' ' ')"
fi

step "configure and build ($(nproc) jobs) in $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DK2F_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$cmake_prefix" -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${pkg_config[@]}" \
  > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
grep -E "K2F|Torch|CUDA" "$out/configure.log" | head -20 || true
# The binary, the GPU tests and the unit tests (the e2e and mpirun suites stay with CI's CPU build).
targets="k2forge k2f_gpu_tests k2f_base_tests k2f_model_tests k2f_data_tests k2f_quant_tests k2f_parallel_tests k2f_train_tests"
ninja -C "$build" -k 0 $targets > "$out/build.log" 2>&1 || true
grep -E "error|FAILED" "$out/build.log" | head -80 || true
tail -3 "$out/build.log"
[ -x "$build/bin/k2forge" ] || { echo "device_check: the build failed (log: $out/build.log)" >&2; exit 1; }

status=0
step "GPU tests (label gpu)"
"$build/tests/k2f_gpu_tests" 2>&1 | tee "$out/gpu_tests.log" | grep -vE "^\[ RUN|^\[       OK" | tail -30 || status=1

step "two ranks on the one GPU (Gloo mesh: NCCL takes one GPU per rank) against one CPU process"
# torchrun-style variables start the ranks (no mpirun here). Expert parallel (ep 2) and a pipeline
# (pp 2); every step's loss beside the one-process CPU run of the same recipe (within 1e-4).
store="$out/python_docs_train.h5"
"$build/bin/k2forge" data build --input "$root/assets/corpus/python_docs_train.jsonl" --tokenizer "$root/assets/tokenizer" \
  --out "$store" --kind text > "$out/data_build.log" 2>&1 || status=1
for recipe in tiny_moe_ep2 tiny_moe_pp2; do
  common=(train --recipe "$root/recipes/$recipe.toml" --set "data.paths=$store" --set train.steps=10
          --set "data.tokenizer=$root/assets/tokenizer" --set log.peak_tflops=1)
  "$build/bin/k2forge" "${common[@]}" --set parallel.dp=1 --set parallel.ep=1 --set parallel.pp=1 \
    --set "train.run_dir=$out/runs/$recipe-cpu" > "$out/$recipe-cpu.log" 2>&1 || status=1
  pids=()
  for rank in 0 1; do
    RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29611 \
      "$build/bin/k2forge" "${common[@]}" --set train.device=cuda --set parallel.backend=gloo \
      --set "train.run_dir=$out/runs/$recipe-gpu2" > "$out/$recipe-gpu2-rank$rank.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  "$python" - "$out/runs/$recipe-cpu/metrics.jsonl" "$out/runs/$recipe-gpu2/metrics.jsonl" "$recipe" <<'PY' || status=1
import json, sys
def losses(path):
    return [json.loads(line)["loss"] for line in open(path) if '"loss"' in line]
cpu, gpu = losses(sys.argv[1]), losses(sys.argv[2])
worst = max(abs(g - c) / abs(c) for c, g in zip(cpu, gpu))
print(f"{sys.argv[3]}: 2 ranks on the GPU, {len(gpu)} steps, loss {gpu[0]:.6f} -> {gpu[-1]:.6f}; "
      f"one CPU process {cpu[0]:.6f} -> {cpu[-1]:.6f}; largest relative difference {worst:.2e}")
sys.exit(0 if len(gpu) == len(cpu) > 0 and worst < 1e-4 else 1)
PY
done

step "k2forge bench train: the K2-width slice on the GPU"
"$build/bin/k2forge" bench train --recipe "$root/recipes/k2_slice_h200.toml" --json | tee "$out/bench_k2forge.json" || status=1

step "the same slice in PyTorch eager"
"$python" "$root/scripts/k2_slice_eager.py" | tee "$out/bench_eager.json" || status=1

step "summary"
"$python" - "$out/bench_k2forge.json" "$out/bench_eager.json" <<'PY' || status=1
import json, sys
def load(path):  # the one-line JSON object a command printed (log lines may surround it)
    return json.loads([line for line in open(path) if line.startswith("{")][-1])
k, e = load(sys.argv[1]), load(sys.argv[2])
flops_per_token = k["model_gflops"] * 1e9 / k["tokens_per_s"]  # k2forge's count, used for both
gemm = k["gemm_bf16_gflops"] * 1e9
def row(name, tps):
    print(f"{name:34s} {tps:10.0f} tokens/s   MFU {tps * flops_per_token / gemm:6.1%}")
print(f"bf16 GEMM rate measured: k2forge {gemm / 1e12:.0f} TFLOP/s, torch {e['gemm_bf16_tflops']:.0f} TFLOP/s")
print(f"model FLOPs per token (train, k2forge's count): {flops_per_token / 1e9:.2f} GFLOP; parameters "
      f"k2forge {k['parameters'] / 1e9:.2f}B, eager {e['parameters'] / 1e9:.2f}B")
row("k2forge step (fwd+bwd+MuonClip)", k["tokens_per_s"])
row("k2forge forward+backward", k["forward_backward_tokens_per_s"])
row("PyTorch eager forward+backward", e["forward_backward_tokens_per_s"])
print(f"k2forge / eager (forward+backward): {k['forward_backward_tokens_per_s'] / e['forward_backward_tokens_per_s']:.2f}x")
PY

if [ "$skip_unit" = 0 ]; then
  step "unit tests (label unit)"
  (cd "$build" && ctest -L unit -j "$(nproc)" 2>&1 | tee "$out/ctest_unit.log" | tail -8) || status=1
fi
exit $status
