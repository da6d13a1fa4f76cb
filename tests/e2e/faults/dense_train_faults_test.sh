#!/usr/bin/env bash
# Fault injection for dense-train ("never lose a run"): a previous run in the run folder, damaged checkpoints,
# unwritable outputs, a full disk at every write site (checkpoint, metrics.jsonl, train.log, TensorBoard),
# damaged shards, and kill -9 at random moments. Each case checks the exit status, the message, and what is
# left on disk; where the run can go on, it goes on and must end bit for bit where a run that never failed
# ends (weights, optimizer state, metrics.jsonl), i.e. nothing was lost.
#
# Full disks are real: small tmpfs mounts (we run as root in CI). An LD_PRELOAD shim failing write(2) was the
# other choice, but glibc's stdio (fwrite/fflush, which metrics.jsonl uses) calls its internal write, which a
# preloaded write() never sees, so a shim would test only some of the sites. Without permission to mount, the
# full-disk cases are skipped with a message and the rest still run.
#
# Short form by default (CI, about a minute on 2 cores): 3 kill points. DENSE_FAULTS_FULL=1: 20 kill points
# and every variant of each case. Usage: dense_train_faults_test.sh DENSE_TRAIN DENSE_PREP SHARED_DIR DATA_DIR
set -uo pipefail
TRAIN=$1 PREP=$2 SHARED=$3 DATA=$4
PY=/usr/bin/python3
VOCAB="$DATA/wordpiece_vocab_small.txt"
FULL=${DENSE_FAULTS_FULL:-0}
export DENSE_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# shellcheck source=../cli/cli_lib.sh
. "$(dirname "$0")/../cli/cli_lib.sh"
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
faults=0 survived=0 lost=0  # the figures docs/reliability.md reports
fault() { faults=$((faults + 1)); }

# ---- data: 4 training shards of 96 rows of 32 tokens, 1 validation shard ----
"$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/train" \
  -N 32 --shard-rows 96 --max-rows 384 -q -j 1 > "$WORK/out" 2>&1 || { bad "dense-prep train"; echo "0 passed, 1 failed"; exit 1; }
"$PREP" pretrain "$SHARED/data/wikitext-2/test.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/valid" \
  -N 32 --shard-rows 64 --max-rows 64 -q -j 1 > "$WORK/out" 2>&1 || { bad "dense-prep valid"; echo "0 passed, 1 failed"; exit 1; }
[ "$(ls "$WORK/train" | grep -c 'hdf5$')" -eq 4 ] && ok "4 training shards" || bad "4 training shards"

S=40  # steps of the runs compared with the reference
CFG="$WORK/f.yaml"
cat > "$CFG" <<YAML
name: faults
model:
  model_type: danet
  vocab_size: 560
  hidden_size: 32
  num_hidden_layers: 2
  intermediate_size: 2
  max_position_embeddings: 32
data:
  train: $WORK/train
  validation: $WORK/valid
  vocab: $VOCAB
training:
  max_steps: $S
  global_batch: 8
  seed: 3
  threads: 1
  eval_batches: 4
  optimizer:
    learning_rate: 0.001
checkpoint:
  every_steps: 1
  keep_last: 2
logging:
  every_steps: 1
  progress: false
  tensorboard: false
YAML
train() { local run=$1; shift; "$TRAIN" -q --config "$CFG" --run-dir "$run" "$@"; }
ckpt() { printf '%s/checkpoints/step-%08d' "$1" "$2"; }
# same_state A B: two checkpoint folders hold bit-identical weights and optimizer state.
same_state() { cmp -s "$1/model.safetensors" "$2/model.safetensors" && cmp -s "$1/optimizer.safetensors" "$2/optimizer.safetensors"; }
# metrics.jsonl rows without the timing fields.
rows() { $PY -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line); j.pop("tokens_per_s", None); j.pop("mfu", None); print(json.dumps(j, sort_keys=True))' "$1"; }
same_metrics() { [ "$(rows "$1/metrics.jsonl")" = "$(rows "$2/metrics.jsonl")" ]; }
flip() { $PY -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[o] ^= 0xFF; open(p, "wb").write(b)' "$1" "$2"; }
size() { stat -c %s "$1"; }
tmp_leftovers() { find "$1" -name '*.tmp-*' -o -name '*.old-*' 2>/dev/null | grep -c .; }
# nothing_lost NAME RUN [CKPT_DIR] [ARGS...]: the run continues (--resume auto, with ARGS; checkpoints in
# CKPT_DIR when given, else the run's own) to the end, then equals the reference bit for bit.
nothing_lost() {
  local name=$1 run=$2 last
  last=$(ckpt "$run" $S)
  shift 2
  if [ $# -gt 0 ]; then last=$1/step-$(printf %08d $S); set -- --set checkpoint.dir="$1" "${@:2}"; fi
  if train "$run" --resume auto "$@" > "$WORK/out" 2>&1 && same_state "$last" "$(ckpt "$REF" $S)" &&
     same_metrics "$run" "$REF"; then
    survived=$((survived + 1)); ok "$name: resumed, bit-identical to the uninterrupted run"
  else
    lost=$((lost + 1)); bad "$name: resumed run differs from the uninterrupted run (or failed)"
  fi
}

# ---- the reference: one uninterrupted run ----
REF="$WORK/ref"
t0=$(date +%s%N)
train "$REF" > "$WORK/out" 2>&1 && [ -d "$(ckpt "$REF" $S)" ] && ok "reference run" || bad "reference run"
REF_MS=$((($(date +%s%N) - t0) / 1000000))
echo "     reference run: $S steps in ${REF_MS} ms"

# ---- 1. --resume none into a used run folder ----
R="$WORK/used"
train "$R" --set training.max_steps=8 --set checkpoint.every_steps=2 --set checkpoint.keep_last=3 > "$WORK/out" 2>&1
before=$(md5sum < "$R/metrics.jsonl")
fault
expect "--resume none into a used run folder is refused" 1 "holds a previous run.*|--overwrite" \
  train "$R" --resume none --set training.max_steps=2 --set checkpoint.keep_last=3
grep -q "another --run-dir" "$WORK/out" && grep -q "$R" "$WORK/out" && ok "  the message names the folder and the ways out" ||
  bad "  the message names the folder and the ways out"
[ "$(ls "$R/checkpoints")" = "$(printf 'step-%08d\n' 4 6 8)" ] && [ "$(md5sum < "$R/metrics.jsonl")" = "$before" ] &&
  ok "  the old run's checkpoints and metrics are untouched" || bad "  the old run's checkpoints and metrics are untouched"
expect "--overwrite starts the new run" 0 "at step 2 \(from 0\)" \
  train "$R" --resume none --overwrite --set training.max_steps=2 --set checkpoint.every_steps=2 --set checkpoint.keep_last=3
prev=$(ls -d "$R"/previous-* 2>/dev/null | head -1)
if [ -n "$prev" ] && [ "$(ls "$prev/checkpoints")" = "$(printf 'step-%08d\n' 4 6 8)" ] &&
   [ "$(md5sum < "$prev/metrics.jsonl")" = "$before" ] &&
   [ "$(ls "$R/checkpoints")" = "step-00000002" ]; then
  survived=$((survived + 1)); ok "  --overwrite moved the old run into previous-*/, nothing deleted"
else lost=$((lost + 1)); bad "  --overwrite moved the old run into previous-*/, nothing deleted"; fi
expect "  --resume auto then continues the new run" 0 "at step 4 \(from 2\)" \
  train "$R" --set training.max_steps=4 --set checkpoint.every_steps=2 --set checkpoint.keep_last=3
fault
expect "--resume of an older checkpoint among later ones is refused" 1 "later checkpoint step-00000004" \
  train "$R" --resume "$R/checkpoints/step-00000002" --set training.max_steps=4

# ---- 2. damaged checkpoints ----
R="$WORK/damaged"
train "$R" --set training.max_steps=6 --set checkpoint.every_steps=2 --set checkpoint.keep_last=0 > "$WORK/out" 2>&1
cp -a "$(ckpt "$R" 6)" "$WORK/pristine6"
truncate -s -100 "$(ckpt "$R" 6)/model.safetensors"
fault
expect "a truncated newest checkpoint: resume from the one before" 0 "at step 6 \(from 4\)" \
  train "$R" --set training.max_steps=6 --set checkpoint.every_steps=2 --set checkpoint.keep_last=0
grep -q "skipping checkpoint.*step-00000006.*truncated" "$R/train.log" && same_state "$(ckpt "$R" 6)" "$WORK/pristine6" &&
  { survived=$((survived + 1)); ok "  warned, and step 6 re-made bit for bit"; } ||
  { lost=$((lost + 1)); bad "  warned, and step 6 re-made bit for bit"; }
flip "$(ckpt "$R" 2)/optimizer.safetensors" 200
truncate -s -5 "$(ckpt "$R" 4)/trainer_state.json"
rm "$(ckpt "$R" 6)/checksums.json"
before=$(md5sum < "$R/metrics.jsonl")
fault
expect "every checkpoint damaged: --resume auto is an error" 1 "none of the 3 checkpoint" \
  train "$R" --set training.max_steps=6 --set checkpoint.every_steps=2 --set checkpoint.keep_last=0
grep -q "step-00000002.*CRC" "$WORK/out" && grep -q "step-00000004.*trainer_state.json" "$WORK/out" &&
  grep -q "step-00000006.*checksums.json" "$WORK/out" && grep -q -- "--resume none --overwrite" "$WORK/out" &&
  ok "  the message lists every checkpoint and why, and what to do" || bad "  the message lists every checkpoint and why"
[ "$(ls "$R/checkpoints" | grep -c step-)" -eq 3 ] && [ "$(md5sum < "$R/metrics.jsonl")" = "$before" ] &&
  ok "  nothing pruned, metrics.jsonl untouched" || bad "  nothing pruned, metrics.jsonl untouched"
mkdir -p "$WORK/copy" && cp -a "$(ckpt "$R" 2)" "$WORK/copy/"
fault
expect "--resume of a corrupt checkpoint names the file" 1 "copy/step-00000002/optimizer.safetensors.*CRC" \
  train "$R" --resume "$WORK/copy/step-00000002" --set training.max_steps=6
if [ "$FULL" = 1 ]; then
  fault
  expect "--resume none --overwrite keeps the damaged ones aside" 0 "at step 2 \(from 0\)" \
    train "$R" --resume none --overwrite --set training.max_steps=2
  [ "$(ls "$R"/previous-*/checkpoints | grep -c step-)" -eq 3 ] && ok "  3 damaged checkpoints kept" || bad "  3 damaged checkpoints kept"
fi

# ---- 3. outputs that cannot be written: found before step 1 ----
fault
expect "checkpoint.dir under a file is an error at the start" 1 "/etc/passwd/ck \(checkpoint.dir\)" \
  train "$WORK/unwritable" --set checkpoint.dir=/etc/passwd/ck --set checkpoint.every_steps=0
[ ! -e "$WORK/unwritable/metrics.jsonl" ] && ! grep -qs "step 1/" "$WORK/unwritable/train.log" &&
  ok "  no step was trained" || bad "  no step was trained"
touch "$WORK/afile"
fault
expect "run folder under a file" 1 "afile/run \(run_dir" train "$WORK/afile/run"
mkdir -p "$WORK/tbfile" && touch "$WORK/tbfile/tensorboard"
fault
expect "a file where the TensorBoard folder goes" 1 "tensorboard \(logging.tensorboard\)" \
  train "$WORK/tbfile" --set logging.tensorboard=true
mkdir -p "$WORK/mdir/metrics.jsonl"
fault
expect "a folder where metrics.jsonl goes" 1 "metrics.jsonl \(run_dir.*folder" train "$WORK/mdir"

# ---- 4. full disks (tmpfs) at every write site, and a read-only one ----
MOUNT_OK=0
mnt() {  # mnt DIR SIZE
  mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" 2>/dev/null && MOUNTS+=("$1")
}
grow() { mount -o remount,size=64m "$1"; }
fill() { dd if=/dev/zero of="$1/filler" bs=4k count="$2" status=none 2>/dev/null; }  # leaves the rest free
if mnt "$WORK/probe-mount" 64k; then MOUNT_OK=1; else
  echo "skip full-disk cases: mount -t tmpfs is not permitted here (run the test as root to include them)"; fi
if [ "$MOUNT_OK" = 1 ]; then
  mnt "$WORK/ro" 64k && mount -o remount,ro "$WORK/ro"
  fault
  expect "a read-only checkpoint.dir is an error at the start" 1 "ro/ck \(checkpoint.dir\).*Read-only" \
    train "$WORK/rorun" --set checkpoint.dir="$WORK/ro/ck"
  mnt "$WORK/full0" 64k && fill "$WORK/full0" 16
  fault
  expect "a full checkpoint.dir is an error at the start" 1 "full0/ck \(checkpoint.dir\).*No space" \
    train "$WORK/full0run" --set checkpoint.dir="$WORK/full0/ck"

  # checkpoint: room for two checkpoints (each about 3 x the weights), keep_last 2 needs three at a time.
  ck_bytes=$(du -sb "$(ckpt "$REF" $S)" | cut -f1)
  mnt "$WORK/ckfull" "$((ck_bytes * 5 / 2))" 
  R="$WORK/ckrun"
  fault
  expect "disk full while writing a checkpoint" 1 "ckfull/ck.*(No space|space)" \
    train "$R" --set checkpoint.dir="$WORK/ckfull/ck"
  [ "$(tmp_leftovers "$WORK/ckfull/ck")" -eq 0 ] && [ "$(ls "$WORK/ckfull/ck" | grep -c step-)" -ge 1 ] &&
    ok "  no partial checkpoint left, the complete ones kept" || bad "  no partial checkpoint left"
  grow "$WORK/ckfull"
  nothing_lost "  space freed" "$R" "$WORK/ckfull/ck"

  # metrics.jsonl: the run folder on a disk with one free page left after config.yaml and the lock file (about
  # 17 rows); train.log and checkpoints elsewhere, so that metrics.jsonl is the site that fails.
  R="$WORK/mfull"
  mnt "$R" 64k && fill "$R" 13 && ln -s "$WORK/mfull-train.log" "$R/train.log" && mkdir -p "$WORK/mfull-ck"
  fault
  expect "disk full while appending to metrics.jsonl" 1 "mfull/metrics.jsonl: cannot (write|flush).*No space" \
    train "$R" --set checkpoint.dir="$WORK/mfull-ck"
  [ "$(ls "$WORK/mfull-ck" | grep -c step-)" -ge 1 ] && ok "  checkpoints up to the failure kept" || bad "  checkpoints kept"
  grow "$R"
  nothing_lost "  space freed (metrics.jsonl)" "$R" "$WORK/mfull-ck"

  # train.log: a link into a full disk.
  R="$WORK/lfull"
  mkdir -p "$R" && mnt "$WORK/logdisk" 64k && fill "$WORK/logdisk" 15 && ln -s "$WORK/logdisk/train.log" "$R/train.log"
  fault
  expect "disk full while writing train.log" 1 "lfull/train.log: cannot write the run log.*No space" train "$R"
  grow "$WORK/logdisk"
  nothing_lost "  train.log" "$R"

  # TensorBoard event files: their folder is a link into a full disk.
  R="$WORK/tfull"
  mkdir -p "$R" && mnt "$WORK/tbdisk" 64k && fill "$WORK/tbdisk" 15 && ln -s "$WORK/tbdisk" "$R/tensorboard"
  fault
  expect "disk full while writing TensorBoard events" 1 "cannot (write|fsync) .*tfull/tensorboard/.*No space" \
    train "$R" --set logging.tensorboard=true
  grow "$WORK/tbdisk"
  nothing_lost "  space freed (TensorBoard)" "$R" "$R/checkpoints" --set logging.tensorboard=true
fi

# ---- 8. damaged shards ----
shards() { rm -rf "$WORK/$1" && cp -a "$WORK/train" "$WORK/$1"; }
shards t-trunc && truncate -s -1000 "$WORK/t-trunc/packed-00001.hdf5"
fault
expect "a truncated training shard is found before step 1" 1 "data.train.*t-trunc/packed-00001.hdf5: truncated" \
  train "$WORK/trunc-run" --set data.train="$WORK/t-trunc"
[ ! -e "$WORK/trunc-run/metrics.jsonl" ] && [ "$(ls "$WORK/trunc-run/checkpoints" 2>/dev/null | grep -c step-)" -eq 0 ] &&
  ok "  nothing trained, nothing written" || bad "  nothing trained, nothing written"
rm -rf "$WORK/v-trunc" && cp -a "$WORK/valid" "$WORK/v-trunc" && truncate -s -1000 "$WORK/v-trunc/packed-00000.hdf5"
fault
expect "a truncated validation shard is found before step 1" 1 "data.validation.*v-trunc/packed-00000.hdf5: truncated" \
  train "$WORK/vtrunc-run" --set data.validation="$WORK/v-trunc"
if [ "$FULL" = 1 ]; then
  shards t-head && flip "$WORK/t-head/packed-00003.hdf5" 40
  fault
  expect "a damaged shard header is found before step 1" 1 "t-head/packed-00003.hdf5: damaged integrity header" \
    train "$WORK/head-run" --set data.train="$WORK/t-head"
  shards t-long && printf 'xx' >> "$WORK/t-long/packed-00002.hdf5"
  fault
  expect "a shard with extra bytes is found before step 1" 1 "t-long/packed-00002.hdf5: has extra bytes" \
    train "$WORK/long-run" --set data.train="$WORK/t-long"
fi
# A flipped byte inside the data is found by the shard's CRC when it is read: shard 2 of 4 (no shuffling, one
# shard at a time: data.mix_shards=1; a group of shards is read together, at its start) at step 24, between
# checkpoints (every 10).
shards t-flip
f="$WORK/t-flip/packed-00002.hdf5" && flip "$f" $(($(size "$f") / 2))
R="$WORK/flip-run"
fault
expect "a corrupt shard mid-run: checkpoint, then an error naming it" 1 "t-flip/packed-00002.hdf5: corrupt: CRC-32" \
  train "$R" --set data.train="$WORK/t-flip" --set data.shuffle=false --set data.mix_shards=1 \
  --set checkpoint.every_steps=10
grep -q "step-00000024" "$WORK/out" && [ -d "$(ckpt "$R" 24)" ] && grep -q "on_bad_shard: skip" "$WORK/out" &&
  { survived=$((survived + 1)); ok "  the step reached (24) was saved"; } || { lost=$((lost + 1)); bad "  the step reached (24) was saved"; }
expect "  data.on_bad_shard: skip continues without it" 0 "at step $S \(from 24\)" \
  train "$R" --set data.train="$WORK/t-flip" --set data.shuffle=false --set data.mix_shards=1 \
  --set checkpoint.every_steps=10 --set data.on_bad_shard=skip
grep -q "skipping shard .*t-flip/packed-00002.hdf5" "$R/train.log" && ok "  with a warning naming the shard" ||
  bad "  with a warning naming the shard"
rm -rf "$WORK/v-flip" && cp -a "$WORK/valid" "$WORK/v-flip"
f="$WORK/v-flip/packed-00000.hdf5" && flip "$f" $(($(size "$f") / 2))
R="$WORK/vflip-run"
fault
expect "a corrupt validation shard: the error names it" 1 "v-flip/packed-00000.hdf5: corrupt" \
  train "$R" --set data.validation="$WORK/v-flip" --set training.max_steps=4
[ -d "$(ckpt "$R" 4)" ] && ok "  the trained steps are saved" || bad "  the trained steps are saved"
expect "data.on_bad_shard takes fail or skip" 1 "data.on_bad_shard.*(fail|skip)" \
  train "$WORK/obs" --set data.on_bad_shard=ignore
expect "a missing data.train names the key" 1 "data.train: no shard path given" train "$WORK/nodata" --set data.train=
expect "token ids beyond model.vocab_size name the shard, row and key" 1 \
  "packed-0000[0-3].hdf5: row [0-9]+, position [0-9]+: token id [0-9]+ is outside model.vocab_size 256" \
  train "$WORK/vocab-run" --set model.vocab_size=256 --set data.vocab=

# ---- damaged configs: found before anything is written ----
# A config cut short mid-file, a binary file, a key misspelt, a value of the wrong type, a folder: each an error
# naming the file (and line or key) before the run folder is touched.
head -c "$(($(size "$CFG") * 2 / 3))" "$CFG" > "$WORK/cut.yaml" && printf '  optimizer: [\n' >> "$WORK/cut.yaml"
fault
expect "a config cut short is an error naming the file and line" 1 "cut.yaml:[0-9]+" \
  "$TRAIN" -q --config "$WORK/cut.yaml" --run-dir "$WORK/cut-run"
head -c 3000 /dev/urandom > "$WORK/binary.yaml"
fault
expect "a binary file as config is an error naming it" 1 "binary.yaml" \
  "$TRAIN" -q --config "$WORK/binary.yaml" --run-dir "$WORK/bin-run"
sed 's/max_steps:/max_stesp:/' "$CFG" > "$WORK/typo.yaml"
fault
expect "a misspelt key is an error naming it and the likely key" 1 "typo.yaml:[0-9]+.*max_stesp.*max_steps" \
  "$TRAIN" -q --config "$WORK/typo.yaml" --run-dir "$WORK/typo-run"
sed 's/global_batch: 8/global_batch: eight/' "$CFG" > "$WORK/type.yaml"
fault
expect "a value of the wrong type is an error naming the key" 1 "type.yaml:[0-9]+.*training.global_batch" \
  "$TRAIN" -q --config "$WORK/type.yaml" --run-dir "$WORK/type-run"
fault
expect "a folder as config is an error naming it" 1 "is a folder" "$TRAIN" -q --config "$WORK" --run-dir "$WORK/dir-run"
for r in cut-run bin-run typo-run type-run dir-run; do [ -e "$WORK/$r" ] && bad "  $r was written"; done
[ ! -e "$WORK/cut-run" ] && [ ! -e "$WORK/typo-run" ] && ok "  no run folder was created for a bad config"

# ---- two dense-train processes on one run folder ----
R="$WORK/twice"
"$TRAIN" -q --config "$CFG" --run-dir "$R" --set training.max_steps=100000 --set checkpoint.every_steps=1000 \
  > "$WORK/first.log" 2>&1 &
first=$!
for _ in $(seq 100); do grep -qs "step 1/" "$R/train.log" && break; sleep 0.1; done
fault
expect "a second dense-train on a run folder in use is refused" 1 "twice \(run_dir.*in use by another dense-train \(pid $first\)" \
  train "$R" --resume auto --set training.max_steps=100000
kill -TERM "$first"
wait "$first"
[ $? -eq 130 ] && [ -d "$R/checkpoints" ] && [ "$(ls "$R/checkpoints" | grep -c step-)" -eq 1 ] &&
  ok "  the first run went on, and stopped on SIGTERM with a checkpoint" || bad "  the first run went on"

# ---- kill -9 at random moments of a run checkpointing every step ----
# Each attempt resumes the run (--resume auto) and is killed after a random delay within the first third of
# the reference run's duration: in start-up, in a step, or in a checkpoint write. An attempt that finishes first ends a sequence,
# which is then checked and started afresh, until KILLS kills have landed.
KILLS=3
[ "$FULL" = 1 ] && KILLS=20
landed=0 seq=0 attempts=0 at=""
check_sequence() {  # check_sequence RUN KILLS_IN_IT
  if same_state "$(ckpt "$1" $S)" "$(ckpt "$REF" $S)" && same_metrics "$1" "$REF" &&
     [ "$(tmp_leftovers "$1/checkpoints")" -eq 0 ]; then
    survived=$((survived + $2)); ok "kill -9 x $2 (sequence $seq): the resumed run is bit-identical to the uninterrupted run"
  else
    lost=$((lost + $2))
    { ls "$1/checkpoints"; diff <(rows "$REF/metrics.jsonl") <(rows "$1/metrics.jsonl") | head -5; tail -5 "$1/train.log"; } > "$WORK/out" 2>&1
    [ -n "${DENSE_FAULTS_KEEP:-}" ] && cp -a "$1" "$DENSE_FAULTS_KEEP/"
    bad "kill -9 x $2 (sequence $seq): the resumed run differs from the uninterrupted run"
  fi
}
R="$WORK/killed-0" in_seq=0
while [ "$landed" -lt "$KILLS" ] && [ "$attempts" -lt $((KILLS * 4)) ]; do
  attempts=$((attempts + 1))
  delay_ms=$((RANDOM * 32768 + RANDOM))
  delay_ms=$((delay_ms % (REF_MS / 3 + 1)))
  # Not through the train function: `function &` forks a subshell, and kill -9 would hit the subshell and leave
  # dense-train running.
  "$TRAIN" -q --config "$CFG" --run-dir "$R" --resume auto > "$WORK/kill.log" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2> /dev/null
  rc=$?
  if [ "$rc" -eq 137 ]; then
    landed=$((landed + 1)) in_seq=$((in_seq + 1)); fault
    at="$at $(ls "$R/checkpoints" 2>/dev/null | grep -E '^step-[0-9]+$' | tail -1 | sed 's/step-0*//')"  # newest step then
  elif [ "$rc" -eq 0 ]; then
    [ "$in_seq" -gt 0 ] && check_sequence "$R" "$in_seq"
    seq=$((seq + 1)) in_seq=0 R="$WORK/killed-$seq"
  else
    { cat "$WORK/kill.log"; tail -5 "$R/train.log"; } > "$WORK/out" 2>&1
    [ -n "${DENSE_FAULTS_KEEP:-}" ] && cp -a "$R" "$DENSE_FAULTS_KEEP/attempt-$attempts"
    bad "kill attempt $attempts: the run failed by itself (rc $rc)"
  fi
done
if [ "$in_seq" -gt 0 ]; then
  train "$R" --resume auto > "$WORK/out" 2>&1 || bad "the last killed run does not resume"
  check_sequence "$R" "$in_seq"
fi
echo "     $landed kill(s) landed in $attempts attempts (delays up to $((REF_MS / 3)) ms); newest checkpoint at each:$at"
[ "$landed" -eq "$KILLS" ] && ok "kill -9: $KILLS kills landed" || bad "kill -9: only $landed of $KILLS kills landed"

echo "fault figures: $faults faults injected, $survived survived with the run intact, $lost lost"
[ "$lost" -eq 0 ] || failed=$((failed + 1))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
