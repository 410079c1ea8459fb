"""Benchmark: the whole DAG on the local stack (runtime steps as processing jobs, or on the worker) vs a bare script.

The bare script does the notebook's work with nothing around it.

One invocation, N repetitions of each variant in alternating order, on the real Adult data:
  BARE:           `bench/notebook_bare.py` as one cold process in the runtime environment: stage Adult to a local
                  directory, `xgboost.train` with smdebug's hook (notebook hyperparameters and collections),
                  LossNotDecreasing, `sm_explain` (debugger source, train rows) and the HTML report;
  DAG-PROCESSING: `dags/adult_income_explainability.py` with `dag.test()` on a private local stack (moto + the local
                  SageMaker endpoint, started here and stopped at the end), as `scripts/run_dag_locally.py` runs it,
                  run conf `compute: processing`: stage_dataset, explain and report run as SageMaker Processing jobs
                  on the endpoint (the stack sets SM_EXPLAIN_RUNTIME_IMAGE_URI);
  DAG-WORKER:     the same DAG with `compute: worker`: those three steps run in the worker's runtime subprocess.
Both DAG variants are timed from `dag.test()` start to return, with per-task durations (TaskInstance start/end);
the processing variant's jobs also by their DescribeProcessingJob times, the supervisor's log and the container's
CloudWatch log lines. Both DAG variants' explanation artifacts are compared byte for byte.
It prints Markdown tables (medians, paired ratios, where each variant's time goes) and refreshes the
"Whole DAG vs bare script" section of bench/RESULTS.md. Target: DAG-PROCESSING <= 1.5x BARE.

Run: `.venv/bin/python bench/bench_dag.py [--repeat 2]` (Airflow environment; needs `make setup`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from local_stack import StackInfo, runtime_python, start_stack, stop_stack  # noqa: E402
from run_dag_locally import (  # noqa: E402
    RUNTIME_TASKS,
    load_dag,
    prepare_airflow,
    run_dag,
    task_states,
    task_xcom,
)

ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
BARE_SCRIPT = REPO / "bench" / "notebook_bare.py"
RESULTS_FILE = REPO / "bench" / "RESULTS.md"
SECTION_TITLE = "## Whole DAG vs bare script"
HOW_TO_READ = "### How to read these figures"  # hand-written, kept below the section when the script rewrites it
BUCKET = "bench-dag"
TARGET_RATIO = 1.5
LOAD_THRESHOLD = 1.5
POKE_INTERVAL = "1"  # SM_EXPLAIN_POKE_INTERVAL: the sensor's poke; the processing wait's pauses double up to min(poke, 5)
TASKS = ("resolve_run_config", "stage_dataset", "start_training", "wait_for_training_and_rules", "explain", "report")
#: The DAG variants: the run conf's `compute` (the DAG param), and the name the tables use.
DAG_VARIANTS = {"processing": "DAG-PROCESSING", "worker": "DAG-WORKER"}
LABELS = {"bare": "BARE", **DAG_VARIANTS}
# Which DAG tasks do the work of which bare-script phase (for the side-by-side table).
COMPARABLE = (
    ("stage", ("stage_dataset",), ("stage (imports included)",)),
    ("train + rule", ("start_training", "wait_for_training_and_rules"),
     ("train with hook, save model", "LossNotDecreasing rule")),
    ("explain", ("explain",), ("explain (sm_explain, debugger source)",)),
    ("report", ("report",), ("report",)),
)
# Cold process start-ups the processing path adds or shares, measured once before the repetitions (runtime python).
COLD_STARTS = (
    ("interpreter alone (`-c pass`)", "pass"),
    ("the processing supervisor's imports", "import sm_local.processing_supervisor"),
    ("... and its S3 client (`s3io.aws_client`)",
     "import sm_local.processing_supervisor, sm_local.s3io as s; s.aws_client('s3')"),
    ("`python -m sm_staging`'s imports", "import sm_staging.__main__, sm_staging.stage"),
    ("`python -m sm_explain`'s imports (after the request parsed)", "import sm_explain.__main__, sm_explain.explain"),
    ("`python -m sm_explain.report`'s imports", "import sm_explain.report"),
)
COLD_START_REPEAT = 3
#: Operator-side calls timed in this process (`dag.test()` runs every task in it): (module, class or None for a
#: module-level function, function, label).
PROBED_CALLS = (
    ("sm_explain_ops.hooks.processing_jobs", "RuntimeProcessingHook", "describe_or_none", "describe-or-none"),
    ("airflow.providers.amazon.aws.hooks.s3", "S3Hook", "load_string", "request upload"),
    ("sm_explain_ops.hooks.processing_jobs", "RuntimeProcessingHook", "create_processing_job", "create"),
    ("sm_explain_ops.hooks.processing_jobs", "RuntimeProcessingHook", "wait_until_ended", "wait"),
    ("sm_explain_ops.hooks.processing_jobs", "RuntimeProcessingHook", "describe_processing_job", "describe"),
    ("sm_explain_ops.operators.runtime_compute", None, "read_result_object", "result read"),
    ("sm_explain_ops.operators.stage_dataset", "StageDatasetOperator", "run_on_worker", "runtime subprocess"),
    ("sm_explain_ops.operators.explain", "_RuntimeStep", "run_on_worker", "runtime subprocess"),
)
TABLE_SUFFIXES = (".csv",)
# shap's force plot HTML names its element with a random id ("i" + 20 letters and digits, not seeded) per figure.
SHAP_ELEMENT_ID = re.compile(rb"\bi[0-9A-Z]{20}\b")
OWN_CPU, OTHERS_CPU = "all of this benchmark's processes", "other work on the machine"
CPU_PARTS = (
    "this process (Airflow: `dag.test()`, operators, hooks, triggers)",
    "its child processes (the BARE script; DAG-WORKER's runtime subprocesses)",
    "moto (S3, CloudWatch Logs)",
    "local SageMaker endpoint (server, job supervisors, training and processing containers)",
)


class BenchmarkError(RuntimeError):
    """A run did not do the notebook's work (a failed task, a rule error, a missing report, the wrong compute)."""


@dataclass
class DagRuns:
    """Every measurement of one DAG variant, by name, in run order."""

    total: list[float] = field(default_factory=list)
    tasks: dict[str, list[float]] = field(default_factory=dict)
    outside_tasks: list[float] = field(default_factory=list)
    job: dict[str, list[float]] = field(default_factory=dict)
    # Per runtime task: span -> seconds (the processing job and the operator around it, or the worker's subprocess).
    runtime: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    gc: dict[str, list[float]] = field(default_factory=dict)
    # Per run: artifact name -> bytes (the explanations' manifest artifacts and the report), and what names the run
    # itself (its data set version and training job name) as (bytes, placeholder) pairs.
    outputs: list[dict[str, bytes]] = field(default_factory=list)
    own_names: list[list[tuple[bytes, bytes]]] = field(default_factory=list)


@dataclass
class Runs:
    """Every measurement of one benchmark invocation, by name, in run order."""

    bare_total: list[float] = field(default_factory=list)
    bare_phases: dict[str, list[float]] = field(default_factory=dict)
    bare_cpu: dict[str, list[float]] = field(default_factory=dict)
    dag: dict[str, DagRuns] = field(default_factory=lambda: {variant: DagRuns() for variant in DAG_VARIANTS})
    rule_statuses: list[str] = field(default_factory=list)
    cold_starts: dict[str, list[float]] = field(default_factory=dict)
    warm_up: str = ""

    @staticmethod
    def add(table: dict[str, list[float]], key: str, value: float) -> None:
        table.setdefault(key, []).append(value)

    def cpu(self, variant: str) -> dict[str, list[float]]:
        return self.bare_cpu if variant == "bare" else self.dag[variant].cpu


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
        time.sleep(min(15.0, max(1.0, max_wait - (time.monotonic() - started))))
        load = os.getloadavg()[0]
    return load, time.monotonic() - started


def measure_cold_starts(runs: Runs) -> None:
    """Wall seconds of cold runtime-python processes: what each processing job's supervisor costs before its
    container starts, beside what the container (or the worker's subprocess) costs before its work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SM_EXPLAIN_"))}
    for _ in range(COLD_START_REPEAT):
        for name, code in COLD_STARTS:
            started = time.perf_counter()
            subprocess.run([str(runtime_python()), "-c", code], env=env, cwd=REPO, check=True)
            runs.add(runs.cold_starts, name, time.perf_counter() - started)


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(stack: StackInfo) -> dict[str, float]:
    """CPU seconds (user + system, since each process started) of this process and every descendant, by part: a
    reaped process counts in the cutime and cstime of whoever reaped it (a runtime subprocess in this process's, a
    job's container in its supervisor's and so in the endpoint's)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    own: dict[int, float] = {}  # utime + stime
    reaped: dict[int, float] = {}  # cutime + cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        own[pid] = (int(fields[11]) + int(fields[12])) / tick
        reaped[pid] = (int(fields[13]) + int(fields[14])) / tick

    def subtree(root: int) -> float:
        members, frontier = {root}, [root]
        while frontier:
            frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in members]
            members.update(frontier)
        return sum(own.get(pid, 0.0) + reaped.get(pid, 0.0) for pid in members)

    me = os.getpid()
    stack_pids = {stack.moto_pid, stack.sagemaker_pid}
    children = [pid for pid, parent in parents.items() if parent == me and pid not in stack_pids]
    return {
        CPU_PARTS[0]: own.get(me, 0.0),
        CPU_PARTS[1]: reaped.get(me, 0.0) + sum(subtree(pid) for pid in children),
        CPU_PARTS[2]: subtree(stack.moto_pid),
        CPU_PARTS[3]: subtree(stack.sagemaker_pid),
    }


class GcWindow:
    """The garbage collector around one DAG run in this process. `dag.test()` runs every task here, in a process
    of about a million objects after Airflow, the DAG and a few runs, where one full (generation 2) collection
    stops every task for up to ~1 s: a real worker runs each task in a process of its own. Before the run,
    everything alive is collected and frozen (`gc.freeze`), so the run's collections scan only what the run itself
    allocates; the pauses that remain are counted (seconds, and the generation-2 ones)."""

    def __enter__(self) -> GcWindow:
        import gc

        gc.collect()
        gc.freeze()
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)
        return self

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)
        gc.unfreeze()

    def record(self, table: dict[str, list[float]]) -> None:
        Runs.add(table, "all collections (s)", sum(p for _, p in self.pauses))
        Runs.add(table, "generation-2 collections (s)", sum(p for g, p in self.pauses if g == 2))
        Runs.add(table, "longest pause (s)", max((p for _, p in self.pauses), default=0.0))


class CpuWindow:
    """CPU seconds during one run: this benchmark's processes by part (CPU_PARTS), and everything else the machine's
    cores did meanwhile (other work: the reason a run can be slow that no variant explains)."""

    def __init__(self, stack: StackInfo) -> None:
        self.stack = stack

    def __enter__(self) -> CpuWindow:
        self.busy, self.parts = machine_busy_seconds(), own_cpu_seconds(self.stack)
        return self

    def __exit__(self, *exc: object) -> None:
        after = own_cpu_seconds(self.stack)
        self.parts = {part: after[part] - self.parts[part] for part in after}
        self.others = max(0.0, machine_busy_seconds() - self.busy - sum(self.parts.values()))

    def record(self, table: dict[str, list[float]]) -> None:
        for part, seconds in self.parts.items():
            Runs.add(table, part, seconds)
        Runs.add(table, OWN_CPU, sum(self.parts.values()))
        Runs.add(table, OTHERS_CPU, self.others)


class CallProbe:
    """Wall-clock (label, start, end) of every PROBED_CALLS call while installed: the operator side of a runtime
    step, measured where it runs (in this process) instead of inferred from the task's total."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self._installed: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        import importlib

        for module, class_name, method, label in PROBED_CALLS:
            owner = importlib.import_module(module)  # a module-level function when class_name is None
            owner = getattr(owner, class_name) if class_name else owner
            original = inspect.getattr_static(owner, method)
            if not inspect.isfunction(original):
                raise BenchmarkError(f"{class_name or module}.{method} is not a plain function: the probe cannot "
                                     "time it")
            self._installed.append((owner, method, owner.__dict__.get(method)))
            setattr(owner, method, self._timed(original, label))

    def uninstall(self) -> None:
        for owner, method, own in reversed(self._installed):
            if own is None:
                delattr(owner, method)
            else:
                setattr(owner, method, own)
        self._installed.clear()

    def _timed(self, function: Any, label: str) -> Any:
        calls = self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return function(*args, **kwargs)
            finally:
                calls.append((label, started, time.time()))

        return timed

    def within(self, label: str, start: float, end: float) -> list[tuple[float, float]]:
        return [(a, b) for name, a, b in self.calls if name == label and start <= a and b <= end]


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


def supervisor_marks(log: Path) -> dict[str, float]:
    """When the supervisor had listed its input and uploaded its output (epoch s), from its log's asctime (local
    clock, millisecond resolution): the only marks inside ProcessingStartTime -> ProcessingEndTime it writes."""
    marks: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        stamp, message = line[:23], line[23:]
        for mark, needle in (("input listed", " input request: "), ("output uploaded", " uploaded ")):
            if needle in message and mark not in marks:
                try:
                    marks[mark] = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
    return marks


def container_log_times(job_name: str) -> tuple[float, float] | None:
    """(first, last) CloudWatch event time (epoch s) of the job's container log: when its lines were read, which
    bounds its interpreter start and imports (before the first line) and its exit (after the last)."""
    import boto3

    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                        logStreamNamePrefix=f"{job_name}/")["logStreams"]
    stamps: list[int] = []
    for stream in streams:
        events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                     logStreamName=stream["logStreamName"], startFromHead=True)["events"]
        stamps += [event["timestamp"] for event in events]
    return (min(stamps) / 1000, max(stamps) / 1000) if stamps else None


def processing_timeline(job_name: str, task_start: float, task_end: float, job_dir: Path,
                        probe: CallProbe) -> dict[str, float]:
    """Where a runtime task's time went when it ran as a processing job, in order: the operator before and after
    the job (probed calls), the endpoint's DescribeProcessingJob times, and inside the job the supervisor's log
    marks and the container's log lines. The spans add up to the task's duration."""
    import boto3

    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    if job["ProcessingJobStatus"] != "Completed":
        raise BenchmarkError(f"processing job {job_name} ended {job['ProcessingJobStatus']}")
    created, started = job["CreationTime"].timestamp(), job["ProcessingStartTime"].timestamp()
    ended, modified = job["ProcessingEndTime"].timestamp(), job["LastModifiedTime"].timestamp()
    first = {label: probe.within(label, task_start, task_end)
             for label in ("describe-or-none", "request upload", "create", "wait", "result read")}
    if not all(first.values()):
        raise BenchmarkError(f"the probe missed operator calls of {job_name}: {first}")
    (none0, none1), (_, up1), (_, cr1) = first["describe-or-none"][0], first["request upload"][0], first["create"][0]
    (wait0, wait1), (_, read1) = first["wait"][0], first["result read"][-1]
    describes = probe.within("describe", wait0, wait1)
    timeline = {
        "operator: task start -> describe before the create (hooks, request, job name)": none0 - task_start,
        "operator: describe before the create (not found)": none1 - none0,
        "operator: describe -> request.json to S3 done": up1 - none1,
        "operator: -> CreateProcessingJob returned": cr1 - up1,
        "operator: -> the wait starts (describe, job link)": wait0 - cr1,
    }
    inside = {
        "job: CreationTime -> ProcessingStartTime (supervisor process start, imports)": started - created,
        "job: ProcessingStartTime -> ProcessingEndTime": ended - started,
    }
    marks = supervisor_marks(job_dir / "supervisor.log")
    lines = container_log_times(job_name)
    if "input listed" in marks and "output uploaded" in marks:
        listed, uploaded = marks["input listed"], marks["output uploaded"]
        inside["job: - ProcessingStartTime -> input listed (S3 client, list)"] = listed - started
        if lines is not None:
            inside |= {
                "job: - input listed -> container's first log line (download, spawn, interpreter, imports)":
                    lines[0] - listed,
                "job: - container's first -> last log line": lines[1] - lines[0],
                "job: - container's last log line -> output uploaded (exit, upload)": uploaded - lines[1],
            }
        else:  # the container wrote no line (sm_explain logs nothing on success)
            inside["job: - input listed -> output uploaded (download, container, upload)"] = uploaded - listed
        inside["job: - output uploaded -> ProcessingEndTime (log flush, status)"] = ended - uploaded
    timeline |= inside
    timeline |= {
        "job: ProcessingEndTime -> LastModifiedTime": modified - ended,
        "operator: job's LastModifiedTime -> the wait returns (poll)": wait1 - modified,
        "operator: DescribeProcessingJob calls in the wait (a count, not s)": float(len(describes)),
        "operator: -> result.json read from S3": read1 - wait1,
        "operator: -> task end (XCom, state)": task_end - read1,
        "sum: CreateProcessingJob returned -> LastModifiedTime (includes the operator's first describe)": modified - cr1,
        "sum: the operator around the job (task minus CreationTime -> LastModifiedTime)":
            (task_end - task_start) - (modified - created),
    }
    return timeline


def worker_timeline(task_start: float, task_end: float, probe: CallProbe) -> dict[str, float]:
    """Where a runtime task's time went on the worker: before, during and after its runtime subprocess."""
    calls = probe.within("runtime subprocess", task_start, task_end)
    if len(calls) != 1:
        raise BenchmarkError(f"the probe saw {len(calls)} runtime subprocesses in one worker task")
    (sub0, sub1), = calls
    return {
        "operator: task start -> subprocess spawn (hooks, request)": sub0 - task_start,
        "runtime subprocess: spawn -> result read (interpreter, imports, work)": sub1 - sub0,
        "operator: -> task end (XCom, state)": task_end - sub1,
    }


def run_outputs(dag_run: Any) -> tuple[dict[str, bytes], list[tuple[bytes, bytes]]]:
    """Every artifact the explain task's manifest names, and the report, as bytes from S3; and the run's own names
    (training job, then data set version: the job name holds part of the version) with their placeholders."""
    import boto3

    s3 = boto3.client("s3")
    manifest = task_xcom(dag_run, "explain")
    report = task_xcom(dag_run, "report")
    uris = {**manifest["artifacts"], "report.html": report["report_uri"]}
    blobs = {}
    for name, uri in uris.items():
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        blobs[name] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    own = [(str(task_xcom(dag_run, "start_training")["job_name"]).encode(), b"<training job>"),
           (str(task_xcom(dag_run, "resolve_run_config")["dataset_version"]).encode(), b"<version>")]
    return blobs, own


def masked(blob: bytes, own: list[tuple[bytes, bytes]]) -> bytes:
    """The artifact with the run's own names and shap's random element ids replaced by placeholders."""
    for real, placeholder in own:
        blob = blob.replace(real, placeholder)
    return SHAP_ELEMENT_ID.sub(b"<shap element id>", blob)


def run_dag_once(dag: Any, name: str, offset: int, variant: str, adult: Path) -> tuple[float, Any]:
    """One DAG run of the variant (`compute` processing or worker) of data set version `bench-<name>-<variant>`,
    logical date 2026-11-01 + offset days, checked to have computed where it was told."""
    conf = {
        "dataset_version": f"bench-{name}-{variant}",
        "source_uri": str(adult),
        "source_sha256": ADULT_SHA256,
        "bucket": BUCKET,
        "explanation_options": {"explain_rows": "train"},
        "compute": variant,
    }
    logical_date = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(days=offset)
    started = time.perf_counter()
    dag_run = run_dag(dag, logical_date, conf)
    elapsed = time.perf_counter() - started
    states = task_states(dag_run)
    if set(states.values()) != {"success"} or set(states) != set(TASKS):
        raise BenchmarkError(f"DAG run {dag_run.run_id} did not succeed: {states}")
    for task_id in RUNTIME_TASKS:
        job = (task_xcom(dag_run, task_id, "sagemaker_processing_job") or {}).get("job_name")
        if bool(job) != (variant == "processing"):
            raise BenchmarkError(f"{task_id} of the {variant} run {dag_run.run_id} ran "
                                 f"{'as processing job ' + job if job else 'on the worker'}")
    return elapsed, dag_run


# ---------------------------------------------------------------------------------------------- outputs


def _first_json_differences(a: Any, b: Any, path: str = "", found: list[str] | None = None) -> list[str]:
    found = [] if found is None else found
    if len(found) >= 4:
        return found
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _first_json_differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _first_json_differences(x, y, f"{path}[{i}]", found)
    elif a != b:
        found.append(f"`{path}`: {str(a)[:60]!r} vs {str(b)[:60]!r}")
    return found


def _excerpt(line: str, at: int) -> str:
    """The part of a line around its first difference, safe inside a Markdown table cell."""
    return line[max(0, at - 15):at + 45].strip().replace("|", "&#124;").replace("`", "'")


def describe_difference(name: str, a: bytes, b: bytes) -> str:
    """What differs between two versions of one artifact, briefly: JSON leaves, CSV lines (and the largest
    numeric difference), else sizes."""
    if name.endswith(".json"):
        try:
            return "; ".join(_first_json_differences(json.loads(a), json.loads(b))) or "same JSON, other bytes"
        except ValueError:
            pass
    if name.endswith((".csv", ".html")):
        la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
        differing = [(x, y) for x, y in zip(la, lb, strict=False) if x != y]
        text = f"{len(differing)} of {max(len(la), len(lb))} lines differ"
        if len(la) != len(lb):
            text += f" ({len(la)} vs {len(lb)} lines)"
        largest = 0.0
        for x, y in differing:
            for u, v in zip(x.split(","), y.split(","), strict=False):
                try:
                    largest = max(largest, abs(float(u) - float(v)))
                except ValueError:
                    continue
        if name.endswith(".csv") and differing:
            text += f", largest numeric difference {largest:.3g}"
        if differing:
            x, y = differing[0]
            at = next((i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), min(len(x), len(y)))
            text += f"; first: `{_excerpt(x, at)}` vs `{_excerpt(y, at)}`"
        return text
    return f"{len(a)} vs {len(b)} bytes"


def compare_outputs(runs: Runs) -> list[str]:
    """Markdown: do both DAG variants write the same artifact names, and which artifacts are byte-identical
    between the variants (same repetition) and between repetitions."""
    proc, work = runs.dag["processing"].outputs, runs.dag["worker"].outputs
    names = [sorted(o) for o in proc + work]
    lines = [f"Outputs of the two DAG variants ({len(proc)} + {len(work)} runs; the explain task's manifest artifacts "
             "and report.html, read back from S3):", ""]
    same_names = all(n == names[0] for n in names)
    lines.append(f"- artifact names: {'the same ' + str(len(names[0])) + ' in every run' if same_names else 'DIFFER'}"
                 + ("" if same_names else ": " + "; ".join(
                     f"{LABELS[v]} run {i + 1} {sorted(set(o) ^ set(names[0]))}"
                     for v, outs in (("processing", proc), ("worker", work)) for i, o in enumerate(outs)
                     if sorted(o) != names[0])))
    every = sorted(set().union(*map(set, proc + work)))
    identical, rows = [], []
    for name in every:
        blobs = [o.get(name) for o in proc + work]
        if all(b is not None and b == blobs[0] for b in blobs):
            identical.append(name)
            continue
        pairs = [(p.get(name), w.get(name)) for p, w in zip(proc, work, strict=False)]
        between = all(p == w for p, w in pairs)
        kind = "table" if name.endswith(TABLE_SUFFIXES) else name.rsplit(".", 1)[-1]
        where = ("same between the variants in each repetition, differs between repetitions" if between
                 else "differs between DAG-PROCESSING and DAG-WORKER")
        a, b = next((p, w) for p, w in pairs if p != w) if not between else (proc[0].get(name), proc[-1].get(name))
        detail = describe_difference(name, a or b"", b or b"")
        masks = runs.dag["processing"].own_names + runs.dag["worker"].own_names
        clean = [masked(blob or b"", own) for blob, own in zip(blobs, masks, strict=True)]
        same_masked = ("**identical** once the run's own names (data set version, training job) and shap's random "
                       "element ids are masked" if all(c == clean[0] for c in clean) else
                       "still differs with the run's names and shap's element ids masked: "
                       + describe_difference(name, clean[0], next(c for c in clean if c != clean[0])))
        rows.append(f"| `{name}` ({kind}) | {where} | {detail} | {same_masked} |")
    tables = [n for n in identical if n.endswith(TABLE_SUFFIXES)]
    lines.append(f"- byte-identical in every run of both variants: {len(identical)} of {len(every)} "
                 f"({len(tables)} tables: {', '.join(f'`{n}`' for n in tables) or 'none'}; "
                 f"{len(identical) - len(tables)} others)")
    if rows:
        lines += ["", "Artifacts that are not byte-identical in every run (first pair shown):", "",
                  "| artifact | where it differs | what differs (raw bytes) | masked |", "|---|---|---|---|", *rows]
    return lines + [""]


# ---------------------------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def runs_text(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def paired(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def summed(table: dict[str, list[float]], keys: tuple[str, ...]) -> list[float]:
    return [sum(x) for x in zip(*(table[k] for k in keys), strict=True)]


def render(runs: Runs, context: dict[str, str]) -> str:
    bare = median(runs.bare_total)
    proc, work = runs.dag["processing"], runs.dag["worker"]
    dag_p, dag_w = median(proc.total), median(work.total)
    ratio = dag_p / bare
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {context['date']} by `{context['command']}` ({context['repeat']} repetitions of each variant, "
        f"the order reversed every repetition). Machine: {context['nproc']} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}. `uptime` at start: `{context['uptime_start']}`; 1-minute load when "
        f"measuring began: {context['load_measuring']} (waited {context['waited']} of at most "
        f"{context['max_wait']} for < {LOAD_THRESHOLD}); at the end: `{context['uptime_end']}`.",
        "",
        "Workload: the real Adult data (32,561 rows, staged 80/20 with seed 7), the notebook's XGBoost "
        "(max_depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, binary:logistic, 51 rounds), "
        "Debugger collections metrics, feature_importance, full_shap, average_shap every 5 steps, rule "
        "LossNotDecreasing, explanations of the training rows from the Debugger SHAP tensors and the HTML "
        "report. BARE = `bench/notebook_bare.py`, one cold runtime process, local files only. DAG-PROCESSING = "
        "`dags/adult_income_explainability.py` with `dag.test()` on the local stack (moto S3 + local "
        "SageMaker endpoint), run conf `compute: processing`: stage_dataset, explain and report each run as a "
        "SageMaker Processing job on the endpoint's runtime image. DAG-WORKER = the same with `compute: worker`: "
        f"those steps run in the worker's runtime subprocess. `SM_EXPLAIN_POKE_INTERVAL={POKE_INTERVAL}` (the "
        "sensor's poke; the processing wait describes after 0.25 s, then at pauses doubling up to min(poke, 5) s, "
        "not deferred); DAG times from `dag.test()` start to return. One untimed DAG-WORKER run first (warm-up, below). `dag.test()` runs every "
        "task in this one process: before each DAG run its live objects are collected and frozen (`gc.freeze`), so "
        "no run pays full collections of what earlier runs left (about 1 s each at a million objects; the pauses "
        "that remain are in a table below). Operator-side spans come from timing the hooks' calls in this process.",
        "",
        "| | median (s) | runs (s) |",
        "|---|---:|---|",
        f"| BARE: notebook_bare.py, spawn to exit | {bare:.2f} | {runs_text(runs.bare_total)} |",
        f"| DAG-PROCESSING: `dag.test()` start to return | {dag_p:.2f} | {runs_text(proc.total)} |",
        f"| DAG-WORKER: `dag.test()` start to return | {dag_w:.2f} | {runs_text(work.total)} |",
        f"| **DAG-PROCESSING / BARE** (target <= {TARGET_RATIO}x: {verdict}) | **{ratio:.2f}x** | "
        f"paired: {runs_text(paired(proc.total, runs.bare_total))} |",
        f"| DAG-WORKER / BARE | {dag_w / bare:.2f}x | paired: {runs_text(paired(work.total, runs.bare_total))} |",
        f"| DAG-PROCESSING / DAG-WORKER | {dag_p / dag_w:.2f}x | paired: {runs_text(paired(proc.total, work.total))} |",
        f"| DAG-PROCESSING - BARE | {dag_p - bare:.2f} | |",
        f"| DAG-PROCESSING - DAG-WORKER | {dag_p - dag_w:.2f} | paired: "
        f"{runs_text([p - w for p, w in zip(proc.total, work.total, strict=True)])} |",
        "",
        "Side by side (median s; DAG = TaskInstance end - start, summed over the tasks doing that work):",
        "",
        "| work | BARE | DAG-PROCESSING | DAG-WORKER | PROCESSING - BARE | PROCESSING - WORKER |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, task_ids, phases in COMPARABLE:
        b = median(summed(runs.bare_phases, phases))
        p, w = median(summed(proc.tasks, task_ids)), median(summed(work.tasks, task_ids))
        lines.append(f"| {name} | {b:.2f} | {p:.2f} | {w:.2f} | {p - b:.2f} | {p - w:.2f} |")
    bare_rest = median([t - sum(p[i] for p in runs.bare_phases.values()) for i, t in enumerate(runs.bare_total)])
    p_cfg, w_cfg = median(proc.tasks["resolve_run_config"]), median(work.tasks["resolve_run_config"])
    p_out, w_out = median(proc.outside_tasks), median(work.outside_tasks)
    lines += [
        f"| BARE: interpreter start + first imports before staging, exit | {bare_rest:.2f} | | | | |",
        f"| DAG: resolve_run_config | | {p_cfg:.2f} | {w_cfg:.2f} | | {p_cfg - w_cfg:.2f} |",
        f"| DAG: `dag.test()` outside any task (scheduling, DB) | | {p_out:.2f} | {w_out:.2f} | | {p_out - w_out:.2f} |",
        "",
        "DAG per task (s):",
        "",
        "| task | DAG-PROCESSING median | runs | DAG-WORKER median | runs | PROCESSING - WORKER |",
        "|---|---:|---|---:|---|---:|",
    ]
    for t in TASKS:
        p, w = median(proc.tasks[t]), median(work.tasks[t])
        lines.append(f"| {t} | {p:.2f} | {runs_text(proc.tasks[t])} | {w:.2f} | {runs_text(work.tasks[t])} | "
                     f"{p - w:.2f} |")
    summary = ["", "The runtime steps (median s): the worker's subprocess against the processing job and the operator "
               "around it:", "",
               "| task | DAG-WORKER: runtime subprocess | DAG-PROCESSING: job CreationTime -> LastModifiedTime | "
               "DAG-PROCESSING: operator around the job | task PROCESSING - WORKER |", "|---|---:|---:|---:|---:|"]
    for task_id in RUNTIME_TASKS:
        job, around = proc.runtime.get(task_id, {}), proc.runtime.get(task_id, {})
        sub = work.runtime.get(task_id, {}).get("runtime subprocess: spawn -> result read (interpreter, imports, work)", [])
        created_to_end = [a + b + c for a, b, c in zip(
            job.get("job: CreationTime -> ProcessingStartTime (supervisor process start, imports)", []),
            job.get("job: ProcessingStartTime -> ProcessingEndTime", []),
            job.get("job: ProcessingEndTime -> LastModifiedTime", []), strict=True)]
        operator = around.get("sum: the operator around the job (task minus CreationTime -> LastModifiedTime)", [])
        summary.append(f"| {task_id} | {median(sub):.2f} | {median(created_to_end):.2f} | {median(operator):.2f} | "
                       f"{median(proc.tasks[task_id]) - median(work.tasks[task_id]):.2f} |")
    lines += summary
    for variant, note in (("processing", "probed operator calls in this process, DescribeProcessingJob times; the "
                           "`job: -` rows split ProcessingStartTime -> ProcessingEndTime by the supervisor's log and "
                           "the container's CloudWatch log lines; the `sum:` rows add spans up"),
                          ("worker", "probed `run_on_worker` in this process")):
        lines += ["", f"{LABELS[variant]}: each runtime task, span by span in order ({note}; s):", "",
                  "| task | span | median | runs |", "|---|---|---:|---|"]
        for task_id in RUNTIME_TASKS:
            lines += [f"| {task_id} | {span} | {median(v):.2f} | {runs_text(v)} |"
                      for span, v in runs.dag[variant].runtime.get(task_id, {}).items()]
    lines += ["", "CPU seconds during each run, by process (/proc: user + system; a reaped process counts with whoever "
              "reaped it) and the rest of the machine's busy time (other work); median (runs):", "",
              "| CPU s | BARE | DAG-PROCESSING | DAG-WORKER | PROCESSING - WORKER |", "|---|---|---|---|---:|"]
    for part in (*CPU_PARTS, OWN_CPU, OTHERS_CPU):
        cells = [f"{median(runs.cpu(v).get(part, [])):.2f} ({runs_text(runs.cpu(v).get(part, []))})"
                 for v in ("bare", *DAG_VARIANTS)]
        diff = median(proc.cpu.get(part, [])) - median(work.cpu.get(part, []))
        lines.append(f"| {part} | {' | '.join(cells)} | {diff:.2f} |")
    lines += ["", "Garbage collection in the Airflow process during each DAG run (everything alive before the run "
              "collected and frozen first; s):", "", "| | DAG-PROCESSING | DAG-WORKER |", "|---|---|---|"]
    lines += [f"| {k} | {runs_text(v)} | {runs_text(work.gc.get(k, []))} |" for k, v in proc.gc.items()]
    lines += ["", "Cold runtime-python processes (measured once before the repetitions, "
              f"{COLD_START_REPEAT} times each; s):", "", "| process | median | runs |", "|---|---:|---|"]
    lines += [f"| {k} | {median(v):.2f} | {runs_text(v)} |" for k, v in runs.cold_starts.items()]
    lines += ["", "The training job on the local endpoint (DescribeTrainingJob times, s):", "",
              "| span | DAG-PROCESSING median | runs | DAG-WORKER median | runs |", "|---|---:|---|---:|---|"]
    lines += [f"| {k} | {median(v):.2f} | {runs_text(v)} | {median(work.job.get(k, [])):.2f} | "
              f"{runs_text(work.job.get(k, []))} |" for k, v in proc.job.items()]
    lines += ["", "BARE phases (s, in-process clock):", "", "| phase | median | runs |", "|---|---:|---|"]
    lines += [f"| {k} | {median(v):.2f} | {runs_text(v)} |" for k, v in runs.bare_phases.items()]
    lines += ["", *compare_outputs(runs), f"Rule results: {', '.join(runs.rule_statuses)}.", "", runs.warm_up, ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the others untouched. A hand-written
    "### How to read these figures" subsection at the section's end is kept (the script does not measure it)."""
    text = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmark results\n"
    start = text.find(SECTION_TITLE)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        old = text[start:] if end < 0 else text[start:end + 1]
        kept = old.find(HOW_TO_READ)
        body = section.rstrip("\n") + "\n" + ("\n" + old[kept:].rstrip("\n") + "\n" if kept >= 0 else "")
        text = text[:start] + body + ("" if end < 0 else "\n" + text[end + 1:])
    RESULTS_FILE.write_text(text.rstrip("\n") + "\n")


# ---------------------------------------------------------------------------------------------- main


def prepare_dag(stack: StackInfo, work: Path) -> Any:
    """A private Airflow home on the stack, the bench bucket, and the parsed production DAG."""
    prepare_airflow(stack, work / "airflow")
    os.environ["SM_EXPLAIN_POKE_INTERVAL"] = POKE_INTERVAL  # read when the DAG file is parsed
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return load_dag()


def record_dag(runs: Runs, variant: str, elapsed: float, dag_run: Any, stack: StackInfo, probe: CallProbe) -> None:
    """The run's total, per-task durations, the training job's spans, each runtime step's spans and the outputs,
    into the variant's measurements."""
    measured = runs.dag[variant]
    measured.total.append(elapsed)
    durations = task_durations(dag_run)
    for task_id in TASKS:
        runs.add(measured.tasks, task_id, durations[task_id][0])
    retried = {t: d[3] for t, d in durations.items() if d[3] > 1}
    if retried:
        raise BenchmarkError(f"tasks were retried, the timing is not comparable: {retried}")
    measured.outside_tasks.append(elapsed - sum(d[0] for d in durations.values()))
    verdict = task_xcom(dag_run, "wait_for_training_and_rules")
    runs.rule_statuses += [f"{LABELS[variant]} {r['status']}" for r in verdict["rules"]]
    for span, seconds in job_timeline(verdict["job_name"], durations["wait_for_training_and_rules"][2]).items():
        runs.add(measured.job, span, seconds)
    jobs_dir = Path(stack.state_dir) / "sagemaker" / "processing-jobs"
    for task_id in RUNTIME_TASKS:
        start, end = durations[task_id][1].timestamp(), durations[task_id][2].timestamp()
        if variant == "processing":
            name = task_xcom(dag_run, task_id, "sagemaker_processing_job")["job_name"]
            spans = processing_timeline(name, start, end, jobs_dir / name, probe)
        else:
            spans = worker_timeline(start, end, probe)
        for span, seconds in spans.items():
            runs.add(measured.runtime.setdefault(task_id, {}), span, seconds)
    outputs, own = run_outputs(dag_run)
    measured.outputs.append(outputs)
    measured.own_names.append(own)


def warm_up(dag: Any, runs: Runs) -> None:
    """One DAG-WORKER run, not counted: the first `dag.test()` of a process pays Airflow's first-use imports and
    caches (seconds, in resolve_run_config and start_training), which would otherwise fall on whichever DAG variant
    happens to run first."""
    print("--- warm-up: one DAG-WORKER run, not counted", flush=True)
    elapsed, dag_run = run_dag_once(dag, "warm-up", 0, "worker", ADULT_DATA)
    durations = task_durations(dag_run)
    runs.warm_up = (f"Warm-up (not counted): one DAG-WORKER run before the repetitions took {elapsed:.2f} s "
                    "(resolve_run_config " f"{durations['resolve_run_config'][0]:.2f} s, start_training "
                    f"{durations['start_training'][0]:.2f} s): the first `dag.test()` of the process pays Airflow's "
                    "first-use costs.")


def measure(dag: Any, stack: StackInfo, work: Path, repeat: int, runs: Runs) -> None:
    variants = ("bare", *DAG_VARIANTS)
    probe = CallProbe()
    probe.install()
    try:
        warm_up(dag, runs)
        for index in range(repeat):
            order = variants if index % 2 == 0 else variants[::-1]
            for variant in order:
                print(f"--- repetition {index + 1}/{repeat}: {LABELS[variant]}", flush=True)
                if variant == "bare":
                    with CpuWindow(stack) as cpu:
                        elapsed, outcome = run_bare(work / f"bare-{index}")
                    cpu.record(runs.bare_cpu)
                    runs.bare_total.append(elapsed)
                    for phase, seconds in outcome["phases"].items():
                        runs.add(runs.bare_phases, phase, seconds)
                    runs.rule_statuses.append(f"BARE {outcome['rule_status']}")
                    print(f"BARE {elapsed:.2f} s", flush=True)
                    continue
                offset = 1 + 2 * index + list(DAG_VARIANTS).index(variant)
                with GcWindow() as collections, CpuWindow(stack) as cpu:
                    elapsed, dag_run = run_dag_once(dag, str(index), offset, variant, ADULT_DATA)
                cpu.record(runs.dag[variant].cpu)
                collections.record(runs.dag[variant].gc)
                record_dag(runs, variant, elapsed, dag_run, stack, probe)
                tasks = runs.dag[variant].tasks
                print(f"{LABELS[variant]} {elapsed:.2f} s; tasks: "
                      + ", ".join(f"{t} {tasks[t][-1]:.1f}" for t in TASKS), flush=True)
    finally:
        probe.uninstall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each variant (default 2)")
    parser.add_argument("--max-wait", type=float, default=600,
                        help=f"seconds to wait for a 1-minute load average below {LOAD_THRESHOLD} (default 600)")
    parser.add_argument("--no-results", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not ADULT_DATA.is_file():
        print(f"error: the real Adult data is expected at {ADULT_DATA}", file=sys.stderr)
        return 2
    command = " ".join([".venv/bin/python", "bench/bench_dag.py", *map(shlex.quote, argv or sys.argv[1:])])
    context = {"command": command, "repeat": str(args.repeat), "nproc": str(os.cpu_count()),
               "uptime_start": uptime_line(), "max_wait": f"{args.max_wait:.0f} s",
               "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
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
            measure_cold_starts(runs)
            measure(dag, stack, work, args.repeat, runs)
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
