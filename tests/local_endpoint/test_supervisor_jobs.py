"""Whole training jobs through `python -m sm_local.supervisor JOBDIR` against the local stack's S3/Logs.

Most tests run the scripted algorithm/rule processes (test_supervisor_scripted_processes.py) to
drive each outcome on purpose; one runs the real `sm_local.xgboost_container` on a small data set.
job.json is written in the shape the server writes it (request + CreationTime, TrainingJobArn, Region).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from sm_local.store import rule_dir_name, rule_evaluation_job_name

pytestmark = pytest.mark.stack

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RULE_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
SCRIPTED = "test_supervisor_scripted_processes"


@pytest.fixture()
def bucket(local_stack: Any) -> str:
    name = f"sup-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=name, Key="data/train/train.csv", Body=b"1,0.5,0.25\n0,0.1,0.2\n")
    s3.put_object(Bucket=name, Key="data/validation/validation.csv", Body=b"1,0.4,0.3\n")
    return name


def job_request(
    name: str,
    bucket: str,
    *,
    scenario: str = "succeed",
    rules: dict[str, str] | None = None,
    debugger: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "HyperParameters": {"scenario": scenario, "num_round": "3"},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/{channel}"}
                },
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if debugger:
        request["DebugHookConfig"] = {
            "S3OutputPath": f"s3://{bucket}/training",
            "CollectionConfigurations": [
                {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "1"}}
            ],
        }
    if rules:
        request["DebugRuleConfigurations"] = [
            {
                "RuleConfigurationName": rule_name,
                "RuleEvaluatorImage": RULE_IMAGE,
                "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "scenario": rule_scenario},
            }
            for rule_name, rule_scenario in rules.items()
        ]
    request.update(extra)
    return request


def start_supervisor(
    tmp_path: Path, request: dict[str, Any], *, scripted: bool = True, env: dict[str, str] | None = None
) -> tuple[Path, subprocess.Popen[bytes]]:
    job_dir = tmp_path / request["TrainingJobName"]
    job_dir.mkdir(parents=True)
    record = dict(
        request,
        CreationTime=time.time(),
        Region="us-east-1",
        TrainingJobArn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{request['TrainingJobName'].lower()}",
    )
    (job_dir / "job.json").write_text(json.dumps(record))
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = str(HERE)
    if scripted:
        child_env.update(SM_LOCAL_ALGORITHM_MODULE=SCRIPTED, SM_LOCAL_RULES_MODULE=SCRIPTED)
    child_env.update(env or {})
    with (job_dir / "supervisor.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sm_local.supervisor", str(job_dir)],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return job_dir, process


def finish(job_dir: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, Any]:
    try:
        assert process.wait(timeout=timeout) == 0, (job_dir / "supervisor.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return json.loads((job_dir / "status.json").read_text())


def read_status_when(job_dir: Path, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = json.loads((job_dir / "status.json").read_text())
            if predicate(status):
                return status
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"status.json never matched: {(job_dir / 'status.json').read_text()}")


def transitions(status: dict[str, Any]) -> list[str]:
    return [entry["Status"] for entry in status["SecondaryStatusTransitions"]]


def rules_by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["RuleConfigurationName"]: rule for rule in status["DebugRuleEvaluationStatuses"]}


def test_successful_job_publishes_model_metrics_tensors_logs_and_rule_results(
    tmp_path: Path, bucket: str
) -> None:
    name = f"ok-{uuid.uuid4().hex[:8]}"
    request = job_request(name, bucket, rules={"LossNotDecreasing": "slow", "Overfit": "issues"})
    job_dir, process = start_supervisor(tmp_path, request)
    # Training completes while the slow rule still runs, as on SageMaker.
    completed = read_status_when(job_dir, lambda s: s["TrainingJobStatus"] == "Completed")
    # The job's every line is in CloudWatch when its status first says Completed: a wait reads the log at once.
    logs = boto3.client("logs")
    [stream] = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                         logStreamNamePrefix=f"{name}/")["logStreams"]
    training_lines = [e["message"] for e in logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"], startFromHead=True)["events"]]
    assert "scripted algorithm: saving model" in training_lines, training_lines
    assert rules_by_name(completed)["LossNotDecreasing"]["RuleEvaluationStatus"] == "InProgress"
    # Each rule's evaluation job has its log in /aws/sagemaker/ProcessingJobs under the name its ARN gives, and
    # all of it is there once the status says the rule ended (a wait reads the log when the status is final).
    overfit_done = read_status_when(
        job_dir, lambda s: rules_by_name(s)["Overfit"]["RuleEvaluationStatus"] == "IssuesFound")
    rule_job = rule_evaluation_job_name(name, "Overfit")
    assert rules_by_name(overfit_done)["Overfit"]["RuleEvaluationJobArn"] == (
        f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{rule_job.lower()}")
    assert rule_job == f"{name[:26]}-Overfit-{rule_job[-8:]}"
    [rule_stream] = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                              logStreamNamePrefix=f"{rule_job}/")["logStreams"]
    assert rule_stream["logStreamName"].startswith(f"{rule_job}/algo-1-")
    rule_events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                      logStreamName=rule_stream["logStreamName"], startFromHead=True)["events"]
    assert [e["message"] for e in rule_events] == [
        "scripted rule Overfit: waiting for training", "scripted rule Overfit: IssuesFound"]
    status = finish(job_dir, process)

    assert status["TrainingJobStatus"] == "Completed" and status["SecondaryStatus"] == "Completed"
    assert transitions(status) == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    entries = status["SecondaryStatusTransitions"]
    for previous, following in zip(entries, entries[1:], strict=False):
        assert previous["EndTime"] == following["StartTime"]
    assert entries[2]["StatusMessage"] == "Training image download completed. Training in progress."
    assert isinstance(status["TrainingTimeInSeconds"], int) and status["TrainingTimeInSeconds"] >= 1
    assert status["BillableTimeInSeconds"] == status["TrainingTimeInSeconds"]
    assert status["TrainingEndTime"] >= status["TrainingStartTime"]
    assert "FailureReason" not in status

    # The last round's line ("[2]\ttrain-logloss...") gives the final metrics.
    metrics = {m["MetricName"]: m["Value"] for m in status["FinalMetricDataList"]}
    assert metrics == {"train:logloss": pytest.approx(0.4), "validation:logloss": pytest.approx(0.55)}

    s3 = boto3.client("s3")
    assert (
        status["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{bucket}/training/{name}/output/model.tar.gz"
    )
    body = s3.get_object(Bucket=bucket, Key=f"training/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert archive.getnames() == ["xgboost-model"]
        assert archive.extractfile("xgboost-model").read() == b"scripted model bytes"

    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"training/{name}/debug-output/")["Contents"]
    }
    prefix = f"training/{name}/debug-output/"
    assert f"{prefix}training_job_end.ts" in keys
    assert f"{prefix}events/000000000002/000000000002_worker_0.tfevents" in keys

    rules = rules_by_name(status)
    assert rules["LossNotDecreasing"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert rules["LossNotDecreasing"]["StatusDetails"] == "LossNotDecreasing: 3 steps"
    assert rules["Overfit"]["RuleEvaluationStatus"] == "IssuesFound"
    assert rules["Overfit"]["RuleEvaluationJobArn"].startswith(
        "arn:aws:sagemaker:us-east-1:123456789012:processing-job/"
    )
    assert (
        json.loads((job_dir / "rules" / rule_dir_name("Overfit") / "config.json").read_text())["RuleParameters"]["scenario"]
        == "issues"
    )

    # /opt/ml as the container sees it.
    config = job_dir / "opt_ml" / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == request["HyperParameters"]
    assert json.loads((config / "inputdataconfig.json").read_text())["train"]["ContentType"] == "text/csv"
    assert json.loads((config / "resourceconfig.json").read_text())["hosts"] == ["algo-1"]
    hook = json.loads((config / "debughookconfig.json").read_text())
    assert hook["LocalPath"] == str(job_dir / "opt_ml" / "output" / "tensors")
    assert (
        job_dir / "opt_ml" / "input" / "data" / "train" / "train.csv"
    ).read_bytes() == b"1,0.5,0.25\n0,0.1,0.2\n"

    log = (job_dir / "logs" / "algo-1.log").read_text()
    assert "[2]\ttrain-logloss:0.40000" in log and "saving model" in log
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )
    [stream] = streams["logStreams"]
    started = next(e["StartTime"] for e in entries if e["Status"] == "Training")
    assert stream["logStreamName"] == f"{name}/algo-1-{int(started)}"
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"]
    )
    assert [e["message"] for e in events["events"]] == log.splitlines()


def test_algorithm_failure_reason_comes_from_the_failure_file(tmp_path: Path, bucket: str) -> None:
    request = job_request(
        f"fail-{uuid.uuid4().hex[:8]}", bucket, scenario="fail", rules={"LossNotDecreasing": "no_issues"}
    )
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Failed"
    assert transitions(status) == ["Starting", "Downloading", "Training", "Failed"]
    assert status["FailureReason"] == "AlgorithmError: Hyperparameter num_round: value -1 must be at least 1."
    assert "ModelArtifacts" not in status
    listing = boto3.client("s3").list_objects_v2(
        Bucket=bucket, Prefix=f"training/{request['TrainingJobName']}/output/"
    )
    assert listing["KeyCount"] == 0
    # The end marker lets the rule finish on what was written.
    assert rules_by_name(status)["LossNotDecreasing"]["RuleEvaluationStatus"] == "NoIssuesFound"


def test_algorithm_crash_without_failure_file_reports_stderr(tmp_path: Path, bucket: str) -> None:
    status = finish(
        *start_supervisor(tmp_path, job_request(f"crash-{uuid.uuid4().hex[:8]}", bucket, scenario="crash"))
    )
    assert status["TrainingJobStatus"] == "Failed"
    assert status["FailureReason"].startswith("AlgorithmError: Traceback (most recent call last):")
    assert status["FailureReason"].endswith("ValueError: scripted crash")


def test_missing_channel_data_fails_naming_channel_and_uri(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"nodata-{uuid.uuid4().hex[:8]}", bucket, rules={"LossNotDecreasing": "no_issues"})
    request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{bucket}/nothing/here"
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Failed"
    assert transitions(status) == ["Starting", "Downloading", "Failed"]
    assert status["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "s3://{bucket}/nothing/here" given in input data source '
        'for channel "validation"'
    )
    assert rules_by_name(status)["LossNotDecreasing"]["RuleEvaluationStatus"] == "Error"
    assert not (tmp_path / request["TrainingJobName"] / "rules").exists()


@pytest.mark.reliability
def test_a_channel_key_climbing_out_of_opt_ml_fails_the_job_naming_channel_and_key(
    tmp_path: Path, bucket: str, reliability
) -> None:
    bad_key = "data/validation/../../../../../escaped.csv"  # from opt_ml/input/data/validation: tmp_path
    boto3.client("s3").put_object(Bucket=bucket, Key=bad_key, Body=b"1,0.5,0.5\n")
    request = job_request(f"climb-{uuid.uuid4().hex[:8]}", bucket, rules={"LossNotDecreasing": "no_issues"})
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Failed"
    assert transitions(status) == ["Starting", "Downloading", "Failed"]
    reason = status["FailureReason"]
    assert reason.startswith(f'ClientError: Cannot download channel "validation" from "s3://{bucket}/data/validation"')
    assert repr(bad_key) in reason and "'..' path segment" in reason, reason
    assert list(tmp_path.rglob("escaped.csv")) == [], "the object was written outside the channel"
    reliability.refused("local endpoint", f"channel object key {bad_key!r}",
                        "job Failed with a ClientError naming channel and key; nothing written outside /opt/ml",
                        reason)


def test_manifest_channels_are_rejected_before_downloading(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"manifest-{uuid.uuid4().hex[:8]}", bucket)
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "ManifestFile"
    status = finish(*start_supervisor(tmp_path, request))
    assert transitions(status) == ["Starting", "Failed"]
    assert "channel 'train' uses S3DataType 'ManifestFile'" in status["FailureReason"]


@pytest.mark.reliability
def test_rule_names_that_are_paths_stay_names_and_never_become_directories(
    tmp_path: Path, bucket: str, reliability
) -> None:
    """RuleConfigurationName is any 1-256 characters: '../../elsewhere' from `<job>/rules/` would be tmp_path."""
    names = ["../../elsewhere", f"{tmp_path}/absolute", "..", "tab\tand ünïcode: rule", "LossNotDecreasing"]
    request = job_request(f"rulepath-{uuid.uuid4().hex[:8]}", bucket, rules=dict.fromkeys(names, "no_issues"))
    job_dir, process = start_supervisor(tmp_path, request)
    status = finish(job_dir, process)
    assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")
    rules = rules_by_name(status)
    assert sorted(rules) == sorted(names)
    assert {rule["RuleEvaluationStatus"] for rule in rules.values()} == {"NoIssuesFound"}
    assert sorted(path.name for path in tmp_path.iterdir()) == [job_dir.name], "something left the job directory"
    rule_dirs = sorted((job_dir / "rules").iterdir())
    assert [path.name for path in rule_dirs] == sorted(rule_dir_name(name) for name in names)
    assert sorted(json.loads((path / "config.json").read_text())["RuleConfigurationName"] for path in rule_dirs) == (
        sorted(names)
    )
    reliability.survived("local endpoint", "RuleConfigurationName '../../elsewhere', '/<tmp>/absolute', '..'",
                         "each rule runs in a hashed directory below the job, its name kept in status and config",
                         f"rules {sorted(rule['RuleEvaluationStatus'] for rule in rules.values())}; directories "
                         f"{[path.name for path in rule_dirs][:3]}...; nothing outside the job directory")


def test_rule_process_dying_without_result_is_error_with_exit_code(tmp_path: Path, bucket: str) -> None:
    request = job_request(
        f"rulecrash-{uuid.uuid4().hex[:8]}", bucket, rules={"Broken": "crash", "Fine": "no_issues"}
    )
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Completed"
    rules = rules_by_name(status)
    assert rules["Broken"]["RuleEvaluationStatus"] == "Error"
    assert rules["Broken"]["StatusDetails"] == (
        "The rule evaluation process exited with code 4 without a result: RuntimeError: scripted rule crash"
    )
    assert rules["Fine"]["RuleEvaluationStatus"] == "NoIssuesFound"


def test_cloudwatch_outage_never_fails_the_job(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"nologs-{uuid.uuid4().hex[:8]}", bucket, debugger=False)
    # Port 9 (discard) refuses connections; botocore's variable for "CloudWatch Logs".
    unreachable = {"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    job_dir, process = start_supervisor(tmp_path, request, env=unreachable)
    status = finish(job_dir, process)
    assert status["TrainingJobStatus"] == "Completed"
    assert "CloudWatch Logs: cannot create" in (job_dir / "supervisor.log").read_text()
    assert "[2]\ttrain-logloss" in (job_dir / "logs" / "algo-1.log").read_text()
    assert not (job_dir / "opt_ml" / "output" / "tensors").exists()  # no Debugger, no rules: no tensor dir


def test_unexpected_error_ends_failed_instead_of_hanging(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"broken-{uuid.uuid4().hex[:8]}", bucket, rules={"LossNotDecreasing": "no_issues"})
    del request["InputDataConfig"][0][
        "ChannelName"
    ]  # the server would refuse it; the supervisor must not hang
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Failed"
    assert status["FailureReason"].startswith(
        "InternalServerError: the local training supervisor failed: KeyError"
    )
    assert rules_by_name(status)["LossNotDecreasing"]["RuleEvaluationStatus"] == "Error"


def test_unwritable_debugger_output_fails_the_job_before_completed(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"nobucket-{uuid.uuid4().hex[:8]}", bucket)
    request["DebugHookConfig"]["S3OutputPath"] = f"s3://missing-{uuid.uuid4().hex[:8]}/debug"
    status = finish(*start_supervisor(tmp_path, request))
    assert status["TrainingJobStatus"] == "Failed"
    assert status["FailureReason"].startswith("ClientError: uploading the Debugger tensors to s3://missing-")
    assert "NoSuchBucket" in status["FailureReason"]


def _assert_all_dead(pids: list[int]) -> None:
    for pid in pids:
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"pid {pid} still runs"
        except psutil.NoSuchProcess:
            pass


def test_sigterm_stops_the_job_and_every_child(tmp_path: Path, bucket: str) -> None:
    request = job_request(
        f"stop-{uuid.uuid4().hex[:8]}", bucket, scenario="sleep", rules={"LossNotDecreasing": "no_issues"}
    )
    job_dir, process = start_supervisor(tmp_path, request)
    pids_file = job_dir / "opt_ml" / "output" / "pids"
    rule_pid_file = job_dir / "rules" / rule_dir_name("LossNotDecreasing") / "pid"
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and rule_pid_file.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pids_file.read_text().split()] + [int(rule_pid_file.read_text())]
    os.killpg(process.pid, signal.SIGTERM)  # what the server does on StopTrainingJob
    status = finish(job_dir, process, timeout=30)
    log = (job_dir / "supervisor.log").read_text()
    assert status["TrainingJobStatus"] == "Stopped" and status["SecondaryStatus"] == "Stopped", log
    assert transitions(status) == ["Starting", "Downloading", "Training", "Stopping", "Stopped"]
    assert rules_by_name(status)["LossNotDecreasing"]["RuleEvaluationStatus"] == "Stopped"
    assert "FailureReason" not in status
    _assert_all_dead(pids)


def test_stop_requested_in_job_file_stops_too(tmp_path: Path, bucket: str) -> None:
    request = job_request(f"stopflag-{uuid.uuid4().hex[:8]}", bucket, scenario="sleep")
    job_dir, process = start_supervisor(tmp_path, request)
    read_status_when(job_dir, lambda s: s.get("SecondaryStatus") == "Training")
    record = json.loads((job_dir / "job.json").read_text())
    (job_dir / "job.json").write_text(json.dumps(dict(record, StopRequested=True)))
    status = finish(job_dir, process, timeout=30)
    assert status["TrainingJobStatus"] == "Stopped"


def test_max_runtime_stops_the_job_as_max_runtime_exceeded(tmp_path: Path, bucket: str) -> None:
    request = job_request(
        f"slowjob-{uuid.uuid4().hex[:8]}",
        bucket,
        scenario="sleep",
        StoppingCondition={"MaxRuntimeInSeconds": 1},
    )
    status = finish(*start_supervisor(tmp_path, request), timeout=30)
    # botocore's SecondaryStatus docs: MaxRuntimeExceeded belongs to TrainingJobStatus Stopped.
    assert status["TrainingJobStatus"] == "Stopped" and status["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert transitions(status)[-2:] == ["Stopping", "MaxRuntimeExceeded"]


def test_real_xgboost_container_job(tmp_path: Path, bucket: str) -> None:
    """The supervisor with the real algorithm and rule processes: model, metrics, tensors, rule result."""
    s3 = boto3.client("s3")
    rows = [f"{i % 2},{(i * 7) % 13 / 13:.3f},{(i * 3) % 11 / 11:.3f},{i % 5}" for i in range(200)]
    s3.put_object(Bucket=bucket, Key="real/train/train.csv", Body="\n".join(rows[:150]).encode())
    s3.put_object(Bucket=bucket, Key="real/validation/validation.csv", Body="\n".join(rows[150:]).encode())
    name = f"real-{uuid.uuid4().hex[:8]}"
    request = job_request(name, bucket, rules={"LossNotDecreasing": "real"})
    request["DebugHookConfig"]["CollectionConfigurations"].append(
        {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}}
    )
    request["DebugRuleConfigurations"][0]["RuleParameters"] = {"rule_to_invoke": "LossNotDecreasing"}
    request["HyperParameters"] = {
        "objective": "binary:logistic",
        "num_round": "5",
        "max_depth": "2",
        "eval_metric": "logloss",
    }
    for channel in request["InputDataConfig"]:
        channel["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{bucket}/real/{channel['ChannelName']}/"
    status = finish(*start_supervisor(tmp_path, request, scripted=False), timeout=180)
    assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")
    assert {m["MetricName"] for m in status["FinalMetricDataList"]} == {"train:logloss", "validation:logloss"}
    body = s3.get_object(Bucket=bucket, Key=f"training/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert "xgboost-model" in archive.getnames()
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"training/{name}/debug-output/")["Contents"]
    ]
    assert any("/collections/" in key for key in keys) and any(key.endswith(".tfevents") for key in keys)
    assert f"training/{name}/debug-output/training_job_end.ts" in keys
    rule = rules_by_name(status)["LossNotDecreasing"]
    assert rule["RuleEvaluationStatus"] in ("NoIssuesFound", "IssuesFound"), rule


def _real_request(name: str, bucket: str) -> dict[str, Any]:
    request = job_request(name, bucket, debugger=False)
    request["HyperParameters"] = {"objective": "binary:logistic", "num_round": "2"}
    return request


@pytest.mark.reliability
def test_an_image_that_cannot_be_pulled_fails_the_job_naming_it(tmp_path: Path, bucket: str, reliability) -> None:
    """An empty image cache and an installer that may not download: the job fails saying which image and why,
    and leaves no half-built environment behind."""
    cache = tmp_path / "images"
    env = {"SM_LOCAL_IMAGE_CACHE": str(cache), "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    name = f"nopull-{uuid.uuid4().hex[:8]}"
    job_dir, process = start_supervisor(tmp_path, _real_request(name, bucket), scripted=False, env=env)
    status = finish(job_dir, process, timeout=120)
    assert status["TrainingJobStatus"] == "Failed"
    reason = status["FailureReason"]
    assert reason.startswith("InternalServerError: Could not pull image sagemaker-xgboost:1.7-1: the local "
                             "endpoint could not build its environment (xgboost==1.7.4, Python 3.11"), reason
    assert transitions(status) == ["Starting", "Downloading", "Training", "Failed"]
    log = (job_dir / "logs" / "algo-1.log").read_text()
    assert "Pulling image sagemaker-xgboost:1.7-1: building its environment" in log
    assert not (cache / "sagemaker-xgboost-1.7-1").exists()
    reliability.survived("local endpoint", "the image's environment cannot be built (no package index)",
                         "job Failed with a FailureReason naming the image; no half-built environment", reason)


@pytest.mark.reliability
def test_a_stop_during_the_pull_stops_the_installer_too(tmp_path: Path, bucket: str, reliability) -> None:
    """StopTrainingJob while the image is pulled: Stopped (not Failed), the installer gone, no environment left."""
    tools = tmp_path / "bin"
    tools.mkdir()
    marker = f"sm-local-test-installer-{uuid.uuid4().hex[:8]}"
    fake_uv = tools / "uv"
    fake_uv.write_text(f"#!/bin/bash\nexec -a {marker} sleep 300\n")
    fake_uv.chmod(0o755)
    cache = tmp_path / "images"
    env = {"SM_LOCAL_IMAGE_CACHE": str(cache), "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    job_dir, process = start_supervisor(tmp_path, _real_request(f"stoppull-{uuid.uuid4().hex[:8]}", bucket),
                                        scripted=False, env=env)
    status = read_status_when(job_dir, lambda s: s.get("SecondaryStatus") == "Training")
    assert status["SecondaryStatusTransitions"][-1]["StatusMessage"] == "Downloading the training image"
    deadline = time.monotonic() + 30
    installers: list[psutil.Process] = []
    while not installers and time.monotonic() < deadline:
        installers = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        time.sleep(0.05)
    assert installers, "the installer never started"
    os.killpg(process.pid, signal.SIGTERM)  # what the server does on StopTrainingJob
    status = finish(job_dir, process, timeout=30)
    assert status["TrainingJobStatus"] == "Stopped", status.get("FailureReason")
    _assert_all_dead([p.pid for p in installers])
    assert not (cache / "sagemaker-xgboost-1.7-1").exists()
    left = [p.pid for p in installers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    reliability.survived("local endpoint", "StopTrainingJob while the image is being pulled",
                         "job Stopped; installer stopped; no environment left",
                         f"job {status['TrainingJobStatus']}; installer processes left: {len(left)}", jobs_leaked=len(left))
