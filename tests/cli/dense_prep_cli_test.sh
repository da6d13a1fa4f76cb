#!/usr/bin/env bash
# The dense-prep program end to end, as a user runs it: real text (WikiText-2, GLUE CoLA from ../shared),
# real HDF5 files read back by h5py (tests/reference/check_shards.py, independent of the C++ readers), exit
# codes and error messages for bad input. Usage: dense_prep_cli_test.sh DENSE_PREP SHARED_DIR TEST_DATA_DIR
set -uo pipefail
PREP=$1 SHARED=$2 DATA=$3
PY=/usr/bin/python3
CHECK="$DATA/../reference/check_shards.py"
VOCAB="$DATA/wordpiece_vocab_small.txt"
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

expect "help lists the subcommands" 0 "pretrain.*" "$PREP" --help
expect "version" 0 "dense-prep 0\." "$PREP" --version
expect "no subcommand is an error" 106 "subcommand" "$PREP"
expect "unknown format is refused" 105 "--format" "$PREP" pretrain x --vocab "$VOCAB" -o "$WORK/x" --format nope

# packed from WikiText-2 valid; then a re-run does nothing
expect "pretrain packed" 0 "11,236 rows of 64 tokens in 6 shards" \
  "$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/packed" \
  -N 64 --shard-rows 2000 -q -j 2
expect "re-run is a no-op" 0 "already complete" \
  "$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/packed" \
  -N 64 --shard-rows 2000 -q
rm "$WORK/packed/packed-00001.hdf5"
expect "resume writes only the missing shard" 0 "1 written, 5 already complete" \
  "$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/packed" \
  -N 64 --shard-rows 2000 -q
expect "other settings need --overwrite" 1 "packed-00000.hdf5.*--overwrite" \
  "$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab "$VOCAB" -o "$WORK/packed" \
  -N 32 -q
VH=$(sha256sum "$VOCAB" | cut -d' ' -f1)
expect "h5py reads the packed shards" 0 "^OK" "$PY" "$CHECK" check-packed "$WORK/packed/packed-00002.hdf5" --vocab-hash "$VH" --seq-len 64 --cls-id 2
expect "inspect decodes a row" 0 "\[CLS\]" "$PREP" inspect "$WORK/packed/packed-00000.hdf5" --vocab "$VOCAB" --row 5

# bert (LDDL layout) read as the NVIDIA loader does
expect "pretrain bert" 0 "rows of 128 tokens" \
  "$PREP" pretrain "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --format bert --sentences punctuation \
  --vocab "$VOCAB" -o "$WORK/bert" -N 128 -q
expect "h5py reads the bert shard as LDDL does" 0 "label_checksum" \
  "$PY" "$CHECK" check-bert "$WORK/bert/bert-00000.hdf5" --vocab-hash "$VH" --seq-len 128 --max-pred 19 --cls-id 2 --sep-id 3

# GLUE CoLA, and a classification shard read by h5py
expect "glue CoLA" 0 "CoLA.*test.*unlabeled" "$PREP" glue "$SHARED/data/glue" -t cola --vocab "$VOCAB" -o "$WORK/glue" -q
expect "h5py reads the GLUE shard" 0 "^OK classification" \
  "$PY" "$CHECK" check-classification "$WORK/glue/CoLA/train.hdf5" --vocab-hash "$VH" --seq-len 128
expect "unknown GLUE task" 1 "unknown|nosuch" "$PREP" glue "$SHARED/data/glue" -t nosuch --vocab "$VOCAB" -o "$WORK/g2" -q

# LRA ListOps, generated
expect "lra listops" 0 "train.*40 rows" "$PREP" lra listops -o "$WORK/listops" --num-train 40 --num-val 4 --num-test 4 -q
expect "h5py reads the ListOps shard" 0 "^OK classification rows 40 seq_len 2000" \
  "$PY" "$CHECK" check-classification "$WORK/listops/train.hdf5" --vocab-hash lra-listops-17 --seq-len 2000

# vocabulary training
expect "vocab" 0 "wrote .*vocab.txt \(600 tokens" \
  "$PREP" vocab "$SHARED/data/wikitext-2/valid.txt" --corpus-format wikitext --vocab-size 600 -o "$WORK/v/vocab.txt" -q

# bad input: every message names the thing at fault, and nothing is left behind
expect "missing vocab file" 1 "nope.txt" "$PREP" pretrain "$DATA/corpus/text" --vocab "$WORK/nope.txt" -o "$WORK/p2" -q
printf 'the\n[CLS]\n' > "$WORK/novocab.txt"
expect "vocab without [UNK]" 1 "novocab.txt.*\[UNK\]" "$PREP" pretrain "$DATA/corpus/text" --vocab "$WORK/novocab.txt" -o "$WORK/p3" -q
printf 'not gzip at all' > "$WORK/broken.txt.gz"
expect "corrupt .gz names the file" 1 "broken.txt.gz" "$PREP" pretrain "$WORK/broken.txt.gz" --vocab "$VOCAB" -o "$WORK/p4" -q
: > "$WORK/file"
expect "unwritable output folder" 1 "cannot create the output folder" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/file/sub" -q
printf 'x' > "$WORK/bad.hdf5"
expect "inspect refuses a broken file" 1 "bad.hdf5" "$PREP" inspect "$WORK/bad.hdf5"
if ls "$WORK"/p*/*.tmp-* > /dev/null 2>&1; then bad "no temporaries left"; else ok "no temporaries left"; fi

echo "dense-prep cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
