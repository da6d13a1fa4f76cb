#!/usr/bin/env bash
# Results that hold over seeds (docs/results.md): the small DANet / BERT pair pretrained again on shards that mix
# their corpora (dense-prep's default 512K-token shards; the loader draws each batch from data.mix_shards shards),
# then SST-2 and CoLA fine-tuned with SEEDS seeds and LRA ListOps trained from scratch with LISTOPS_SEEDS seeds.
#
#   scripts/results/seeds.sh data                        # corpora -> data/shards/pretrain128, valid128; ListOps trees
#   scripts/results/seeds.sh pretrain danet|bert [dense-train options...]   # runs/small_<model>_mixed
#   scripts/results/seeds.sh glue danet|bert SST-2|CoLA  # runs/seeds-<task>-<model>, from the run above
#   scripts/results/seeds.sh listops danet|bert          # runs/seeds-listops-<model>
#   scripts/results/seeds.sh report                      # median and spread per task and model (seeds_report.py)
#
# Each seed s = 1, 2, ... runs as its own dense-eval process into runs/seeds-<task>-<model>/seed-<s> (its log:
# dense-eval.log there), so a finished seed is kept when a later one is interrupted, and running the stage again
# skips the seeds that have results.json.
# Stages are meant to run beside each other, one core each. Environment: BIN (default build/apps), GLUE (the
# official GLUE layout, default ../shared/data/glue), WIKITEXT2 (default ../shared/data/wikitext-2), CORPUS (default
# data/corpus), SEEDS (default 3), LISTOPS_SEEDS (default 5), ONLY_SEED (run just that seed), THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/apps}
GLUE=${GLUE:-../shared/data/glue}
WIKITEXT2=${WIKITEXT2:-../shared/data/wikitext-2}
CORPUS=${CORPUS:-data/corpus}
SEEDS=${SEEDS:-3}
LISTOPS_SEEDS=${LISTOPS_SEEDS:-5}
THREADS=${THREADS:-1}
VOCAB=data/vocab/vocab.txt
die() { echo "seeds.sh: error: $*" >&2; exit 1; }
check_model() { [[ $1 == danet || $1 == bert ]] || die "model must be danet or bert, not '$1'"; }
# The configs name the DANet file plainly and its BERT baseline with a _bert suffix.
suffix() { [[ $1 == bert ]] && echo _bert || true; }

prep_data() {
  [[ -f $VOCAB ]] || scripts/fetch_vocab.sh
  [[ -f $CORPUS/.fetched ]] || scripts/fetch_data.sh "$CORPUS"
  [[ -f $WIKITEXT2/train.txt && -f $WIKITEXT2/valid.txt ]] || die "WIKITEXT2=$WIKITEXT2 has no train.txt/valid.txt"
  local prep=("$BIN/dense-prep" pretrain --vocab "$VOCAB" -N 128 --overwrite)
  # The default shard size splits each corpus into shards of 4,096 rows, so that the loader's draw across
  # data.mix_shards open shards interleaves the two corpora from the first step.
  "${prep[@]}" "$CORPUS/gutenberg" "$CORPUS/sotu" "$CORPUS/brown" -o data/shards/pretrain128 --prefix corpus
  "${prep[@]}" "$WIKITEXT2/train.txt" --corpus-format wikitext -o data/shards/pretrain128 --prefix wikitext
  "${prep[@]}" "$WIKITEXT2/valid.txt" --corpus-format wikitext -o data/shards/valid128
  [[ -d data/lra/listops256 ]] ||
    "$BIN/dense-prep" lra listops --min-length 50 --max-length 256 --num-train 20000 -o data/lra/listops256
}

pretrain() {
  local model=$1
  shift
  check_model "$model"
  [[ -d data/shards/pretrain128 ]] || die "no data/shards/pretrain128: run '$0 data' first"
  /usr/bin/time -f "pretrain $model: %e s wall, %M KiB max RSS" "$BIN/dense-train" -c "configs/small_$model.yaml" \
    --run-dir "runs/small_${model}_mixed" --set "training.threads=$THREADS" "$@"
}

# The seeds a stage runs: 1..count, or ONLY_SEED alone.
seed_list() {
  if [[ -n ${ONLY_SEED:-} ]]; then
    [[ $ONLY_SEED =~ ^[1-9][0-9]*$ ]] || die "ONLY_SEED must be a positive integer, not '$ONLY_SEED'"
    echo "$ONLY_SEED"
  else
    [[ $1 =~ ^[1-9][0-9]*$ ]] || die "the seed count must be a positive integer, not '$1'"
    seq 1 "$1"
  fi
}

# run_seed DIR SEED LABEL dense-eval-arguments...: one seed into DIR/seed-SEED, unless it has finished before.
run_seed() {
  local dir=$1 seed=$2 label=$3
  shift 3
  if [[ -f $dir/seed-$seed/results.json ]]; then
    echo "seeds.sh: $label seed $seed: done already ($dir/seed-$seed/results.json)" >&2
    return
  fi
  # Its log goes to the seed's folder as well: seeds of one model that run side by side would interleave theirs.
  mkdir -p "$dir/seed-$seed"
  /usr/bin/time -f "$label seed $seed: %e s wall, %M KiB max RSS" "$BIN/dense-eval" "$@" -o "$dir/seed-$seed" \
    --set "training.seed=$seed" --set "training.threads=$THREADS" 2> >(tee -a "$dir/seed-$seed/dense-eval.log" >&2)
}

glue() {
  local model=$1 task=$2 config seeds
  check_model "$model"
  seeds=$(seed_list "$SEEDS")
  case $task in
    SST-2) config=configs/glue/cpu/sst2$(suffix "$model").yaml ;;
    CoLA) config=configs/glue/cpu/cola$(suffix "$model").yaml ;;
    *) die "task must be SST-2 or CoLA, not '$task'" ;;
  esac
  [[ -d runs/small_${model}_mixed/checkpoints ]] || die "no runs/small_${model}_mixed: run '$0 pretrain $model' first"
  for seed in $seeds; do
    run_seed "runs/seeds-$task-$model" "$seed" "$task $model" glue --task "$task" --data "$GLUE" --config "$config" \
      --init-from "runs/small_${model}_mixed"
  done
}

listops() {
  local model=$1 seeds
  check_model "$model"
  seeds=$(seed_list "$LISTOPS_SEEDS")
  [[ -d data/lra/listops256 ]] || die "no data/lra/listops256: run '$0 data' first"
  for seed in $seeds; do
    run_seed "runs/seeds-listops-$model" "$seed" "ListOps $model" lra --task listops --data data/lra/listops256 \
      --config "configs/lra/cpu/listops$(suffix "$model").yaml"
  done
}

export DENSE_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
case ${1:-} in
  data) prep_data ;;
  pretrain) [[ $# -ge 2 ]] || die "usage: pretrain danet|bert"; shift; pretrain "$@" ;;
  glue) [[ $# -eq 3 ]] || die "usage: glue danet|bert SST-2|CoLA"; glue "$2" "$3" ;;
  listops) [[ $# -eq 2 ]] || die "usage: listops danet|bert"; listops "$2" ;;
  report) /usr/bin/python3 scripts/results/seeds_report.py ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
