#!/usr/bin/python3
"""Plots a training run's metrics: loss (with evaluation loss), learning rate, throughput and, when the run
evaluated accuracy, evaluation accuracy against the optimizer step, into one PNG.

    scripts/plot_metrics.py RUN_DIR [--out PNG]      (default RUN_DIR/metrics.png)

Reads RUN_DIR/metrics.jsonl, one JSON object per line as dense-train writes it (keys step, loss, lr,
tokens_per_s; eval_loss and eval_accuracy on evaluation lines; other keys are ignored). Malformed lines are
skipped with a warning naming the line. Needs matplotlib (Debian python3-matplotlib) in /usr/bin/python3.
"""
import argparse
import json
import math
import os
import sys

# (key, axis label); a panel is drawn when any line has its key (loss and eval_loss share one).
PANELS = [
    (("loss", "eval_loss"), "loss"),
    (("lr",), "learning rate"),
    (("tokens_per_s",), "tokens / s"),
    (("eval_accuracy",), "eval accuracy"),
]
REQUIRED_PANELS = 3  # loss, lr and throughput are always drawn, empty ones saying so


def fail(msg):
    print(f"plot_metrics: {msg}", file=sys.stderr)
    sys.exit(1)


def is_number(v):
    # bool is an int in Python; NaN and inf (a diverged run) cannot be drawn.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load(path):
    """{key: {step: value}} for every numeric key."""
    series = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"plot_metrics: warning: {path}:{lineno}: not JSON ({e.msg}); skipped", file=sys.stderr)
                continue
            if not isinstance(row, dict):
                print(f"plot_metrics: warning: {path}:{lineno}: not a JSON object; skipped", file=sys.stderr)
                continue
            step = row.get("step")
            if not is_number(step):
                print(f"plot_metrics: warning: {path}:{lineno}: no numeric 'step'; skipped", file=sys.stderr)
                continue
            for key, value in row.items():
                if key != "step" and is_number(value):
                    # A resumed run logs again the steps after its checkpoint: the later value replaces the
                    # earlier one instead of drawing the line back over itself.
                    series.setdefault(key, {})[step] = value
    return series


def plot(series, out, title):
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    panels = [p for i, p in enumerate(PANELS) if i < REQUIRED_PANELS or any(k in series for k in p[0])]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for ax, (keys, label) in zip(axes[:, 0], panels):
        drawn = False
        for key in keys:
            points = sorted(series.get(key, {}).items())
            if not points:
                continue
            xs, ys = zip(*points)
            # Evaluations are sparse: markers keep a lone evaluation visible.
            style = dict(marker="o", markersize=3) if key.startswith("eval_") else dict(linewidth=1)
            ax.plot(xs, ys, label=key, **style)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, f"no {label} in the metrics", transform=ax.transAxes, ha="center", va="center",
                    color="gray")
        elif len(keys) > 1:
            ax.legend(loc="upper right")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a run folder holding metrics.jsonl")
    ap.add_argument("--out", help="the PNG to write (default RUN_DIR/metrics.png)")
    args = ap.parse_args()

    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        fail(f"{path} not found (is {args.run_dir} a run folder?)")
    try:
        series = load(path)
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    if not series:
        fail(f"{path} holds no metrics (empty, or no line with a numeric step)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail("matplotlib is not installed (Debian: apt-get install python3-matplotlib; run with /usr/bin/python3)")
    out = args.out or os.path.join(args.run_dir, "metrics.png")
    try:
        plot(series, out, os.path.basename(os.path.normpath(args.run_dir)))
    except OSError as e:
        fail(f"cannot write {out}: {e}")
    print(out)


if __name__ == "__main__":
    main()
