"""Benchmark: every explanation artifact at scale, against the compute floor, in one invocation.

On seeded synthetic binary-classification data (`--rows` training rows x `--features` float32 features, a
quarter as many validation rows), staged like `sm_staging` stages (train/validation CSV, label first, no
header, and features.json) in a temporary local directory, it measures `--repeat` times, alternating order:
  FLOOR: `xgboost.train` with the notebook's hyperparameters and no hook, plus ONE `pred_contribs=True`
         pass over the explained rows (the training rows, as the notebook explains them): the least work
         any implementation must do;
  OURS:  the same training, the model saved as model.tar.gz (`xgboost-model` inside), then
         `python -m sm_explain --request ... --result ...` with `source: "model"` writing every artifact to
         a local directory; the explanation subprocess's peak RSS comes from `os.wait4` (that child only);
  NOTEBOOK (`--notebook-way`): the notebook's way: training with smdebug's XGBoost hook saving metrics,
         feature_importance, full_shap and average_shap every 5 steps (in image 1.7-1's environment, its own
         xgboost 1.7.4 and smdebug), then sm_explain with `source: "debugger"`.
It waits (up to `--max-wait` s) for the 1-minute load average to drop below `--quiet-load`, prints a
Markdown table (medians, OURS / FLOOR, seconds beyond the floor, peak RSS) and rewrites the
"Explanations at scale" section of bench/RESULTS.md. `--profile` adds one untimed cProfile run
of the explanation subprocess and prints its hot spots.

Run: `.venv-runtime/bin/python bench/bench_explain.py --rows 160000 --features 50`
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import pstats
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import xgboost

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO,):  # the tests' helper that trains in an image (the runtime is installed in its venv)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Explanations at scale"
# The notebook's hyperparameters (XGBoost 1.7-1 built-in algorithm), as xgboost.train takes them.
PARAMS: dict[str, Any] = {
    "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
    "objective": "binary:logistic",
}
NUM_ROUND = 51
COLLECTIONS = ("metrics", "feature_importance", "full_shap", "average_shap")
SAVE_INTERVAL = 5
NOTEBOOK_IMAGE = "1.7-1"  # where the notebook way's hooked training runs (sm_local.image_envs)
INFORMATIVE = 10
RATIO_TARGET = 1.3
BEYOND_TARGET_S = 60.0
RSS_TARGET_BYTES = 4 * 1024**3
LARGE_TARGET_ROWS = 1_000_000
MEAN_ABS_METHODS: set[str] = set()  # how OURS computed mean |SHAP| (the manifest's summary), for the report


class BenchmarkError(RuntimeError):
    """A variant produced something other than what it must (a failed subprocess, missing artifacts)."""


@dataclass(frozen=True)
class Dataset:
    directory: Path
    train_x: np.ndarray
    train_y: np.ndarray
    validation_x: np.ndarray
    validation_y: np.ndarray

    def uri(self, name: str) -> str:
        return str(self.directory / name)


@dataclass
class Runs:
    """Seconds (and bytes) per phase, one dict per repetition."""

    floor: list[dict[str, float]] = field(default_factory=list)
    ours: list[dict[str, float]] = field(default_factory=list)
    notebook: list[dict[str, float]] = field(default_factory=list)

    @staticmethod
    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_for_quiet_machine(threshold: float, max_wait_s: float) -> tuple[tuple[float, float, float], float]:
    """Wait until the 1-minute load is below `threshold` (or `max_wait_s` passed); returns (load, waited s)."""
    started = time.monotonic()
    while load_average()[0] >= threshold and time.monotonic() - started < max_wait_s:
        print(f"load average {load_average()[0]:.2f} >= {threshold}: waiting", file=sys.stderr, flush=True)
        time.sleep(15)
    return load_average(), time.monotonic() - started


def feature_names(n_features: int) -> list[str]:
    return [f"feature_{i:02d}" for i in range(n_features)]


def make_dataset(directory: Path, rows: int, n_features: int, seed: int) -> Dataset:
    """Seeded synthetic data: INFORMATIVE features drive the label (linear terms plus one interaction), the rest
    is noise; written as the staged layout (float32 CSV, label first, no header, features.json)."""
    rng = np.random.default_rng(seed)
    total = rows + rows // 4
    x = rng.standard_normal((total, n_features), dtype=np.float32)
    informative = min(INFORMATIVE, n_features)
    weights = rng.uniform(0.5, 2.0, informative) * rng.choice([-1.0, 1.0], informative)
    logit = x[:, :informative].astype(np.float64) @ weights
    if informative >= 2:
        logit += 1.5 * x[:, 0] * x[:, 1]
    y = (rng.random(total) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    names = feature_names(n_features)
    files: dict[str, dict[str, int]] = {}
    for name, part in (("train.csv", slice(0, rows)), ("validation.csv", slice(rows, total))):
        columns = [pa.array(y[part])] + [pa.array(x[part, i]) for i in range(n_features)]
        table = pa.Table.from_arrays(columns, names=["label", *names])
        # Arrow writes float32 as its shortest round-trip text, so the CSV holds exactly these values.
        pa_csv.write_csv(table, directory / name, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
        files[name] = {"bytes": (directory / name).stat().st_size}
    features_document = {  # the keys sm_staging writes
        "dataset_version": "bench-synthetic",
        "source": f"synthetic (numpy default_rng seed {seed})",
        "source_sha256": None,
        "format": {"delimiter": ",", "header": False, "label_position": 0},
        "label": {"name": "label", "objective": "binary:logistic", "positive_label": "1",
                  "mapping": {"0": "0", "1": "1"}},
        "feature_names": names,
        "xgboost_feature_names": [f"f{i}" for i in range(n_features)],
        "categorical": {},
        "dropped_columns": [],
        "split": {"method": "first rows train, the rest validation", "validation_fraction": 0.2, "seed": seed},
        "rows": {"train": rows, "validation": total - rows},
        "files": files,
    }
    (directory / "features.json").write_text(json.dumps(features_document, indent=2) + "\n", encoding="utf-8")
    return Dataset(directory, x[:rows], y[:rows], x[rows:], y[rows:])


def train(data: Dataset, callbacks: list[Any] | None = None) -> tuple[xgboost.Booster, float]:
    """The notebook's training (train and validation evaluated every round, as the container does)."""
    started = time.perf_counter()
    dtrain = xgboost.DMatrix(data.train_x, label=data.train_y, nthread=-1)
    dvalidation = xgboost.DMatrix(data.validation_x, label=data.validation_y, nthread=-1)
    booster = xgboost.train(PARAMS, dtrain, num_boost_round=NUM_ROUND,
                            evals=[(dtrain, "train"), (dvalidation, "validation")],
                            callbacks=callbacks or [], verbose_eval=False)
    return booster, time.perf_counter() - started


def run_floor(data: Dataset) -> tuple[dict[str, float], np.ndarray]:
    booster, trained = train(data)
    started = time.perf_counter()
    contribs = booster.predict(xgboost.DMatrix(data.train_x, nthread=-1), pred_contribs=True)
    contributed = time.perf_counter() - started
    return {"train": trained, "contribs": contributed, "total": trained + contributed}, contribs


def save_model_artifact(booster: xgboost.Booster, path: Path) -> None:
    """model.tar.gz holding `xgboost-model` in UBJSON, as the local container writes it."""
    payload = booster.save_raw(raw_format="ubj")
    info = tarfile.TarInfo("xgboost-model")
    info.size = len(payload)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(bytes(payload)))


def explain_command(request_path: Path, result_path: Path, profile_path: Path | None = None) -> list[str]:
    profiler = ["-m", "cProfile", "-o", str(profile_path)] if profile_path else []
    return [sys.executable, *profiler, "-m", "sm_explain", "--request", str(request_path), "--result", str(result_path)]


def run_explain_subprocess(request: dict[str, Any], work: Path, profile_path: Path | None = None
                           ) -> tuple[float, int, dict[str, Any]]:
    """Run `python -m sm_explain` as the operator does; (seconds, peak RSS bytes of that child, manifest)."""
    request_path, result_path = work / "request.json", work / "result.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg")
    started = time.perf_counter()
    process = subprocess.Popen(explain_command(request_path, result_path, profile_path), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 reports this child's own rusage (RUSAGE_CHILDREN would mix every child this process ever waited for);
    # the pipes are small (sm_explain prints nothing on success), so waiting before reading them cannot block.
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise BenchmarkError(f"sm_explain exited {process.returncode}: {stderr.decode(errors='replace')[-3000:]}")
    manifest = json.loads(result_path.read_text(encoding="utf-8"))
    return elapsed, int(usage.ru_maxrss) * 1024, manifest


def explain_request(data: Dataset, work: Path, source: str, debug_output: Path | None) -> dict[str, Any]:
    return {
        "job_name": f"bench-{source}", "dataset_version": "bench-synthetic",
        "features_uri": data.uri("features.json"), "train_uri": data.uri("train.csv"),
        "validation_uri": data.uri("validation.csv"), "model_artifact_uri": str(work / "model.tar.gz"),
        "debug_output_uri": str(debug_output) if debug_output else None,
        "output_uri": str(work / "explanations"), "source": source, "explain_rows": "train",
    }


def check_manifest(manifest: dict[str, Any], work: Path, source: str, floor_mean_abs: np.ndarray | None) -> None:
    """Every artifact exists; with the floor's SHAP at hand, the bar's numbers are the same SHAP values."""
    artifacts = manifest["artifacts"]
    missing = [name for name, uri in artifacts.items() if not Path(uri).is_file()]
    expected = {"shap_bar.png", "shap_beeswarm.png", "force_row.html", "force_stacked.html", "outliers.parquet",
                "metrics.png", "average_shap.png", "importance_total_cover.png"}
    if missing or not expected <= artifacts.keys():
        raise BenchmarkError(f"sm_explain ({source}) artifacts missing: {missing or sorted(expected - artifacts.keys())}")
    if manifest["summary"].get("source") != source:
        raise BenchmarkError(f"sm_explain used source {manifest['summary'].get('source')!r}, asked {source!r}")
    if floor_mean_abs is not None:
        import pandas as pd

        bar = pd.read_csv(work / "explanations" / "shap_bar.csv").set_index("feature")["mean_abs_shap"]
        ours = bar.reindex(feature_names(len(floor_mean_abs))).to_numpy()
        if not np.allclose(ours, floor_mean_abs, rtol=1e-5, atol=0):
            raise BenchmarkError("sm_explain's mean |SHAP| differs from the floor's pred_contribs pass")


def run_ours(data: Dataset, work: Path, floor_mean_abs: np.ndarray | None) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    booster, trained = train(data)
    started = time.perf_counter()
    save_model_artifact(booster, work / "model.tar.gz")
    saved = time.perf_counter() - started
    explained, peak_rss, manifest = run_explain_subprocess(explain_request(data, work, "model", None), work)
    check_manifest(manifest, work, "model", floor_mean_abs)
    MEAN_ABS_METHODS.add(str(manifest["summary"]["mean_abs_shap_method"]))
    return {"train": trained, "save": saved, "explain": explained, "total": trained + saved + explained,
            "peak_rss": float(peak_rss), "artifacts": float(len(manifest["artifacts"]))}


def run_notebook_way(data: Dataset, work: Path) -> dict[str, float]:
    """smdebug's hook with the notebook's collections, then sm_explain from the Debugger trial. The training runs
    where every hooked training runs: in image 1.7-1's environment (its xgboost 1.7.4 and smdebug), as a process
    of its own; its time includes that process's start and the rows handed to it."""
    from tests.runtime.image_training import train_in_image

    work.mkdir(parents=True, exist_ok=True)
    trial = work / "debug-output"
    model_file = work / "model" / "xgboost-model"
    started = time.perf_counter()
    train_in_image(NOTEBOOK_IMAGE, (data.train_x, data.train_y), PARAMS, NUM_ROUND,
                   validation=(data.validation_x, data.validation_y), tensors_dir=trial,
                   collections=COLLECTIONS, save_interval=SAVE_INTERVAL, model_path=model_file, timeout=7200)
    with tarfile.open(work / "model.tar.gz", "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")
    trained = time.perf_counter() - started
    explained, peak_rss, manifest = run_explain_subprocess(explain_request(data, work, "debugger", trial), work)
    check_manifest(manifest, work, "debugger", None)
    written = sum(p.stat().st_size for p in trial.rglob("*") if p.is_file())
    return {"train": trained, "explain": explained, "total": trained + explained, "peak_rss": float(peak_rss),
            "tensor_bytes": float(written)}


def profile_explain(data: Dataset, work: Path, top: int) -> str:
    """One untimed cProfile run of the explanation subprocess; the `top` functions by cumulative time."""
    work.mkdir(parents=True, exist_ok=True)
    booster, _ = train(data)
    save_model_artifact(booster, work / "model.tar.gz")
    profile_path = work / "explain.prof"
    run_explain_subprocess(explain_request(data, work, "model", None), work, profile_path)
    buffer = io.StringIO()
    stats = pstats.Stats(str(profile_path), stream=buffer)
    # sm_explain's own functions (where its time goes by step), then the library functions they spend it in.
    stats.sort_stats("cumulative").print_stats(r"include/sm_explain/", top)
    stats.sort_stats("tottime").print_stats(12)
    return buffer.getvalue()


def import_seconds() -> float:
    """What a cold `python -m sm_explain` pays before reading anything: interpreter start and imports."""
    env = dict(os.environ, MPLBACKEND="Agg")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sm_explain.explain"], env=env, check=True)
    return time.perf_counter() - started


def gib(value: float) -> str:
    return f"{value / 1024**3:.2f} GiB"


def report(args: argparse.Namespace, runs: Runs, context: dict[str, Any]) -> str:
    m = Runs.median
    floor, ours = m(runs.floor, "total"), m(runs.ours, "total")
    ratio, beyond, rss = ours / floor, ours - floor, m(runs.ours, "peak_rss")
    fmt = lambda rs, k: ", ".join(f"{r[k]:.2f}" for r in rs)  # noqa: E731
    large = args.rows >= LARGE_TARGET_ROWS
    lines = [
        "| | median (s) | runs (s) |",
        "|---|---:|---|",
        f"| FLOOR: `xgboost.train` (no hook) + one `pred_contribs` pass over the {args.rows:,} train rows "
        f"| {floor:.2f} | {fmt(runs.floor, 'total')} |",
        f"| - train / pred_contribs | {m(runs.floor, 'train'):.2f} / {m(runs.floor, 'contribs'):.2f} | |",
        f"| OURS: same training + model.tar.gz + `python -m sm_explain` (`source: model`), every artifact "
        f"| {ours:.2f} | {fmt(runs.ours, 'total')} |",
        f"| - train / save model / explanation subprocess | {m(runs.ours, 'train'):.2f} / {m(runs.ours, 'save'):.2f}"
        f" / {m(runs.ours, 'explain'):.2f} | explain: {fmt(runs.ours, 'explain')} |",
    ]
    if runs.notebook:
        lines += [
            f"| NOTEBOOK: smdebug hook (full_shap, average_shap, ... every {SAVE_INTERVAL} steps) + sm_explain "
            f"(`source: debugger`) | {m(runs.notebook, 'total'):.2f} | {fmt(runs.notebook, 'total')} |",
            f"| - hooked training / explanation subprocess | {m(runs.notebook, 'train'):.2f} / "
            f"{m(runs.notebook, 'explain'):.2f} | tensors written: {gib(m(runs.notebook, 'tensor_bytes'))}, "
            f"explain peak RSS {gib(m(runs.notebook, 'peak_rss'))} |",
        ]
    ratio_verdict = "met" if ratio <= RATIO_TARGET else "NOT met"
    beyond_verdict = "met" if beyond <= BEYOND_TARGET_S else "NOT met"
    rss_verdict = "met" if rss <= RSS_TARGET_BYTES else "NOT met"
    if large:
        ratio_label, beyond_label = "", f" (target (b) <= {BEYOND_TARGET_S:.0f} s: {beyond_verdict})"
        rss_label = f" (target (b) <= 4 GiB: {rss_verdict})"
    else:
        ratio_label = f" (target (a) <= {RATIO_TARGET}x: {ratio_verdict})" if args.rows == 160_000 else ""
        beyond_label = rss_label = ""
    lines += [
        f"| **OURS / FLOOR**{ratio_label} | **{ratio:.2f}x** | |",
        f"| **OURS - FLOOR** (seconds beyond the floor){beyond_label} | **{beyond:.2f}** | |",
        f"| **peak RSS of the explanation subprocess**{rss_label} | **{gib(rss)}** | "
        f"{', '.join(gib(r['peak_rss']) for r in runs.ours)} |",
    ]
    if runs.notebook:
        lines.append(f"| NOTEBOOK / FLOOR | {m(runs.notebook, 'total') / floor:.2f}x | |")
    return "\n".join(lines)


def section_text(args: argparse.Namespace, table: str, context: dict[str, Any]) -> str:
    load_start, load_end = context["load_start"], context["load_end"]
    parts = [
        subsection_heading(args),
        "",
        f"Measured {context['when']} by `bench/bench_explain.py` ({args.repeat} repetition(s), alternating order). "
        f"Machine: {context['nproc']} CPUs ({platform.machine()}), Python {platform.python_version()}, "
        f"xgboost {xgboost.__version__}; load average (1/5/15 min) "
        f"{' / '.join(f'{v:.2f}' for v in context['uptime_start'])} at invocation, "
        f"{' / '.join(f'{v:.2f}' for v in load_start)} when measuring started (after waiting "
        f"{context['waited']:.0f} s for < {args.quiet_load}), {' / '.join(f'{v:.2f}' for v in load_end)} at the end.",
        "",
        f"Command: `{context['command']}`",
        "",
        f"Workload: seeded synthetic binary classification, {args.rows:,} train + {args.rows // 4:,} validation rows "
        f"x {args.features} float32 features ({min(INFORMATIVE, args.features)} informative), staged as "
        f"sm_staging does (CSV label first, no header; features.json) in a local temporary directory. "
        f"Hyperparameters as the notebook: max_depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, "
        f"binary:logistic, num_round {NUM_ROUND}; train and validation evaluated every round in every variant. "
        f"Explained rows: the train rows. OURS writes {context['artifacts']} artifacts (every analysis, "
        f"manifest included); its mean |SHAP| per feature (computed by {' / '.join(sorted(MEAN_ABS_METHODS))}) "
        f"is checked equal to the floor's pass (rtol 1e-5). Data generation and CSV writing are not timed; the explanation subprocess's time includes its interpreter start and "
        f"imports ({context['import_s']:.2f} s cold for `import sm_explain.explain`, measured once).",
        "",
        table,
        "",
    ]
    if context.get("note"):
        parts += [context["note"], ""]
    if context.get("hot_spots"):
        parts += ["Hot spots of the explanation subprocess (cProfile, one untimed run, cumulative s):", "",
                  "```", context["hot_spots"].rstrip(), "```", ""]
    return "\n".join(parts)


def subsection_heading(args: argparse.Namespace) -> str:
    return f"### {args.rows:,} x {args.features}"


def _replace_block(lines: list[str], heading: str, text: str, stop_prefixes: tuple[str, ...], start_at: int,
                   stop_at: int) -> list[str]:
    """`lines` with the block under `heading` (until a line starting with a stop prefix) replaced by `text`."""
    start = next((i for i in range(start_at, stop_at) if lines[i].rstrip() == heading), None)
    block = [line + "\n" for line in text.rstrip("\n").split("\n")] + ["\n"]
    if start is None:
        return lines[:stop_at] + (["\n"] if stop_at and lines[stop_at - 1].strip() else []) + block + lines[stop_at:]
    end = next((i for i in range(start + 1, stop_at) if lines[i].startswith(stop_prefixes)), stop_at)
    return lines[:start] + block + lines[end:]


def write_section(args: argparse.Namespace, text: str) -> None:
    write_results_subsection(SECTION, subsection_heading(args), text)


def write_results_subsection(section: str, heading: str, text: str) -> None:
    """Replace the `heading` subsection of `section` in RESULTS.md (adding what is missing); other subsections
    and other benchmarks' sections stay as they are."""
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = current.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if not any(line.rstrip() == section for line in lines):
        lines = _replace_block(lines, section, section + "\n", ("## ",), 0, len(lines))
    start = next(i for i, line in enumerate(lines) if line.rstrip() == section)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    lines = _replace_block(lines, heading, text, ("## ", "### "), start + 1, end)
    RESULTS.write_text("".join(lines).rstrip("\n") + "\n", encoding="utf-8")


def hot_spot_summary(profile_text: str, top: int) -> str:
    """The cProfile table's rows only (without the header noise), at most `top` of them."""
    prefix = str(REPO) + "/"
    rows = [line.replace(prefix, "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")
            for line in profile_text.splitlines() if line.strip() and line.strip()[0].isdigit()]
    return "\n".join(["   ncalls  tottime  percall  cumtime  percall filename:lineno(function)", *rows[:top]])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=160_000, help="training rows (validation: a quarter more)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each variant (medians reported)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--notebook-way", action="store_true", help="also measure smdebug's hook + source debugger")
    parser.add_argument("--profile", action="store_true", help="one extra untimed cProfile run of sm_explain")
    parser.add_argument("--quiet-load", type=float, default=1.5, help="wait for a 1-minute load below this")
    parser.add_argument("--max-wait", type=float, default=600.0, help="seconds to wait for that load at most")
    parser.add_argument("--note", default="", help="a sentence added to the RESULTS.md section")
    parser.add_argument("--no-results", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.rows < 100 or args.features < 2 or args.repeat < 1:
        parser.error("--rows must be >= 100, --features >= 2 and --repeat >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context: dict[str, Any] = {
        "command": " ".join([".venv-runtime/bin/python", "bench/bench_explain.py",
                             *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "uptime_start": load_average(), "nproc": os.cpu_count(), "note": args.note,
    }
    print(f"load average at start: {context['uptime_start']}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        data = make_dataset(root / "data", args.rows, args.features, args.seed)
        print(f"data written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        context["load_start"], context["waited"] = wait_for_quiet_machine(args.quiet_load, args.max_wait)
        context["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        context["import_s"] = import_seconds()
        runs = Runs()
        floor_mean_abs: np.ndarray | None = None
        for repetition in range(args.repeat):
            order = ("floor", "ours") if repetition % 2 == 0 else ("ours", "floor")
            for variant in order:
                if variant == "floor":
                    result, contribs = run_floor(data)
                    floor_mean_abs = np.abs(contribs[:, :-1]).mean(axis=0, dtype=np.float64)
                    del contribs
                    runs.floor.append(result)
                else:
                    runs.ours.append(run_ours(data, root / f"ours-{repetition}", floor_mean_abs))
                print(f"repetition {repetition + 1} {variant}: "
                      f"{(runs.floor if variant == 'floor' else runs.ours)[-1]}", file=sys.stderr, flush=True)
            if args.notebook_way:
                runs.notebook.append(run_notebook_way(data, root / f"notebook-{repetition}"))
                print(f"repetition {repetition + 1} notebook: {runs.notebook[-1]}", file=sys.stderr, flush=True)
        context["load_end"] = load_average()
        context["artifacts"] = int(runs.ours[-1]["artifacts"])
        if args.profile:
            context["hot_spots"] = hot_spot_summary(profile_explain(data, root / "profile", 25), 40)
    table = report(args, runs, context)
    text = section_text(args, table, context)
    print(text)
    if not args.no_results:
        write_section(args, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
