#!/usr/bin/python3
"""Tables and the plot of the long-context runs (scripts/results/long_context.sh): MLM loss and accuracy on the
held-out long documents at every evaluation length, for each model and stage, and each stage's training speed.

    scripts/results/long_context_report.py [--runs runs] [--png docs/results/long_context.png]

Reads RUNS/long-eval/<model>-<stage>-N<N>.json (dense-eval mlm --json) and RUNS/<run>/metrics.jsonl
(dense-train). Prints Markdown tables; writes the plot (loss and accuracy against evaluation length, one line per
model and stage). A missing evaluation is a blank cell and no point, never a guess. Needs matplotlib.
"""
import argparse
import json
import os
import statistics
import sys

from report_common import read_metrics, save_figure

MODELS = [("danet", "DANet"), ("bert", "BERT (softmax)")]
STAGES = ["128", "4k", "16k"]
LENGTHS = [128, 512, 2048, 4096, 16384]


def run_name(model, stage):
    return f"long{stage}" + ("_bert" if model == "bert" else "")


def load_eval(runs, model, stage, n):
    path = os.path.join(runs, "long-eval", f"{model}-{stage}-N{n}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def training_summary(runs, model, stage):
    path = os.path.join(runs, run_name(model, stage), "metrics.jsonl")
    if not os.path.exists(path):
        return None
    rows, _ = read_metrics(path, "long_context_report")
    if not rows:
        return None
    last = rows[-1]
    return {"steps": last["step"], "tokens": last["tokens"], "loss": last["loss"],
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--png", default="docs/results/long_context.png")
    args = ap.parse_args()

    print("| model | stage | steps | tokens seen | final train loss | training tokens/s (median) |")
    print("|---|---|---|---|---|---|")
    for model, label in MODELS:
        for stage in STAGES:
            s = training_summary(args.runs, model, stage)
            if s:
                print(f"| {label} | N {stage} | {s['steps']} | {s['tokens']:,} | {s['loss']:.3f} | "
                      f"{s['tokens_per_s']:,.0f} |")
    print()
    print("| model | stage | " + " | ".join(f"N {n}" for n in LENGTHS) + " |")
    print("|---|---|" + "---|" * len(LENGTHS))
    curves = []
    for model, label in MODELS:
        for stage in STAGES:
            cells, xs, loss, acc = [], [], [], []
            for n in LENGTHS:
                e = load_eval(args.runs, model, stage, n)
                if e is None:
                    cells.append("")
                    continue
                cells.append(f"{e['loss']:.3f} / {100 * e['accuracy']:.2f}%")
                xs.append(n)
                loss.append(e["loss"])
                acc.append(e["accuracy"])
            if xs:
                print(f"| {label} | N {stage} | " + " | ".join(cells) + " |")
                curves.append((label, stage, xs, loss, acc))
    if not curves:
        print("long_context_report: no evaluation found under " + os.path.join(args.runs, "long-eval"), file=sys.stderr)
        return 1

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"DANet": "-", "BERT (softmax)": "--"}
    colors = {"128": "tab:blue", "4k": "tab:orange", "16k": "tab:green"}
    for label, stage, xs, loss, acc in curves:
        kw = dict(linestyle=styles[label], color=colors[stage], marker="o" if label == "DANet" else "s",
                  label=f"{label}, trained to N {stage}")
        axes[0].plot(xs, loss, **kw)
        axes[1].plot(xs, [100 * a for a in acc], **kw)
    for ax, what in zip(axes, ["MLM loss", "MLM accuracy (%)"]):
        ax.set_xscale("log", base=2)
        ax.set_xticks(LENGTHS)
        ax.set_xticklabels([str(n) for n in LENGTHS])
        ax.set_xlabel("evaluation length N (tokens per row)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Held-out long documents (2 Gutenberg books + WikiText-2 test), small DANet vs softmax BERT")
    fig.tight_layout()
    save_figure(fig, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
