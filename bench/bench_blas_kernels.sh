#!/usr/bin/env bash
# What the choice of OpenBLAS kernels is worth on this CPU: dense_bench_core (sgemm, ops::matmul, DenseAttention,
# a DANet training step) and dense_bench_train (DANet and BERT training tokens/s against N), each run once with
# the kernels OpenBLAS picks by itself (OPENBLAS_CORETYPE=Prescott reproduces its fall-back on CPUs newer than
# the library; KERNELS_BEFORE chooses another) and once with the ones the programs restart with (the variable
# unset). Both in one run, one after the other, for ratios on a shared machine. Prints one table; docs/benchmarks.md.
#   bench/bench_blas_kernels.sh [BUILD_DIR] [THREADS]
set -euo pipefail
BUILD=${1:-build} THREADS=${2:-1}
BEFORE=${KERNELS_BEFORE:-Prescott}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for bin in "$BUILD/bench/dense_bench_core" "$BUILD/bench/dense_bench_train"; do
  [[ -x $bin ]] || { echo "bench_blas_kernels.sh: no $bin (build with -DDENSE_BUILD_BENCH=ON)" >&2; exit 2; }
done

# bench NAME: both programs with the current environment; their tables reduced to lines of one row each.
bench() {
  "$BUILD/bench/dense_bench_core" --threads "$THREADS" --max-n 4096 --steps 3 --no-torch \
    > "$WORK/$1.core" 2> "$WORK/$1.err"
  "$BUILD/bench/dense_bench_train" --threads "$THREADS" --max-n 1024 --tokens 4096 --steps 2 \
    > "$WORK/$1.train" 2>> "$WORK/$1.err"
  # Lines "benchmark|size|value|up" (higher is better) or "...|down" (lower is better).
  # bench_core: | benchmark | size | ms | GFLOP/s | note |: GFLOP/s, or ms for rows without FLOPs (dropout).
  awk -F' \\| ' '/^\| / && $3 ~ /^[0-9.]+$/ {sub(/^\| /, "", $1)
                  if ($4 + 0 > 0) print $1 " (GFLOP/s)|" $2 "|" $4 "|up"; else print $1 " (ms)|" $2 "|" $3 "|down"}' \
    "$WORK/$1.core"
  # bench_train: | N | batch | DANet tokens/s | BERT tokens/s | ratio |
  awk -F' \\| ' '/^\| [0-9]/ {sub(/^\| /, "", $1); print "DANet train (tokens/s)|N=" $1 " B=" $2 "|" $3 "|up"
                              print "BERT train (tokens/s)|N=" $1 " B=" $2 "|" $4 "|up"}' "$WORK/$1.train"
  sed -n 's/^threads: .*, OpenBLAS \(.*\) kernels$/kernels|\1/p' "$WORK/$1.core" | head -1
}
OPENBLAS_CORETYPE=$BEFORE bench before > "$WORK/before"
(unset OPENBLAS_CORETYPE; bench after) > "$WORK/after"
k_before=$(sed -n 's/^kernels|//p' "$WORK/before") k_after=$(sed -n 's/^kernels|//p' "$WORK/after")
echo "| benchmark | size | OpenBLAS $k_before | OpenBLAS $k_after | speed-up |"
echo "|---|---|---|---|---|"
paste -d'|' <(grep -v '^kernels|' "$WORK/before") <(grep -v '^kernels|' "$WORK/after" | cut -d'|' -f3) |
  awk -F'|' '{printf "| %s | %s | %s | %s | %.2fx |\n", $1, $2, $3, $5, $4 == "up" ? $5 / $3 : $3 / $5}'
echo
cpu() { grep -m1 "^$1" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
echo "threads: $THREADS; $(cpu 'model name') (family $(cpu 'cpu family'), model $(cpu 'model\s')); $(date -u +%F)"
