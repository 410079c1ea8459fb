"""HTTP front of the local SageMaker endpoint: `python -m sm_local.server --port 0 --state-dir DIR`.

Speaks awsJson1_1 (`POST /` with `X-Amz-Target: SageMaker.<Operation>`) so boto3, aiobotocore and the
AWS CLI work unmodified with `endpoint_url` / `AWS_ENDPOINT_URL_SAGEMAKER`. Signatures are not
checked: any dummy credentials are accepted. `GET /ping` answers `ok` for the launcher's health check.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sm_local import protocol
from sm_local.api import DEFAULT_MAX_RUNNING_JOBS, MAX_RUNNING_JOBS_ENV, EndpointApi
from sm_local.processing_spec import RUNTIME_IMAGE_URI_ENV, RUNTIME_REPOSITORY, default_runtime_image_uri
from sm_local.protocol import SageMakerError
from sm_local.store import TRAINING_JOB_NAME

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a CreateTrainingJob within the model's limits: a few MiB of text
DEFAULT_SOCKET_TIMEOUT_SECONDS = 60.0
DEFAULT_RETENTION_DAYS = 30.0
RETENTION_DAYS_ENV = "SM_LOCAL_RETENTION_DAYS"
# After a refused body: how much of it is read and dropped, for how long, so the client gets the answer.
_LINGER_MAX_BYTES = 64 * 1024 * 1024
_LINGER_SECONDS = 5.0

# GET /jobs/<TrainingJobName>/log and /processing-jobs/<ProcessingJobName>/log, names as SageMaker allows them
# (both name patterns are the same).
_JOB_LOG_PATH = re.compile(rf"^/(jobs|processing-jobs)/({TRAINING_JOB_NAME.pattern})/log$")


class _RefusedRequest(Exception):
    """A request refused before its body is read: answered, then its connection is closed."""

    def __init__(self, error: SageMakerError, unread_bytes: int = _LINGER_MAX_BYTES) -> None:
        super().__init__(error.message)
        self.error = error
        self.unread_bytes = unread_bytes


MAX_LOG_BYTES_PER_HOST = 1 << 20  # the log page shows the end of each host's log, never an unbounded read


def _tail(path: Path, limit: int) -> bytes:
    """The last `limit` bytes of a log file (from a line start when cut, saying so)."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        if size <= limit:
            stream.seek(0)
            return stream.read()
        stream.seek(size - limit)
        data = stream.read(limit)
    cut = data.find(b"\n") + 1
    return f"(... the first {size - limit + cut} bytes left out ...)\n".encode() + data[cut:]


class SageMakerRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: EndpointServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        started = time.monotonic()
        path = self.path.split("?", 1)[0]
        log_match = _JOB_LOG_PATH.match(path)
        if path == "/ping":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif log_match:
            self._send_job_log(log_match.group(1), log_match.group(2))
        else:
            self._send(404, b"not found", "text/plain; charset=utf-8")
        self._log_request("-", started)

    def _send_job_log(self, kind: str, name: str) -> None:
        """The job's log as plain text, every host's in turn (the last ``MAX_LOG_BYTES_PER_HOST`` of each): what
        the operators' extra links open for the local endpoint (on AWS the links go to the SageMaker console)."""
        api = self.server.api
        store, what = (api.training.store, "training") if kind == "jobs" else (api.processing.store, "processing")
        if store.read_job(name) is None:
            self._send(404, f"no {what} job named {name}".encode(), "text/plain; charset=utf-8")
            return
        logs = sorted((store.job_dir(name) / "logs").glob("algo-*.log"),
                      key=lambda path: int(path.stem.rsplit("-", 1)[1]) if path.stem.rsplit("-", 1)[1].isdigit()
                      else 0)
        if not logs:
            self._send(200, b"(the job has not written a log yet)\n", "text/plain; charset=utf-8")
            return
        chunks = []
        for log_file in logs:
            if len(logs) > 1:
                chunks.append(f"==> {log_file.stem} <==\n".encode())
            chunks.append(_tail(log_file, MAX_LOG_BYTES_PER_HOST))
        self._send(200, b"".join(chunks), "text/plain; charset=utf-8")

    def setup(self) -> None:
        # Every read and write of this connection times out: a client that sends half a request (or none on a
        # kept-alive connection) frees its thread after `socket_timeout` seconds instead of holding it forever.
        self.timeout = self.server.socket_timeout
        super().setup()

    def do_POST(self) -> None:  # noqa: N802
        started = time.monotonic()
        target = self.headers.get("X-Amz-Target")
        try:
            raw = self._read_body()
            operation = protocol.operation_name_from_target(target)
            payload = self.server.api.handle(operation, protocol.decode_body(raw))
            status, body = 200, protocol.encode_body(payload)
        except _RefusedRequest as refused:
            self._send(refused.error.http_status, protocol.encode_body(refused.error.body()), protocol.CONTENT_TYPE,
                       close=True)
            self._linger(refused.unread_bytes)
            self._log_request(target or "-", started)
            return
        except SageMakerError as error:
            status, body = error.http_status, protocol.encode_body(error.body())
            if error.http_status >= 500:
                sys.stderr.write(f"{error.error_type}: {error.message}\n")
        except Exception as exc:  # a bug here must not kill the connection without an answer
            traceback.print_exc()
            error = SageMakerError("InternalFailure", f"{type(exc).__name__}: {exc}", http_status=500)
            status, body = error.http_status, protocol.encode_body(error.body())
        self._send(status, body, protocol.CONTENT_TYPE)
        self._log_request(target or "-", started)

    def _read_body(self) -> bytes:
        """The request body, within the server's bounds; _RefusedRequest (answered, then the connection
        closed) for a body that is not announced by one non-negative Content-Length, is too large, or does
        not arrive within the socket timeout."""
        if self.headers.get("Transfer-Encoding"):
            raise _RefusedRequest(SageMakerError(
                "SerializationException",
                f"Transfer-Encoding {self.headers['Transfer-Encoding']!r} is not accepted: send the JSON body "
                "with a Content-Length header, as the AWS SDKs do.",
            ))
        values = self.headers.get_all("Content-Length") or []
        if len(set(values)) > 1:
            raise _RefusedRequest(SageMakerError(
                "SerializationException", f"Conflicting Content-Length headers {values}: send exactly one."
            ))
        declared = values[0].strip() if values else "0"
        if not re.fullmatch(r"[0-9]{1,19}", declared):
            raise _RefusedRequest(SageMakerError(
                "SerializationException",
                f"Invalid Content-Length header {declared[:40]!r}: it must be the body's size in bytes, a "
                "non-negative integer.",
            ))
        length = int(declared)
        limit = self.server.max_request_bytes
        if length > limit:
            error = SageMakerError(
                "RequestEntityTooLargeException",
                f"The request body of {length:,} bytes is larger than the {limit:,} bytes this endpoint accepts "
                f"(--max-request-bytes).",
                http_status=413,
            )
            raise _RefusedRequest(error, unread_bytes=length)
        try:
            raw = self.rfile.read(length) if length else b""
        except TimeoutError:
            raw = None
        if raw is None or len(raw) < length:
            got = "the connection closed" if raw is not None else f"{self.server.socket_timeout:g} s passed"
            raise _RefusedRequest(SageMakerError(
                "RequestTimeoutException",
                f"The request body did not arrive: Content-Length announced {length:,} bytes, then {got}.",
                http_status=408,
            ))
        return raw

    def _linger(self, unread_bytes: int) -> None:
        """After refusing a request whose body was not read: stop sending, then read and drop what the client
        still sends (at most `unread_bytes` and 64 MiB, for at most 5 s) until it closes, so that it reads the
        answer instead of a connection reset (closing with unread data sends a TCP reset)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            budget = min(unread_bytes, _LINGER_MAX_BYTES)
            while budget > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(min(remaining, self.server.socket_timeout))
                chunk = self.connection.recv(min(budget, 1 << 16))
                if not chunk:
                    break
                budget -= len(chunk)
        except OSError:  # timeout or reset: the answer was sent, the connection closes either way
            pass

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self._status = status

    def _log_request(self, target: str, started: float) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        sys.stderr.write(
            f"{self.log_date_time_string()} {self.command} {self.path} {target} "
            f"{getattr(self, '_status', '-')} {elapsed_ms:.1f}ms\n"
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence http.server's own access log: `_log_request` writes one line per request."""


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        api: EndpointApi,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(address, SageMakerRequestHandler)
        self.api = api
        self.max_request_bytes = max_request_bytes
        self.socket_timeout = socket_timeout


class RetentionSweeper:
    """Removes terminal jobs that ended more than `retention_seconds` ago, every `interval` seconds."""

    def __init__(self, api: EndpointApi, retention_seconds: float) -> None:
        self.api = api
        self.retention_seconds = retention_seconds
        # A tenth of the retention (at least a second, at most an hour): a job outlives it by at most 10 %.
        self.interval = min(3600.0, max(1.0, retention_seconds / 10))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-retention", daemon=True)

    def sweep(self) -> None:
        try:
            removed = self.api.remove_expired_jobs(self.retention_seconds)
        except Exception:  # noqa: BLE001 - retried at the next sweep; never stops the server
            traceback.print_exc()
            return
        if removed:
            sys.stderr.write(f"retention: removed {len(removed)} job(s) that ended more than "
                             f"{self.retention_seconds / 86400:g} days ago: {', '.join(removed)}\n")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sweep()


def build_server(
    host: str,
    port: int,
    state_dir: Path,
    region: str,
    stop_grace_seconds: float,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
    max_running_jobs: int = DEFAULT_MAX_RUNNING_JOBS,
    runtime_image_uri: str | None = None,
) -> EndpointServer:
    protocol.service_model()  # load botocore's model now, not on the first request
    api = EndpointApi(
        state_dir,
        region=region,
        stop_grace_seconds=stop_grace_seconds,
        max_running_jobs=max_running_jobs,
        runtime_image_uri=runtime_image_uri,
    )
    return EndpointServer(
        (host, port), api, max_request_bytes=max_request_bytes, socket_timeout=socket_timeout
    )


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sm_local.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--state-dir", type=Path, required=True, help="where job records live")
    parser.add_argument(
        "--stop-grace-seconds",
        type=float,
        default=30.0,
        help="how long a stopped job's supervisor may take before its process group is killed",
    )
    parser.add_argument(
        "--max-running-jobs",
        type=_positive(int),
        default=os.environ.get(MAX_RUNNING_JOBS_ENV, str(DEFAULT_MAX_RUNNING_JOBS)),
        help=f"jobs (training and processing) InProgress or Stopping at once; one more is ResourceLimitExceeded "
        f"(default ${MAX_RUNNING_JOBS_ENV} or {DEFAULT_MAX_RUNNING_JOBS})",
    )
    parser.add_argument(
        "--retention-days",
        type=_positive(float),
        default=os.environ.get(RETENTION_DAYS_ENV, str(DEFAULT_RETENTION_DAYS)),
        help=f"remove jobs that ended more than this many days ago, at start-up and periodically; running "
        f"jobs are never touched (default ${RETENTION_DAYS_ENV} or {DEFAULT_RETENTION_DAYS:g})",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=_positive(int),
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"largest request body accepted; a larger one is answered 413 (default {DEFAULT_MAX_REQUEST_BYTES})",
    )
    parser.add_argument(
        "--socket-timeout-seconds",
        type=_positive(float),
        default=DEFAULT_SOCKET_TIMEOUT_SECONDS,
        help="how long a connection may stay silent (mid-request or idle) before it is closed "
        f"(default {DEFAULT_SOCKET_TIMEOUT_SECONDS:g})",
    )
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    parser.add_argument(
        "--runtime-image-uri",
        default=os.environ.get(RUNTIME_IMAGE_URI_ENV) or default_runtime_image_uri(region),
        help=f"the ImageUri of processing jobs whose container is this environment's Python (besides it, every "
        f"image of the repository {RUNTIME_REPOSITORY!r} is); another image fails the job as one that cannot be "
        f"pulled (default ${RUNTIME_IMAGE_URI_ENV} or {default_runtime_image_uri(region)})",
    )
    args = parser.parse_args(argv)
    server = build_server(
        args.host,
        args.port,
        args.state_dir,
        region,
        args.stop_grace_seconds,
        max_request_bytes=args.max_request_bytes,
        socket_timeout=args.socket_timeout_seconds,
        max_running_jobs=args.max_running_jobs,
        runtime_image_uri=args.runtime_image_uri,
    )
    retention = RetentionSweeper(server.api, args.retention_days * 86400)
    retention.sweep()  # before the first request: what expired while the server was down is gone
    retention.start()
    server.api.start_spares()
    host, port = server.server_address[:2]
    # Job supervisors run in their own sessions: stopping the server leaves running jobs running.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        retention.stop()
        server.api.close_spares()  # a waiting spare ends; jobs' supervisors run on
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
