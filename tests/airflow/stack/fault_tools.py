"""Fault injection for the fault tests, on 127.0.0.1 only: a private local SageMaker endpoint that can be killed
and started again on the same port and state (as a crashed and restarted service is), and a proxy in front of an
endpoint that answers ThrottlingException to the next N calls of an operation, as SageMaker does under load.
Holds no tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local_stack import StackInfo, free_port, runtime_python

REPO = Path(__file__).resolve().parents[3]


@dataclass
class RestartableEndpoint:
    """`python -m sm_local.server` on a fixed port and state directory, its jobs' S3 and logs on `stack`'s moto."""

    stack: StackInfo
    state_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RestartableEndpoint:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.stack.env)
        log = (self.state_dir.parent / f"endpoint-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [str(runtime_python()), "-m", "sm_local.server", "--host", "127.0.0.1", "--port", str(self.port),
             "--state-dir", str(self.state_dir)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the endpoint exited with {self.process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the endpoint did not answer /ping within 60 s")

    def kill(self) -> None:
        """SIGKILL the server alone (as a crash): the jobs' supervisors run in sessions of their own and go on."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


class ThrottlingProxy:
    """Forwards SageMaker JSON-protocol calls to `backend`; `throttle(operation, n)` makes the next n calls of that
    operation answer HTTP 400 ThrottlingException instead (botocore's standard retry mode retries those)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._throttle: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.forwarded: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                with proxy._lock:
                    if proxy._throttle.get(operation, 0) > 0:
                        proxy._throttle[operation] -= 1
                        proxy.throttled[operation] = proxy.throttled.get(operation, 0) + 1
                        throttle = True
                    else:
                        proxy.forwarded[operation] = proxy.forwarded.get(operation, 0) + 1
                        throttle = False
                if throttle:
                    payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                target = http.client.HTTPConnection(proxy.backend.removeprefix("http://"), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                target.request("POST", self.path, body=body, headers=headers)
                answer = target.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                target.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="throttling-proxy", daemon=True)

    def throttle(self, operation: str, times: int) -> None:
        with self._lock:
            self._throttle[operation] = times

    def __enter__(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
