#!/usr/bin/env bash
# Enforces the dependency direction between folders (README "Layout"): each library may include
# only the folders listed for it. Run by CTest (test "layering") and usable alone.
#   base     -> (LibTorch only)
#   model    -> base            data -> base
#   quant    -> base model      parallel -> base model
#   train    -> everything
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

declare -A allowed=(
  [base]="base"
  [model]="base model"
  [data]="base data"
  [quant]="base model quant"
  [parallel]="base model parallel"
  [train]="base model data quant parallel train"
)
project_folders="base model data quant parallel train"

violations=0
for folder in "${!allowed[@]}"; do
  [ -d "$folder" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include *"([a-z_]+)\/.*/\1/' <<<"$line")
    case " $project_folders " in *" $target "*) ;; *) continue ;; esac
    case " ${allowed[$folder]} " in
      *" $target "*) ;;
      *) echo "layering: $file includes $target/ but $folder/ may only use: ${allowed[$folder]}" >&2
         violations=$((violations + 1)) ;;
    esac
  done < <(grep -rnE '#include *"[a-z_]+/' "$folder" --include='*.h' --include='*.hpp' --include='*.cpp' || true)
done

if [ "$violations" -ne 0 ]; then
  echo "layering: $violations include(s) against the dependency direction" >&2
  exit 1
fi
echo "layering: ok"
