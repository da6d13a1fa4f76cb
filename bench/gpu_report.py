#!/usr/bin/env python3
"""Joins dense_bench_gpu's and torch_gpu_baselines.py's CSV rows (section,key,value) into one markdown table
per section with the ratio densetrain / PyTorch (bench/gpu_check.sh). Usage: gpu_report.py DENSE.csv TORCH.csv
A row present on one side only is shown with '-' on the other (a baseline that failed, a section not run)."""
import sys

UNITS = {"gemm": "TFLOP/s", "train": "", "infer": "tokens/s", "attention": "TFLOP/s", "attention_fused": "TFLOP/s",
         "longest": "tokens"}
# The paper's H100 inference throughput (tokens/s) for DANet-BERT-Large, the targets.
PAPER_INFER = {"128": 772e3, "1024": 700e3, "16384": 701e3, "131072": 690e3}


def read(path):
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) == 3:
                    rows[(parts[0], parts[1])] = float(parts[2])
    except OSError as e:
        print(f"gpu_report: {path}: {e}", file=sys.stderr)
    return rows


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    dense, torch = read(sys.argv[1]), read(sys.argv[2])
    # Both of our attention paths are compared with the same SDPA rows.
    for (s, k), v in list(torch.items()):
        if s == "attention":
            torch[("attention_fused", k)] = v
    sections = []
    for s, _ in list(dense) + list(torch):
        if s not in sections:
            sections.append(s)
    for s in sections:
        keys = []
        for (sec, k) in list(dense) + list(torch):
            if sec == s and k not in keys:
                keys.append(k)
        paper = s == "infer"
        print(f"\n### {s} {('(' + UNITS.get(s, '') + ')') if UNITS.get(s) else ''}\n")
        print("| key | densetrain | PyTorch | ratio |" + (" paper (H100) | vs paper |" if paper else ""))
        print("| --- | ---: | ---: | ---: |" + (" ---: | ---: |" if paper else ""))
        for k in keys:
            a, b = dense.get((s, k)), torch.get((s, k))
            ratio = f"{a / b:.2f}x" if a is not None and b else "-"
            line = f"| {k} | {fmt(a)} | {fmt(b)} | {ratio} |"
            if paper:
                p = PAPER_INFER.get(k)
                line += f" {fmt(p)} | {f'{a / p:.2f}x' if a is not None and p else '-'} |"
            print(line)
    return 0 if dense else 1


if __name__ == "__main__":
    sys.exit(main())
