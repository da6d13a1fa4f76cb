#!/usr/bin/env bash
# f16 stability (docs/results.md): does MaxNorm keep f16 training stable where LayerNorm diverges? The small DANet
# (MaxNorm, no LayerNorm; configs/small_danet.yaml) and the small BERT of its shape (LayerNorm;
# configs/small_bert.yaml) trained in f16 with dynamic loss scaling at the same raised learning rates, on the N 128
# shards of scripts/results/long_context.sh (run its `data` stage first).
#
#   scripts/results/f16_stability.sh run danet|bert LR [dense-train options...]
#       one run: runs/<PRECISION>-<model>-lr<LR>
#   scripts/results/f16_stability.sh sweep danet|bert    # the three rates of LRS, one after another
#   scripts/results/f16_stability.sh report              # table + plot (f16_stability_report.py)
#
# Environment: BIN (default build/apps), STEPS (default 600), LRS (default "2e-3 5e-3 1e-2": 2x, 5x and 10x the
# configs' 1e-3), THREADS (default 1: the DANet and BERT sweeps go side by side, one core each), PRECISION (default
# f16; f32 gives the control runs the report sets beside the f16 ones).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/apps}
STEPS=${STEPS:-600}
LRS=${LRS:-"2e-3 5e-3 1e-2"}
THREADS=${THREADS:-1}
PRECISION=${PRECISION:-f16}
die() { echo "f16_stability.sh: error: $*" >&2; exit 1; }

run_one() {
  local model=$1 lr=$2
  shift 2
  [[ $model == danet || $model == bert ]] || die "model must be danet or bert, not '$model'"
  [[ $PRECISION == f16 || $PRECISION == f32 ]] || die "PRECISION must be f16 or f32, not '$PRECISION'"
  [[ -d data/shards/long128 && -d data/shards/heldout128 ]] ||
    die "no N 128 shards: run scripts/results/long_context.sh data"
  /usr/bin/time -f "$PRECISION $model lr $lr: %e s wall, %M KiB max RSS" "$BIN/dense-train" \
    -c "configs/small_$model.yaml" --run-dir "runs/$PRECISION-$model-lr$lr" \
    --set "training.precision=$PRECISION" --set "training.optimizer.learning_rate=$lr" \
    --set "training.max_steps=$STEPS" --set "training.threads=$THREADS" \
    --set data.train=data/shards/long128 --set data.validation=data/shards/heldout128 \
    --set training.eval_every=200 --set training.eval_batches=20 --set checkpoint.every_steps=200 \
    --set logging.every_steps=10 "$@"
}

case ${1:-} in
  run) [[ $# -ge 3 ]] || die "usage: run danet|bert LR"; shift; run_one "$@" ;;
  sweep)
    [[ $# -eq 2 ]] || die "usage: sweep danet|bert"
    for lr in $LRS; do run_one "$2" "$lr" || echo "f16_stability.sh: the $2 run at lr $lr failed (see above)" >&2; done
    ;;
  report) /usr/bin/python3 scripts/results/f16_stability_report.py ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
