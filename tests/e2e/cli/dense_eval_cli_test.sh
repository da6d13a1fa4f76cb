#!/usr/bin/env bash
# dense-eval (and dense-train's --config) as a user runs them: bad flags, subcommands, config paths and
# checkpoint arguments each give exit status and a message naming what is wrong and what is expected; a run
# folder passed as --checkpoint is scored with its newest complete checkpoint, which the output names.
# Usage: dense_eval_cli_test.sh DENSE_EVAL DENSE_TRAIN DENSE_PREP TEST_DATA_DIR
set -uo pipefail
EVAL=$1 TRAIN=$2 PREP=$3 DATA=$4
VOCAB="$DATA/wordpiece_vocab_small.txt"
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# ---- subcommands and numeric flags (CLI11 exit codes: 105 a bad value, 106 a missing one, 109 extras) ----
expect "unknown subcommand lists the subcommands" 109 "unknown subcommand 'mml'; expected one of: mlm, glue, lra, logits" \
  "$EVAL" mml --checkpoint x --data y
expect "no subcommand lists the subcommands" 106 "a subcommand is required: mlm, glue, lra, logits" "$EVAL"
expect "mlm --batch -3 is refused" 105 "--batch: must be a positive integer \(got -3\)" \
  "$EVAL" mlm --checkpoint x --data y --batch -3
expect "mlm --batch 0 is refused" 105 "--batch: must be a positive integer \(got 0\)" \
  "$EVAL" mlm --checkpoint x --data y --batch 0
expect "mlm --max-batches -1 is refused" 105 "--max-batches: must be a positive integer" \
  "$EVAL" mlm --checkpoint x --data y --max-batches -1
expect "mlm --batch x is not a number" 105 "--batch: 'x' is not an integer" \
  "$EVAL" mlm --checkpoint x --data y --batch x
expect "glue --seeds 0 is refused" 105 "--seeds: must be a positive integer \(got 0\)" \
  "$EVAL" glue --task RTE --data x --config c.yaml -o o --seeds 0
expect "glue --max-train-rows -1 is refused" 105 "--max-train-rows: must be 0 or more \(got -1\)" \
  "$EVAL" glue --task RTE --data x --config c.yaml -o o --max-train-rows -1
expect "lra --max-eval-rows -2 is refused" 105 "--max-eval-rows: must be 0 or more \(got -2\)" \
  "$EVAL" lra --task listops --data x --config c.yaml -o o --max-eval-rows -2
expect "lra --seeds -1 is refused" 105 "--seeds: must be a positive integer" \
  "$EVAL" lra --task listops --data x --config c.yaml -o o --seeds -1
expect "logits --head must be mlm or classifier" 105 "--head: .*not in \{mlm,classifier\}" \
  "$EVAL" logits --checkpoint x --head pooler --text hi -o o.npy
expect "logits needs -o" 106 "--out is required" "$EVAL" logits --checkpoint x --text hi

# ---- a folder given as --config is an error naming it (it used to load as an all-defaults config) ----
mkdir -p "$WORK/cfgdir"
expect "dense-train --config FOLDER --print-config" 1 "cfgdir' is a folder; expected a YAML config file" \
  "$TRAIN" --config "$WORK/cfgdir" --print-config
: > "$WORK/weights.safetensors"
expect "dense-eval mlm --config FOLDER" 1 "cfgdir' is a folder; expected a YAML config file" \
  "$EVAL" mlm --checkpoint "$WORK/weights.safetensors" --config "$WORK/cfgdir" --data "$WORK"

# ---- --checkpoint: what is accepted, and what is said otherwise ----
expect "a missing checkpoint says what is expected" 1 \
  "--checkpoint .*nope: no such file or folder; expected a model.safetensors file, a checkpoint folder" \
  "$EVAL" mlm --checkpoint "$WORK/nope" --data "$WORK"
mkdir -p "$WORK/empty"
expect "a folder without checkpoints says what is expected" 1 \
  "empty: a folder without checkpoints \(no step-N folder in it\); expected .*run folder" \
  "$EVAL" mlm --checkpoint "$WORK/empty" --data "$WORK"

# A real run: packed shards of the test corpus, one training step of a tiny DANet, then the run folder as
# --checkpoint. A newer step whose checksums are damaged must be skipped, with a warning, for the complete one.
if ! "$PREP" -q -j 1 pretrain "$DATA/corpus" --vocab "$VOCAB" -o "$WORK/shards" -N 16 > "$WORK/out" 2>&1; then
  bad "dense-prep makes the test shards"
else
  cat > "$WORK/tiny.yaml" <<EOF
name: eval-cli
model:
  model_type: danet
  vocab_size: 560
  hidden_size: 16
  num_hidden_layers: 1
  intermediate_size: 2
  max_position_embeddings: 16
data:
  train: $WORK/shards
  vocab: $VOCAB
  seq_len: 16
training:
  max_steps: 1
  global_batch: 4
  threads: 1
checkpoint:
  every_steps: 0
logging:
  progress: false
EOF
  expect "dense-train one step" 0 "at step 1" "$TRAIN" -q --config "$WORK/tiny.yaml" --run-dir "$WORK/run" --resume none
  # The run's log records the CPU's threads and GEMM kernels (its speed, and the last bits of its results).
  core=$("$TRAIN" --version 2>/dev/null | sed -n 's/.* (OpenBLAS \(.*\) kernels)$/\1/p')
  if [ -n "$core" ] && grep -qF "on cpu (1 thread(s), OpenBLAS $core kernels)" "$WORK/run/train.log"; then
    ok "train.log names the threads and OpenBLAS kernels"
  else bad "train.log names the threads and OpenBLAS kernels (--version: '$core')"; fi
  mkdir -p "$WORK/run/checkpoints/step-00000009"
  echo '{' > "$WORK/run/checkpoints/step-00000009/checksums.json"
  expect "a run folder is scored with its newest complete checkpoint" 0 \
    "checkpoint: .*run/checkpoints/step-00000001 \(the newest complete checkpoint in .*run, step 1\)" \
    "$EVAL" mlm --checkpoint "$WORK/run" --data "$WORK/shards" --json "$WORK/mlm.json"
  if grep -q "warning: skipping checkpoint .*step-00000009" "$WORK/out"; then ok "the damaged newer checkpoint is named"
  else bad "the damaged newer checkpoint is named"; fi
  # Six significant digits on screen, the exact double in the JSON.
  if /usr/bin/python3 - "$WORK/mlm.json" "$WORK/out" > "$WORK/py.out" 2>&1 <<'PYEOF'
import json, re, sys
j = json.load(open(sys.argv[1]))
screen = open(sys.argv[2]).read()
m = re.search(r"loss (\S+), accuracy (\S+) over", screen)
assert m, screen
assert m.group(1) == f"{j['loss']:.6g}" and m.group(2) == f"{j['accuracy']:.6g}", (m.groups(), j)
assert len(m.group(1).replace(".", "").lstrip("0")) >= 5, m.group(1)  # not cut to 4 decimals
text = open(sys.argv[1]).read()
assert repr(j["loss"]) in text, "the JSON loss is not the shortest round-trip text of the double"
PYEOF
  then ok "loss: 6 digits on screen, round-trip in the JSON"; else cp "$WORK/py.out" "$WORK/out"; bad "loss: 6 digits on screen, round-trip in the JSON"; fi
  # dense-eval logits on texts (dense-prep's WordPiece, the config's data.vocab) and on ids; mlm --dump-logits.
  expect "logits on texts: the shape and the files read" 0 \
    "logits\.safetensors \[2, 13, 560\] float32 \(mlm head\)" \
    "$EVAL" logits --checkpoint "$WORK/run" --text "the cat sat on the [MASK] ." --text "a dog" -o "$WORK/logits.safetensors"
  if grep -q "vocab: .*wordpiece_vocab_small.txt" "$WORK/out"; then ok "... tokenized with the config's data.vocab"
  else bad "... tokenized with the config's data.vocab"; fi
  expect "logits on ids, as .npy" 0 "logits\.npy \[1, 4, 560\] float32" \
    "$EVAL" logits --checkpoint "$WORK/run" --ids "2 40 41 3" -o "$WORK/logits.npy"
  expect "logits: no input" 1 "no input: give --text, --texts FILE or --ids" \
    "$EVAL" logits --checkpoint "$WORK/run" -o "$WORK/x.npy"
  expect "logits: texts and ids together" 1 "give texts \(--text / --texts\) or token ids \(--ids\), not both" \
    "$EVAL" logits --checkpoint "$WORK/run" --text a --ids 2 -o "$WORK/x.npy"
  expect "logits: an id outside the vocabulary" 1 "--ids #1: token id 999 is outside the model's vocabulary of 560" \
    "$EVAL" logits --checkpoint "$WORK/run" --ids "2 999 3" -o "$WORK/x.npy"
  expect "logits: ids longer than the positions" 1 "--ids #1: 17 tokens, but the model has 16 positions" \
    "$EVAL" logits --checkpoint "$WORK/run" --ids "$(seq -s ' ' 5 21)" -o "$WORK/x.npy"
  expect "mlm --dump-logits" 0 "logits: .*mlm_logits.safetensors" \
    "$EVAL" mlm --checkpoint "$WORK/run" --data "$WORK/shards" --max-batches 2 --dump-logits "$WORK/mlm_logits.safetensors"
  if /usr/bin/python3 - "$WORK" "$(dirname "$0")/../../reference" > "$WORK/out" 2>&1 <<'PYEOF'
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import safetensors_io as sio
w = sys.argv[1]
t, meta = sio.load_file(os.path.join(w, "logits.safetensors"))
ids, mask, logits = t["input_ids"].numpy(), t["attention_mask"].numpy(), t["logits"].numpy()
assert meta["head"] == "mlm" and logits.dtype == np.float32, meta
assert ids[0, 0] == 2 and ids[0, 10] == 4 and ids[0, 12] == 3 and mask[0].all(), ids  # [CLS] ... [MASK] . [SEP]
assert mask[1].tolist() == [1] * 4 + [0] * 9 and ids[1, 3] == 3 and not ids[1, 4:].any(), (ids, mask)  # [PAD]
npy = np.load(os.path.join(w, "logits.npy"))
assert npy.shape == (1, 4, 560) and npy.dtype == np.float32
assert not [f for f in os.listdir(w) if ".tmp-" in f], os.listdir(w)  # written through a temporary, renamed
t, _ = sio.load_file(os.path.join(w, "mlm_logits.safetensors"))
pos, labels = t["positions"].numpy(), t["mlm_labels"].numpy()
assert len(pos) == (labels >= 0).sum() == t["logits"].shape[0] > 0 and t["input_ids"].shape == (8, 16), pos.shape
assert (labels[pos[:, 0], pos[:, 1]] >= 0).all()
PYEOF
  then ok "the logits files: inputs, padding, .npy, masked positions"; else bad "the logits files: inputs, padding, .npy, masked positions"; fi
  rm -rf "$WORK/run/checkpoints/step-00000001"
  expect "a run folder whose checkpoints are all damaged" 1 "no complete checkpoint in .*run/checkpoints:" \
    "$EVAL" mlm --checkpoint "$WORK/run" --data "$WORK/shards"
  if grep -q "skipping checkpoint .*step-00000009.*checksums.json: not valid JSON" "$WORK/out"; then
    ok "... and says why each was skipped"
  else
    bad "... and says why each was skipped"
  fi
fi

echo "dense-eval cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
