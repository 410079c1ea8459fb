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
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sm_local import protocol
from sm_local.api import TrainingJobsApi
from sm_local.protocol import SageMakerError
from sm_local.store import TRAINING_JOB_NAME, JobStore

# GET /jobs/<TrainingJobName>/log, names as SageMaker allows them.
_JOB_LOG_PATH = re.compile(rf"^/jobs/({TRAINING_JOB_NAME.pattern})/log$")


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
            self._send_job_log(log_match.group(1))
        else:
            self._send(404, b"not found", "text/plain; charset=utf-8")
        self._log_request("-", started)

    def _send_job_log(self, name: str) -> None:
        """The job's log as plain text: what the operator's extra link opens for the local endpoint
        (on AWS the link goes to the SageMaker console instead)."""
        store = self.server.api.store
        if store.read_job(name) is None:
            self._send(404, f"no training job named {name}".encode(), "text/plain; charset=utf-8")
            return
        log_file = store.job_dir(name) / "logs" / "algo-1.log"
        body = log_file.read_bytes() if log_file.exists() else b"(the job has not written a log yet)\n"
        self._send(200, body, "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        started = time.monotonic()
        target = self.headers.get("X-Amz-Target")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            operation = protocol.operation_name_from_target(target)
            payload = self.server.api.handle(operation, protocol.decode_body(raw))
            status, body = 200, protocol.encode_body(payload)
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

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
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

    def __init__(self, address: tuple[str, int], api: TrainingJobsApi) -> None:
        super().__init__(address, SageMakerRequestHandler)
        self.api = api


def build_server(
    host: str, port: int, state_dir: Path, region: str, stop_grace_seconds: float
) -> EndpointServer:
    protocol.service_model()  # load botocore's model now, not on the first request
    api = TrainingJobsApi(JobStore(state_dir), region=region, stop_grace_seconds=stop_grace_seconds)
    return EndpointServer((host, port), api)


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
    args = parser.parse_args(argv)
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    server = build_server(args.host, args.port, args.state_dir, region, args.stop_grace_seconds)
    host, port = server.server_address[:2]
    # Job supervisors run in their own sessions: stopping the server leaves running jobs running.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
