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
expect "no subcommand is an error" 106 "a subcommand is required: vocab, pretrain, glue, lra, inspect" "$PREP"
expect "an unknown subcommand lists the subcommands" 109 \
  "unknown subcommand 'pretrian'; expected one of: vocab, pretrain, glue, lra, inspect" "$PREP" -j 2 pretrian x
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

# bad numbers: named with what is expected (0 and negatives used to fall back to defaults, or to print
# "Value 0 not in range 0 to 1.8e308")
expect "--shard-rows -5 is refused" 105 "--shard-rows: must be a positive integer \(got -5\)" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" --shard-rows -5
expect "--shard-rows 0 is refused" 105 "--shard-rows: must be a positive integer \(got 0\)" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" --shard-rows 0
expect "-N 0 is refused" 105 "--seq-len: must be a positive integer \(got 0\)" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" -N 0
expect "-j -1 is refused" 105 "--threads: must be 0 or more \(got -1\)" \
  "$PREP" -j -1 pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1"
expect "--masked-lm-ratio 1.5 is refused" 105 "--masked-lm-ratio: must be in \(0, 1\) \(got 1.5\)" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" --format bert --masked-lm-ratio 1.5
expect "--short-seq-prob -0.1 is refused" 105 "--short-seq-prob: must be in \[0, 1\]" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" --format bert --short-seq-prob -0.1
expect "--max-rows 0 is refused" 105 "--max-rows: must be a positive integer" \
  "$PREP" pretrain "$DATA/corpus/text" --vocab "$VOCAB" -o "$WORK/n1" --max-rows 0
expect "glue --max-length 0 is refused" 105 "--max-length: must be a positive integer" \
  "$PREP" glue "$SHARED/data/glue" --vocab "$VOCAB" -o "$WORK/n2" --max-length 0
expect "lra --num-train 0 is refused" 105 "--num-train: must be a positive integer" \
  "$PREP" lra listops -o "$WORK/n3" --num-train 0
expect "lra --resolution 48 is refused" 105 "--resolution: 48 not in \{32,64,128,256\}|--resolution.*48" \
  "$PREP" lra pathfinder -o "$WORK/n3" --resolution 48
expect "lra --val-fraction 1 is refused" 105 "--val-fraction: must be in \(0, 1\) \(got 1\)" \
  "$PREP" lra image -o "$WORK/n3" --val-fraction 1
expect "vocab --vocab-size 0 is refused" 105 "--vocab-size: must be a positive integer" \
  "$PREP" vocab "$DATA/corpus/text" -o "$WORK/n4/vocab.txt" --vocab-size 0
expect "inspect --row -1 is refused" 105 "--row: must be 0 or more" \
  "$PREP" inspect "$WORK/packed/packed-00000.hdf5" --row -1
if ls -d "$WORK"/n[1-4] > /dev/null 2>&1; then bad "refused runs create no output folder"; else ok "refused runs create no output folder"; fi

# an output inside the input folder: a re-run would read manifest.json / the shards' folder as corpus
mkdir -p "$WORK/corpus_copy"
cp -r "$DATA"/corpus/text/. "$WORK/corpus_copy/"
expect "-o equal to the input folder is refused" 1 "-o .*corpus_copy is the same as the input folder" \
  "$PREP" pretrain "$WORK/corpus_copy" --vocab "$VOCAB" -o "$WORK/corpus_copy" -q
expect "-o inside the input folder is refused" 1 "-o .*corpus_copy/shards is inside the input folder" \
  "$PREP" pretrain "$WORK/corpus_copy" --vocab "$VOCAB" -o "$WORK/corpus_copy/shards" -q
expect "-o reached through .. is refused" 1 "is inside the input folder" \
  "$PREP" pretrain "$WORK/corpus_copy" --vocab "$VOCAB" -o "$WORK/v/../corpus_copy/x" -q
expect "vocab -o inside the input folder is refused" 1 "vocab: -o .*corpus_copy/vocab.txt is inside the input folder" \
  "$PREP" vocab "$WORK/corpus_copy" -o "$WORK/corpus_copy/vocab.txt" --vocab-size 600 -q
if [ -z "$(find "$WORK/corpus_copy" -name '*.hdf5' -o -name 'manifest.json' -o -name 'vocab.txt')" ]; then
  ok "nothing was written into the input folder"
else
  bad "nothing was written into the input folder"
fi
expect "-o beside the input folder is fine" 0 "rows of 16 tokens" \
  "$PREP" pretrain "$WORK/corpus_copy" --vocab "$VOCAB" -o "$WORK/corpus_copy_shards" -N 16 -q

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
