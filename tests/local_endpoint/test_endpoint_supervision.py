"""The endpoint never leaves a job InProgress forever: a dead supervisor ends Failed (or Stopped),
stops are enforced, and job records and liveness checks survive a server restart.

The jobs here run `endpoint_test_supervisor` (chosen per job by a hyperparameter), whose only purpose
is to exit, hang or ignore signals on purpose; real training is tested with the real supervisor."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError

from sm_local.store import read_json
from tests.local_endpoint.endpoint_harness import EndpointProcess, training_job_request

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[EndpointProcess]:
    server = EndpointProcess(tmp_path / "state", stop_grace_seconds=1.5).start()
    try:
        yield server
    finally:
        server.stop()
        server.kill_jobs()


def _wait_for(
    describe: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float = 20
):
    deadline = time.monotonic() + timeout
    while True:
        job = describe()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"gave up waiting; last state {job['TrainingJobStatus']}"
        time.sleep(0.1)


def _supervisor(state_dir: Path, name: str) -> psutil.Process:
    job = read_json(state_dir / "jobs" / name / "job.json")
    assert job is not None
    return psutil.Process(job["SupervisorPid"])


def _wait_until_supervisor_exits(state_dir: Path, name: str) -> None:
    """A fast supervisor may already be gone (and reaped) by the time the test looks it up."""
    try:
        _supervisor(state_dir, name).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass


def _rule_statuses(job: dict[str, Any]) -> list[str]:
    return [rule["RuleEvaluationStatus"] for rule in job["DebugRuleEvaluationStatuses"]]


def test_supervisor_that_dies_without_status_makes_the_job_failed(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("crash-job", behaviour="exit"))
    job = _wait_for(
        lambda: client.describe_training_job(TrainingJobName="crash-job"),
        lambda job: job["TrainingJobStatus"] != "InProgress",
    )
    log = endpoint.state_dir / "jobs" / "crash-job" / "supervisor.log"
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"] == f"The training process exited unexpectedly (see {log})"
    assert [step["Status"] for step in job["SecondaryStatusTransitions"]] == ["Starting", "Failed"]
    assert _rule_statuses(job) == ["Error"]
    assert str(log) in job["DebugRuleEvaluationStatuses"][0]["StatusDetails"]
    # The verdict is written down, so it is the same after any restart, and List agrees.
    assert (
        read_json(endpoint.state_dir / "jobs" / "crash-job" / "status.json")["TrainingJobStatus"] == "Failed"
    )
    [summary] = client.list_training_jobs()["TrainingJobSummaries"]
    assert summary["TrainingJobStatus"] == "Failed"


def test_killed_supervisor_fails_the_job_and_its_orphans_are_killed(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("killed-job", behaviour="sleep"))
    _wait_for(
        lambda: client.describe_training_job(TrainingJobName="killed-job"),
        lambda job: job["SecondaryStatus"] == "Training",
    )
    supervisor = _supervisor(endpoint.state_dir, "killed-job")
    supervisor.kill()
    supervisor.wait(timeout=10)
    job = _wait_for(
        lambda: client.describe_training_job(TrainingJobName="killed-job"),
        lambda job: job["TrainingJobStatus"] != "InProgress",
    )
    assert job["TrainingJobStatus"] == "Failed"
    assert "exited unexpectedly" in job["FailureReason"]
    assert [step["Status"] for step in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Training",
        "Failed",
    ]
    assert job["TrainingEndTime"] >= job["TrainingStartTime"]
    assert _rule_statuses(job) == ["Error"]
    # The supervisor's own child (its "algorithm") does not keep running unsupervised.
    child = psutil.Process(int((endpoint.state_dir / "jobs" / "killed-job" / "child.pid").read_text()))
    child.wait(timeout=10)


def test_completed_job_with_unfinished_rules_gets_rule_errors_when_the_supervisor_is_gone(
    endpoint: EndpointProcess,
) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("rules-orphaned", behaviour="complete-rules-pending"))
    job = _wait_for(
        lambda: client.describe_training_job(TrainingJobName="rules-orphaned"),
        lambda job: _rule_statuses(job) != ["InProgress"],
    )
    assert job["TrainingJobStatus"] == "Completed"
    assert "FailureReason" not in job
    assert _rule_statuses(job) == ["Error"]
    assert "exited unexpectedly" in job["DebugRuleEvaluationStatuses"][0]["StatusDetails"]


def test_a_supervisor_that_finishes_is_never_overruled(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("clean-job", behaviour="complete"))
    job = _wait_for(
        lambda: client.describe_training_job(TrainingJobName="clean-job"),
        lambda job: job["TrainingJobStatus"] == "Completed",
    )
    _wait_until_supervisor_exits(endpoint.state_dir, "clean-job")
    again = client.describe_training_job(TrainingJobName="clean-job")
    assert again["TrainingJobStatus"] == "Completed"
    assert _rule_statuses(again) == ["NoIssuesFound"]
    assert again["LastModifiedTime"] == job["LastModifiedTime"]


def test_stop_lets_the_supervisor_stop_cleanly(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("graceful-stop", behaviour="graceful"))
    _wait_for(
        lambda: client.describe_training_job(TrainingJobName="graceful-stop"),
        lambda job: job["SecondaryStatus"] == "Training",
    )
    client.stop_training_job(TrainingJobName="graceful-stop")
    assert client.describe_training_job(TrainingJobName="graceful-stop")["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = _wait_for(
        lambda: client.describe_training_job(TrainingJobName="graceful-stop"),
        lambda job: job["TrainingJobStatus"] == "Stopped",
    )
    # The supervisor's own final status (its transitions), not the server's fallback.
    assert job["SecondaryStatusTransitions"][-1]["StatusMessage"] == "test supervisor: Stopped"
    assert _rule_statuses(job) == ["Stopped"]
    assert read_json(endpoint.state_dir / "jobs" / "graceful-stop" / "job.json")["StopRequested"] is True
    with pytest.raises(ClientError) as excinfo:
        client.stop_training_job(TrainingJobName="graceful-stop")
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
    assert "Stopped" in excinfo.value.response["Error"]["Message"]


def test_stop_kills_a_supervisor_that_ignores_sigterm(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("stubborn-job", behaviour="ignore-term"))
    _wait_for(
        lambda: client.describe_training_job(TrainingJobName="stubborn-job"),
        lambda job: job["SecondaryStatus"] == "Training",
    )
    supervisor = _supervisor(endpoint.state_dir, "stubborn-job")
    client.stop_training_job(TrainingJobName="stubborn-job")
    time.sleep(0.5)
    assert supervisor.is_running() and supervisor.status() != psutil.STATUS_ZOMBIE  # within its grace period
    assert client.describe_training_job(TrainingJobName="stubborn-job")["TrainingJobStatus"] == "Stopping"
    # Nobody polls: the server's own watcher enforces the grace period (1.5 s here) and records the stop.
    deadline = time.monotonic() + 15
    status_file = endpoint.state_dir / "jobs" / "stubborn-job" / "status.json"
    while (read_json(status_file) or {}).get("TrainingJobStatus") != "Stopped":
        assert time.monotonic() < deadline, "the stop was never enforced"
        time.sleep(0.1)
    assert not supervisor.is_running() or supervisor.status() == psutil.STATUS_ZOMBIE
    job = client.describe_training_job(TrainingJobName="stubborn-job")
    assert job["TrainingJobStatus"] == "Stopped"
    assert "FailureReason" not in job
    assert _rule_statuses(job) == ["Stopped"]


def test_records_and_running_jobs_survive_a_server_restart(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("survivor", behaviour="sleep"))
    client.create_training_job(**training_job_request("dies-while-down", behaviour="sleep"))
    for name in ("survivor", "dies-while-down"):
        _wait_for(
            lambda name=name: client.describe_training_job(TrainingJobName=name),
            lambda job: "Training" == job["SecondaryStatus"],
        )
    before = client.describe_training_job(TrainingJobName="survivor")
    endpoint.stop()

    # The supervisors run in their own sessions, so they outlive the server...
    survivor = _supervisor(endpoint.state_dir, "survivor")
    assert survivor.is_running()
    victim = _supervisor(endpoint.state_dir, "dies-while-down")
    victim.kill()
    victim.wait(timeout=10)  # ...and one of them dies while no server is watching.

    endpoint.start()
    client = endpoint.client()
    after = client.describe_training_job(TrainingJobName="survivor")
    assert after["TrainingJobStatus"] == "InProgress"
    assert after["TrainingJobArn"] == before["TrainingJobArn"]
    assert after["CreationTime"] == before["CreationTime"]
    assert client.describe_training_job(TrainingJobName="dies-while-down")["TrainingJobStatus"] == "Failed"
    assert sorted(job["TrainingJobName"] for job in client.list_training_jobs()["TrainingJobSummaries"]) == [
        "dies-while-down",
        "survivor",
    ]
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**training_job_request("survivor"))
    assert excinfo.value.response["Error"]["Code"] == "ResourceInUse"


def test_a_reused_pid_is_not_mistaken_for_the_supervisor(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("reused-pid", behaviour="exit"))
    job_file = endpoint.state_dir / "jobs" / "reused-pid" / "job.json"
    _wait_until_supervisor_exits(endpoint.state_dir, "reused-pid")
    # Simulate pid reuse: the recorded pid now belongs to a live process (this test) started at
    # another time than the one recorded.
    record = json.loads(job_file.read_text())
    record["SupervisorPid"] = os.getpid()
    job_file.write_text(json.dumps(record))
    job = client.describe_training_job(TrainingJobName="reused-pid")
    assert job["TrainingJobStatus"] == "Failed"
    assert psutil.Process(os.getpid()).is_running()


def test_a_create_interrupted_before_the_supervisor_started_ends_failed(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("half-created", behaviour="exit"))
    _wait_until_supervisor_exits(endpoint.state_dir, "half-created")
    # As if the server died between writing job.json and starting the supervisor.
    job_file = endpoint.state_dir / "jobs" / "half-created" / "job.json"
    record = json.loads(job_file.read_text())
    del record["SupervisorPid"], record["SupervisorCreateTime"]
    job_file.write_text(json.dumps(record))
    job = client.describe_training_job(TrainingJobName="half-created")
    assert job["TrainingJobStatus"] == "Failed"
    assert "exited unexpectedly" in job["FailureReason"]


def test_job_log_is_served_for_the_operator_link(endpoint: EndpointProcess) -> None:
    import urllib.error
    import urllib.request

    client = endpoint.client()
    client.create_training_job(**training_job_request("log-job", behaviour="exit"))
    log_file = endpoint.state_dir / "jobs" / "log-job" / "logs" / "algo-1.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("[0]\ttrain-logloss:0.5\n")
    with urllib.request.urlopen(f"{endpoint.url}/jobs/log-job/log", timeout=5) as response:
        assert response.status == 200
        assert "train-logloss:0.5" in response.read().decode()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{endpoint.url}/jobs/no-such-job/log", timeout=5)
    assert missing.value.code == 404


def test_a_long_job_log_is_served_from_its_end() -> None:
    import tempfile

    from sm_local.server import _tail

    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "algo-1.log"
        log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(100_000)))
        tail = _tail(log, 1000)
    assert len(tail) < 1100 and tail.endswith(b"line 99999\n")
    first, rest = tail.split(b"\n", 1)
    assert first.startswith(b"(... the first ") and rest.startswith(b"line ")  # cut at a line start
