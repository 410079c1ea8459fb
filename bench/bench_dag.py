"""Benchmark: the whole DAG on the local stack against a bare script doing the notebook's work.

One invocation, N repetitions of each variant in alternating order, on the real Adult data:
  BARE: `bench/notebook_bare.py` as one cold process in the runtime environment: stage Adult to a local
        directory, `xgboost.train` with smdebug's hook (notebook hyperparameters and collections),
        LossNotDecreasing, `sm_explain` (debugger source, train rows) and the HTML report;
  DAG:  `dags/adult_income_explainability.py` with `dag.test()` on a private local stack (moto + the local
        SageMaker endpoint, started here and stopped at the end), as `scripts/run_dag_locally.py` runs it,
        timed from `dag.test()` start to return, with per-task durations (TaskInstance start/end).
It prints a Markdown table (medians, DAG / BARE, where the DAG's time goes) and refreshes the
"Whole DAG vs bare script" section of bench/RESULTS.md. Target: DAG <= 1.5x BARE.

Run: `.venv/bin/python bench/bench_dag.py [--repeat 2]` (Airflow environment; needs `make setup`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from local_stack import StackInfo, runtime_python, start_stack, stop_stack  # noqa: E402
from run_dag_locally import load_dag, prepare_airflow, run_dag, task_states, task_xcom  # noqa: E402

ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
BARE_SCRIPT = REPO / "bench" / "notebook_bare.py"
RESULTS_FILE = REPO / "bench" / "RESULTS.md"
SECTION_TITLE = "## Whole DAG vs bare script"
BUCKET = "bench-dag"
TARGET_RATIO = 1.5
LOAD_THRESHOLD = 1.5
TASKS = ("resolve_run_config", "stage_dataset", "start_training", "wait_for_training_and_rules", "explain", "report")
# Which DAG tasks do the work of which bare-script phase (for the side-by-side table).
COMPARABLE = (
    ("stage", ("stage_dataset",), ("stage (imports included)",)),
    ("train + rule", ("start_training", "wait_for_training_and_rules"),
     ("train with hook, save model", "LossNotDecreasing rule")),
    ("explain", ("explain",), ("explain (sm_explain, debugger source)",)),
    ("report", ("report",), ("report",)),
)


class BenchmarkError(RuntimeError):
    """A run did not do the notebook's work (a failed task, a rule error, a missing report)."""


@dataclass
class Runs:
    """Every measurement of one benchmark invocation, by name, in run order."""

    bare_total: list[float] = field(default_factory=list)
    bare_phases: dict[str, list[float]] = field(default_factory=dict)
    dag_total: list[float] = field(default_factory=list)
    dag_tasks: dict[str, list[float]] = field(default_factory=dict)
    dag_outside_tasks: list[float] = field(default_factory=list)
    job: dict[str, list[float]] = field(default_factory=dict)
    rule_statuses: list[str] = field(default_factory=list)

    @staticmethod
    def add(table: dict[str, list[float]], key: str, value: float) -> None:
        table.setdefault(key, []).append(value)


# ---------------------------------------------------------------------------------------------- load


def uptime_line() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def wait_for_quiet_machine(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait (up to max_wait s) for a 1-minute load average below threshold; returns (load, waited s)."""
    started = time.monotonic()
    load = os.getloadavg()[0]
    while load >= threshold and time.monotonic() - started < max_wait:
        print(f"load average {load:.2f} >= {threshold}: waiting ({time.monotonic() - started:.0f} s so far)",
              flush=True)
        time.sleep(15)
        load = os.getloadavg()[0]
    return load, time.monotonic() - started


# ---------------------------------------------------------------------------------------------- BARE


def run_bare(work: Path) -> tuple[float, dict[str, Any]]:
    """notebook_bare.py as a cold runtime-environment process; wall seconds from spawn to exit."""
    work.mkdir(parents=True)
    result = work / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW", "SM_EXPLAIN_"))}
    env["SM_EXPLAIN_ALLOW_LOCAL_SOURCES"] = "1"  # it stages the shared Adult file from this machine
    started = time.perf_counter()
    proc = subprocess.run([str(runtime_python()), str(BARE_SCRIPT), "--work", str(work / "run"),
                           "--result", str(result)], env=env, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchmarkError(f"notebook_bare.py exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    outcome = json.loads(result.read_text())
    if not Path(outcome["report_uri"]).is_file() or outcome["shap_source"] != "debugger":
        raise BenchmarkError(f"the bare script made no report from Debugger SHAP: {outcome}")
    return elapsed, outcome


# ---------------------------------------------------------------------------------------------- DAG


def task_durations(dag_run: Any) -> dict[str, tuple[float, dt.datetime, dt.datetime, int]]:
    """Per task: (seconds, start, end, try number) from the TaskInstance rows."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ((ti.end_date - ti.start_date).total_seconds(), ti.start_date, ti.end_date, ti.try_number)
                for ti in dag_run.get_task_instances(session=session)}


def job_timeline(job_name: str, sensor_end: dt.datetime) -> dict[str, float]:
    """Where the training job's time went on the local endpoint (DescribeTrainingJob times), and how long
    the sensor took to notice the end (same machine clock)."""
    import boto3

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    created = job["CreationTime"]
    rule_ends = [r["LastModifiedTime"] for r in job.get("DebugRuleEvaluationStatuses", [])]
    timeline = {
        "CreateTrainingJob -> TrainingStartTime": (job["TrainingStartTime"] - created).total_seconds(),
        "TrainingStartTime -> TrainingEndTime": (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds(),
        "CreateTrainingJob -> job Completed (LastModifiedTime)": (job["LastModifiedTime"] - created).total_seconds(),
    }
    if rule_ends:
        timeline["CreateTrainingJob -> last rule terminal"] = (max(rule_ends) - created).total_seconds()
    done = max([job["LastModifiedTime"], *rule_ends])
    timeline["job and rules done -> sensor task end"] = (sensor_end - done).total_seconds()
    return timeline


def run_dag_once(dag: Any, index: int, adult: Path) -> tuple[float, Any]:
    conf = {
        "dataset_version": f"bench-{index}",
        "source_uri": str(adult),
        "source_sha256": ADULT_SHA256,
        "bucket": BUCKET,
        "explanation_options": {"explain_rows": "train"},
    }
    logical_date = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(days=index)
    started = time.perf_counter()
    dag_run = run_dag(dag, logical_date, conf)
    elapsed = time.perf_counter() - started
    states = task_states(dag_run)
    if set(states.values()) != {"success"} or set(states) != set(TASKS):
        raise BenchmarkError(f"DAG run {dag_run.run_id} did not succeed: {states}")
    return elapsed, dag_run


# ---------------------------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def runs_text(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def render(runs: Runs, context: dict[str, str]) -> str:
    bare, dag = median(runs.bare_total), median(runs.dag_total)
    ratio = dag / bare
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {context['date']} by `{context['command']}` ({context['repeat']} repetitions each, "
        f"alternating order). Machine: {context['nproc']} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}. `uptime` at start: `{context['uptime_start']}`; 1-minute load when "
        f"measuring began: {context['load_measuring']} (waited {context['waited']}); at the end: "
        f"`{context['uptime_end']}`.",
        "",
        "Workload: the real Adult data (32,561 rows, staged 80/20 with seed 7), the notebook's XGBoost "
        "(max_depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, binary:logistic, 51 rounds), "
        "Debugger collections metrics, feature_importance, full_shap, average_shap every 5 steps, rule "
        "LossNotDecreasing, explanations of the training rows from the Debugger SHAP tensors and the HTML "
        "report. BARE = `bench/notebook_bare.py`, one cold runtime process, local files only. DAG = "
        "`dags/adult_income_explainability.py` with `dag.test()` on the local stack (moto S3 + local "
        "SageMaker endpoint), `SM_EXPLAIN_POKE_INTERVAL=1`, timed from `dag.test()` start to return.",
        "",
        "| | median (s) | runs (s) |",
        "|---|---:|---|",
        f"| BARE: notebook_bare.py, spawn to exit | {bare:.2f} | {runs_text(runs.bare_total)} |",
        f"| DAG: `dag.test()` start to return | {dag:.2f} | {runs_text(runs.dag_total)} |",
        f"| **DAG / BARE** (target <= {TARGET_RATIO}x: {verdict}) | **{ratio:.2f}x** | "
        f"paired: {runs_text([d / b for d, b in zip(runs.dag_total, runs.bare_total, strict=True)])} |",
        f"| DAG - BARE | {dag - bare:.2f} | |",
        "",
        "Side by side (median s; DAG = TaskInstance end - start, summed over the tasks doing that work):",
        "",
        "| work | BARE | DAG | DAG - BARE |",
        "|---|---:|---:|---:|",
    ]
    for name, task_ids, phases in COMPARABLE:
        b = median([sum(x) for x in zip(*(runs.bare_phases[p] for p in phases), strict=True)])
        d = median([sum(x) for x in zip(*(runs.dag_tasks[t] for t in task_ids), strict=True)])
        lines.append(f"| {name} | {b:.2f} | {d:.2f} | {d - b:.2f} |")
    bare_rest = median([t - sum(p[i] for p in runs.bare_phases.values()) for i, t in enumerate(runs.bare_total)])
    lines += [
        f"| BARE: interpreter start + first imports before staging, exit | {bare_rest:.2f} | | |",
        f"| DAG: resolve_run_config | | {median(runs.dag_tasks['resolve_run_config']):.2f} | |",
        f"| DAG: `dag.test()` outside any task (scheduling, DB, trigger loop) | | "
        f"{median(runs.dag_outside_tasks):.2f} | |",
        "",
        "DAG per task (s):",
        "",
        "| task | median | runs |",
        "|---|---:|---|",
    ]
    lines += [f"| {t} | {median(runs.dag_tasks[t]):.2f} | {runs_text(runs.dag_tasks[t])} |" for t in TASKS]
    lines += ["", "The training job on the local endpoint (DescribeTrainingJob times, s):", "",
              "| span | median | runs |", "|---|---:|---|"]
    lines += [f"| {k} | {median(v):.2f} | {runs_text(v)} |" for k, v in runs.job.items()]
    lines += ["", "BARE phases (s, in-process clock):", "", "| phase | median | runs |", "|---|---:|---|"]
    lines += [f"| {k} | {median(v):.2f} | {runs_text(v)} |" for k, v in runs.bare_phases.items()]
    lines += ["", f"Rule results: {', '.join(runs.rule_statuses)}.", ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the others untouched."""
    text = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmark results\n"
    start = text.find(SECTION_TITLE)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1:])
    RESULTS_FILE.write_text(text.rstrip("\n") + "\n")


# ---------------------------------------------------------------------------------------------- main


def prepare_dag(stack: StackInfo, work: Path) -> Any:
    """A private Airflow home on the stack, the bench bucket, and the parsed production DAG."""
    prepare_airflow(stack, work / "airflow")
    os.environ["SM_EXPLAIN_POKE_INTERVAL"] = "1"  # read when the DAG file is parsed
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return load_dag()


def measure(dag: Any, work: Path, repeat: int, runs: Runs) -> None:
    for index in range(repeat):
        order = ("bare", "dag") if index % 2 == 0 else ("dag", "bare")
        for variant in order:
            print(f"--- repetition {index + 1}/{repeat}: {variant.upper()}", flush=True)
            if variant == "bare":
                elapsed, outcome = run_bare(work / f"bare-{index}")
                runs.bare_total.append(elapsed)
                for phase, seconds in outcome["phases"].items():
                    runs.add(runs.bare_phases, phase, seconds)
                runs.rule_statuses.append(f"BARE {outcome['rule_status']}")
                print(f"BARE {elapsed:.2f} s", flush=True)
                continue
            elapsed, dag_run = run_dag_once(dag, index, ADULT_DATA)
            runs.dag_total.append(elapsed)
            durations = task_durations(dag_run)
            for task_id in TASKS:
                runs.add(runs.dag_tasks, task_id, durations[task_id][0])
            retried = {t: d[3] for t, d in durations.items() if d[3] > 1}
            if retried:
                raise BenchmarkError(f"tasks were retried, the timing is not comparable: {retried}")
            runs.dag_outside_tasks.append(elapsed - sum(d[0] for d in durations.values()))
            verdict = task_xcom(dag_run, "wait_for_training_and_rules")
            runs.rule_statuses += [f"DAG {r['status']}" for r in verdict["rules"]]
            for span, seconds in job_timeline(verdict["job_name"], durations["wait_for_training_and_rules"][2]).items():
                runs.add(runs.job, span, seconds)
            print(f"DAG {elapsed:.2f} s; tasks: " + ", ".join(f"{t} {durations[t][0]:.1f}" for t in TASKS),
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each variant (default 2)")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for a quiet machine")
    parser.add_argument("--no-results", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not ADULT_DATA.is_file():
        print(f"error: the real Adult data is expected at {ADULT_DATA}", file=sys.stderr)
        return 2
    command = " ".join([".venv/bin/python", "bench/bench_dag.py", *map(shlex.quote, argv or sys.argv[1:])])
    context = {"command": command, "repeat": str(args.repeat), "nproc": str(os.cpu_count()),
               "uptime_start": uptime_line(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    print(f"uptime at start: {context['uptime_start']}", flush=True)

    runs = Runs()
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        work = Path(tmp)
        stack = start_stack(work / "stack")
        try:
            dag = prepare_dag(stack, work)
            load, waited = wait_for_quiet_machine(LOAD_THRESHOLD, args.max_wait)
            context["load_measuring"] = f"{load:.2f}"
            context["waited"] = f"{waited:.0f} s" + ("" if load < LOAD_THRESHOLD else ", gave up")
            context["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            measure(dag, work, args.repeat, runs)
        finally:
            stop_stack(work / "stack")
    context["uptime_end"] = uptime_line()
    section = render(runs, context)
    print("\n" + section)
    if not args.no_results:
        write_section(section)
        print(f"wrote the section to {RESULTS_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
