#!/usr/bin/env bash
# Installs what is missing, builds (Release) and runs every test through CTest.
# Extra arguments go to ctest (for example: scripts/test.sh -L unit).
#   scripts/test.sh --sanitize [ctest args]   ASan+UBSan build in build-sanitize/, unit tests only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitize=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
  shift
fi
"$root/scripts/setup.sh"
if [ $sanitize -eq 1 ]; then
  export K2F_BUILD_DIR=${K2F_BUILD_DIR:-$root/build-sanitize}
  export K2F_CMAKE_ARGS="${K2F_CMAKE_ARGS:-} -DK2F_SANITIZE=ON"
  # allocator_may_return_null: a corrupt HDF5 file makes libhdf5 ask for ~1 TB; as without ASan,
  # that malloc must fail (NULL) and surface as an HDF5 error, which a regression test checks.
  asan=detect_leaks=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1
  export ASAN_OPTIONS=${ASAN_OPTIONS:-$asan}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitizer/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  set -- -L unit "$@"
fi
"$root/scripts/build.sh"
build_dir=${K2F_BUILD_DIR:-$root/build}
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" "$@"
