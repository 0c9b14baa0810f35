#!/usr/bin/env bash
# Installs what is missing, builds (Release) and runs every test through CTest.
# Extra arguments go to ctest (for example: scripts/test.sh -L unit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
build_dir=${K2F_BUILD_DIR:-$root/build}
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" "$@"
