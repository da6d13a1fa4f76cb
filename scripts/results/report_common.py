"""What the result reports share: reading a run's metrics.jsonl and writing a plot atomically."""
import json
import os
import sys


def read_metrics(path, who):
    """The training lines (with a loss) and the evaluation lines (with eval_loss) of a dense-train metrics.jsonl;
    a malformed line is skipped with a warning naming it."""
    rows, evals = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(f"{who}: {path}:{number}: not JSON, skipped", file=sys.stderr)
                continue
            if "eval_loss" in row:
                evals.append(row)
            elif "loss" in row:
                rows.append(row)
    return rows, evals


def save_figure(fig, png):
    """Writes the figure to png through a temporary file (a reader never sees half a PNG) and says where."""
    os.makedirs(os.path.dirname(png) or ".", exist_ok=True)
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, png)
    print(f"\nplot: {png}")
