#!/usr/bin/env bash
# The whole GPU check in one device call, within a budget of 8 minutes (the device tool allows 10 a command and
# about 15 of machine time in all, its start included). Prepared here by bench/gpu_pack.sh; there:
#   device tool: command "bash bench/gpu_check.sh $OUT", carry [".deps"]
# Steps, most valuable first, each under its own timeout cut to what is left of the budget:
#   facts       machine, driver, toolkit, glibc, PyTorch
#   setup       the Debian prefix from .deps/debs, the carried binaries (or, if they cannot run, a build there
#               with every core, timed)
#   parity      every CUDA op against the CPU backend (CudaParity.*), with DENSE_CUDA_SYNC=1
#   trainer     training steps CPU vs GPU, GPU resume, WNLI fine-tuning CPU vs GPU (TrainerCuda.*, GlueEvalCuda.*)
#   sanitizer   compute-sanitizer --tool memcheck over the parity tests
#   bench       dense_bench_gpu, quick form (4 layers, one step)
#   torch       the PyTorch baselines of the same shapes, only if time is left (LD_LIBRARY_PATH of the prefix
#               unset: PyTorch brings its own CUDA libraries)
# A CUDA test that skips fails the check (only TrainerCuda.NoDeviceIsAClearError may skip: it runs without a
# GPU). OUT receives summary.md (the one page to read), logs.tar.gz (every log), and the benchmark's CSVs and
# report: at most 8 files come back.
#   DENSE_GPU_BUDGET_S   total budget in seconds (default 480)
set -uo pipefail
OUT=$(realpath -m "${1:?usage: gpu_check.sh OUT_DIR}")
cd "$(dirname "$0")/.."
ROOT=$PWD
BUDGET=${DENSE_GPU_BUDGET_S:-480}
LOGS=$OUT/logs
GPU=$ROOT/.deps/gpu   # the unpacked gpu-pack.tar.gz: bin/, shared/, commit.txt
BIN=$GPU/bin
mkdir -p "$LOGS"
SUMMARY=$OUT/summary.md
START=$SECONDS
failed=0
rows=()

left() { echo $((BUDGET - (SECONDS - START))); }
# step NAME LIMIT_S CMD...: runs CMD under min(LIMIT_S, budget left) with its output in logs/NAME.log.
step() {
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  local l
  l=$(left)
  [ "$limit" -gt "$l" ] && limit=$l
  if [ "$limit" -lt 5 ]; then
    rows+=("| $name | not run (budget spent) | 0 s |")
    failed=1
    return 1
  fi
  # bash -c: a step may be one of the exported functions below
  timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  local verdict="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict="TIMEOUT after ${limit} s"; elif [ "$rc" -ne 0 ]; then verdict="FAILED (rc $rc)"; fi
  [ "$rc" -eq 0 ] || failed=1
  rows+=("| $name | $verdict | $((SECONDS - t0)) s |")
  echo "gpu_check: $name: $verdict, $((SECONDS - t0)) s" >&2
  return "$rc"
}
finish() {
  {
    echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Commit: $(cat "$BIN/../commit.txt" 2>/dev/null || git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    echo "Total: $((SECONDS - START)) s of a $BUDGET s budget; result: $([ "$failed" -eq 0 ] && echo PASS || echo FAIL)"
    echo
    echo "| step | result | time |"
    echo "|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    for log in parity trainer sanitizer; do
      [ -f "$LOGS/$log.log" ] || continue
      echo "## $log"
      echo '```'
      grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|ERROR SUMMARY|gpu_check:" "$LOGS/$log.log" | head -60
      echo '```'
    done
    if [ -f "$OUT/report.md" ]; then echo "## benchmarks"; cat "$OUT/report.md"; fi
  } > "$SUMMARY"
  tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
  cat "$SUMMARY"
  exit "$failed"
}
trap finish EXIT

step facts 30 bash -c 'date -u; cat /etc/os-release | head -2; ldd --version | head -1; cmake --version | head -1;
  g++ --version | head -1; nvcc --version | tail -2; nvidia-smi; nproc; free -g; ls /usr/local/cuda/include/nccl.h;
  env -u LD_LIBRARY_PATH python3 -c "import torch; print(\"torch\", torch.__version__, torch.version.cuda)" || true'

# ---- setup: the prefix, the carried binaries and data -------------------------------------------------------
setup() {
  set -e
  [ -d .deps/debs ] || { echo "no .deps/debs: run bench/gpu_pack.sh here first and carry .deps"; exit 1; }
  bash .deps/make-prefix.sh .deps/debs "$ROOT/.deps/prefix" prune
  rm -rf "$GPU" && mkdir -p "$GPU"
  [ -f .deps/gpu-pack.tar.gz ] && tar xzf .deps/gpu-pack.tar.gz -C "$GPU"
  cat "$GPU/commit.txt" 2>/dev/null || true
}
export ROOT GPU BIN
export -f setup
step setup 90 setup || exit 1
P=$ROOT/.deps/prefix
# shellcheck disable=SC1091
. .deps/env.sh
export DENSE_TRAIN_BIN=$BIN/dense-train DENSE_EVAL_BIN=$BIN/dense-eval DENSE_TEST_DATA_DIR=$ROOT/tests/fixtures \
       DENSE_SHARED_DIR=$GPU/shared DENSE_NUM_THREADS=8

# The carried binaries, if they start here; otherwise a build with every core, CUDA forced on.
if ! "$BIN/dense_unit_tests" --gtest_list_tests > "$LOGS/list.log" 2>&1; then
  build() {
    set -e
    local nccl=()
    if [ ! -e /usr/local/cuda/include/nccl.h ]; then
      local d
      d=$(env -u LD_LIBRARY_PATH python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
      [ -n "$d" ] && nccl=(-DNCCL_ROOT="$d")
    fi
    # shellcheck disable=SC2086
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
          $DENSE_PREFIX_CMAKE_ARGS "${nccl[@]}"
    grep -q "DENSE_CUDA:BOOL=ON" build-gpu/CMakeCache.txt
    ninja -C build-gpu -j "$(nproc)" dense_unit_tests dense-train dense-eval dense-prep dense_bench_gpu
    mkdir -p "$BIN"
    for b in tests/dense_unit_tests apps/dense-train apps/dense-eval apps/dense-prep bench/dense_bench_gpu; do
      cp "build-gpu/$b" "$BIN/"
    done
  }
  export -f build
  step build 300 build || exit 1
fi

# ---- tests ---------------------------------------------------------------------------------------------------
# gtest_verdict LOG: fails when a test failed or a CUDA test skipped (the no-device test is the one allowed skip).
gtest_verdict() {
  local log=$1
  grep -q "^\[  PASSED  \]" "$log" || { echo "gpu_check: no test passed"; return 1; }
  if grep -E "^\[  SKIPPED \] " "$log" | grep -v "TrainerCuda.NoDeviceIsAClearError" | grep -q .; then
    echo "gpu_check: CUDA tests skipped (is the binary built with CUDA, is the GPU visible?)"; return 1
  fi
  ! grep -q "^\[  FAILED  \]" "$log"
}
parity() { DENSE_CUDA_SYNC=1 "$BIN/dense_unit_tests" --gtest_filter='CudaParity.*'; }
trainer() { "$BIN/dense_unit_tests" --gtest_filter='TrainerCuda.*:GlueEvalCuda.*'; }
sanitizer() {
  compute-sanitizer --tool memcheck --error-exitcode 3 --leak-check no "$BIN/dense_unit_tests" \
    --gtest_filter='CudaParity.*'
}
export -f parity trainer sanitizer
step parity 120 parity
gtest_verdict "$LOGS/parity.log" >> "$LOGS/parity.log" 2>&1 || { failed=1; rows+=("| parity verdict | FAILED (see log) | |"); }
step trainer 180 trainer
gtest_verdict "$LOGS/trainer.log" >> "$LOGS/trainer.log" 2>&1 || { failed=1; rows+=("| trainer verdict | FAILED (see log) | |"); }
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  command -v compute-sanitizer >/dev/null || export PATH=$PATH:$d
done
if command -v compute-sanitizer >/dev/null; then
  step sanitizer 150 sanitizer
else
  failed=1
  rows+=("| sanitizer | FAILED: compute-sanitizer not found (CUDA toolkit's bin/) | 0 s |")
fi

# ---- benchmarks ----------------------------------------------------------------------------------------------
step bench 120 "$BIN/dense_bench_gpu" --layers 4 --steps 1 --train-batch 16 --csv "$OUT/dense.csv"
if [ "$(left)" -gt 60 ]; then
  step torch "$(left)" env -u LD_LIBRARY_PATH python3 bench/torch_gpu_baselines.py --layers 4 --steps 1 \
       --train-batch 16 --csv "$OUT/torch.csv"
fi
# A missing torch.csv (baselines not run or failed) leaves '-' in their column.
[ -f "$OUT/dense.csv" ] &&
  env -u LD_LIBRARY_PATH python3 bench/gpu_report.py "$OUT/dense.csv" "$OUT/torch.csv" > "$OUT/report.md" 2> "$LOGS/report.log"
true
