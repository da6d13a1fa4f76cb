#!/usr/bin/env bash
# Installs every system package densetrain needs (exact Debian 12 names; quiet when already present),
# then configures and builds Release into build/. Idempotent.
#   DENSE_BUILD_DIR   build folder (default build)
#   DENSE_CMAKE_ARGS  extra CMake arguments (e.g. -DDENSE_CUDA=OFF)
#   DENSE_SKIP_BUILD  set to 1 to install packages only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libhdf5-dev
  libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev libopenblas-dev
  nlohmann-json3-dev libutf8proc-dev libbenchmark-dev zlib1g-dev
  python3 python3-torch python3-numpy python3-scipy python3-h5py python3-matplotlib python3-protobuf
  python3-onnx python3-yaml
  clang libclang-rt-14-dev clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${DENSE_SKIP_BUILD:-0}" = "1" ] && exit 0

BUILD_DIR=${DENSE_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DENSE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
