"""Start and stop the embedded local stack: moto server (S3, CloudWatch Logs, SNS, SQS, STS) and the
local SageMaker-compatible endpoint, both on 127.0.0.1.

Standard library only, so it runs from either environment (or a bare python3) and from tests.
Usage: ``python scripts/local_stack.py up|down|status [--state-dir .local]``.
``up`` writes ``<state-dir>/stack.env`` with shell ``export`` lines for boto3's standard variables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO / ".local"
REGION = "us-east-1"
# Dummy credentials: moto and the local endpoint accept anything; never real keys.
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
JOB_STOP_TIMEOUT_SECONDS = 120.0  # sm_local.stop_jobs: 15 s of grace for the supervisors, then kills


#: The local endpoint's default processing image (sm_local's --runtime-image-uri default).
RUNTIME_IMAGE_URI = "123456789012.dkr.ecr.{region}.amazonaws.com/sm-explain-runtime:latest"


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class StackInfo:
    """What a running stack is: where it listens and which processes serve it."""

    state_dir: str
    moto_port: int
    sagemaker_port: int
    moto_pid: int
    sagemaker_pid: int
    region: str = REGION

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def sagemaker_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sagemaker_port}"

    @property
    def env(self) -> dict[str, str]:
        """boto3's standard variables pointing every client at the stack, and the runtime image."""
        return {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
            # The endpoint's processing image: the runtime steps (staging, explanations, report) run as processing
            # jobs on it, as they do on AWS with the image built from docker/runtime.Dockerfile.
            "SM_EXPLAIN_RUNTIME_IMAGE_URI": RUNTIME_IMAGE_URI.format(region=self.region),
            # The endpoint puts every line of a job to CloudWatch Logs before its status says the job ended, so a
            # wait reads a job's last lines as soon as it sees the end (on AWS it gives CloudWatch a moment).
            "SM_EXPLAIN_LOG_SETTLE_SECONDS": "0",
        }


def airflow_python() -> Path:
    return Path(os.environ.get("SM_EXPLAIN_AIRFLOW_PYTHON", REPO / ".venv" / "bin" / "python"))


def runtime_python() -> Path:
    return Path(os.environ.get("SM_EXPLAIN_RUNTIME_PYTHON", REPO / ".venv-runtime" / "bin" / "python"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} for the {what} is already taken on 127.0.0.1 ({exc.strerror}); "
                "pass another port, or 0 to pick a free one"
            ) from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status < 500
    except (urllib.error.URLError, OSError):
        return False


def _wait_healthy(url: str, pid: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StackError(f"the {what} exited while starting; its log {log} ends with:\n{tail}")
        if _http_ok(url):
            return
        time.sleep(0.1)
    raise StackError(f"the {what} did not answer {url} within {START_TIMEOUT_SECONDS:.0f} s (log: {log})")


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Own session: the services outlive this launcher and are stopped as a group by `down`.
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(REPO),
        )


def _state_file(state_dir: Path) -> Path:
    return state_dir / "stack.json"


def read_stack(state_dir: Path = DEFAULT_STATE_DIR) -> StackInfo | None:
    """The running stack recorded in state_dir, or None when none is running."""
    path = _state_file(state_dir)
    if not path.exists():
        return None
    info = StackInfo(**json.loads(path.read_text()))
    healthy = (
        _pid_alive(info.moto_pid)
        and _pid_alive(info.sagemaker_pid)
        and _http_ok(f"{info.sagemaker_endpoint}/ping")
        and _http_ok(f"{info.s3_endpoint}/moto-api/")
    )
    return info if healthy else None


def write_env_file(info: StackInfo) -> Path:
    path = Path(info.state_dir) / "stack.env"
    lines = ["# Written by scripts/local_stack.py: `source` it to point boto3 and the AWS CLI at the local stack."]
    lines += [f"export {key}={value}" for key, value in info.env.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_stack(
    state_dir: Path = DEFAULT_STATE_DIR, moto_port: int = 0, sagemaker_port: int = 0
) -> StackInfo:
    """Start both services (or return the healthy stack already running there). Never half-started:
    if either service fails, both are stopped and StackError says why."""
    state_dir = Path(state_dir).resolve()
    running = read_stack(state_dir)
    if running is not None:
        write_env_file(running)
        return running
    stop_stack(state_dir)  # clears a stale or half-dead stack left behind

    moto_server = airflow_python().parent / "moto_server"
    for path, hint in ((moto_server, "moto_server"), (runtime_python(), "the runtime environment")):
        if not path.exists():
            raise StackError(f"{path} is missing ({hint}); run `make setup` first")
    if moto_port:
        _check_port_free(moto_port, "local S3 (moto)")
    else:
        moto_port = free_port()
    if sagemaker_port:
        _check_port_free(sagemaker_port, "local SageMaker endpoint")
    else:
        sagemaker_port = free_port()
        while sagemaker_port == moto_port:
            sagemaker_port = free_port()

    state_dir.mkdir(parents=True, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    placeholder = StackInfo(str(state_dir), moto_port, sagemaker_port, 0, 0)
    env = {**base_env, **placeholder.env}

    moto_log = state_dir / "moto.log"
    moto = _spawn([str(moto_server), "-H", "127.0.0.1", "-p", str(moto_port)], env, moto_log)
    procs = [moto]
    try:
        _wait_healthy(f"{placeholder.s3_endpoint}/moto-api/", moto.pid, "local S3 (moto)", moto_log)
        sm_env = dict(env)
        sm_log = state_dir / "sagemaker.log"
        sagemaker = _spawn(
            [str(runtime_python()), "-m", "sm_local.server", "--host", "127.0.0.1",
             "--port", str(sagemaker_port), "--state-dir", str(state_dir / "sagemaker")],
            sm_env, sm_log,
        )
        procs.append(sagemaker)
        _wait_healthy(f"{placeholder.sagemaker_endpoint}/ping", sagemaker.pid, "local SageMaker endpoint", sm_log)
    except BaseException:
        for proc in procs:
            _terminate_group(proc.pid)
        raise

    info = StackInfo(str(state_dir), moto_port, sagemaker_port, moto.pid, sagemaker.pid)
    _state_file(state_dir).write_text(json.dumps(asdict(info), indent=2))
    write_env_file(info)
    return info


def _terminate_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if not _pid_alive(pid):
                    return
            time.sleep(0.05)


def _stop_jobs(state_dir: Path) -> bool:
    """Stop the endpoint's jobs and every process they started; returns whether any job was running.

    Supervisors and their children live in sessions of their own (jobs survive an endpoint restart), so
    stopping the endpoint's process group stops none of them. `sm_local.stop_jobs` (runtime env: psutil
    checks each recorded pid's start time, finds children by their job marker) stops them as StopTrainingJob
    does, and kills what is left."""
    endpoint_state = state_dir / "sagemaker"
    # Training jobs in jobs/, processing jobs in processing-jobs/ (sm_local.store.JOB_KIND_DIRS).
    if not any(any((endpoint_state / kind).glob("*/job.json")) for kind in ("jobs", "processing-jobs")):
        return False
    python = runtime_python()
    if not python.exists():
        raise StackError(f"{python} is missing: cannot stop the jobs under {endpoint_state} without it")
    env = dict(os.environ)
    try:
        result = subprocess.run(
            [str(python), "-m", "sm_local.stop_jobs", "--state-dir", str(endpoint_state)],
            env=env, capture_output=True, text=True, timeout=JOB_STOP_TIMEOUT_SECONDS, cwd=str(REPO),
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"stopping the jobs under {endpoint_state} took longer than "
                         f"{JOB_STOP_TIMEOUT_SECONDS:.0f} s") from exc
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        report = None
    if result.returncode != 0 or report is None:
        left = report.get("processes_left") if report else None
        raise StackError(f"stopping the jobs under {endpoint_state} failed (exit {result.returncode}"
                         f"{f', processes still running: {left}' if left else ''}): {result.stderr[-2000:]}")
    return bool(report["supervisors_stopped"] or report["supervisors_killed"] or report["processes_killed"])


def stop_stack(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Stop the stack recorded in state_dir (idempotent): the endpoint first (no new jobs), then every job
    and process it started, then moto (the jobs' last uploads go to it). Returns whether anything ran."""
    state_dir = Path(state_dir).resolve()
    path = _state_file(state_dir)
    info = StackInfo(**json.loads(path.read_text())) if path.exists() else None
    stopped = False
    if info is not None and _pid_alive(info.sagemaker_pid):
        _terminate_group(info.sagemaker_pid)
        stopped = True
    stopped = _stop_jobs(state_dir) or stopped
    if info is not None and _pid_alive(info.moto_pid):
        _terminate_group(info.moto_pid)
        stopped = True
    path.unlink(missing_ok=True)
    (state_dir / "stack.env").unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--moto-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--sagemaker-port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            info = start_stack(args.state_dir, args.moto_port, args.sagemaker_port)
            print(f"local S3 (moto):          {info.s3_endpoint}")
            print(f"local SageMaker endpoint: {info.sagemaker_endpoint}")
            print(f"environment:              source {Path(info.state_dir) / 'stack.env'}")
        elif args.command == "down":
            print("stopped" if stop_stack(args.state_dir) else "nothing was running")
        else:
            info = read_stack(args.state_dir)
            if info is None:
                print("not running")
                return 1
            print(json.dumps({**asdict(info), "env": info.env}, indent=2))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
