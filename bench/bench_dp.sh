#!/usr/bin/env bash
# Data-parallel scaling on CPU (issue #6): tokens/s of dense-train on 1 rank x 1 thread against 2 ranks x 1
# thread (each rank the same micro-batch, so 2 ranks do twice the work per step), and 1 rank x 2 threads for
# reference. Efficiency = tokens/s(2 ranks) / (2 x tokens/s(1 rank)). Prints one table; docs/benchmarks.md.
#   bench/bench_dp.sh [BUILD_DIR] [STEPS]
set -euo pipefail
BUILD=${1:-build} STEPS=${2:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-0}
"$BUILD/apps/dense-prep" pretrain "$ROOT/../shared/data/wikitext-2/train.txt" --corpus-format wikitext \
  --vocab "$ROOT/tests/fixtures/wordpiece_vocab_small.txt" -o "$WORK/shards" -N 128 -q > /dev/null
run() {  # NAME RANKS THREADS MICRO
  cat > "$WORK/$1.yaml" <<YAML
name: $1
run_dir: $WORK/runs/$1
model: {model_type: danet, vocab_size: 560, hidden_size: 256, num_hidden_layers: 4, intermediate_size: 4,
        max_position_embeddings: 128}
data: {train: $WORK/shards, vocab: $ROOT/tests/fixtures/wordpiece_vocab_small.txt}
training: {max_steps: $STEPS, global_batch: $(( $4 * $2 )), micro_batch: $4, threads: $3}
checkpoint: {every_steps: 0}
logging: {every_steps: 5, progress: false, tensorboard: false}
YAML
  mpirun -np "$2" --bind-to none "$BUILD/apps/dense-train" -q --config "$WORK/$1.yaml" > "$WORK/$1.log" 2>&1
  # Median tokens/s of the logged intervals after the first (warm-up).
  /usr/bin/python3 - "$WORK/runs/$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
print(statistics.median(r["tokens_per_s"] for r in rows[1:]))
PY
}
one=$(run r1t1 1 1 16)
two=$(run r2t1 2 1 16)
threads=$(run r1t2 1 2 32)
/usr/bin/python3 - "$one" "$two" "$threads" <<'PY'
import sys
one, two, threads = map(float, sys.argv[1:])
print("| setup | tokens/s | vs 1 rank x 1 thread | scaling efficiency |")
print("|---|---|---|---|")
print(f"| 1 rank x 1 thread, micro 16 | {one:,.0f} | 1.00x | |")
print(f"| 2 ranks x 1 thread, micro 16 each (MPI) | {two:,.0f} | {two / one:.2f}x | {two / (2 * one):.0%} |")
print(f"| 1 rank x 2 threads, micro 32 (OpenMP) | {threads:,.0f} | {threads / one:.2f}x | {threads / (2 * one):.0%} |")
PY
