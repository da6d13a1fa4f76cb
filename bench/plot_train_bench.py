#!/usr/bin/env python3
"""Plots dense_bench_train's CSV (N, batch, danet_tokens_per_s, bert_tokens_per_s) to a PNG.
Usage: /usr/bin/python3 bench/plot_train_bench.py bench.csv docs/bench_train_cpu.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
n = [int(r["N"]) for r in rows]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(n, [float(r["danet_tokens_per_s"]) for r in rows], "o-", label="DANet (DenseAttention)")
ax.plot(n, [float(r["bert_tokens_per_s"]) for r in rows], "s-", label="BERT (softmax)")
ax.set_xscale("log", base=2)
ax.set_xlabel("sequence length N")
ax.set_ylabel("training tokens / s (CPU, 2 threads)")
ax.set_title("d=256, L=4, FFN 1024, fixed tokens per step")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(sys.argv[2])
