#!/usr/bin/env bash
# Configures (Release, Ninja) and builds k2forge into build/. Extra arguments are ninja targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${K2F_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${K2F_CMAKE_ARGS:-} >/dev/null
ninja -C "$build_dir" "$@"
