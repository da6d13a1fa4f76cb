#!/usr/bin/python3
"""Tables of the seed runs (scripts/results/seeds.sh): the mixed-data pretraining pair, then per task and model the
median over seeds, the spread (lowest to highest) and every seed's best-epoch value.

    scripts/results/seeds_report.py [--runs runs] [--keep docs/results/seeds]

Reads RUNS/small_<model>_mixed/metrics.jsonl (dense-train) and RUNS/seeds-<task>-<model>/results.json (dense-eval
glue / lra); a task that has not run yet is listed as missing. With --keep, copies what it read there (the
metrics and results files, in the same layout), so that `--runs docs/results/seeds` prints the tables of
docs/results.md after runs/ is gone.
"""
import argparse
import json
import os
import shutil
import statistics
import sys

from report_common import read_metrics

MODELS = [("danet", "DANet"), ("bert", "BERT (softmax)")]
# (the task's folder name in runs/seeds-<task>-<model>, its label; "%" in the label: shown as a percentage)
TASKS = [("SST-2", "SST-2 dev accuracy (%)"), ("CoLA", "CoLA dev MCC"), ("listops", "ListOps test accuracy (%)")]


def seed_values(results):
    """(seed, value, best epoch) per run, in the units of the table."""
    out = []
    for run in results["runs"]:
        if "test_accuracy" in run:  # dense-eval lra
            out.append((run["seed"], 100.0 * run["test_accuracy"], run["best_epoch"]))
        else:  # dense-eval glue: its main metric, accuracy as a percentage
            metric = results["main_metric"]
            value = run["best"][metric]
            out.append((run["seed"], 100.0 * value if metric == "accuracy" else value, run["best_epoch"]))
    return out


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
    for task, label in TASKS:
        percent = "%" in label
        for model, model_label in MODELS:
            path = os.path.join(runs_dir, f"seeds-{task}-{model}", "results.json")
            if not os.path.exists(path):
                print(f"| {label} | {model_label} | missing ({path}) | | | |")
                continue
            try:
                with open(path) as f:
                    results = json.load(f)
                values = seed_values(results)
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
                print(f"seeds_report.py: {path}: not a dense-eval results.json ({e})", file=sys.stderr)
                print(f"| {label} | {model_label} | unreadable ({path}) | | | |")
                continue
            v = [x for _, x, _ in values]
            per_seed = ", ".join(f"{s}: {fmt(x, percent)} ({epoch})" for s, x, epoch in values)
            print(f"| {label} | {model_label} | {len(v)} | **{fmt(statistics.median(v), percent)}** | "
                  f"{fmt(min(v), percent)} - {fmt(max(v), percent)} | {per_seed} |")
            if keep:
                keep_file(path, keep, f"seeds-{task}-{model}")


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
