"""`make local-up`/`local-down` behaviour: idempotent, never half-started, clear port errors, and `down` leaves
no job process running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import psutil
import pytest

from local_stack import StackError, read_stack, runtime_python, start_stack, stop_stack

# The marker every process of a job carries, as the local endpoint (runtime environment) defines it.
JOB_DIR_ENV = subprocess.run(
    [str(runtime_python()), "-c", "from sm_local.process import JOB_DIR_ENV; print(JOB_DIR_ENV)"],
    capture_output=True, text=True, check=True,
).stdout.strip()

pytestmark = pytest.mark.stack


def test_up_is_idempotent_writes_env_and_down_stops(tmp_path: Path) -> None:
    first = start_stack(tmp_path)
    try:
        again = start_stack(tmp_path)
        assert again == first, "a second `up` must reuse the running stack"
        env_file = (tmp_path / "stack.env").read_text()
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_DEFAULT_REGION",
                    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert f"export {key}=" in env_file
        sm = boto3.client("sagemaker", endpoint_url=first.sagemaker_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        assert sm.list_training_jobs()["TrainingJobSummaries"] == []
        s3 = boto3.client("s3", endpoint_url=first.s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="stack-check")
        assert "stack-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        assert stop_stack(tmp_path) is True
    assert read_stack(tmp_path) is None
    assert not (tmp_path / "stack.env").exists()
    assert stop_stack(tmp_path) is False, "a second `down` has nothing to stop"


def test_taken_port_is_a_clear_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} .*already taken"):
            start_stack(tmp_path, sagemaker_port=port)
    assert read_stack(tmp_path) is None
    assert not (tmp_path / "stack.json").exists()


REPO = Path(__file__).resolve().parents[3]
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:{}"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def _client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _long_job(name: str, bucket: str, version: str) -> dict:
    """A job that trains for hours (a million rounds), with the Debugger hook and one rule reading it."""
    def channel(channel_name: str) -> dict:
        return {"ChannelName": channel_name, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/{channel_name}/"}}}

    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": IMAGE.format(version), "TrainingInputMode": "File"},
        "HyperParameters": {"objective": "binary:logistic", "num_round": "1000000", "max_depth": "3",
                            "nthread": "1"},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "DebugHookConfig": {"S3OutputPath": f"s3://{bucket}/training", "CollectionConfigurations": [
            {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "100000"}}]},
        "DebugRuleConfigurations": [{
            "RuleConfigurationName": "LossNotDecreasing", "RuleEvaluatorImage": RULES_IMAGE,
            "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics"}}],
    }


def _stack_processes(state_dir: Path, info) -> list[psutil.Process]:
    """Live processes of the stack: its two services and every process of a job below its state directory."""
    prefix = str(state_dir) + "/"
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.pid in (info.moto_pid, info.sagemaker_pid) or (
                    process.environ().get(JOB_DIR_ENV, "").startswith(prefix)):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _cmdlines(processes: list[psutil.Process]) -> list[str]:
    lines = []
    for process in processes:
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return lines


@pytest.fixture()
def installer_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Image 1.7-1 is the shared environment; any other image is "pulled" by a `uv` that never finishes, whose
    process is named by the returned string. Set for the stacks the test starts."""
    cache = tmp_path / "images"
    cache.mkdir()
    (cache / "sagemaker-xgboost-1.7-1").symlink_to(REPO / ".venv-images" / "sagemaker-xgboost-1.7-1")
    tools = tmp_path / "bin"
    tools.mkdir()
    name = f"sm-local-test-installer-{uuid.uuid4().hex[:8]}"
    (tools / "uv").write_text(f"#!/bin/bash\nexec -a {name} sleep 600\n")
    (tools / "uv").chmod(0o755)
    monkeypatch.setenv("SM_LOCAL_IMAGE_CACHE", str(cache))
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return name


def _start_jobs(state_dir: Path, jobs: dict[str, str], expected: tuple[str, ...]):
    """Start a stack and one long job per name (value: image version); returns once a process whose command
    line holds each of `expected` runs."""
    info = start_stack(state_dir)
    s3 = _client("s3", info.s3_endpoint)
    s3.create_bucket(Bucket="down-check")
    rows = [f"{i % 2},{(i * 7) % 13 / 13:.3f},{(i * 3) % 11 / 11:.3f}" for i in range(400)]
    s3.put_object(Bucket="down-check", Key="data/train/train.csv", Body="\n".join(rows[:300]).encode())
    s3.put_object(Bucket="down-check", Key="data/validation/validation.csv", Body="\n".join(rows[300:]).encode())
    sagemaker = _client("sagemaker", info.sagemaker_endpoint)
    for name, version in jobs.items():
        sagemaker.create_training_job(**_long_job(name, "down-check", version))
    deadline = time.monotonic() + 120
    while not all(any(part in line for line in _cmdlines(_stack_processes(state_dir, info))) for part in expected):
        assert time.monotonic() < deadline, f"the jobs never started: {_cmdlines(_stack_processes(state_dir, info))}"
        time.sleep(0.2)
    return info


def _statuses_after_up(state_dir: Path, names: tuple[str, ...]) -> dict[str, str]:
    info = start_stack(state_dir)
    try:
        sagemaker = _client("sagemaker", info.sagemaker_endpoint)
        return {name: sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] for name in names}
    finally:
        stop_stack(state_dir)


@pytest.mark.reliability
def test_down_stops_every_job_supervisor_and_every_process_they_started(
    tmp_path: Path, installer_name: str, reliability
) -> None:
    """A real stack with a job training on 1.7-1 (algorithm + rule, each in its own session) and a job whose image
    pull never ends (installer in the supervisor's group): after `down` not one of their processes runs."""
    state_dir = (tmp_path / "stack").resolve()
    expected = ("sm_local.supervisor", "sm_local.xgboost_container", "sm_local.rules", installer_name)
    try:
        info = _start_jobs(state_dir, {"long-training": "1.7-1", "endless-pull": "1.5-1"}, expected)
        running = _stack_processes(state_dir, info)
        sessions = {process.pid: os.getsid(process.pid) for process in running}
        # Two supervisors, the algorithm and the rule each lead a session (the installer is in its supervisor's).
        assert len(set(sessions.values())) >= 4, sessions
    finally:
        stopped = stop_stack(state_dir)

    assert stopped is True
    left = _stack_processes(state_dir, info)
    assert _cmdlines(left) == [], "processes of the stack survived `down`"
    statuses = _statuses_after_up(state_dir, ("long-training", "endless-pull"))
    assert statuses == {"long-training": "Stopped", "endless-pull": "Stopped"}, "stopped, not crashed"
    reliability.survived("local stack", "`make local-down` with a job training (algorithm + rule in their own "
                         "sessions) and a job pulling its image", "every supervisor, algorithm, rule and installer "
                         "stopped; the jobs read Stopped after `up`",
                         f"{len(running)} processes before down, {len(left)} after; jobs {statuses}",
                         jobs_leaked=len(left))


@pytest.mark.reliability
def test_down_stops_a_processing_job_on_two_hosts_and_every_container(tmp_path: Path, reliability) -> None:
    """Processing jobs live beside the training jobs (`processing-jobs/`): `down` stops their supervisors and
    containers (each host's in a session of its own) too, and the job reads Stopped after `up`."""
    state_dir = (tmp_path / "stack").resolve()
    name = "long-processing"
    try:
        info = start_stack(state_dir)
        s3 = _client("s3", info.s3_endpoint)
        s3.create_bucket(Bucket="down-processing")
        code = REPO / "tests" / "local_endpoint" / "processing_container.py"
        s3.put_object(Bucket="down-processing", Key="code/processing_container.py", Body=code.read_bytes())
        _client("sagemaker", info.sagemaker_endpoint).create_processing_job(
            ProcessingJobName=name, RoleArn="arn:aws:iam::123456789012:role/SageMakerExecutionRole",
            AppSpecification={
                "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime:latest",
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/code/processing_container.py"],
                "ContainerArguments": ["config=/opt/ml/config/resourceconfig.json",
                                       "output=/opt/ml/processing/output", "mode=sleep"]},
            ProcessingInputs=[{"InputName": "code", "S3Input": {
                "S3Uri": "s3://down-processing/code/", "LocalPath": "/opt/ml/processing/code",
                "S3DataType": "S3Prefix"}}],
            ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
                "S3Uri": "s3://down-processing/out", "LocalPath": "/opt/ml/processing/output",
                "S3UploadMode": "EndOfJob"}}]},
            ProcessingResources={"ClusterConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge",
                                                   "VolumeSizeInGB": 1}})
        # Each container writes its pid once it runs (the first host's may be a spare's warm container, whose
        # command line names sm_local.warm_container, not the script).
        hosts = state_dir / "sagemaker" / "processing-jobs" / name / "hosts"
        pid_files = [hosts / host / "opt_ml" / "processing" / "output" / f"{host}.pid" for host in ("algo-1", "algo-2")]
        deadline = time.monotonic() + 120
        while not all(path.is_file() and path.read_text().strip() for path in pid_files):
            assert time.monotonic() < deadline, _cmdlines(_stack_processes(state_dir, info))
            time.sleep(0.2)
        containers = [int(path.read_text()) for path in pid_files]
        running = _stack_processes(state_dir, info)
        assert set(containers) <= {process.pid for process in running}, (containers, _cmdlines(running))
    finally:
        stopped = stop_stack(state_dir)

    assert stopped is True
    left = _stack_processes(state_dir, info)
    assert _cmdlines(left) == [], "processes of the processing job survived `down`"
    info = start_stack(state_dir)
    try:
        status = _client("sagemaker", info.sagemaker_endpoint).describe_processing_job(
            ProcessingJobName=name)["ProcessingJobStatus"]
    finally:
        stop_stack(state_dir)
    assert status == "Stopped"
    reliability.survived("local stack", "`make local-down` with a processing job running on two hosts",
                         "its supervisor and both containers stopped; the job reads Stopped after `up`",
                         f"{len(running)} processes before down, {len(left)} after; job {status}",
                         jobs_leaked=len(left))


@pytest.mark.reliability
def test_down_kills_the_orphans_of_a_supervisor_that_died(tmp_path: Path, installer_name: str, reliability) -> None:
    """The supervisor was killed (its rule, in a session of its own, runs on): `down` finds what is left by the job
    marker and kills it."""
    state_dir = (tmp_path / "stack").resolve()
    try:
        info = _start_jobs(state_dir, {"orphaned": "1.7-1"}, ("sm_local.xgboost_container", "sm_local.rules"))
        [supervisor] = [p for p in _stack_processes(state_dir, info) if "sm_local.supervisor" in " ".join(p.cmdline())]
        supervisor.kill()
        supervisor.wait(timeout=10)
        orphans = _stack_processes(state_dir, info)
        # The rule (own session, writes only files) trains on; the algorithm may soon die of its broken stdout pipe.
        assert "sm_local.rules" in " ".join(_cmdlines(orphans)), _cmdlines(orphans)
    finally:
        stopped = stop_stack(state_dir)

    assert stopped is True
    left = _stack_processes(state_dir, info)
    assert _cmdlines(left) == [], "the orphans survived `down`"
    reliability.survived("local stack", "`make local-down` after a job's supervisor was killed (its algorithm and "
                         "rule still running)", "the orphaned processes are killed",
                         f"{len(orphans) - 2} orphans before down (besides moto and the endpoint), {len(left)} after",
                         jobs_leaked=len(left))


@pytest.mark.reliability
def test_down_never_signals_a_process_that_reused_a_supervisors_pid(tmp_path: Path, reliability) -> None:
    """A finished job's record names a pid now used by an unrelated process (another start time): `down` leaves it."""
    unrelated = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        job_dir = tmp_path / "sagemaker" / "jobs" / "long-gone"
        job_dir.mkdir(parents=True)
        created = psutil.Process(unrelated.pid).create_time()
        (job_dir / "job.json").write_text(json.dumps({
            "TrainingJobName": "long-gone", "CreationTime": created - 3600,
            "SupervisorPid": unrelated.pid, "SupervisorCreateTime": created - 3600}))
        assert stop_stack(tmp_path) is False, "nothing of the stack was running"
        assert unrelated.poll() is None, "down signalled a process that is not the job's supervisor"
        assert "StopRequested" not in json.loads((job_dir / "job.json").read_text())
    finally:
        unrelated.kill()
        unrelated.wait()
    reliability.survived("local stack", "a job record whose supervisor pid now belongs to another process",
                         "`down` checks the recorded start time and leaves that process alone",
                         "the unrelated process was still running after down", jobs_leaked=0)
