#!/usr/bin/env bash
# Issue #5 on the GPU machine in one command: machine facts, a CUDA build, the GPU test suite (every CUDA op
# against the CPU, training steps CPU vs GPU, resume), dense_bench_gpu beside the PyTorch baselines, and the
# side-by-side report. Every step logs under OUT and a failing step does not stop the later ones.
#
# Here, once (the GPU machine has no package registry; ../shared/docs/platform.md):
#   bash ../shared/tools/gpu-deps/fetch-debs.sh .deps/debs && cp ../shared/tools/gpu-deps/*.sh .deps/
# There (the device tool, carry [".deps"]):
#   bash bench/gpu_bench.sh "$OUT"          # everything (its duration on the GPU machine is not yet measured)
#   bash bench/gpu_bench.sh "$OUT" quick    # tests + one pass of each benchmark at 4 layers
set -uo pipefail
OUT=${1:?usage: gpu_bench.sh OUT_DIR [quick]}
MODE=${2:-full}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
status=0
step() {  # step NAME LOG CMD...: runs CMD with its output in OUT/LOG, records the outcome in OUT/steps.txt
  local name=$1 log=$2 t0=$SECONDS rc
  shift 2
  "$@" > "$OUT/$log" 2>&1
  rc=$?
  echo "$name: rc $rc, $((SECONDS - t0)) s (log $log)" | tee -a "$OUT/steps.txt"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

step env env.txt bash -c 'date -u; cat /etc/os-release; ldd --version | head -1; cmake --version | head -1;
  g++ --version | head -1; nvcc --version | tail -2; nvidia-smi; nproc; free -g;
  python3 -c "import torch; print(\"torch\", torch.__version__, torch.version.cuda)"; git log --oneline -1 || true'

if [ -d .deps/debs ]; then
  step prefix prefix.log bash .deps/make-prefix.sh .deps/debs "$PWD/.deps/prefix" prune
  P=$PWD/.deps/prefix
  # shellcheck disable=SC1091
  . .deps/env.sh
fi
# NCCL: the toolkit's, else PyTorch's wheel.
nccl_args=()
if [ ! -e /usr/local/cuda/include/nccl.h ]; then
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
  [ -n "$nccl" ] && nccl_args=(-DNCCL_ROOT="$nccl")
fi
# shellcheck disable=SC2086
step configure configure.log cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES=90 ${DENSE_PREFIX_CMAKE_ARGS:-} "${nccl_args[@]}" || { echo "configure failed"; exit 1; }
step build build.log ninja -C build-gpu dense_unit_tests dense_bench_gpu dense-train || { echo "build failed"; exit 1; }

step gpu-tests gpu_tests.log build-gpu/tests/dense_unit_tests --gtest_filter='CudaParity.*:TrainerCuda.*'
grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$OUT/gpu_tests.log" | head -40

if [ "$MODE" = quick ]; then
  sizes=(--layers 4 --steps 1 --train-batch 16)
  tsizes=(--layers 4 --steps 1 --train-batch 16)
else
  sizes=()
  tsizes=()
fi
step dense-bench dense_bench.md build-gpu/bench/dense_bench_gpu "${sizes[@]}" --csv "$OUT/dense.csv"
step torch-bench torch_bench.md python3 bench/torch_gpu_baselines.py "${tsizes[@]}" --csv "$OUT/torch.csv"
step report report.md python3 bench/gpu_report.py "$OUT/dense.csv" "$OUT/torch.csv"
cat "$OUT/report.md"
exit "$status"
