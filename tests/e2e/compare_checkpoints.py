#!/usr/bin/python3
"""Relative L2 distance between the tensors of two safetensors files (the data-parallel tests).

    compare_checkpoints.py A.safetensors B.safetensors MAX_RELATIVE [LABEL]

Prints `LABEL relative X` and exits 1 when the files hold other names or shapes, or when
||A - B|| / ||A|| >= MAX_RELATIVE (0 asks for bitwise equality).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import numpy as np  # noqa: E402
import safetensors_io  # noqa: E402


def load(path):
    return {k: v.double().numpy() for k, v in safetensors_io.load_file(path)[0].items()}


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    limit = float(sys.argv[3])
    label = sys.argv[4] if len(sys.argv) > 4 else "weights"
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        print(f"{label}: different tensors or shapes")
        return 1
    num = np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
    den = np.sqrt(sum((a[k] ** 2).sum() for k in a))
    rel = num / den if den > 0 else num
    print(f"{label} relative {rel:.2e}")
    return 0 if (rel < limit or (limit == 0 and num == 0)) else 1


if __name__ == "__main__":
    sys.exit(main())
