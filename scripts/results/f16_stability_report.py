#!/usr/bin/python3
"""Table and plot of the f16 stability sweep (scripts/results/f16_stability.sh): per model and learning rate the
loss curve, skipped (overflowed) steps, the loss scale, and whether the run diverged.

    scripts/results/f16_stability_report.py [--runs runs] [--png docs/results/f16_stability.png]

Reads RUNS/f16-<model>-lr<LR>/metrics.jsonl (dense-train), and RUNS/f32-<model>-lr<LR>/ where there are f32
control runs (PRECISION=f32 f16_stability.sh run ...): the same model and rate without f16. A run "diverged" when
its loss became non-finite, or when its last logged loss is above its first (training made things worse), or when
the loss scale fell to its floor; the table says which. Malformed lines are skipped with a warning naming the
line. Needs matplotlib.
"""
import argparse
import glob
import math
import os
import re
import sys

from report_common import read_metrics, save_figure

LABELS = {"danet": "DANet (MaxNorm)", "bert": "BERT (LayerNorm)"}


def verdict(rows):
    losses = [r["loss"] for r in rows]
    if any(not math.isfinite(x) for x in losses):
        return "diverged (non-finite loss)"
    if rows and rows[-1].get("loss_scale", 2.0) <= 1.0:
        return "diverged (loss scale at its floor)"
    if len(losses) > 1 and losses[-1] > losses[0]:
        return "diverged (loss above its start)"
    return "stable"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--png", default="docs/results/f16_stability.png")
    args = ap.parse_args()
    runs = []
    for path in sorted(glob.glob(os.path.join(args.runs, "f*-*-lr*", "metrics.jsonl"))):
        m = re.match(r"(f16|f32)-(danet|bert)-lr(.+)", os.path.basename(os.path.dirname(path)))
        if not m:
            continue
        rows, evals = read_metrics(path, "f16_stability_report")
        if rows:
            runs.append((m.group(2), float(m.group(3)), m.group(3), m.group(1), rows, evals))
    if not runs:
        print(f"f16_stability_report: no runs/f16-<model>-lr<LR>/metrics.jsonl under {args.runs}", file=sys.stderr)
        return 1
    runs.sort(key=lambda r: (r[0] != "danet", r[1], r[3]))
    print("| model | learning rate | precision | steps | first / min / last train loss | last eval loss / accuracy | "
          "skipped steps | last loss scale | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, _, lr, precision, rows, evals in runs:
        losses = [r["loss"] for r in rows]
        finite = [x for x in losses if math.isfinite(x)]
        ev = evals[-1] if evals else None
        ev_text = f"{ev['eval_loss']:.3f} / {100 * ev['eval_accuracy']:.2f}%" if ev else ""
        scale_text = f"{rows[-1]['loss_scale']:g}" if "loss_scale" in rows[-1] else "-"  # f32 scales nothing
        curve = f"{losses[0]:.3f} / {min(finite):.3f} / {losses[-1]:.3f}"
        print(f"| {LABELS[model]} | {lr} | {precision} | {rows[-1]['step']} | {curve} | {ev_text} | "
              f"{rows[-1].get('skipped_steps', 0)} | {scale_text} | {verdict(rows)} |")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for col, model in enumerate(["danet", "bert"]):
        colors = {}
        for m, _, lr, precision, rows, _ in runs:
            if m != model:
                continue
            steps = [r["step"] for r in rows]
            # One colour per rate; the f32 control of a rate is its dashed twin (it has no loss scale).
            color = colors.setdefault(lr, f"C{len(colors)}")
            style = "-" if precision == "f16" else "--"
            axes[0][col].plot(steps, [r["loss"] for r in rows], style, color=color, label=f"lr {lr} {precision}")
            if precision == "f16":
                axes[1][col].plot(steps, [r.get("loss_scale", float("nan")) for r in rows], color=color,
                                  label=f"lr {lr}")
        axes[0][col].set_title(f"{LABELS[model]}: f16, f32 control dashed")
        axes[0][col].set_ylabel("training loss")
        axes[1][col].set_ylabel("loss scale")
        axes[1][col].set_yscale("log", base=2)
        axes[1][col].set_xlabel("step")
        for ax in (axes[0][col], axes[1][col]):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
