#!/usr/bin/python3
"""Tables of the seed runs (scripts/results/seeds.sh): the mixed-data pretraining pair, then per task and model the
median over seeds, the spread (lowest to highest) and every seed's best-epoch value.

    scripts/results/seeds_report.py [--runs runs] [--keep docs/results/seeds]

Reads RUNS/small_<model>_mixed/metrics.jsonl (dense-train) and the dense-eval glue / lra results.json of each task
and model: RUNS/seeds-<task>-<model>/seed-<s>/results.json, one per seed as seeds.sh runs them, or
RUNS/seeds-<task>-<model>/results.json holding every seed (one `dense-eval --seeds N`). A task that has not run yet
is listed as missing; seed folders without results.json (running, or interrupted) are counted as unfinished. With
--keep, copies what it read there (the metrics and results files, in the same layout), so that `--runs
docs/results/seeds` prints the tables of docs/results.md after runs/ is gone.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import sys

from report_common import read_metrics

MODELS = [("danet", "DANet"), ("bert", "BERT (softmax)")]
# (the task's folder name in runs/seeds-<task>-<model>, its label, whether its values are fractions shown as percent)
TASKS = [("SST-2", "SST-2 dev accuracy (%)", True), ("CoLA", "CoLA dev MCC", False),
         ("listops", "ListOps test accuracy (%)", True)]


def seed_values(results, percent):
    """(seed, value, best epoch) per run: dense-eval lra's test accuracy or dense-eval glue's main metric, times 100
    when percent."""
    scale = 100.0 if percent else 1.0
    out = []
    for run in results["runs"]:
        value = run["test_accuracy"] if "test_accuracy" in run else run["best"][results["main_metric"]]
        out.append((run["seed"], scale * value, run["best_epoch"]))
    return out


def results_files(run_dir):
    """(the results.json files of one task and model, its seed folders without one): the file for all seeds, else
    one per seed-<s> folder, in order of seed."""
    whole = os.path.join(run_dir, "results.json")
    if os.path.exists(whole):
        return [whole], []

    def seed_number(folder):
        name = os.path.basename(folder)[len("seed-"):]
        return int(name) if name.isdigit() else -1

    folders = sorted((f for f in glob.glob(os.path.join(glob.escape(run_dir), "seed-*")) if os.path.isdir(f)),
                     key=seed_number)
    done = [os.path.join(f, "results.json") for f in folders if os.path.exists(os.path.join(f, "results.json"))]
    unfinished = [os.path.basename(f) for f in folders if not os.path.exists(os.path.join(f, "results.json"))]
    return done, unfinished


def fmt(value, percent):
    return f"{value:.2f}" if percent else f"{value:.3f}"


def keep_file(path, keep, run):
    """Copies a run's file to keep/<run>/ under its own name, so that --runs keep prints the same tables."""
    os.makedirs(os.path.join(keep, run), exist_ok=True)
    shutil.copyfile(path, os.path.join(keep, run, os.path.basename(path)))


def pretraining_table(runs_dir, keep):
    print("| model | steps | last train loss | held-out MLM loss / accuracy at each evaluation |")
    print("|---|---|---|---|")
    for model, label in MODELS:
        path = os.path.join(runs_dir, f"small_{model}_mixed", "metrics.jsonl")
        if not os.path.exists(path):
            print(f"| {label} | missing ({path}) | | |")
            continue
        rows, evals = read_metrics(path, "seeds_report.py")
        if not rows:
            print(f"| {label} | no training line in {path} | | |")
            continue
        evaluated = ", ".join(f"{e['step']}: {e['eval_loss']:.3f} / {100 * e['eval_accuracy']:.2f}%" for e in evals)
        print(f"| {label} | {rows[-1]['step']} | {rows[-1]['loss']:.3f} | {evaluated} |")
        if keep:
            keep_file(path, keep, f"small_{model}_mixed")


def seeds_table(runs_dir, keep):
    print("| task | model | seeds | median | spread (lowest - highest) | per seed: value (best epoch) |")
    print("|---|---|---|---|---|---|")
    for task, label, percent in TASKS:
        for model, model_label in MODELS:
            run = f"seeds-{task}-{model}"
            paths, unfinished = results_files(os.path.join(runs_dir, run))
            # Shown beside the count of seeds, so that a median over fewer seeds than planned is not mistaken for all.
            pending = f" (unfinished: {', '.join(unfinished)})" if unfinished else ""
            if not paths:
                print(f"| {label} | {model_label} | missing ({os.path.join(runs_dir, run)}){pending} | | | |")
                continue
            values, unreadable = [], None
            for path in paths:
                try:
                    with open(path) as f:
                        values += seed_values(json.load(f), percent)
                except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
                    print(f"seeds_report.py: {path}: not a dense-eval results.json ({e})", file=sys.stderr)
                    unreadable = path
                    break
            if unreadable:
                print(f"| {label} | {model_label} | unreadable ({unreadable}) | | | |")
                continue
            values.sort()
            v = [x for _, x, _ in values]
            per_seed = ", ".join(f"{s}: {fmt(x, percent)} ({epoch})" for s, x, epoch in values)
            print(f"| {label} | {model_label} | {len(v)}{pending} | **{fmt(statistics.median(v), percent)}** | "
                  f"{fmt(min(v), percent)} - {fmt(max(v), percent)} | {per_seed} |")
            if keep:
                for path in paths:
                    keep_file(path, keep, os.path.relpath(os.path.dirname(path), runs_dir))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--keep", default=None, help="copy the files read into this folder")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    print("Pretraining on mixed shards\n")
    pretraining_table(args.runs, args.keep)
    print("\nOver seeds\n")
    seeds_table(args.runs, args.keep)


if __name__ == "__main__":
    main()
