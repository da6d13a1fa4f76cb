#!/usr/bin/python3
"""GLUE metrics computed independently of src/eval/metrics.cpp, for its tests.

    metrics_reference.py IN.json OUT.json

IN: {"cases": [{"pred": [...], "label": [...], "kind": "binary" | "regression"}]}. OUT: one object per case:
binary -> accuracy, f1, mcc (numpy from the confusion matrix); regression -> pearson, spearman (scipy.stats).
"""
import json
import sys

import numpy as np
from scipy import stats


def binary(pred, label):
    pred, label = np.asarray(pred), np.asarray(label)
    cm = np.zeros((2, 2))
    for p, y in zip(pred, label):
        cm[y, p] += 1
    tn, fp, fn, tp = cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1]
    f1 = 0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    # MCC as the correlation coefficient of the two binary vectors (0 when either is constant).
    mcc = 0.0 if pred.std() == 0 or label.std() == 0 else float(np.corrcoef(pred, label)[0, 1])
    return {"accuracy": float((pred == label).mean()), "f1": float(f1), "mcc": mcc}


def regression(pred, label):
    return {"pearson": float(stats.pearsonr(pred, label)[0]), "spearman": float(stats.spearmanr(pred, label)[0])}


def main():
    cases = json.load(open(sys.argv[1]))["cases"]
    out = [binary(c["pred"], c["label"]) if c["kind"] == "binary" else regression(c["pred"], c["label"]) for c in cases]
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
