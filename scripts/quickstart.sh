#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained model: installs and builds (scripts/setup.sh), fetches the real
# BERT uncased vocabulary and a public English corpus (Project Gutenberg books, State of the Union addresses,
# the Brown Corpus), tokenizes it into packed shards with dense-prep, pretrains the tiny DANet of
# configs/tiny.yaml on the CPU for a few minutes (the MLM loss falls from about 10.3 to about 6), evaluates
# the masked-LM loss and accuracy on held-out text, and plots the curves. Idempotent: a re-run reuses what is
# there (shards are kept, training resumes from its last checkpoint; --fresh starts the training over).
#   QUICKSTART_STEPS  optimizer steps (default: the config's 600)
set -euo pipefail
cd "$(dirname "$0")/.."
FRESH=0
[ "${1:-}" = "--fresh" ] && FRESH=1

scripts/setup.sh
scripts/fetch_vocab.sh data/vocab
scripts/fetch_data.sh data/corpus

PREP=build/apps/dense-prep
TRAIN=build/apps/dense-train
echo "== dense-prep: corpus -> packed shards of 128 tokens"
# Train on the books and speeches; hold out the Brown Corpus (other authors, other genres) for evaluation.
"$PREP" pretrain data/corpus/gutenberg data/corpus/sotu --vocab data/vocab/vocab.txt -o data/shards/packed128 -N 128
"$PREP" pretrain data/corpus/brown --vocab data/vocab/vocab.txt -o data/shards/packed128_valid -N 128 --max-rows 2048
"$PREP" inspect data/shards/packed128/packed-00000.hdf5 --vocab data/vocab/vocab.txt --row 0 | sed -n '/^sample/,/^  text/p' | cut -c1-160

echo "== dense-train: configs/tiny.yaml on the CPU"
ARGS=(--config configs/tiny.yaml)
[ -n "${QUICKSTART_STEPS:-}" ] && ARGS+=(--set "training.max_steps=${QUICKSTART_STEPS}")
[ "$FRESH" = 1 ] && ARGS+=(--resume none --overwrite)  # the previous run is moved aside, not deleted
"$TRAIN" "${ARGS[@]}"

echo "== curves"
/usr/bin/python3 scripts/plot_metrics.py runs/tiny --out runs/tiny/metrics.png
echo "quickstart: done. Run folder runs/tiny (metrics.jsonl, train.log, checkpoints/, tensorboard/, metrics.png)"
