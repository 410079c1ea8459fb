"""Whole processing jobs against the local stack (moto S3 and CloudWatch Logs, the local endpoint): the container
command (tests/local_endpoint/processing_container.py, an S3 input as SageMaker's ScriptProcessor ships code) runs
in the runtime environment over S3 inputs to S3 outputs, on one host or several; and the faults around it: a
failing container, a stop, an endpoint restart, a supervisor that dies, keys that cannot be copied."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from sm_local.process import SPARE_MARKER, job_processes
from sm_local.store import read_json
from tests.local_endpoint.endpoint_harness import (
    EndpointProcess,
    processing_job_ended,
    processing_job_request,
    upload_processing_code,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.process]

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


@pytest.fixture()
def bucket(local_stack: Any) -> str:
    """A bucket with the container's code and five data objects (one below a 'directory')."""
    name = f"proc-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    upload_processing_code(s3, name)
    for index in range(4):
        s3.put_object(Bucket=name, Key=f"data/part-{index}.csv", Body=f"row {index}\n".encode())
    s3.put_object(Bucket=name, Key="data/nested/part-4.csv", Body=b"row 4\n")
    return name


def _sagemaker(local_stack: Any) -> Any:
    return boto3.client("sagemaker", endpoint_url=local_stack.sagemaker_endpoint)


def _objects(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix):]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listing.get("Contents", [])}


def _report(bucket: str, name: str, host: str) -> dict[str, Any]:
    return json.loads(_objects(bucket, f"out/{name}/")[f"{host}.json"])


def test_a_job_runs_its_command_over_s3_inputs_to_s3_outputs_with_logs_in_cloudwatch(
    local_stack: Any, bucket: str
) -> None:
    client = _sagemaker(local_stack)
    name = f"ok-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket))
    job = processing_job_ended(client, name)

    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["CreationTime"] <= job["ProcessingStartTime"] <= job["ProcessingEndTime"] == job["LastModifiedTime"]
    assert "FailureReason" not in job and "ExitMessage" not in job
    report = _report(bucket, name, "algo-1")
    assert report["files"] == ["nested/part-4.csv", "part-0.csv", "part-1.csv", "part-2.csv", "part-3.csv"]
    assert report["hosts"] == ["algo-1"] and report["greeting"] == "hello from the request"
    # Every /opt/ml path the container was given points at the job's stand-in, which the variable names too.
    job_dir = Path(local_stack.state_dir) / "sagemaker" / "processing-jobs" / name
    root = job_dir / "hosts" / "algo-1" / "opt_ml" / "processing"
    assert report["root"] == str(root)
    assert report["args"][:3] == [f"config={root.parent}/config/resourceconfig.json", f"input={root}/input/data",
                                  f"output={root}/output"]

    logs = boto3.client("logs")
    [stream] = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    assert stream["logStreamName"].startswith(f"{name}/algo-1-")
    assert int(stream["logStreamName"].rsplit("-", 1)[1]) >= int(job["ProcessingStartTime"].timestamp())
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"])["events"]
    assert [event["message"] for event in events] == ["processed 5 files on algo-1"]
    assert (job_dir / "logs" / "algo-1.log").read_text().splitlines() == ["processed 5 files on algo-1"]


def test_continuous_outputs_upload_while_the_container_runs(local_stack: Any, bucket: str) -> None:
    """The container waits until its first file is in S3 before it writes the second and exits: it succeeds only
    if the upload happens while it runs; the last pass brings the second."""
    client = _sagemaker(local_stack)
    name = f"continuous-{uuid.uuid4().hex[:8]}"
    stream_uri = f"s3://{bucket}/stream/{name}"
    request = processing_job_request(
        name, bucket, mode="continuous",
        extra_args=["stream=/opt/ml/processing/stream", f"stream_uri={stream_uri}"],
    )
    request["ProcessingOutputConfig"]["Outputs"].append({"OutputName": "stream", "S3Output": {
        "S3Uri": stream_uri, "LocalPath": "/opt/ml/processing/stream", "S3UploadMode": "Continuous"}})
    client.create_processing_job(**request)
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert _objects(bucket, f"stream/{name}/") == {"first.txt": b"written while running\n",
                                                     "second.txt": b"written last\n"}
    assert "algo-1.json" in _objects(bucket, f"out/{name}/")


def test_two_instances_sharded_by_s3_key_each_see_their_share_and_outputs_merge(local_stack: Any, bucket: str) -> None:
    client = _sagemaker(local_stack)
    name = f"sharded-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket, instances=2, distribution="ShardedByS3Key"))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")

    outputs = _objects(bucket, f"out/{name}/")
    assert sorted(outputs) == ["algo-1.json", "algo-2.json"], "both hosts' outputs under the one S3Uri"
    first, second = (json.loads(outputs[f"algo-{index}.json"]) for index in (1, 2))
    # The sorted keys round robin: nested/part-4, part-0, part-1, part-2, part-3.
    assert first["files"] == ["nested/part-4.csv", "part-1.csv", "part-3.csv"]
    assert second["files"] == ["part-0.csv", "part-2.csv"]
    assert first["hosts"] == second["hosts"] == ["algo-1", "algo-2"]
    assert (first["host"], second["host"]) == ("algo-1", "algo-2")
    # The code input is FullyReplicated: each host has its own copy.
    job_dir = Path(local_stack.state_dir) / "sagemaker" / "processing-jobs" / name
    for host in ("algo-1", "algo-2"):
        code = job_dir / "hosts" / host / "opt_ml" / "processing" / "input" / "code" / "processing_container.py"
        assert code.is_file()
    streams = boto3.client("logs").describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    assert sorted(stream["logStreamName"].rsplit("-", 1)[0] for stream in streams["logStreams"]) == [
        f"{name}/algo-1", f"{name}/algo-2"]
    # The job's log page (what the extra link opens locally) shows every host's log, each under its name.
    with urllib.request.urlopen(f"{local_stack.sagemaker_endpoint}/processing-jobs/{name}/log", timeout=10) as page:
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/plain")
        text = page.read().decode()
    assert text.index("==> algo-1 <==") < text.index("==> algo-2 <==")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{local_stack.sagemaker_endpoint}/processing-jobs/no-such-job/log", timeout=10)
    assert missing.value.code == 404


def test_a_manifest_input_downloads_exactly_the_keys_it_lists(local_stack: Any, bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="manifests/two.json", Body=json.dumps(
        [{"prefix": f"s3://{bucket}/data/"}, "part-1.csv", "nested/part-4.csv"]).encode())
    client = _sagemaker(local_stack)
    name = f"manifest-{uuid.uuid4().hex[:8]}"
    request = processing_job_request(name, bucket)
    request["ProcessingInputs"][1]["S3Input"].update(S3Uri=f"s3://{bucket}/manifests/two.json", S3DataType="ManifestFile")
    client.create_processing_job(**request)
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert _report(bucket, name, "algo-1")["files"] == ["nested/part-4.csv", "part-1.csv"]


@pytest.mark.reliability
def test_a_failing_container_fails_the_job_with_its_exit_message_and_uploads_nothing(
    local_stack: Any, bucket: str, reliability
) -> None:
    client = _sagemaker(local_stack)
    name = f"fail-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(
        name, bucket, mode="fail", extra_args=["message=/opt/ml/output/message"]))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["ExitMessage"] == "the input had no rows"
    assert job["FailureReason"] == "AlgorithmError: the input had no rows (host algo-1, exit code 3)"
    assert "ProcessingEndTime" in job
    assert _objects(bucket, f"out/{name}/") == {}, "EndOfJob outputs are uploaded only when the job succeeds"
    summary = client.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"][0]
    assert summary["ExitMessage"] == job["ExitMessage"] and summary["FailureReason"] == job["FailureReason"]
    reliability.survived("local endpoint", "processing container exits 3 after writing /opt/ml/output/message",
                         "job Failed; FailureReason and ExitMessage carry the message; no EndOfJob upload",
                         f"{job['ProcessingJobStatus']}: {job['FailureReason']}; ExitMessage {job['ExitMessage']!r}")


@pytest.mark.reliability
def test_stop_stops_every_host_and_leaves_no_process(local_stack: Any, bucket: str, reliability) -> None:
    client = _sagemaker(local_stack)
    name = f"stop-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket, mode="sleep", instances=2))
    job_dir = Path(local_stack.state_dir) / "sagemaker" / "processing-jobs" / name
    pid_files = [job_dir / "hosts" / host / "opt_ml" / "processing" / "output" / f"{host}.pid"
                 for host in ("algo-1", "algo-2")]
    wait_for(lambda: all(path.exists() and path.read_text() for path in pid_files))
    pids = [int(path.read_text()) for path in pid_files]
    client.stop_processing_job(ProcessingJobName=name)
    assert client.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in ("Stopping", "Stopped")
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "FailureReason" not in job
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    # The supervisor itself exits once its logs are flushed, after the status says Stopped.
    wait_for(lambda: not job_processes(job_dir), timeout=30)
    left = job_processes(job_dir)
    assert left == []
    reliability.survived("local endpoint", "StopProcessingJob while both hosts' containers run",
                         "Stopping -> Stopped; every container of every host ended", f"job {job['ProcessingJobStatus']}",
                         jobs_leaked=len(left))


@pytest.mark.reliability
def test_a_running_job_survives_an_endpoint_restart(
    local_stack: Any, bucket: str, servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    state_dir = tmp_path / "state"
    first = EndpointProcess(state_dir).start()
    servers.append(first)
    name = f"restart-{uuid.uuid4().hex[:8]}"
    key_uri = f"s3://{bucket}/go/{name}"
    first.client().create_processing_job(**processing_job_request(
        name, bucket, extra_args=[f"key_uri={key_uri}"]))
    wait_for(lambda: (state_dir / "processing-jobs" / name / "logs" / "algo-1.log").exists())
    first.stop()

    second = EndpointProcess(state_dir).start()
    servers.append(second)
    client = second.client()
    assert client.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress"
    boto3.client("s3").put_object(Bucket=bucket, Key=f"go/{name}", Body=b"")
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert "algo-1.json" in _objects(bucket, f"out/{name}/")
    reliability.survived("local endpoint", "endpoint stopped and started again while a processing job runs",
                         "the job keeps running and completes; its record is served by the new endpoint",
                         f"job {job['ProcessingJobStatus']} after the restart")


@pytest.mark.reliability
@pytest.mark.parametrize("container", ["warm", "cold"])
def test_a_killed_supervisor_fails_the_job_and_its_containers_are_killed(
    container: str, local_stack: Any, bucket: str, servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    server = EndpointProcess(tmp_path / "state").start()
    servers.append(server)
    client = server.client()
    name = f"orphan-{uuid.uuid4().hex[:8]}"
    jobs_dir = (server.state_dir / "processing-jobs").resolve()
    if container == "warm":
        [warm] = wait_for(lambda: _warm_containers(jobs_dir))
        client.create_processing_job(**processing_job_request(name, bucket, mode="sleep"))
    else:  # a variable the warm container did not start with: a cold container
        client.create_processing_job(**processing_job_request(name, bucket, mode="sleep",
                                                              Environment={"GREETING": "cold"}))
    job_dir = server.state_dir / "processing-jobs" / name
    pid_file = job_dir / "hosts" / "algo-1" / "opt_ml" / "processing" / "output" / "algo-1.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    container_pid = int(pid_file.read_text())
    assert (container_pid == warm.pid) if container == "warm" else True
    os.kill(read_json(job_dir / "job.json")["SupervisorPid"], signal.SIGKILL)

    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        "InternalServerError: The processing job's supervisor exited unexpectedly (see "), job["FailureReason"]
    assert "ProcessingEndTime" in job
    wait_for(lambda: not psutil.pid_exists(container_pid)
             or psutil.Process(container_pid).status() == psutil.STATUS_ZOMBIE, timeout=15)
    wait_for(lambda: not job_processes(job_dir), timeout=30)
    left = job_processes(job_dir)
    assert left == []
    reliability.survived("local endpoint", f"processing job's supervisor killed (SIGKILL) while its {container} "
                         "container runs", "job Failed naming the cause; the container killed",
                         f"{job['ProcessingJobStatus']}: {job['FailureReason']}", jobs_leaked=len(left))


@pytest.mark.reliability
def test_a_key_that_would_leave_the_input_directory_fails_the_job_before_any_download(
    local_stack: Any, bucket: str, reliability
) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="data/a/../../../escape.csv", Body=b"x\n")
    client = _sagemaker(local_stack)
    name = f"unsafe-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(f'ClientError: Cannot download input "data" from "s3://{bucket}/data/"')
    assert "data/a/../../../escape.csv" in job["FailureReason"]
    data_dir = Path(local_stack.state_dir) / "sagemaker" / "processing-jobs" / name / "hosts" / "algo-1" / "opt_ml"
    assert not any((data_dir / "processing" / "input" / "data").iterdir()), "nothing of the input was written"
    assert not (data_dir.parent.parent.parent / "escape.csv").exists()
    reliability.refused("local endpoint", "processing input key 'data/a/../../../escape.csv'",
                        "job Failed naming the key before anything of the input is written", job["FailureReason"])


@pytest.mark.reliability
def test_an_input_prefix_without_objects_fails_the_job_naming_it(local_stack: Any, bucket: str, reliability) -> None:
    client = _sagemaker(local_stack)
    name = f"empty-{uuid.uuid4().hex[:8]}"
    request = processing_job_request(name, bucket)
    request["ProcessingInputs"][1]["S3Input"]["S3Uri"] = f"s3://{bucket}/nothing-here/"
    client.create_processing_job(**request)
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "s3://{bucket}/nothing-here/" given in input "data"')
    reliability.refused("local endpoint", "processing input whose S3 prefix holds no object",
                        "job Failed naming the input and the URI", job["FailureReason"])


@pytest.mark.reliability
def test_a_job_past_its_max_runtime_is_stopped_and_its_containers_end(local_stack: Any, bucket: str,
                                                                     reliability) -> None:
    """SageMaker stops a processing job at its StoppingCondition (Stopped, no FailureReason), as here."""
    client = _sagemaker(local_stack)
    name = f"overtime-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(
        name, bucket, mode="sleep", StoppingCondition={"MaxRuntimeInSeconds": 3}))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "FailureReason" not in job
    assert (job["ProcessingEndTime"] - job["ProcessingStartTime"]).total_seconds() >= 3
    job_dir = Path(local_stack.state_dir) / "sagemaker" / "processing-jobs" / name
    wait_for(lambda: not job_processes(job_dir), timeout=30)
    left = job_processes(job_dir)
    reliability.survived("local endpoint", "processing container runs past StoppingCondition.MaxRuntimeInSeconds",
                         "job Stopped, as SageMaker stops it; its containers ended",
                         f"{job['ProcessingJobStatus']} after "
                         f"{(job['ProcessingEndTime'] - job['ProcessingStartTime']).total_seconds():.1f} s",
                         jobs_leaked=len(left))


def _spare_processes(jobs_dir: Path, argument: str) -> list[psutil.Process]:
    """Processes with the spares' marker (sm_local.process.SPARE_MARKER) for jobs of `jobs_dir` whose command line
    has `argument`."""
    found = []
    for process in job_processes(jobs_dir / SPARE_MARKER):
        try:
            if argument in process.cmdline():
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def _spares(jobs_dir: Path) -> list[psutil.Process]:
    """The spare supervisors started for jobs of `jobs_dir`."""
    return _spare_processes(jobs_dir, "--spare")


def _warm_containers(jobs_dir: Path) -> list[psutil.Process]:
    """The warm containers (sm_local.warm_container) the spare supervisors of `jobs_dir` keep."""
    return _spare_processes(jobs_dir, "sm_local.warm_container")


def _endpoint_with_spares(servers: list[EndpointProcess], tmp_path: Path) -> tuple[EndpointProcess, Path]:
    """A new endpoint (stopped at the test's end) and its processing jobs directory, where its spares are marked."""
    state_dir = tmp_path / "state"
    server = EndpointProcess(state_dir).start()
    servers.append(server)
    return server, (state_dir / "processing-jobs").resolve()


def test_a_job_gets_the_spare_supervisor_and_a_new_spare_waits_for_the_next(
    local_stack: Any, bucket: str, servers: list[EndpointProcess], tmp_path: Path
) -> None:
    server, jobs_dir = _endpoint_with_spares(servers, tmp_path)
    [spare] = wait_for(lambda: _spares(jobs_dir))
    assert spare.cmdline()[-3:] == ["-m", "sm_local.processing_supervisor", "--spare"]
    client = server.client()
    name = f"spare-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    record = read_json(jobs_dir / name / "job.json")
    assert record["SupervisorPid"] == spare.pid  # the spare became the job's supervisor, as a cold one would
    assert "processed 5 files on algo-1" in (jobs_dir / name / "logs" / "algo-1.log").read_text()
    assert "sm_local.processing_supervisor" not in "".join(server.stderr_lines)  # its output: the job's log
    assert (jobs_dir / name / "supervisor.log").stat().st_size > 0
    # A handed-over spare keeps the marker it started with (a process's initial environment cannot change).
    [second] = wait_for(lambda: [p for p in _spares(jobs_dir) if p.pid != spare.pid])
    again = f"spare-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(again, bucket))
    assert processing_job_ended(client, again)["ProcessingJobStatus"] == "Completed"
    assert read_json(jobs_dir / again / "job.json")["SupervisorPid"] == second.pid


@pytest.mark.reliability
@pytest.mark.parametrize("ending", ["stopped", "killed"])
def test_no_spare_outlives_its_endpoint(
    ending: str, local_stack: Any, servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    server, jobs_dir = _endpoint_with_spares(servers, tmp_path)
    [spare] = wait_for(lambda: _spares(jobs_dir))
    [warm] = wait_for(lambda: _warm_containers(jobs_dir))
    assert server.process is not None
    if ending == "stopped":
        server.stop()
    else:
        server.process.kill()  # no clean-up at all: the spare sees EOF on its stdin
        server.process.wait(timeout=15)
    gone, alive = psutil.wait_procs([spare, warm], timeout=30)
    assert not alive and not job_processes(jobs_dir / SPARE_MARKER)
    reliability.survived("local endpoint", f"endpoint {ending} while a spare supervisor and its warm container wait for a job",
                         "the spare ends with it; nothing is left running",
                         f"spare pid {spare.pid} and its warm container ended; spare processes left: "
                         f"{len(job_processes(jobs_dir / SPARE_MARKER))}")


def test_a_job_runs_in_the_spares_warm_container_as_a_cold_container_would_and_else_cold(
    local_stack: Any, bucket: str, servers: list[EndpointProcess], tmp_path: Path
) -> None:
    server, jobs_dir = _endpoint_with_spares(servers, tmp_path)
    [warm] = wait_for(lambda: _warm_containers(jobs_dir))
    [spare] = _spares(jobs_dir)
    assert warm.ppid() == spare.pid  # the container is its supervisor's child, as a cold one is
    cold_nice = os.getpriority(os.PRIO_PROCESS, 0)  # what the server, a cold supervisor and its container inherit
    client = server.client()
    name = f"warm-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(name, bucket))
    job = processing_job_ended(client, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")

    report = _report(bucket, name, "algo-1")
    root = jobs_dir / name / "hosts" / "algo-1" / "opt_ml" / "processing"
    assert report["pid"] == warm.pid
    # It prepared at nice 19 and runs its job at the priority a cold container would have, in every thread (the
    # BLAS pools its preload started too).
    assert report["nice"] and set(report["nice"]) == {cold_nice}
    # What a cold `python3 /opt/ml/processing/input/code/processing_container.py ...` would see.
    assert report["cwd"] == str(jobs_dir / name / "hosts" / "algo-1")
    assert report["argv0"] == f"{root}/input/code/processing_container.py"
    assert report["args"][:3] == [f"config={root.parent}/config/resourceconfig.json", f"input={root}/input/data",
                                  f"output={root}/output"]
    assert report["greeting"] == "hello from the request" and report["root"] == str(root)
    assert report["files"] == ["nested/part-4.csv", "part-0.csv", "part-1.csv", "part-2.csv", "part-3.csv"]
    # Its log is the job's output only (nothing of the preload).
    assert (jobs_dir / name / "logs" / "algo-1.log").read_text().splitlines() == ["processed 5 files on algo-1"]

    # A variable the warm container did not start with (Python or a library may read it at start-up): cold.
    [second] = wait_for(lambda: [p for p in _warm_containers(jobs_dir) if p.pid != warm.pid])
    cold = f"cold-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(**processing_job_request(cold, bucket, Environment={"GREETING": "plain"}))
    assert processing_job_ended(client, cold)["ProcessingJobStatus"] == "Completed"
    report = _report(bucket, cold, "algo-1")
    assert report["pid"] != second.pid and report["plain_greeting"] == "plain"
    gone, alive = psutil.wait_procs([second], timeout=15)
    assert not alive  # the unused warm container ended with its job
