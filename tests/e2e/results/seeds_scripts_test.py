#!/usr/bin/python3
"""Tests of scripts/results/seeds_report.py and the argument checks of scripts/results/seeds.sh
(run: /usr/bin/python3 tests/e2e/results/seeds_scripts_test.py).

The report's inputs are real dense-eval outputs kept in docs/results/: the CoLA results.json of three seeds each
(one `dense-eval glue --seeds 3`) and a ListOps results.json (`dense-eval lra`). Split into one file per seed-<s>
folder, as seeds.sh now writes them, they must give the same table rows as the whole files.

Plain asserts; prints one line per test and "N passed, M failed"; exits non-zero on any failure.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
REPORT = os.path.join(REPO, "scripts", "results", "seeds_report.py")
SEEDS_SH = os.path.join(REPO, "scripts", "results", "seeds.sh")
KEPT = os.path.join(REPO, "docs", "results", "seeds")
LISTOPS = os.path.join(REPO, "docs", "results", "lra-listops-cpu-danet.json")


def report(runs, *extra):
    p = subprocess.run([sys.executable, REPORT, "--runs", runs, *extra], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


def row(out, task, model):
    """The seed table's row of task and model (model 'DANet' or 'BERT')."""
    hits = [line for line in out.splitlines() if line.startswith(f"| {task}") and f"| {model}" in line]
    assert len(hits) == 1, f"{task} {model}: {hits}\n{out}"
    return hits[0]


def load(path):
    with open(path) as f:
        return json.load(f)


def write_per_seed(results, run_dir):
    """results.json split into run_dir/seed-<s>/results.json, each holding its one run, as seeds.sh writes them."""
    for run in results["runs"]:
        one = dict(results, runs=[run])
        os.makedirs(os.path.join(run_dir, f"seed-{run['seed']}"))
        with open(os.path.join(run_dir, f"seed-{run['seed']}", "results.json"), "w") as f:
            json.dump(one, f)


def test_per_seed_folders_give_the_rows_of_the_whole_file(tmp):
    whole, _ = report(KEPT)
    for model in ("danet", "bert"):
        write_per_seed(load(os.path.join(KEPT, f"seeds-CoLA-{model}", "results.json")),
                       os.path.join(tmp, f"seeds-CoLA-{model}"))
    split, _ = report(tmp)
    for model in ("DANet", "BERT"):
        assert row(split, "CoLA", model) == row(whole, "CoLA", model), (split, whole)
        assert "| 3 | **" in row(split, "CoLA", model), row(split, "CoLA", model)


def test_seeds_are_ordered_by_number_and_the_median_is_over_all(tmp):
    results = load(LISTOPS)
    base = results["runs"][0]
    # Seeds 2, 10 and 9 with test accuracies 0.30, 0.50, 0.40: the median is 40.00 and seed 10 is listed last.
    results["runs"] = [dict(base, seed=s, test_accuracy=a) for s, a in ((2, 0.30), (10, 0.50), (9, 0.40))]
    write_per_seed(results, os.path.join(tmp, "seeds-listops-danet"))
    out, _ = report(tmp)
    r = row(out, "ListOps", "DANet")
    assert "| 3 | **40.00** | 30.00 - 50.00 |" in r, r
    assert r.index("2: 30.00") < r.index("9: 40.00") < r.index("10: 50.00"), r


def test_seed_folders_without_results_are_named_as_unfinished(tmp):
    run_dir = os.path.join(tmp, "seeds-listops-danet")
    results = load(LISTOPS)
    write_per_seed(results, run_dir)
    os.makedirs(os.path.join(run_dir, "seed-3"))  # a seed that was interrupted (or is running): its log, no results
    with open(os.path.join(run_dir, "seed-3", "dense-eval.log"), "w") as f:
        f.write("lra listops: seed 3 (1 of 1)\n")
    os.makedirs(os.path.join(tmp, "seeds-listops-bert", "seed-1"))
    out, _ = report(tmp)
    assert "| 1 (unfinished: seed-3) | **39.75** |" in row(out, "ListOps", "DANet"), row(out, "ListOps", "DANet")
    assert "missing (" in row(out, "ListOps", "BERT") and "(unfinished: seed-1)" in row(out, "ListOps", "BERT"), out


def test_one_file_for_all_seeds_is_read_before_seed_folders(tmp):
    run_dir = os.path.join(tmp, "seeds-listops-bert")
    results = load(LISTOPS)
    write_per_seed(results, run_dir)
    only = dict(results, runs=[dict(results["runs"][0], seed=7, test_accuracy=0.25)])
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(only, f)
    out, _ = report(tmp)
    assert "| 1 | **25.00** |" in row(out, "ListOps", "BERT"), row(out, "ListOps", "BERT")


def test_a_malformed_seed_file_is_named_and_the_other_rows_still_print(tmp):
    write_per_seed(load(os.path.join(KEPT, "seeds-CoLA-danet", "results.json")), os.path.join(tmp, "seeds-CoLA-danet"))
    bad = os.path.join(tmp, "seeds-SST-2-bert", "seed-2", "results.json")
    os.makedirs(os.path.dirname(bad))
    with open(bad, "w") as f:
        f.write('{"runs": [')
    out, err = report(tmp)
    assert f"unreadable ({bad})" in row(out, "SST-2", "BERT"), row(out, "SST-2", "BERT")
    assert bad in err and "not a dense-eval results.json" in err, err
    assert "| 3 | **" in row(out, "CoLA", "DANet"), row(out, "CoLA", "DANet")
    assert "missing" in row(out, "SST-2", "DANet"), row(out, "SST-2", "DANet")


def test_keep_copies_what_it_read_and_reprints_the_same_tables(tmp):
    runs, keep = os.path.join(tmp, "runs"), os.path.join(tmp, "keep")
    shutil.copytree(KEPT, runs)
    # Seed folders written here, not whatever ListOps seeds KEPT holds today: the test must not change as seeds land.
    shutil.rmtree(os.path.join(runs, "seeds-listops-danet"), ignore_errors=True)
    write_per_seed(load(LISTOPS), os.path.join(runs, "seeds-listops-danet"))
    first, _ = report(runs, "--keep", keep)
    assert os.path.exists(os.path.join(keep, "seeds-listops-danet", "seed-1", "results.json"))
    assert os.path.exists(os.path.join(keep, "small_danet_mixed", "metrics.jsonl"))
    again, _ = report(keep)
    # Rows of tasks that have not run name the folder they looked in; everything else is the same.
    assert again.replace(keep, runs) == first, (first, again)


def test_seeds_sh_refuses_bad_arguments_before_running_anything(tmp):
    cases = [
        ({"ONLY_SEED": "x"}, ["glue", "danet", "SST-2"], "ONLY_SEED must be a positive integer, not 'x'"),
        ({"ONLY_SEED": "0"}, ["listops", "bert"], "ONLY_SEED must be a positive integer, not '0'"),
        ({"SEEDS": "three"}, ["glue", "bert", "CoLA"], "the seed count must be a positive integer, not 'three'"),
        ({}, ["glue", "gpt", "CoLA"], "model must be danet or bert, not 'gpt'"),
        ({}, ["glue", "danet", "MNLI"], "task must be SST-2 or CoLA, not 'MNLI'"),
    ]
    # BIN points nowhere: a check that let the stage through would fail on the missing binary instead.
    for env, args, message in cases:
        p = subprocess.run(["bash", SEEDS_SH, *args], capture_output=True, text=True,
                           env=dict(os.environ, BIN=os.path.join(tmp, "no-bin"), **env))
        assert p.returncode != 0, (args, env, p.stdout)
        assert f"seeds.sh: error: {message}" in p.stderr, (args, env, p.stderr)


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        tmp = tempfile.mkdtemp(prefix="seeds_scripts_test.")
        try:
            fn(tmp)
            print(f"PASS {name}")
            passed += 1
        except Exception:
            print(f"FAIL {name}")
            traceback.print_exc()
            failed += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
