#!/usr/bin/env bash
# Prepares, here, everything the one-call GPU check (bench/gpu_check.sh) needs, inside .deps/ (git-ignored; the
# device tool carries it with carry [".deps"], at most 64 MiB with the tree):
#   .deps/debs, .deps/*.sh   the project's Debian libraries as .debs and the scripts that unpack them into a
#                            prefix there (the GPU machine has no package registry)
#   .deps/gpu-pack.tar.gz    dense_unit_tests, dense-train, dense-eval, dense-prep and dense_bench_gpu built
#                            against that prefix alone, portable host code (DENSE_NATIVE=OFF), CUDA sm_90,
#                            stripped; and the WikiText-2 / WNLI files the GPU tests read from ../shared
# The build runs in a private mount namespace where the system's copies of those libraries (their -dev
# packages' headers, CMake/pkg-config files and link symlinks) are deleted from overlays of /usr/include,
# /usr/lib/x86_64-linux-gnu and /usr/share: if the prefix lacked anything, configure or the link would fail
# here rather than on the GPU machine. The host's files are untouched. Needs root (unshare, mount).
#   bench/gpu_pack.sh            about 10 minutes on 2 cores (most of it nvcc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=$(realpath -m "${DENSE_SHARED_DIR:-$ROOT/../shared}")
D=$ROOT/.deps
BUILD=$ROOT/build-gpu-pack
t0=$SECONDS
mkdir -p "$D"
if [ ! -d "$D/debs/main" ]; then
  apt-get update -qq
  bash "$SHARED/tools/gpu-deps/fetch-debs.sh" "$D/debs"
fi
cp "$SHARED"/tools/gpu-deps/*.sh "$D/"
rm -rf "$D/prefix"
bash "$D/make-prefix.sh" "$D/debs" "$D/prefix" prune

HIDE="libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libhdf5-dev libopenmpi-dev libgtest-dev libgmock-dev
      libopenblas-dev libopenblas-pthread-dev nlohmann-json3-dev libutf8proc-dev zlib1g-dev"
OVL=$(mktemp -d)
trap 'rm -rf "$OVL"' EXIT
# shellcheck disable=SC2016
unshare -m env ROOT="$ROOT" D="$D" BUILD="$BUILD" OVL="$OVL" HIDE="$HIDE" bash -euo pipefail -c '
  mount --make-rprivate /
  i=0
  for dir in /usr/include /usr/lib/x86_64-linux-gnu /usr/share; do
    i=$((i + 1)); mkdir -p "$OVL/u$i" "$OVL/w$i"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$OVL/u$i,workdir=$OVL/w$i" "$dir"
  done
  hidden=0
  for p in $HIDE; do
    dpkg-query -W "$p" >/dev/null 2>&1 || continue
    while read -r f; do
      case $f in
        /usr/include/*|/usr/lib/x86_64-linux-gnu/*|/usr/share/*/cmake/*|/usr/share/cmake/*|/usr/share/pkgconfig/*)
          if [ -f "$f" ] || [ -L "$f" ]; then rm -f "$f"; hidden=$((hidden + 1)); fi ;;
      esac
    done < <(dpkg -L "$p")
  done
  echo "gpu_pack: $hidden files of the system -dev packages hidden in this namespace"
  for f in /usr/include/yaml-cpp/yaml.h /usr/include/zlib.h /usr/include/utf8proc.h /usr/include/nlohmann/json.hpp \
           /usr/include/hdf5/serial/hdf5.h /usr/include/spdlog/spdlog.h /usr/include/CLI/CLI.hpp; do
    [ ! -e "$f" ] || { echo "gpu_pack: $f is still visible"; exit 1; }
  done
  P=$D/prefix
  . "$D/env.sh"
  mkdir -p "$BUILD"
  # shellcheck disable=SC2086
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSE_CUDA=ON -DDENSE_NATIVE=OFF \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF $DENSE_PREFIX_CMAKE_ARGS \
        > "$BUILD/configure.log" 2>&1 || { tail -30 "$BUILD/configure.log"; exit 1; }
  grep -q "CUDA backend ON" "$BUILD/configure.log" || { echo "gpu_pack: CUDA is off"; exit 1; }
  ninja -C "$BUILD" dense_unit_tests dense-train dense-eval dense-prep dense_bench_gpu
  # What was linked from where: nothing of the hidden packages may come from /usr/lib.
  for b in dense-train dense_unit_tests; do
    f=$(find "$BUILD" -name "$b" -type f -perm -u+x | head -1)
    ldd "$f" | grep -E "yaml-cpp|spdlog|fmt|hdf5|mpi|utf8proc|openblas" | grep -v "$D/prefix" && { echo "gpu_pack: $b links a system copy"; exit 1; }
  done
  echo "gpu_pack: configured and built against the prefix alone"
'
STAGE=$(mktemp -d)
trap 'rm -rf "$OVL" "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/shared/data/glue"
for b in tests/dense_unit_tests apps/dense-train apps/dense-eval apps/dense-prep bench/dense_bench_gpu; do
  cp "$BUILD/$b" "$STAGE/bin/"
done
strip "$STAGE"/bin/*
cp -r "$SHARED/data/wikitext-2" "$STAGE/shared/data/"
cp -r "$SHARED/data/glue/WNLI" "$STAGE/shared/data/glue/"
git -C "$ROOT" rev-parse HEAD > "$STAGE/commit.txt"
git -C "$ROOT" status --short --untracked-files=no | grep -q . && echo "(with uncommitted changes)" >> "$STAGE/commit.txt"
tar czf "$D/gpu-pack.tar.gz" -C "$STAGE" .
rm -rf "$D/prefix"   # made again there; only the .debs travel
echo "gpu_pack: .deps is $(du -sh "$D" | cut -f1) (binaries $(du -sh "$STAGE/bin" | cut -f1) stripped," \
     "pack $(du -h "$D/gpu-pack.tar.gz" | cut -f1)); $((SECONDS - t0)) s"
