#!/usr/bin/env bash
# The programs run OpenBLAS kernels that fit the CPU: where OpenBLAS falls back to older ones (a CPU model newer
# than the library), they restart once with OPENBLAS_CORETYPE set, with their arguments intact; a user's
# OPENBLAS_CORETYPE is kept. Usage: blas_kernels_test.sh DENSE_TRAIN DENSE_EVAL DENSE_BENCH
set -uo pipefail
TRAIN=$1 EVAL=$2 BENCH=$3
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# The kernel sets this CPU should get, from the flags the kernel reports (they include the OS's support).
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
if has avx2 fma avx512f avx512bw avx512dq avx512vl; then fit='SkylakeX|Cooperlake|SapphireRapids'
elif has avx2 fma; then fit='Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids|Excavator'
else fit=''; fi

for prog in "$TRAIN" "$EVAL" "$BENCH"; do
  name=$(basename "$prog")
  env -u OPENBLAS_CORETYPE "$prog" --version > "$WORK/out" 2>&1
  core=$(sed -n 's/.* (OpenBLAS \(.*\) kernels)$/\1/p' "$WORK/out")
  if [ -z "$core" ]; then bad "$name --version names its OpenBLAS kernels"
  elif [ -z "$fit" ]; then ok "$name runs OpenBLAS $core (no AVX2 here: nothing to choose)"
  elif [[ $core =~ ^($fit)$ ]]; then ok "$name runs OpenBLAS $core kernels, which fit this CPU"
  else bad "$name runs OpenBLAS $core kernels on a CPU that runs $fit"; fi
  # A restart says so, naming the variable that chooses otherwise.
  if grep -q "note: OpenBLAS chose" "$WORK/out"; then
    if grep -q "restarted with OPENBLAS_CORETYPE=$core (set OPENBLAS_CORETYPE" "$WORK/out"; then ok "$name: the restart is named"
    else bad "$name: the restart is named"; fi
  fi
  expect "$name keeps the user's OPENBLAS_CORETYPE" 0 "^$name .* \(OpenBLAS Prescott kernels\)$" \
    env OPENBLAS_CORETYPE=Prescott "$prog" --version
  if grep -q "note:" "$WORK/out"; then bad "$name: no restart when the user chose"; else ok "$name: no restart when the user chose"; fi
done

# Arguments, quoting included, reach the restarted program: its error names the file given.
expect "arguments survive the restart" 1 "a b'c.yaml" env -u OPENBLAS_CORETYPE "$TRAIN" --config "$WORK/a b'c.yaml"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
