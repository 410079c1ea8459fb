"""The local endpoint's bounds, over real HTTP against a real `python -m sm_local.server`: request size, malformed
and half-sent requests (raw sockets), concurrently running jobs (ResourceLimitExceeded, as SageMaker answers) and
the retention of finished jobs. The jobs run `endpoint_test_supervisor` (see endpoint_harness.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError

from tests.local_endpoint.endpoint_harness import EndpointProcess, training_job_request, wait_for

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

MiB = 1024 * 1024


def _start(servers: list[EndpointProcess], state_dir: Path, *args: str) -> EndpointProcess:
    server = EndpointProcess(state_dir, extra_args=list(args)).start()
    servers.append(server)
    return server


def _exchange(url: str, data: bytes, *, read_timeout: float = 60) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes the connection: (status, headers, body); status None when
    the server closed without answering. `read_timeout` only bounds a test that would otherwise hang."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=read_timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    if not received:
        return None, {}, b""
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def _post_head(length: str, target: str = "SageMaker.ListTrainingJobs") -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: {target}\r\n"
            f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {length}\r\n\r\n").encode()


def _still_serving(server: EndpointProcess) -> None:
    assert server.client().list_training_jobs()["TrainingJobSummaries"] is not None


def _status(server: EndpointProcess, name: str) -> str:
    return server.client().describe_training_job(TrainingJobName=name)["TrainingJobStatus"]


@pytest.mark.reliability
@pytest.mark.parametrize("length", ["abc", "-5", "12abc", ""])
def test_a_malformed_content_length_is_answered_400_naming_it(
    servers: list[EndpointProcess], tmp_path: Path, length: str, reliability
) -> None:
    server = _start(servers, tmp_path / "state")
    status, headers, body = _exchange(server.url, _post_head(length) + b"{}")
    assert status == 400 and headers["connection"] == "close"
    error = json.loads(body)
    assert error["__type"] == "SerializationException"
    assert error["message"].startswith(f"Invalid Content-Length header {length!r}: it must be the body's size"), error
    _still_serving(server)
    reliability.refused("local endpoint", f"Content-Length: {length!r}", "HTTP 400 with a JSON error naming the "
                        "header; the server keeps serving", f"HTTP {status}: {error['message']}")


@pytest.mark.reliability
def test_a_body_over_the_size_cap_is_answered_413_without_reading_it(
    servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    server = _start(servers, tmp_path / "state")
    # Only the headers: the answer must come without the server waiting for (or buffering) 16 MiB.
    status, headers, body = _exchange(server.url, _post_head(str(16 * MiB + 1)))
    assert status == 413 and headers["connection"] == "close"
    error = json.loads(body)
    assert error == {"__type": "RequestEntityTooLargeException", "message": (
        "The request body of 16,777,217 bytes is larger than the 16,777,216 bytes this endpoint accepts "
        "(--max-request-bytes).")}

    # boto3 sending the whole oversized body still reads the answer (the server drains, then closes).
    client = server.client(parameter_validation=False)
    request = training_job_request("too-large")
    request["HyperParameters"]["padding"] = "x" * (17 * MiB)
    with pytest.raises(ClientError) as raised:
        client.create_training_job(**request)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert not (server.state_dir / "jobs" / "too-large").exists()
    _still_serving(server)
    reliability.refused("local endpoint", "17 MiB CreateTrainingJob (cap 16 MiB)", "HTTP 413 JSON error before the "
                        "body is read; boto3 gets it as a ClientError", f"HTTP 413 {raised.value}")


@pytest.mark.reliability
def test_a_client_sending_half_a_request_is_disconnected_after_the_socket_timeout(
    servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    server = _start(servers, tmp_path / "state", "--socket-timeout-seconds", "1")
    # Half the headers: the connection is closed (no request to answer), its thread freed.
    status, _, _ = _exchange(server.url, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    assert status is None
    # The headers and 10 of 100 announced bytes: answered 408, then closed.
    status, headers, body = _exchange(server.url, _post_head("100") + b'{"MaxResul')
    assert status == 408 and headers["connection"] == "close"
    error = json.loads(body)
    assert error == {"__type": "RequestTimeoutException", "message": (
        "The request body did not arrive: Content-Length announced 100 bytes, then 1 s passed.")}
    _still_serving(server)
    reliability.survived("local endpoint", "client sends half the headers / a tenth of the body, then nothing",
                         "connection closed after the socket timeout (408 JSON once headers were complete)",
                         f"half headers: closed without answer; half body: HTTP {status} {error['message']}")


@pytest.mark.reliability
def test_more_running_jobs_than_the_cap_is_resource_limit_exceeded(
    servers: list[EndpointProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    monkeypatch.setenv("SM_LOCAL_MAX_RUNNING_JOBS", "2")
    server = _start(servers, tmp_path / "state")
    client = server.client()
    client.create_training_job(**training_job_request("done", "complete"))
    wait_for(lambda: _status(server, "done") == "Completed")  # a finished job takes no place
    for name in ("running-1", "running-2"):
        client.create_training_job(**training_job_request(name, "sleep"))
    status, body = server.raw_post("SageMaker.CreateTrainingJob", training_job_request("third", "sleep"))
    assert status == 400 and body["__type"] == "ResourceLimitExceeded"
    assert body["message"].startswith(
        "The account-level service limit 'ml.m5.xlarge for training job usage' is 2 Instances, with current "
        "utilization of 2 Instances and a request delta of 1 Instances."), body
    assert "SM_LOCAL_MAX_RUNNING_JOBS" in body["message"]
    assert not (server.state_dir / "jobs" / "third").exists()

    client.stop_training_job(TrainingJobName="running-1")
    wait_for(lambda: _status(server, "running-1") == "Stopped")
    client.create_training_job(**training_job_request("third", "sleep"))
    assert _status(server, "third") == "InProgress"
    reliability.refused("local endpoint", "a third CreateTrainingJob with 2 running and a cap of 2",
                        "ResourceLimitExceeded (HTTP 400) as SageMaker answers; accepted once one stopped",
                        f"HTTP {status} {body['__type']}: {body['message']}")


def _backdate(state_dir: Path, name: str, days: float) -> None:
    path = state_dir / "jobs" / name / "status.json"
    status = json.loads(path.read_text())
    status["LastModifiedTime"] -= days * 86400
    path.write_text(json.dumps(status))


@pytest.mark.reliability
def test_jobs_that_ended_before_the_retention_are_removed_at_start_up_and_running_ones_kept(
    servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    state_dir = tmp_path / "state"
    first = _start(servers, state_dir)
    client = first.client()
    for name, behaviour in (("old-done", "complete"), ("new-done", "complete"), ("old-running", "sleep")):
        client.create_training_job(**training_job_request(name, behaviour))
    wait_for(lambda: {_status(first, "old-done"), _status(first, "new-done")} == {"Completed"})
    first.stop()  # the running job's supervisor lives on, as when the real server stops
    _backdate(state_dir, "old-done", 31)
    _backdate(state_dir, "old-running", 31)  # InProgress for 31 days: still never removed

    second = _start(servers, state_dir)  # the default retention: 30 days
    assert sorted(path.name for path in (state_dir / "jobs").iterdir()) == ["new-done", "old-running"]
    client = second.client()
    with pytest.raises(ClientError) as raised:
        client.describe_training_job(TrainingJobName="old-done")
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}
    assert _status(second, "old-running") == "InProgress"
    assert _status(second, "new-done") == "Completed"
    names = [job["TrainingJobName"] for job in client.list_training_jobs()["TrainingJobSummaries"]]
    assert sorted(names) == ["new-done", "old-running"]
    reliability.survived("local endpoint", "job ended 31 days ago, retention 30 days, server restarted",
                         "removed at start-up; Describe says not found; a 31-day InProgress job is kept",
                         f"jobs left {sorted(names)}; Describe old-done: {raised.value.response['Error']['Code']}")


@pytest.mark.reliability
def test_jobs_are_removed_periodically_once_past_the_retention_and_running_ones_never(
    servers: list[EndpointProcess], tmp_path: Path, reliability
) -> None:
    server = _start(servers, tmp_path / "state", "--retention-days", str(2 / 86400))  # two seconds
    client = server.client()
    client.create_training_job(**training_job_request("running", "sleep"))
    client.create_training_job(**training_job_request("finished", "complete"))

    def removed() -> bool:
        try:
            client.describe_training_job(TrainingJobName="finished")
        except ClientError as error:
            assert error.response["Error"]["Message"] == "Requested resource not found."
            return True
        return False

    wait_for(removed)
    assert not (server.state_dir / "jobs" / "finished").exists()
    # The running job's last change is past the retention too; two more sweeps (one a second) leave it alone.
    modified = client.describe_training_job(TrainingJobName="running")["LastModifiedTime"].timestamp()
    wait_for(lambda: time.time() - modified > 2)
    time.sleep(2.5)
    running = client.describe_training_job(TrainingJobName="running")
    assert running["TrainingJobStatus"] == "InProgress"
    assert (server.state_dir / "jobs" / "running" / "job.json").exists()
    reliability.survived("local endpoint", "retention of 2 s while the server runs",
                         "finished job removed by the periodic sweep; the running job never",
                         f"finished: not found; running: {running['TrainingJobStatus']}")
