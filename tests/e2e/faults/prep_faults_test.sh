#!/usr/bin/env bash
# dense-prep on a full disk: every shard writer (packed, bert, classification) must stop with its
# "cannot write ..." message and exit status 1, never crash while HDF5 tears down (exit 139 from
# H5F__close_cb at exit, issue #20), and leave neither a partial shard under its final name nor a temporary.
# The disk is a small tmpfs; where mounting is not permitted (not root, no CAP_SYS_ADMIN) the test says
# SKIPPED and passes through ctest's SKIP_REGULAR_EXPRESSION.
# Usage: prep_faults_test.sh DENSE_PREP SHARED_DIR TEST_DATA_DIR
set -uo pipefail
PREP=$1 SHARED=$2 DATA=$3
VOCAB="$DATA/wordpiece_vocab_small.txt"
WIKI="$SHARED/data/wikitext-2/valid.txt"
# shellcheck source=../cli/cli_lib.sh
. "$(dirname "$0")/../cli/cli_lib.sh"

DISK="$WORK/disk"
mkdir -p "$DISK"
if ! mount -t tmpfs -o size=256k tmpfs "$DISK" 2> "$WORK/mount.err"; then
  echo "SKIPPED: cannot mount a tmpfs to fill ($(cat "$WORK/mount.err")); run as root to test full disks"
  exit 0
fi
trap 'umount "$DISK" 2>/dev/null; rm -rf "$WORK"' EXIT

# The output must not be left behind in any form: no shard, no .tmp-<pid> file.
leftovers() { find "$DISK" -type f \( -name '*.hdf5' -o -name '*.tmp-*' \) | head -5; }
full_disk_case() {
  local name=$1 out=$2
  shift 2
  "$@" > "$WORK/out" 2>&1
  local rc=$?
  local left
  left=$(leftovers)
  if [ "$rc" -eq 1 ] && grep -Eq "dense-prep: error: .*$out.*(cannot write|No space|Write failed)" "$WORK/out" &&
    ! grep -q "Segmentation\|internal error" "$WORK/out" && [ -z "$left" ]; then
    ok "$name"
  else
    echo "     rc=$rc (want 1) leftovers: ${left:-none}"
    bad "$name"
  fi
}

# Incompressible enough at gzip level 0 that 256 KiB holds no complete shard of 2000 rows of 64 ids.
full_disk_case "packed shards on a full disk" "$DISK/packed" \
  "$PREP" pretrain "$WIKI" --corpus-format wikitext --vocab "$VOCAB" -o "$DISK/packed" -N 64 --shard-rows 2000 \
  --gzip-level 0 -q -j 2
rm -rf "${DISK:?}"/*
full_disk_case "bert shards on a full disk" "$DISK/bert" \
  "$PREP" pretrain "$WIKI" --corpus-format wikitext --format bert --vocab "$VOCAB" -o "$DISK/bert" -N 128 \
  --gzip-level 0 -q -j 2
rm -rf "${DISK:?}"/*
full_disk_case "classification shards on a full disk" "$DISK/lra" \
  "$PREP" lra listops -o "$DISK/lra" --num-train 400 --num-val 4 --num-test 4 --gzip-level 0 -q -j 2

# A disk already full when the first shard is created: H5Fcreate fails after making the file (its superblock does
# not fit), and that temporary is removed too (it was left behind, so a parallel writer that started after the
# disk filled up left one: a flaky 'packed shards on a full disk').
rm -rf "${DISK:?}"/*
mkdir -p "$DISK/full"
dd if=/dev/zero of="$DISK/filler" bs=4k > /dev/null 2>&1
full_disk_case "a disk full before the first shard" "$DISK/full" \
  "$PREP" pretrain "$WIKI" --corpus-format wikitext --vocab "$VOCAB" -o "$DISK/full" -N 64 --shard-rows 2000 \
  --gzip-level 0 -q -j 1

# The space is free again afterwards (nothing held by a leaked handle): a small run fits and completes.
rm -rf "${DISK:?}"/*
expect "a run that fits completes on the same disk" 0 "train.*20 rows" \
  "$PREP" lra listops -o "$DISK/small" --num-train 20 --num-val 2 --num-test 2 --min-length 10 --max-length 40 -q
if [ "$(find "$DISK/small" -name '*.hdf5' | wc -l)" -eq 3 ] && [ -z "$(find "$DISK" -name '*.tmp-*')" ]; then
  ok "its three shards are complete and no temporary is left"
else
  bad "its three shards are complete and no temporary is left"
fi

echo "prep faults: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
