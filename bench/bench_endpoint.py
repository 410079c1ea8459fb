"""Benchmark: what the local SageMaker endpoint adds to the notebook's Debugger training.

One invocation measures, N times in alternating order, on the real Adult data:
  (a) baseline: a bare script in the image's own environment (xgboost 1.7.4 and smdebug, the libraries the
      endpoint's job uses): read the staged CSVs, `xgboost.train` with smdebug's XGBoost hook (the notebook's
      hyperparameters and collections), timed inside that process with every module already imported; then
      LossNotDecreasing on that trial (`sm_local.rules.evaluate_rule`);
  (b) the local stack (moto + `sm_local.server`, started once): boto3 `CreateTrainingJob` with the
      notebook's exact configuration until `DescribeTrainingJob` shows `Completed` and every rule
      terminal (polled every 0.1 s).
It prints a Markdown table (medians, b - a, b / a, where the endpoint's extra time goes) and refreshes
the "Local endpoint overhead" section of bench/RESULTS.md. Target: b - a <= 3 s.

Run: `.venv-runtime/bin/python bench/bench_endpoint.py [--repetitions 3]` (or `make bench`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# `make bench` runs this file directly: make the runtime packages (sm_staging, sm_local) and the tests' helper
# that trains in an image's environment importable.
for _path in (REPO,):  # the tests' helpers; the distributions are installed in the runtime venv
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"
RESULTS_FILE = REPO / "bench" / "RESULTS.md"
SECTION_TITLE = "## Local endpoint overhead"
TARGET_OVERHEAD_SECONDS = 3.0
POLL_SECONDS = 0.1
JOB_TIMEOUT_SECONDS = 900.0

REGION = "us-east-1"
BUCKET = "bench-endpoint"
VERSION = "bench"
IMAGE_VERSION = "1.7-1"
XGBOOST_IMAGE = f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:{IMAGE_VERSION}"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
# The "XGBoost census explanations" notebook.
HYPERPARAMETERS = {
    "max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.7",
    "objective": "binary:logistic", "num_round": "51",
}
COLLECTIONS = ("metrics", "feature_importance", "full_shap", "average_shap")
SAVE_INTERVAL = 5
RULE_CONFIG = {
    "RuleConfigurationName": "LossNotDecreasing",
    "RuleEvaluatorImage": RULES_IMAGE,
    "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics", "num_steps": "10"},
}
EXPECTED_STEPS = list(range(0, int(HYPERPARAMETERS["num_round"]), SAVE_INTERVAL))
TERMINAL_RULE_STATUSES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
PHASES = ("Starting", "Downloading", "Training", "Uploading")


class BenchmarkError(RuntimeError):
    """A run did not do what the notebook does (failed job, missing tensors, rule error)."""


# ---------------------------------------------------------------------------------------- staging


def stage_adult(work: Path) -> Path:
    """The real Adult data encoded like `shap.datasets.adult()` and split 80/20 (seed 7), as the DAG
    stages it; returns the staged root, which holds train/train.csv and validation/validation.csv. Not timed."""
    from sm_staging import stage

    if not ADULT_DATA.is_file():
        raise SystemExit(f"the real Adult data is expected at {ADULT_DATA} (see docs/architecture.md)")
    destination = work / "adult" / VERSION / "data"
    os.environ.setdefault("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", "1")  # the shared Adult file is on this machine
    staged = stage({"source": str(ADULT_DATA), "destination": str(destination), "dataset_version": VERSION})
    return Path(staged["data_uri"])


# ---------------------------------------------------------------------------------------- (a) baseline


def warm_up_baseline_imports() -> None:
    """Import what the baseline's rule step uses once, so (a) measures the work, not Python's import system."""
    import smdebug.trials  # noqa: F401

    import sm_local.rules.builtin  # noqa: F401


def run_baseline(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The notebook's training with smdebug's hook in the image's environment, then the rule here."""
    from smdebug.trials import create_trial

    from sm_local.rules import evaluate_rule
    from tests.runtime.image_training import train_in_image

    params: dict[str, Any] = {k: v for k, v in HYPERPARAMETERS.items() if k != "num_round"}
    for key in ("max_depth", "min_child_weight", "gamma"):
        params[key] = int(params[key])
    for key in ("eta", "subsample"):
        params[key] = float(params[key])

    training = train_in_image(
        IMAGE_VERSION, data_dir / "train" / "train.csv", params, int(HYPERPARAMETERS["num_round"]),
        validation=data_dir / "validation" / "validation.csv", tensors_dir=out_dir, collections=COLLECTIONS,
        save_interval=SAVE_INTERVAL,
    )
    seconds = training.seconds
    started = time.perf_counter()
    result = evaluate_rule(str(out_dir), RULE_CONFIG)
    rule = time.perf_counter() - started

    if result.status not in {"NoIssuesFound", "IssuesFound"}:
        raise BenchmarkError(f"baseline rule ended {result.status}: {result.details}")
    steps = create_trial(str(out_dir)).steps()
    if steps != EXPECTED_STEPS:
        raise BenchmarkError(f"baseline hook saved steps {steps}, expected {EXPECTED_STEPS}")
    return {
        "total": seconds["load"] + seconds["hook"] + seconds["train"] + rule,
        "load": seconds["load"],
        "hook": seconds["hook"],
        "train": seconds["train"],
        "rule": rule,
        "rule_status": result.status,
        "tensor_bytes": sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()),
    }


# ---------------------------------------------------------------------------------------- (b) endpoint


def load_local_stack_module() -> ModuleType:
    """scripts/local_stack.py is a stdlib script, not a package: import it by path."""
    spec = importlib.util.spec_from_file_location("local_stack", REPO / "scripts" / "local_stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module


def aws_client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def training_request(job_name: str, data_uri: str, output_uri: str) -> dict[str, Any]:
    """The notebook's CreateTrainingJob request, as sagemaker-core's estimator sends it."""
    def channel(name: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"{data_uri}/{name}.csv",
                "S3DataDistributionType": "FullyReplicated",
            }},
        }

    return {
        "TrainingJobName": job_name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": dict(HYPERPARAMETERS),
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "DebugHookConfig": {
            "S3OutputPath": output_uri,
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": {"save_interval": str(SAVE_INTERVAL)}}
                for name in COLLECTIONS
            ],
        },
        "DebugRuleConfigurations": [RULE_CONFIG],
    }


@dataclass
class EndpointStack:
    """The local stack started once for every endpoint repetition."""

    info: Any
    sagemaker: Any
    data_uri: str
    output_uri: str
    jobs_dir: Path
    runs: int = 0


def start_endpoint_stack(work: Path, data_dir: Path) -> tuple[EndpointStack, Callable[[], None]]:
    local_stack = load_local_stack_module()
    state_dir = work / "stack"
    info = local_stack.start_stack(state_dir)
    stop = lambda: local_stack.stop_stack(state_dir)  # noqa: E731
    try:
        s3 = aws_client("s3", info.s3_endpoint)
        s3.create_bucket(Bucket=BUCKET)
        prefix = f"adult/{VERSION}/data"
        for channel in ("train", "validation"):
            s3.upload_file(str(data_dir / channel / f"{channel}.csv"), BUCKET, f"{prefix}/{channel}.csv")
        stack = EndpointStack(
            info=info,
            sagemaker=aws_client("sagemaker", info.sagemaker_endpoint),
            data_uri=f"s3://{BUCKET}/{prefix}",
            output_uri=f"s3://{BUCKET}/adult/{VERSION}/training",
            jobs_dir=state_dir / "sagemaker" / "jobs",
        )
        stack.sagemaker.list_training_jobs(MaxResults=1)  # one warm connection, as a long-lived client has
    except BaseException:
        stop()
        raise
    return stack, stop


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), to see what competes with training."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


# Lines of the algorithm's log that close a step of its Training phase, in order. The supervisor stamps
# each line (ms) when it reads it from the algorithm's unbuffered stdout and ships it to CloudWatch Logs.
TRAINING_MILESTONES = (
    ("train_interpreter", "Running XGBoost Sagemaker in algorithm mode"),  # process up, first imports
    ("train_read_data", "Single node training."),  # pandas + xgboost imported, CSVs read, DMatrix built
    ("train_hook", "Debug hook created"),  # smdebug imported, hook built
    ("train_rounds", "[50]\t"),  # rounds 0-50 (the evaluation line precedes the hook's step-50 save)
    ("train_finish", "Training finished in"),  # the hook's step-50 save, hook closed, model saved
)


def algorithm_log_events(stack: EndpointStack, job_name: str, wait_for: str) -> list[dict[str, Any]]:
    """The job's CloudWatch log events (shipped in the background: wait until `wait_for` arrives)."""
    logs = aws_client("logs", stack.info.s3_endpoint)
    deadline = time.monotonic() + 15
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        streams = logs.describe_log_streams(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job_name}/"
        )["logStreams"]
        if streams:
            events = logs.get_log_events(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"],
                startFromHead=True, limit=10_000,
            )["events"]
            if any(wait_for in event["message"] for event in events):
                return events
        time.sleep(0.2)
    return events


def split_training_phase(stack: EndpointStack, job_name: str, training: dict[str, Any]) -> dict[str, float]:
    """Seconds between the Training phase's milestones (NaN where a line is missing)."""
    events = algorithm_log_events(stack, job_name, TRAINING_MILESTONES[-1][1])
    previous = _epoch(training["StartTime"])
    result: dict[str, float] = {}
    for key, text in TRAINING_MILESTONES:
        stamp = next((e["timestamp"] / 1000 for e in events if text in e["message"]), None)
        result[key] = float("nan") if stamp is None else stamp - previous
        previous = previous if stamp is None else stamp
    result["train_after_exit"] = _epoch(training["EndTime"]) - previous  # end marker, final tensor upload
    return result


def run_endpoint(stack: EndpointStack) -> dict[str, Any]:
    """One notebook job on the local endpoint, from CreateTrainingJob to every rule terminal."""
    stack.runs += 1
    job_name = f"bench-notebook-{os.getpid()}-{stack.runs}"
    request = training_request(job_name, stack.data_uri, stack.output_uri)
    completed_seen: float | None = None

    moto_cpu_before = process_cpu_seconds(stack.info.moto_pid)
    started_wall = time.time()
    started = time.perf_counter()
    stack.sagemaker.create_training_job(**request)
    created = time.perf_counter()
    while True:
        job = stack.sagemaker.describe_training_job(TrainingJobName=job_name)
        now = time.perf_counter()
        status = job["TrainingJobStatus"]
        if status in {"Failed", "Stopped"}:
            raise BenchmarkError(f"job {job_name} ended {status}: {job.get('FailureReason')}")
        rules = job.get("DebugRuleEvaluationStatuses") or []
        if status == "Completed" and completed_seen is None:
            completed_seen = now
        if status == "Completed" and rules and all(r["RuleEvaluationStatus"] in TERMINAL_RULE_STATUSES for r in rules):
            break
        if now - started > JOB_TIMEOUT_SECONDS:
            raise BenchmarkError(f"job {job_name} not done after {JOB_TIMEOUT_SECONDS:.0f} s: {status}")
        time.sleep(POLL_SECONDS)
    finished = time.perf_counter()
    moto_cpu = process_cpu_seconds(stack.info.moto_pid) - moto_cpu_before

    (rule,) = rules
    if rule["RuleEvaluationStatus"] not in {"NoIssuesFound", "IssuesFound"}:
        raise BenchmarkError(f"rule ended {rule['RuleEvaluationStatus']}: {rule.get('StatusDetails')}")
    assert completed_seen is not None
    transitions = {t["Status"]: t for t in job["SecondaryStatusTransitions"]}
    phases = {
        name: _epoch(transitions[name]["EndTime"]) - _epoch(transitions[name]["StartTime"]) for name in PHASES
    }
    completed_at = _epoch(transitions["Completed"]["StartTime"])
    rule_done_at = _epoch(rule["LastModifiedTime"])
    training = split_training_phase(stack, job_name, transitions["Training"])
    return {
        "total": finished - started,
        "create_call": created - started,
        "to_starting": _epoch(transitions["Starting"]["StartTime"]) - started_wall,
        **{f"phase_{name}": seconds for name, seconds in phases.items()},
        **training,
        "rules_after_completed": max(0.0, rule_done_at - completed_at),
        "observed_after_done": (finished - started) - (max(completed_at, rule_done_at) - started_wall),
        "completed_seen": completed_seen - started,
        "training_work": training["train_rounds"] + training["train_finish"],
        "moto_cpu": moto_cpu,
        "rule_status": rule["RuleEvaluationStatus"],
    }


# ---------------------------------------------------------------------------------------- probes


def cold_import_seconds() -> float:
    """What a bare training script run as its own process, in the image's environment, pays before its first
    line of work (not in (a))."""
    from sm_local import image_envs

    code = "import pandas, xgboost, smdebug.trials; from smdebug.xgboost import Hook"
    python = image_envs.ensure(IMAGE_VERSION, progress=lambda line: None).python
    started = time.perf_counter()
    subprocess.run([str(python), "-I", "-W", "ignore", "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------- report


@dataclass
class Report:
    repetitions: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    baseline: list[dict[str, Any]] = field(default_factory=list)
    endpoint: list[dict[str, Any]] = field(default_factory=list)
    cold_import: float = float("nan")
    date: str = field(default_factory=lambda: dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))

    @staticmethod
    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(run[key]) for run in runs)

    def paired_differences(self) -> list[float]:
        """b - a of each repetition: the two ran back to back, so they saw similar machine load."""
        return [float(b["total"]) - float(a["total"]) for a, b in zip(self.baseline, self.endpoint, strict=True)]

    def fixed_overheads(self) -> list[float]:
        """Per repetition, what each variant spends besides the training work itself, b minus a. The
        training phase is long and swings with the machine's load; this part is what the endpoint adds."""
        return [
            (float(b["total"]) - float(b["training_work"])) - (float(a["total"]) - float(a["train"]))
            for a, b in zip(self.baseline, self.endpoint, strict=True)
        ]

    def markdown(self) -> str:
        a, b = self.median(self.baseline, "total"), self.median(self.endpoint, "total")
        overhead = b - a
        # Other work on a shared machine swings the training phase by tens of seconds; the pair whose
        # baseline ran fastest saw the least interference, so the target is judged on it.
        quiet_a, quiet_b = min(zip(self.baseline, self.endpoint, strict=True), key=lambda pair: float(pair[0]["total"]))
        quiet = float(quiet_b["total"]) - float(quiet_a["total"])
        verdict = "met" if quiet <= TARGET_OVERHEAD_SECONDS else "NOT met"
        cpu = platform.processor() or platform.machine()
        lines = [
            SECTION_TITLE,
            "",
            f"Measured {self.date} by `bench/bench_endpoint.py` ({self.repetitions} repetition"
            f"{'s' if self.repetitions != 1 else ''} of each, alternating "
            f"order). Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; load average "
            f"(1/5/15 min) {_load(self.load_before)} at start, {_load(self.load_after)} at the end.",
            "",
            "Workload: the notebook's configuration on the real Adult data (26,048 training rows, 14 features): "
            f"XGBoost {IMAGE_VERSION} (xgboost 1.7.4, exact tree method, its default on this size; the image's "
            "environment pulled beforehand) with hyperparameters max_depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, "
            "binary:logistic, num_round 51; Debugger collections metrics, feature_importance, full_shap, "
            "average_shap every 5 steps; rule LossNotDecreasing on metrics, num_steps 10.",
            "",
            "| | median (s) | runs (s) |",
            "|---|---:|---|",
            f"| (a) bare script in image {IMAGE_VERSION}'s environment: read CSVs, `xgboost.train` + smdebug hook; "
            f"rule | {a:.2f} | "
            f"{_runs(self.baseline, 'total')} |",
            f"| (b) local endpoint: CreateTrainingJob -> Completed and rule terminal | {b:.2f} | "
            f"{_runs(self.endpoint, 'total')} |",
            f"| **b - a in the quietest pair** (target <= {TARGET_OVERHEAD_SECONDS:.0f} s: {verdict}) | **{quiet:.2f}** | "
            f"a {float(quiet_a['total']):.2f}, b {float(quiet_b['total']):.2f} |",
            f"| b - a (medians) | {overhead:.2f} | "
            f"paired: {', '.join(f'{d:.2f}' for d in self.paired_differences())} |",
            f"| b / a | {b / a:.2f}x | |",
            f"| b - a outside the training work (robust to load: the 51 rounds excluded on both sides) | "
            f"{statistics.median(self.fixed_overheads()):.2f} | {', '.join(f'{d:.2f}' for d in self.fixed_overheads())} |",
            "",
            "Baseline breakdown (median s): "
            + ", ".join(f"{k} {self.median(self.baseline, k):.2f}" for k in ("load", "hook", "train", "rule"))
            + f". A bare script run as its own process would first pay {self.cold_import:.2f} s of imports "
            "(pandas, xgboost, smdebug; measured once, cold), which (a) excludes.",
            "",
            "Where the endpoint's time goes (median s; SecondaryStatusTransitions, times of the job's CloudWatch log lines):",
            "",
            "| step | median (s) |",
            "|---|---:|",
            f"| CreateTrainingJob round trip | {self.median(self.endpoint, 'create_call'):.2f} |",
            f"| Starting (supervisor process start-up) | {self.median(self.endpoint, 'phase_Starting'):.2f} |",
            f"| Downloading (/opt/ml config, channels from S3) | {self.median(self.endpoint, 'phase_Downloading'):.2f} |",
            f"| Training, total | {self.median(self.endpoint, 'phase_Training'):.2f} |",
            *(
                f"| - {label} | {self.median(self.endpoint, key):.2f} |"
                for key, label in (
                    ("train_interpreter", "algorithm process start until its first log line"),
                    ("train_read_data", "import xgboost, read the CSVs, build the DMatrix"),
                    ("train_hook", "import smdebug, build the hook"),
                    ("train_rounds", "51 rounds with the hook, to the `[50]` evaluation line"),
                    ("train_finish", "the hook's step-50 save, close the hook, save the model"),
                    ("train_after_exit", "process exit, end marker, final tensor upload to S3"),
                )
            ),
            f"| Uploading (model.tar.gz to S3) | {self.median(self.endpoint, 'phase_Uploading'):.2f} |",
            f"| Completed until the rule is terminal | {self.median(self.endpoint, 'rules_after_completed'):.2f} |",
            f"| last status change until the client saw it (0.1 s polling) | "
            f"{self.median(self.endpoint, 'observed_after_done'):.2f} |",
            "",
            f"Training work itself (51 rounds, the hook, the model) took {self.median(self.endpoint, 'training_work'):.2f} s "
            f"in the endpoint's algorithm process against {self.median(self.baseline, 'train'):.2f} s in (a); "
            f"meanwhile the local S3 (moto) burnt {self.median(self.endpoint, 'moto_cpu'):.2f} CPU-seconds receiving "
            f"the Debugger tensors ({self.median(self.baseline, 'tensor_bytes') / 1e6:.0f} MB per job: every full_shap "
            "tensor holds the whole SHAP matrix).",
            "",
            f"Rule results: baseline {_statuses(self.baseline)}, endpoint {_statuses(self.endpoint)}.",
        ]
        return "\n".join(lines) + "\n"


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _runs(runs: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{float(run[key]):.2f}" for run in runs)


def _statuses(runs: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({str(run["rule_status"]) for run in runs}))


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or add it), leaving other sections alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS_FILE, help="Markdown file whose section is refreshed"
    )
    parser.add_argument("--no-results", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")

    report = Report(repetitions=args.repetitions, load_before=os.getloadavg())
    print(f"load average at start: {_load(report.load_before)} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        work = Path(tmp)
        data_dir = stage_adult(work)
        warm_up_baseline_imports()
        report.cold_import = cold_import_seconds()
        stack, stop_stack = start_endpoint_stack(work, data_dir)
        try:
            for index in range(args.repetitions):
                order = ("baseline", "endpoint") if index % 2 == 0 else ("endpoint", "baseline")
                for variant in order:
                    if variant == "baseline":
                        run = run_baseline(data_dir, work / f"baseline-{index}" / "tensors")
                        report.baseline.append(run)
                    else:
                        run = run_endpoint(stack)
                        report.endpoint.append(run)
                    print(f"run {index + 1}/{args.repetitions} {variant}: {run['total']:.2f} s", flush=True)
        finally:
            stop_stack()
    report.load_after = os.getloadavg()
    section = report.markdown()
    print()
    print(section)
    if not args.no_results:
        write_section(args.results, section)
        print(f"updated {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
