#!/usr/bin/env bash
# Long context on the CPU (docs/results.md): a small DANet and the softmax BERT of its shape, pretrained with MLM at
# N 128, then continued at N 4096 and 16384 (configs/cpu/long{128,4k,16k}[_bert].yaml), each stage evaluated on
# held-out long documents at N = 128, 512, 2048, 4096 and 16384.
#
#   scripts/results/long_context.sh data                 # corpora -> shards (seconds)
#   scripts/results/long_context.sh chain danet|bert [4k|16k]  # the stages (from the one named), each evaluated
#   scripts/results/long_context.sh train danet|bert 128|4k|16k [dense-train options...]
#   scripts/results/long_context.sh eval  danet|bert 128|4k|16k [N...]
#
# Held out: two Gutenberg books (austen-persuasion, chesterton-thursday) and WikiText-2's test split; training:
# the other 16 books, the State of the Union addresses, the Brown samples and WikiText-2's train split. At 4K and
# 16K every file (and every WikiText-2 article) is one document. Runs go to runs/<config name>, evaluations to
# runs/long-eval/<model>-<stage>-N<N>.json. The two chains are meant to run side by side, one core each
# (threads: 1 in the configs). Environment: BIN (default build/apps), WIKITEXT2 (a folder with train.txt and
# test.txt, default ../shared/data/wikitext-2), CORPUS (scripts/fetch_data.sh's folder, default data/corpus),
# BERT16K_STEPS (stop the BERT 16K stage after this many steps; default: the config's max_steps).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/apps}
WIKITEXT2=${WIKITEXT2:-../shared/data/wikitext-2}
CORPUS=${CORPUS:-data/corpus}
VOCAB=data/vocab/vocab.txt
EVAL_LENGTHS=(128 512 2048 4096 16384)
die() { echo "long_context.sh: error: $*" >&2; exit 1; }

prep_data() {
  [[ -f $VOCAB ]] || scripts/fetch_vocab.sh
  [[ -f $CORPUS/.fetched ]] || scripts/fetch_data.sh "$CORPUS"
  [[ -f $WIKITEXT2/train.txt && -f $WIKITEXT2/test.txt ]] || die "WIKITEXT2=$WIKITEXT2 has no train.txt/test.txt"
  rm -rf data/long.tmp && mkdir -p data/long.tmp/books_train data/long.tmp/books_heldout
  for f in "$CORPUS"/gutenberg/*.txt; do
    case $(basename "$f") in
      austen-persuasion.txt | chesterton-thursday.txt) cp "$f" data/long.tmp/books_heldout/ ;;
      *) cp "$f" data/long.tmp/books_train/ ;;
    esac
  done
  rm -rf data/long && mv data/long.tmp data/long
  local prep=("$BIN/dense-prep" pretrain --vocab "$VOCAB" -q)
  "${prep[@]}" data/long/books_train "$CORPUS/sotu" "$CORPUS/brown" -N 128 -o data/shards/long128 --prefix corpus
  for n in 4096 16384; do
    "${prep[@]}" data/long/books_train "$CORPUS/sotu" "$CORPUS/brown" --documents one-per-file -N $n \
      -o data/shards/long$n --prefix corpus
  done
  for n in 128 4096 16384; do
    "${prep[@]}" "$WIKITEXT2/train.txt" --corpus-format wikitext -N $n -o data/shards/long$n --prefix wikitext
  done
  for n in "${EVAL_LENGTHS[@]}"; do
    "${prep[@]}" data/long/books_heldout --documents one-per-file -N $n -o data/shards/heldout$n --prefix books
    "${prep[@]}" "$WIKITEXT2/test.txt" --corpus-format wikitext -N $n -o data/shards/heldout$n --prefix wikitext
  done
}

config_of() {  # model stage -> config path
  local suffix=""
  [[ $1 == bert ]] && suffix=_bert
  [[ $1 == danet || $1 == bert ]] || die "model must be danet or bert, not '$1'"
  [[ $2 == 128 || $2 == 4k || $2 == 16k ]] || die "stage must be 128, 4k or 16k, not '$2'"
  echo "configs/cpu/long$2$suffix.yaml"
}
run_of() { basename "$(config_of "$1" "$2")" .yaml; }
train_stage() {
  local model=$1 stage=$2
  shift 2
  local args=(-c "$(config_of "$model" "$stage")")
  case $stage in
    4k) args+=(--init-from "runs/$(run_of "$model" 128)") ;;  # its newest complete checkpoint
    16k) args+=(--init-from "runs/$(run_of "$model" 4k)") ;;
  esac
  [[ $model == bert && $stage != 128 ]] && args+=(--resize-position-embeddings)
  [[ $model == bert && $stage == 16k && -n ${BERT16K_STEPS:-} ]] && args+=(--stop-after "$BERT16K_STEPS")
  /usr/bin/time -f "train $model $stage: %e s wall, %M KiB max RSS" "$BIN/dense-train" "${args[@]}" "$@"
}

eval_stage() {
  local model=$1 stage=$2
  shift 2
  local lengths=("$@")
  [[ ${#lengths[@]} -gt 0 ]] || lengths=("${EVAL_LENGTHS[@]}")
  local run
  run="runs/$(run_of "$model" "$stage")"
  mkdir -p runs/long-eval
  local trained=128
  case $stage in 4k) trained=4096 ;; 16k) trained=16384 ;; esac
  for n in "${lengths[@]}"; do
    if [[ $model == bert && $n -gt $trained ]]; then
      echo "eval $model $stage N $n: skipped (a learned position table of $trained)"
      continue
    fi
    local batch=$((16384 / n))
    /usr/bin/time -f "eval $model $stage N $n: %e s wall, %M KiB max RSS" "$BIN/dense-eval" mlm --checkpoint "$run" \
      --data "data/shards/heldout$n" --batch $batch --json "runs/long-eval/$model-$stage-N$n.json" \
      --set data.seq_len=$n --set model.max_position_embeddings=$((n > trained ? n : trained))
  done
}

case ${1:-} in
  data) prep_data ;;
  train) [[ $# -ge 3 ]] || die "usage: train danet|bert 128|4k|16k"; shift; train_stage "$@" ;;
  eval) [[ $# -ge 3 ]] || die "usage: eval danet|bert 128|4k|16k [N...]"; shift; eval_stage "$@" ;;
  chain)
    [[ $# -eq 2 || $# -eq 3 ]] || die "usage: chain danet|bert [first stage: 128|4k|16k]"
    stages=(128 4k 16k)
    case ${3:-128} in 4k) stages=(4k 16k) ;; 16k) stages=(16k) ;; esac
    for stage in "${stages[@]}"; do
      train_stage "$2" "$stage"
      eval_stage "$2" "$stage"
    done
    ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
