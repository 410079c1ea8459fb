"""Benchmark: the mean |SHAP| pass alone, TreeShap (leaf tables, one core) against xgboost's `pred_contribs`.

Same seeded synthetic data and notebook hyperparameters as bench_explain.py; one model; then, `--repeat` times in
alternating order, the sum of |SHAP| per feature over every row by
  PRED_CONTRIBS: `booster.predict(pred_contribs=True)` with every core, in the chunks ModelShap's fallback uses;
  TREE_SHAP:     `TreeShap.from_json(booster.save_raw("json"))` (compiling the leaf tables is timed) and
                 `abs_sums`, on one core, as ModelShap's forked process runs it.
It checks both give the same sums (rtol 1e-5), prints a Markdown table with wall and CPU seconds (this process's
CPU time: both run in it) and rewrites the "Mean |SHAP| pass alone" section of bench/RESULTS.md.

Run: `.venv-runtime/bin/python bench/bench_tree_shap.py --rows 160000 --features 50`
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xgboost

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_explain  # noqa: E402  (the same data and training)

from sm_explain.shap_rows import CHUNK_ROWS  # noqa: E402
from sm_explain.tree_shap import TreeShap  # noqa: E402

SECTION = "## Mean |SHAP| pass alone (TreeShap against pred_contribs)"


def timed(function) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def pred_contribs_sums(booster: xgboost.Booster, rows: np.ndarray) -> np.ndarray:
    booster.set_param({"nthread": len(os.sched_getaffinity(0))})
    sums = np.zeros(rows.shape[1], dtype=np.float64)
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        chunk = booster.predict(xgboost.DMatrix(rows[start: start + CHUNK_ROWS], nthread=-1), pred_contribs=True)
        sums += np.abs(chunk[:, :-1]).sum(axis=0, dtype=np.float64)
    return sums


def tree_shap_sums(booster: xgboost.Booster, rows: np.ndarray) -> np.ndarray:
    return TreeShap.from_json(booster.save_raw("json"), rows.shape[1]).abs_sums(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=160_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-results", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    started_load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_tree_shap_") as tmp:
        data = bench_explain.make_dataset(Path(tmp), args.rows, args.features, args.seed)
        booster, _ = bench_explain.train(data)
    runs: dict[str, list[tuple[float, float]]] = {"pred_contribs": [], "tree_shap": []}
    for repetition in range(args.repeat):
        order = ["pred_contribs", "tree_shap"] if repetition % 2 == 0 else ["tree_shap", "pred_contribs"]
        results = {}
        for name in order:
            function = pred_contribs_sums if name == "pred_contribs" else tree_shap_sums
            results[name], wall, cpu = timed(lambda f=function: f(booster, data.train_x))
            runs[name].append((wall, cpu))
            print(f"repetition {repetition + 1} {name}: wall {wall:.2f} s, cpu {cpu:.2f} s", file=sys.stderr)
        if not np.allclose(results["tree_shap"], results["pred_contribs"], rtol=1e-5, atol=0):
            raise SystemExit("TreeShap's sums differ from pred_contribs' sums")
    median = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    (pc_wall, pc_cpu), (ts_wall, ts_cpu) = median["pred_contribs"], median["tree_shap"]
    table = "\n".join([
        "| | wall median (s) | CPU median (s) | wall runs (s) |",
        "|---|---:|---:|---|",
        f"| PRED_CONTRIBS: xgboost `pred_contribs`, {len(os.sched_getaffinity(0))} threads | {pc_wall:.2f} | {pc_cpu:.2f} "
        f"| {', '.join(f'{w:.2f}' for w, _ in runs['pred_contribs'])} |",
        f"| TREE_SHAP: compile leaf tables + `abs_sums`, 1 thread | {ts_wall:.2f} | {ts_cpu:.2f} "
        f"| {', '.join(f'{w:.2f}' for w, _ in runs['tree_shap'])} |",
        f"| **TREE_SHAP / PRED_CONTRIBS** | **{ts_wall / pc_wall:.3f}x** wall | **{ts_cpu / pc_cpu:.3f}x** CPU | |",
    ])
    text = "\n".join([
        f"### {args.rows:,} x {args.features}",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/bench_tree_shap.py` "
        f"({args.repeat} repetitions, alternating order; sums checked equal, rtol 1e-5). Machine: "
        f"{len(os.sched_getaffinity(0))} CPUs ({platform.machine()}), xgboost {xgboost.__version__}; load average "
        f"{' / '.join(f'{v:.2f}' for v in started_load)} at the start, "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} at the end. Model: the notebook's hyperparameters, "
        f"{bench_explain.NUM_ROUND} rounds, on bench_explain.py's seeded data; the rows are its train rows.",
        "",
        f"Command: `{' '.join(['.venv-runtime/bin/python', 'bench/bench_tree_shap.py', *sys.argv[1:]])}`",
        "",
        table,
        "",
    ])
    print(text)
    if not args.no_results:
        bench_explain.write_results_subsection(SECTION, f"### {args.rows:,} x {args.features}", text)


if __name__ == "__main__":
    main()
