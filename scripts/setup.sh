#!/usr/bin/env bash
# Installs the Debian 12 packages k2forge needs, only those missing. Idempotent; works as root
# (or through sudo when available). Everything comes from Debian's apt archive. Arguments name
# extra packages to make sure of.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libgloo-dev libopenblas0-pthread libopenblas0-openmp
  libhdf5-dev hdf5-tools
  libcxxopts-dev nlohmann-json3-dev libtomlplusplus-dev libpcre2-dev
  openmpi-bin libopenmpi-dev
  libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev time
  python3 python3-torch python3-numpy python3-h5py python3-matplotlib
)

# Extra packages a script needs beyond these (scripts/fuzz.sh passes clang) come as arguments.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
