#!/usr/bin/env bash
# dense_bench_gpu's code paths at toy sizes on the CPU (the numbers mean nothing here; bench/gpu_check.sh runs
# it on the GPU): every section prints its table and its CSV rows, the search for the longest step stops at
# the memory budget, and bad arguments exit 2 with a message. Usage: bench_gpu_smoke_test.sh DENSE_BENCH_GPU
set -uo pipefail
BENCH=$1
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# At one layer the step's peak is about 0.20 GB at N 256, 0.22 at 512 and 0.25 at 1024: the 0.23 GB budget
# stops the search at 1024.
small=(--device cpu --layers 1 --gemm-n 256 --train-batch 1 --max-n 1024 --tokens 1024 --attention-tokens 512
       --longest-from 256 --longest-limit-gb 0.23 --steps 1)
expect "all sections on the CPU" 0 "Longest DANet-BERT-Large" "$BENCH" "${small[@]}" --csv "$WORK/bench.csv"
for title in "GEMM peak" "training step" "inference" "Softmax attention core"; do
  if grep -q "$title" "$WORK/out"; then ok "table: $title"; else bad "table: $title"; fi
done
# The attention table has a row per N up to --max-n for both head sizes; inference one per N up to it.
if [ "$(grep -cE '^\| (512|1024) \| (64|128) \|' "$WORK/out")" -eq 4 ]; then ok "attention rows"; else bad "attention rows"; fi
if grep -qE '^\| 1024 \| 1 \| ' "$WORK/out"; then ok "inference row N 1024"; else bad "inference row N 1024"; fi
# CSV: positive throughputs, an MFU, and a longest N that the budget stopped (the first N over it is "no").
if awk -F, '$1=="train" && $2=="tokens_per_s" && $3>0 {t=1} $1=="train" && $2=="mfu" && $3>0 {m=1}
            $1=="infer" && $2=="1024" && $3>0 {i=1} $1=="gemm" && $2=="bf16" && $3>0 {g=1}
            $1=="attention_fused" && $2=="1024/128" && $3>0 {f=1}
            END {exit !(t && m && i && g && f)}' "$WORK/bench.csv"; then ok "csv rows"; else cp "$WORK/bench.csv" "$WORK/out"; bad "csv rows"; fi
longest=$(awk -F, '$1=="longest" {print $3}' "$WORK/bench.csv")
if [ "$longest" = 512 ] && grep -qE '^\| 1024 \| .* \| no \|$' "$WORK/out"; then ok "longest stops at the budget ($longest)"
else bad "longest stops at the budget"; fi

expect "unknown section" 2 "unknown section 'attn'" "$BENCH" --only gemm,attn
expect "bad device" 2 "--device" "$BENCH" --device tpu
if ! "$BENCH" --device cuda --only gemm --gemm-n 64 --steps 1 > "$WORK/out" 2>&1; then
  expect "no GPU is a clear error" 2 "no CUDA device" "$BENCH" --device cuda --only gemm
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
