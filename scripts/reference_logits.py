#!/usr/bin/python3
"""Logits of a densetrain checkpoint computed by the PyTorch reference (tests/reference), for checking an export.

    /usr/bin/python3 scripts/reference_logits.py CHECKPOINT --ids "2 51 179 4 3" [--ids ...] \
        [--head mlm|classifier] [--config CFG] [--float32] [--vocab-tokens V]

dense-eval reports losses and metrics, not logits; this prints, as JSON, what the model computes for the given
token-id rows (one --ids per row; shorter rows are padded with id 0 and attention mask 0): `logits`
[B, N, V] (mlm) or [B, num_labels] (classifier), in float64 unless --float32. The reference implementations are the
ones densetrain's golden tests hold the C++ forward pass to, and the ones tests/e2e/export compares onnxruntime and
Transformers.js with (docs/export.md). Token ids: dense-prep's WordPiece ids, e.g. Transformers.js's tokenizer on
an exported folder, which tests/e2e/export checks equal to them.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_onnx  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="reference_logits", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--ids", action="append", required=True, help="space-separated token ids of one row")
    ap.add_argument("--head", choices=("mlm", "classifier"), default="mlm")
    ap.add_argument("--config", help="model config (default: the run's config.yaml)")
    ap.add_argument("--float32", action="store_true", help="compute in float32 instead of float64")
    ap.add_argument("--vocab-tokens", type=int, help="keep the first V vocabulary logits (the tokens of vocab.txt)")
    a = ap.parse_args(argv)
    import torch
    try:
        weights_path, folder = export_onnx.find_weights(a.checkpoint)
        cfg_path = a.config or export_onnx.default_config(weights_path, folder)
        section = export_onnx.converter().load_model_section(cfg_path)
        weights, _ = export_onnx.load_weights(weights_path)
        mt, cfg = export_onnx.resolve_model(section, cfg_path, weights, weights_path)
        rows = [[int(x) for x in r.split()] for r in a.ids]
    except (export_onnx.ExportError, export_onnx.converter().ConvertError, ValueError) as e:
        print(f"reference_logits: error: {e}", file=sys.stderr)
        return 2
    N = max(len(r) for r in rows)
    ids = np.zeros((len(rows), N), dtype=np.int64)
    mask = np.zeros_like(ids)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = r
        mask[b, :len(r)] = 1
    dtype = torch.float32 if a.float32 else torch.float64
    ref = export_onnx.reference("bert_reference" if mt == "bert" else "danet_reference")
    section = {k: v for k, v in cfg.items() if not k.startswith("_")}   # resolved keys without the derived ones
    model = ref.BertReference(section) if mt == "bert" else ref.DANetReference(section)
    params = {k: torch.as_tensor(v, dtype=dtype) for k, v in weights.items()}
    ids_t, mask_t = torch.as_tensor(ids), torch.as_tensor(mask)
    labels = torch.zeros_like(ids_t) if a.head == "mlm" else None
    with torch.no_grad():
        out = model.forward(params, ids_t, mask_t, mlm_labels=labels)
    if a.head == "mlm":
        logits = out["mlm_logits"].reshape(len(rows), N, -1)
        if a.vocab_tokens:
            logits = logits[..., :a.vocab_tokens]
    else:
        logits = out["class_logits"]
    json.dump({"model_type": mt, "head": a.head, "dims": list(logits.shape), "input_ids": ids.tolist(),
               "attention_mask": mask.tolist(), "logits": logits.tolist()}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
