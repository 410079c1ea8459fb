"""A real Airflow on the local stack for the UI tests: api-server, scheduler (LocalExecutor), dag-processor and
triggerer, each its own process group bound to 127.0.0.1, with a private AIRFLOW_HOME and sqlite database, the
simple auth manager's users (through the refusing test auth manager), and only the DAG files asked for.

The scheduler makes no scheduled runs (``use_job_schedule`` off): the tests trigger the runs they look at.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_local_env import airflow_env
from local_stack import StackInfo

REPO = Path(__file__).resolve().parents[3]
AIRFLOW = Path(sys.executable).parent / "airflow"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Imported by the api-server from this directory (a `tests` package of some dependency shadows the repository's).
AUTH_MANAGER = "refusing_auth_manager.RefusingAuthManager"


class AirflowDidNotStart(RuntimeError):
    """A component exited or the api-server did not report every component healthy in time."""


@dataclass
class AirflowServices:
    base_url: str
    home: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def log_tails(self, limit: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name).read_text(errors='replace')[-limit:]}"
                         for name in self.processes if self.log(name).exists())

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request to the api-server: (status, headers, body); redirects are not followed."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if cookie:
            request.add_header("Cookie", f"_token={cookie}")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def token(self, username: str, password: str) -> str:
        status, _, body = self.request("POST", "/auth/token", {"username": username, "password": password})
        if status != 201:
            raise AssertionError(f"login of {username} answered {status}: {body[:300]!r}")
        return json.loads(body)["access_token"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def services_env(stack: StackInfo, home: Path, port: int, dag_files: list[Path], passwords: dict[str, str],
                 roles: dict[str, str], refused: str) -> dict[str, str]:
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for dag_file in dag_files:
        link = dags / dag_file.name
        if not link.exists():
            link.symlink_to(dag_file)
    passwords_file = home / "passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **airflow_env(stack, home)}
    env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in roles.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base + "/",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": base + "/execution/",
        "AIRFLOW__TRIGGERER__CAPACITY": "50",
        # Locally a job ends in seconds. A trigger that fires before the scheduler has seen the deferring process
        # exit makes Airflow 3.3 take that exit for the resumed try's and retry the task (two minutes later): poll
        # at 5 s, not airflow_env's 2 s, so the scheduler sees the exit first.
        "SM_EXPLAIN_POKE_INTERVAL": "5",
        "SM_EXPLAIN_TEST_REFUSED": refused,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    })
    return env


def start_airflow(stack: StackInfo, home: Path, *, dag_files: list[Path], passwords: dict[str, str],
                  roles: dict[str, str], refused: str = "", timeout: float = 120.0) -> AirflowServices:
    """Migrate a fresh database, start every component, and wait until the api-server reports them healthy."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = services_env(stack, home, port, dag_files, passwords, roles, refused)
    services = AirflowServices(f"http://127.0.0.1:{port}", home, env)
    migrated = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, cwd=home, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise AirflowDidNotStart(f"airflow db migrate failed:\n{migrated.stdout[-2000:]}\n{migrated.stderr[-2000:]}")
    try:
        for component in COMPONENTS:
            args = [str(AIRFLOW), component]
            if component == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            with services.log(component).open("wb") as log:
                services.processes[component] = subprocess.Popen(
                    args, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
        _wait_healthy(services, timeout)
    except BaseException:
        stop_airflow(services)
        raise
    return services


def _wait_healthy(services: AirflowServices, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for name, process in services.processes.items():
            if process.poll() is not None:
                raise AirflowDidNotStart(f"airflow {name} exited with {process.returncode}\n{services.log_tails()}")
        try:
            status, _, body = services.request("GET", "/api/v2/monitor/health")
            last = json.loads(body) if status == 200 else (status, body[:200])
            if status == 200 and all(part.get("status") == "healthy" for part in last.values()):
                return
        except (OSError, ValueError) as error:
            last = error
        time.sleep(0.5)
    raise AirflowDidNotStart(f"Airflow not healthy after {timeout:.0f} s: {last}\n{services.log_tails()}")


def stop_airflow(services: AirflowServices, grace: float = 20.0) -> None:
    """SIGTERM every component's process group (its workers and task processes with it), SIGKILL after `grace`."""
    for process in services.processes.values():
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in services.processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in services.processes.values():
        _signal_group(process, signal.SIGKILL)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
