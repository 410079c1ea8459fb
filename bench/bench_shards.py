"""Benchmark: the split explanation on 1 and on 2 local Processing instances, in one invocation.

On seeded synthetic binary-classification data (`--rows` training rows x `--features` float32 features, staged
as `sm_staging` stages `train_parts` = `--parts`: part CSVs, their manifest, features.json; a tenth as many
validation rows), generated part by part into a temporary directory (never committed), with a model trained on
the first `--train-rows` rows (the notebook's hyperparameters; the model's size, not its training, is what the
explanation costs), it runs the split explanation as the DAG runs it with `explanation_instances` N: every
instance's container command of the map job (`python -m sm_explain.map_job`) at once, each over its
ShardedByS3Key share of the staged channel prefixes laid out as the local endpoint lays out `/opt/ml` (the
endpoint's own `shard` rule; files hard-linked, not copied from S3), then the reduce job's command
(`python -m sm_explain.reduce`) over every partial. Alternating when `--repeat` > 1:
  ONE: N = 1: the one instance maps every training part, then the validation file (the metric curves are
       recomputed on both channels), then the reduce;
  TWO: N = 2: the parts go round the two instances, the validation file to the first; then the reduce;
  PART, VALIDATION: one map over one part alone and over the validation file alone, for the projection.
It checks that ONE and TWO wrote the same tables, figures and summary, reports the wall-time ratio, every
process's peak RSS (`os.wait4`: the process and the pass it forks, Linux's maximum over reaped descendants),
and a projection for N instances from the measured times (a map's time as fixed cost + cost per row, fitted to
PART and ONE's training map; the validation map on an instance of its own; the reduce), and rewrites the
"Explanations over part files" section of bench/RESULTS.md.

Run: `.venv-runtime/bin/python bench/bench_shards.py --rows 4000000 --features 50 --parts 4`
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import xgboost

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_explain import (  # noqa: E402  (the sibling benchmark's helpers)
    INFORMATIVE,
    NUM_ROUND,
    PARAMS,
    BenchmarkError,
    feature_names,
    gib,
    load_average,
    save_model_artifact,
    wait_for_quiet_machine,
    write_results_subsection,
)

from sm_explain_contracts.train_parts import PARTS_MANIFEST, PartEntry, manifest_document, part_path  # noqa: E402
from sm_local.processing_spec import shard  # noqa: E402  (the local endpoint's ShardedByS3Key rule)
from sm_staging.source import sha256_of  # noqa: E402  (the hash staging records)

SECTION = "## Explanations over part files"
RSS_TARGET_BYTES = 4 * 1024**3
PROJECTED_INSTANCES = (1, 2, 4, 8, 16)


def _rows(rng: np.random.Generator, n: int, n_features: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, n_features), dtype=np.float32)
    logit = x[:, : weights.size].astype(np.float64) @ weights + 1.5 * x[:, 0] * x[:, 1]
    return x, (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def _write_csv(path: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_arrays([pa.array(y)] + [pa.array(x[:, i]) for i in range(x.shape[1])],
                                 names=["label", *names])
    pa_csv.write_csv(table, path, pa_csv.WriteOptions(include_header=False, quoting_style="none"))


def make_dataset(directory: Path, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The staged layout of `train_parts` = args.parts, each part generated with its own seeded generator (so the
    whole set never sits in this process's memory); returns the rows the model is trained on."""
    rng = np.random.default_rng(args.seed)
    informative = min(INFORMATIVE, args.features)
    weights = rng.uniform(0.5, 2.0, informative) * rng.choice([-1.0, 1.0], informative)
    names = feature_names(args.features)
    entries, first_row, training = [], 0, None
    for index, rows in enumerate(np.array_split(np.arange(args.rows), args.parts)):
        x, y = _rows(np.random.default_rng([args.seed, index]), rows.size, args.features, weights)
        if training is None:
            training = (x[: args.train_rows].copy(), y[: args.train_rows].copy())
        path = directory / part_path(index)
        _write_csv(path, x, y, names)
        entries.append(PartEntry(part_path(index), first_row, int(rows.size), path.stat().st_size, sha256_of(path)))
        first_row += int(rows.size)
        del x, y
    validation_rows = args.rows // 10
    x, y = _rows(np.random.default_rng([args.seed, args.parts]), validation_rows, args.features, weights)
    _write_csv(directory / "validation" / "validation.csv", x, y, names)
    (directory / PARTS_MANIFEST).write_text(json.dumps(manifest_document(entries), indent=1) + "\n")
    files = {name: {"path": path, "sha256": sha256_of(directory / path), "bytes": (directory / path).stat().st_size}
             for name, path in ((PARTS_MANIFEST, PARTS_MANIFEST), ("validation.csv", "validation/validation.csv"))}
    (directory / "features.json").write_text(json.dumps({
        "dataset_version": "bench-synthetic", "feature_names": names, "categorical": {},
        "xgboost_feature_names": [f"f{i}" for i in range(args.features)],
        "rows": {"train": args.rows, "validation": validation_rows}, "files": files}, indent=2) + "\n")
    assert training is not None
    return training


def _spawn(command: list[str], result_path: Path) -> tuple[subprocess.Popen, float, Path]:
    process = subprocess.Popen(command, env=dict(os.environ, MPLBACKEND="Agg", SM_EXPLAIN_ALLOW_LOCAL_SOURCES="1"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, time.perf_counter(), result_path


def _start(module: str, request: dict[str, Any], work: Path, name: str) -> tuple[subprocess.Popen, float, Path]:
    request_path, result_path = work / f"{name}.request.json", work / f"{name}.result.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    return _spawn([sys.executable, "-m", module, "--request", str(request_path), "--result", str(result_path)],
                  result_path)


def _wait(process: subprocess.Popen, started: float, result_path: Path, name: str) -> dict[str, Any]:
    """(The pipe holds only the map job's few progress lines or a traceback, so waiting before reading it cannot
    block.)"""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise BenchmarkError(f"{name} exited {process.returncode}: {stderr[-3000:]}")
    return {"name": name, "seconds": seconds, "rss": int(usage.ru_maxrss) * 1024,
            "cpu": usage.ru_utime + usage.ru_stime,  # with the pass process it forked (reaped, so counted)
            "result": json.loads(result_path.read_text())}


def _run(module: str, request: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    return _wait(*_start(module, request, work, name), name)


def explain_request(data: Path, model: Path, output: Path) -> dict[str, Any]:
    return {"job_name": "bench-shards", "dataset_version": "bench-synthetic",
            "features_uri": str(data / "features.json"), "train_uri": str(data / PARTS_MANIFEST),
            "validation_uri": str(data / "validation" / "validation.csv"), "model_artifact_uri": str(model),
            "debug_output_uri": None, "output_uri": str(output), "source": "model", "explain_rows": "train"}


def lay_out_instance(data: Path, opt_ml: Path, host: int, hosts: int) -> None:
    """Instance `algo-<host>`'s /opt/ml as the local endpoint lays it out for the split explanation's map job:
    its ShardedByS3Key share of each staged channel prefix (`sm_local.processing_spec.shard`, the endpoint's own
    rule) under processing/input/data/<channel>/, hard-linked here instead of copied from S3, and
    config/resourceconfig.json."""
    for channel in ("train", "validation"):
        names = sorted(path.name for path in (data / channel).iterdir())
        target = opt_ml / "processing" / "input" / "data" / channel
        target.mkdir(parents=True, exist_ok=True)
        for name in shard(names, host, hosts, "ShardedByS3Key"):
            os.link(data / channel / name, target / name)
    (opt_ml / "config").mkdir(parents=True, exist_ok=True)
    names = [f"algo-{i}" for i in range(1, hosts + 1)]
    (opt_ml / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": f"algo-{host}",
                                                                      "hosts": names}))


def run_instances(base: dict[str, Any], data: Path, work: Path, instances: int) -> dict[str, Any]:
    """The split explanation as the DAG runs it on `instances` local instances: every instance's map job
    (`python -m sm_explain.map_job`, the container command) at once, each over its share, then the reduce over
    every partial (`python -m sm_explain.reduce`, the reduce job's command)."""
    work.mkdir(parents=True)
    request_path = work / "request.json"
    request_path.write_text(json.dumps(base), encoding="utf-8")
    started = time.perf_counter()
    running = []
    for host in range(1, instances + 1):
        opt_ml = work / f"algo-{host}"
        lay_out_instance(data, opt_ml, host, instances)
        partials = opt_ml / "processing" / "output" / "partials"
        running.append(_spawn([sys.executable, "-m", "sm_explain.map_job", "--request", str(request_path),
                               "--input", str(opt_ml / "processing" / "input" / "data"), "--partials", str(partials),
                               "--resource-config", str(opt_ml / "config" / "resourceconfig.json")],
                              partials / f"algo-{host}.json"))
    processes = [_wait(*item, f"map job, algo-{i}") for i, item in enumerate(running, start=1)]
    maps_done = time.perf_counter()
    partials = sorted(work.glob("algo-*/processing/output/partials/*.partial"))
    processes.append(_run("sm_explain.reduce", {**base, "partial_uris": [str(p) for p in partials]}, work, "reduce"))
    return {"wall": time.perf_counter() - started, "maps": maps_done - started, "processes": processes}


def _content(uri: str) -> bytes:
    data = Path(uri).read_bytes()
    return re.sub(rb"'i[0-9A-Z]{20}'", b"'id'", data) if uri.endswith(".html") else data  # shap's random id


def check_same(one: dict[str, Any], two: dict[str, Any]) -> int:
    first, second = one["processes"][-1]["result"], two["processes"][-1]["result"]
    if first["summary"] != second["summary"]:
        raise BenchmarkError("1 and 2 instances gave different summaries")
    differing = [n for n in first["artifacts"] if n != "manifest.json"
                 and _content(first["artifacts"][n]) != _content(second["artifacts"][n])]
    if differing:
        raise BenchmarkError(f"1 and 2 instances wrote different {differing}")
    return len(first["artifacts"])


def projection(one: dict[str, Any], part: dict[str, Any], validation: dict[str, Any], rows: int,
               parts: int) -> list[tuple[int, float]]:
    """Projected wall time for N instances: a map's time is a + b x rows (fitted to the single part and to the one
    instance's map job over every training part, less its validation map), each instance maps rows / N, the
    validation map on an instance of its own, then the reduce. Excludes what this machine cannot measure:
    instance start-up and the S3 copy of each share."""
    by_name = {p["name"]: p["seconds"] for p in one["processes"]}
    all_rows, part_rows = rows, rows // parts
    train_map = by_name["map job, algo-1"] - validation["seconds"]
    slope = (train_map - part["seconds"]) / (all_rows - part_rows)
    fixed = part["seconds"] - slope * part_rows
    return [(n, max(fixed + slope * all_rows / n, validation["seconds"]) + by_name["reduce"])
            for n in PROJECTED_INSTANCES]


def report(args: argparse.Namespace, ones: list[dict], twos: list[dict], parts_alone: list[dict],
           validations: list[dict], context: dict[str, Any]) -> str:
    one_wall = statistics.median(r["wall"] for r in ones)
    two_wall = statistics.median(r["wall"] for r in twos)
    one_maps = statistics.median(r["maps"] for r in ones)
    two_maps = statistics.median(r["maps"] for r in twos)
    peak = max(p["rss"] for run in ones + twos for p in run["processes"])
    rss_rows = []
    for label, runs in (("1 instance", ones), ("2 instances", twos)):
        names = [p["name"] for p in runs[0]["processes"]]
        for name in names:
            values = [next(p["rss"] for p in run["processes"] if p["name"] == name) for run in runs]
            seconds = [next(p["seconds"] for p in run["processes"] if p["name"] == name) for run in runs]
            cpu = [next(p["cpu"] for p in run["processes"] if p["name"] == name) for run in runs]
            rss_rows.append(f"| {label}: {name} | {statistics.median(seconds):.2f} | {statistics.median(cpu):.2f} | "
                            f"{gib(max(values))} |")
    part_seconds = statistics.median(p["seconds"] for p in parts_alone)

    def runs_of(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    validation_seconds = statistics.median(p["seconds"] for p in validations)
    projected = projection(ones[0], {"seconds": part_seconds}, {"seconds": validation_seconds}, args.rows,
                           args.parts)
    base = projected[0][1]
    lines = [
        "| | median (s) | runs (s) |",
        "|---|---:|---|",
        f"| ONE: 1 instance's map job, then the reduce | {one_wall:.2f} | "
        f"{runs_of([r['wall'] for r in ones])} |",
        f"| TWO: 2 instances' map jobs at once, then the reduce | {two_wall:.2f} | "
        f"{runs_of([r['wall'] for r in twos])} |",
        f"| **TWO / ONE, whole run** | **{two_wall / one_wall:.2f}x** | |",
        f"| **TWO / ONE, the maps alone** | **{two_maps / one_maps:.2f}x** | maps {one_maps:.2f} s, "
        f"{two_maps:.2f} s |",
        f"| PART: one map over one part ({args.rows // args.parts:,} rows) alone | {part_seconds:.2f} | "
        f"{runs_of([p['seconds'] for p in parts_alone])} |",
        f"| VALIDATION: one map over the validation file alone | {validation_seconds:.2f} | "
        f"{runs_of([p['seconds'] for p in validations])} |",
        "",
        f"Every process (median wall and CPU s, the CPU including the pass process a map forks; peak RSS, the "
        f"largest of the runs; target <= 4 GiB each: "
        f"{'met' if peak <= RSS_TARGET_BYTES else 'NOT met'}, largest {gib(peak)}):",
        "",
        "| process | median (s) | CPU (s) | peak RSS |",
        "|---|---:|---:|---:|",
        *rss_rows,
        "",
        "PROJECTION (not measured) for N instances, each mapping rows / N: a map costs a + b x rows, fitted to PART "
        "and ONE's training map (its map job less VALIDATION); the validation map on an instance of its own; the reduce as measured; instance "
        "start-up and the S3 copy of each share left out.",
        "",
        "| instances | projected (s) | vs 1 instance |",
        "|---:|---:|---:|",
        *[f"| {n} | {seconds:.1f} | {seconds / base:.2f}x |" for n, seconds in projected],
    ]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = context["load"]
    return "\n".join([
        SECTION, "",
        f"Measured {when} by `bench/bench_shards.py` ({args.repeat} repetition(s) of ONE and TWO, alternating; "
        "each instance runs the map job's container command over its ShardedByS3Key share, laid out as the local "
        "endpoint lays it out, without the S3 copy). "
        f"Machine: {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, xgboost "
        f"{xgboost.__version__}; load average (1/5/15 min) {' / '.join(f'{v:.2f}' for v in context['load0'])} at "
        f"invocation, {' / '.join(f'{v:.2f}' for v in load)} when measuring started (after waiting "
        f"{context['waited']:.0f} s), {' / '.join(f'{v:.2f}' for v in context['load1'])} at the end. The whole "
        f"invocation took {context['total']:.0f} s (data generation {context['generate']:.0f} s, training "
        f"{context['train']:.0f} s).",
        "",
        f"Command: `{context['command']}`",
        "",
        f"Workload: seeded synthetic binary classification, {args.rows:,} train rows in {args.parts} part files "
        f"(the layout of `train_parts` {args.parts}: CSV label first, no header; train_parts.json; features.json) "
        f"+ {args.rows // 10:,} validation rows x {args.features} float32 features ({INFORMATIVE} informative), "
        f"generated into a temporary directory. Model: the notebook's hyperparameters, {NUM_ROUND} rounds, trained "
        f"on the first {args.train_rows:,} rows. Explained rows: the train rows; no Debugger trial, so the metric "
        "curves are recomputed over every row of both channels. Method of the mean |SHAP| pass: "
        f"{context['method']}. ONE and TWO wrote the same {context['artifacts']} artifacts (tables and figures "
        "byte for byte, the summary equal).",
        "",
        *lines,
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000, help="training rows (validation: a tenth more)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--parts", type=int, default=4, help="training part files (even, for two instances)")
    parser.add_argument("--train-rows", type=int, default=200_000, help="rows the model is trained on")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quiet-load", type=float, default=1.5, help="wait for a 1-minute load below this")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for that load at most")
    parser.add_argument("--no-results", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.parts < 2 or args.parts % 2 or args.rows < 100 * args.parts or args.repeat < 1:
        parser.error("--parts must be even and >= 2, --rows >= 100 per part, --repeat >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    invoked = time.perf_counter()
    context: dict[str, Any] = {"load0": load_average(),
                               "command": shlex.join([".venv-runtime/bin/python", "bench/bench_shards.py",
                                                      *(argv if argv is not None else sys.argv[1:])])}
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        train_x, train_y = make_dataset(work / "data", args)
        context["generate"] = time.perf_counter() - started
        started = time.perf_counter()
        booster = xgboost.train(PARAMS, xgboost.DMatrix(train_x, label=train_y, nthread=-1), NUM_ROUND)
        context["train"] = time.perf_counter() - started
        del train_x, train_y
        save_model_artifact(booster, work / "model.tar.gz")
        context["load"], context["waited"] = wait_for_quiet_machine(args.quiet_load, args.max_wait)
        ones, twos, parts_alone, validations = [], [], [], []
        for repetition in range(args.repeat):
            order = (1, 2) if repetition % 2 == 0 else (2, 1)
            for instances in order:
                run_dir = work / f"run-{repetition}-{instances}"
                base = explain_request(work / "data", work / "model.tar.gz", run_dir / "explanations")
                result = run_instances(base, work / "data", run_dir, instances)
                (ones if instances == 1 else twos).append(result)
                print(f"{instances} instance(s): {result['wall']:.1f} s", file=sys.stderr, flush=True)
            part_dir = work / f"part-{repetition}"
            part_dir.mkdir()
            base = explain_request(work / "data", work / "model.tar.gz", part_dir / "explanations")
            parts_alone.append(_run("sm_explain.map", {**base, "channel": "train", "parts": [part_path(0)],
                                                       "partial_uri": str(part_dir / "p.npz")}, part_dir, "part"))
            validations.append(_run("sm_explain.map", {**base, "channel": "validation",
                                                       "partial_uri": str(part_dir / "v.npz")}, part_dir,
                                    "validation"))
        context["artifacts"] = check_same(ones[0], twos[0])
        context["method"] = ones[0]["processes"][-1]["result"]["summary"]["mean_abs_shap_method"]
    context["load1"] = load_average()
    context["total"] = time.perf_counter() - invoked
    text = report(args, ones, twos, parts_alone, validations, context)
    print(text)
    if not args.no_results:
        heading = f"### {args.rows:,} x {args.features}, {args.parts} parts"
        body = text.split("\n", 2)[2]
        write_results_subsection(SECTION, heading, f"{heading}\n\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
