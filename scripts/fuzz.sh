#!/usr/bin/env bash
# Builds the libFuzzer targets of the data-layer parsers (tests/fuzz, clang + ASan + UBSan) into build-fuzz/ and
# runs each for a few seconds from its seed corpus. A short run in CI catches regressions on the paths the seeds
# and a few thousand mutations reach; longer runs (DENSE_FUZZ_SECONDS=600) are for hunting.
#   DENSE_FUZZ_SECONDS    seconds per target (default 5)
#   DENSE_FUZZ_BUILD_DIR  build folder (default build-fuzz)
#   DENSE_FUZZ_TARGETS    space-separated subset to run (default: all, from the build's targets.txt)
#   DENSE_FUZZ_JOBS       build parallelism (default nproc)
# Exits non-zero when any target crashes, hangs (over 10 s on one input), leaks, or trips an invariant; the
# reproducer is kept and its path printed (reproduce: build-fuzz/fuzz_<target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${DENSE_FUZZ_SECONDS:-5}
BUILD_DIR=${DENSE_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${DENSE_FUZZ_JOBS:-$(nproc)}

cmake -S tests/fuzz -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

read -r -a TARGETS <<<"${DENSE_FUZZ_TARGETS:-$(tr '\n' ' ' <"$BUILD_DIR/targets.txt")}"

# libFuzzer adds what it finds to the corpus folder it is given: it gets a scratch copy, never the repository's.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/dense-fuzz.XXXXXX")
keep_scratch=0
cleanup() { [ "$keep_scratch" = 1 ] || rm -rf "$SCRATCH"; }
trap cleanup EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
summary=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz.sh: no target $bin" >&2; exit 2; }
  mkdir -p "$SCRATCH/$t/corpus" "$SCRATCH/$t/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$SCRATCH/$t/corpus/"
  args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        -artifact_prefix="$SCRATCH/$t/artifacts/")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  log="$SCRATCH/$t/log.txt"
  # The outer timeout only guards against libFuzzer itself wedging (it stops on its own at max_total_time).
  # TMPDIR: the corpus target's temporary files stay inside the scratch folder even when a run dies.
  if TMPDIR="$SCRATCH/$t" timeout $((SECONDS_EACH + 120)) "$bin" "${args[@]}" "$SCRATCH/$t/corpus" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    summary+=("fuzz: $t ok (${runs:-?} runs, cov ${cov:-?})")
    passed=$((passed + 1))
  else
    rc=$?
    keep_scratch=1
    echo "== fuzz: $t FAILED (exit $rc); last lines of $log:"
    tail -n 60 "$log"
    summary+=("fuzz: $t FAILED (exit $rc; reproducer in $SCRATCH/$t/artifacts/, log $log)")
    failed=$((failed + 1))
  fi
done

printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
