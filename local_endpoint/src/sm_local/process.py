"""Starting the per-job supervisor and telling whether it still runs.

The supervisor gets its own session (process group) so it outlives a server restart and so a stop
can signal it together with the algorithm and rule processes it started. A pid alone is not proof
of life after a restart (pids are reused): the process start time recorded at spawn must match too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

SUPERVISOR_MODULE_ENV = "SM_LOCAL_SUPERVISOR_MODULE"
# Set for the supervisor and inherited by its algorithm and rule processes: it marks which
# processes belong to a job, which a pid or process group id cannot prove once the pid is reused.
JOB_DIR_ENV = "SM_LOCAL_JOB_DIR"
DEFAULT_SUPERVISOR_MODULE = "sm_local.supervisor"


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    create_time: float

    @classmethod
    def of_supervisor(cls, job: dict[str, Any]) -> ProcessIdentity | None:
        """The supervisor recorded in a job.json, or None before the server recorded one."""
        if "SupervisorPid" not in job:
            return None
        return cls(pid=job["SupervisorPid"], create_time=job["SupervisorCreateTime"])


def spawn_supervisor(
    job_dir: Path,
    log_path: Path,
    default_module: str = DEFAULT_SUPERVISOR_MODULE,
    module_env: str = SUPERVISOR_MODULE_ENV,
) -> ProcessIdentity:
    """`python -m <default_module> <jobdir>` in a new session, output appended to `log_path`.

    The variable `module_env` replaces the module (`SM_LOCAL_SUPERVISOR_MODULE` for training jobs: the
    endpoint's tests use it to exercise the server's own supervision with processes that die or hang on purpose).
    """
    module = os.environ.get(module_env) or default_module
    env = dict(os.environ, **{JOB_DIR_ENV: str(job_dir)})
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(job_dir)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    # Reap it when it exits, or it would linger as a zombie that still "exists" for psutil.
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    try:
        create_time = psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0  # already gone: is_alive() reports it dead, which it is
    return ProcessIdentity(pid=process.pid, create_time=create_time)


def is_alive(identity: ProcessIdentity) -> bool:
    """True while that very process (not a later one with the same pid) runs and is not a zombie."""
    try:
        process = psutil.Process(identity.pid)
        if abs(process.create_time() - identity.create_time) > 0.05:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _marked_processes(belongs: Callable[[str], bool]) -> list[psutil.Process]:
    """Live processes whose job marker variable satisfies `belongs`."""
    members = []
    for process in psutil.process_iter():
        try:
            marker = process.environ().get(JOB_DIR_ENV)
            if marker is not None and belongs(marker) and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return members


def job_processes(job_dir: Path) -> list[psutil.Process]:
    """Live processes that carry the job's marker variable: the supervisor and everything it
    started, even in other sessions (the supervisor gives its algorithm and rules their own)."""
    marker = str(job_dir)
    return _marked_processes(lambda value: value == marker)


def processes_of_jobs_under(jobs_dir: Path) -> list[psutil.Process]:
    """Live processes of every job whose directory lies in `jobs_dir` (one scan for all of them)."""
    prefix = str(jobs_dir).rstrip(os.sep) + os.sep
    return _marked_processes(lambda value: value.startswith(prefix))


def signal_supervisor(identity: ProcessIdentity, signum: signal.Signals) -> bool:
    """Send `signum` to the supervisor's process group (it relays a stop to its children)."""
    if not is_alive(identity):
        return False
    try:
        os.killpg(identity.pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_job(identity: ProcessIdentity, job_dir: Path) -> None:
    """SIGKILL the supervisor's group and every process left that belongs to the job."""
    signal_supervisor(identity, signal.SIGKILL)
    for process in job_processes(job_dir):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


#: The argument that starts a supervisor as a spare: it waits on its stdin for its job (`SpareSupervisors`).
SPARE_ARG = "--spare"
#: A spare's job marker, below its kind's jobs directory, so `processes_of_jobs_under` (and `make local-down`'s
#: sweep) finds a spare as it finds a job's processes.
SPARE_MARKER = ".spare"
SPARE_REFILL_DELAY_SECONDS = 2.0


class SpareSupervisors:
    """One supervisor of one module started ahead of its job, so that a new job does not wait for a cold one.

    A cold supervisor spends about a second (interpreter, botocore and the rest of its imports, botocore's JSON
    models) before its job's first step; on two cores that is most of a short job's overhead. The spare has done
    all that and waits on its stdin; `spawn` hands it the job (its directory and log, one JSON line) and closes the
    pipe, and the spare becomes that job's supervisor in every way a cold one is: its own session, its pid and
    start time recorded, the job's marker for the processes it starts. A new spare starts
    `SPARE_REFILL_DELAY_SECONDS` later, off the new job's start. Without a live spare `spawn` returns None and the
    caller starts a cold one. A spare ends at EOF on its stdin, so neither `close` nor a dead server leaves one.
    """

    def __init__(self, module: str, jobs_dir: Path, refill_delay: float = SPARE_REFILL_DELAY_SECONDS) -> None:
        self.module = module
        self.jobs_dir = jobs_dir
        self.refill_delay = refill_delay
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._identity: ProcessIdentity | None = None
        self._closed = False

    def start(self) -> None:
        """Start the first spare (in the background; a job that comes first starts cold)."""
        threading.Thread(target=self._refill, name=f"spare-{self.module}", daemon=True).start()

    def spawn(self, job_dir: Path, log_path: Path) -> ProcessIdentity | None:
        """The spare, now the supervisor of `job_dir` (output appended to `log_path`), or None without one."""
        with self._lock:
            spare, identity, self._spare, self._identity = self._spare, self._identity, None, None
        handed = spare is not None and identity is not None and is_alive(identity) and \
            _hand_over(spare, job_dir, log_path)
        if not self._closed:
            timer = threading.Timer(self.refill_delay, self._refill)
            timer.daemon = True
            timer.start()
        return identity if handed else None

    def close(self) -> None:
        """End the waiting spare (EOF on its stdin, then a kill if it lingers); no new one starts."""
        with self._lock:
            self._closed = True
            spare, self._spare, self._identity = self._spare, None, None
        if spare is not None:
            _end_spare(spare)

    def _refill(self) -> None:
        with self._lock:
            if self._closed or self._spare is not None:
                return
        marker = self.jobs_dir / SPARE_MARKER
        process = subprocess.Popen(
            [sys.executable, "-m", self.module, SPARE_ARG],
            env=dict(os.environ, **{JOB_DIR_ENV: str(marker)}),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # the spare's own output, before its job, goes to the server's stderr
            start_new_session=True,
            close_fds=True,
        )
        threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
        try:
            identity = ProcessIdentity(pid=process.pid, create_time=psutil.Process(process.pid).create_time())
        except psutil.NoSuchProcess:
            return
        with self._lock:
            if self._closed or self._spare is not None:
                keep = False
            else:
                self._spare, self._identity, keep = process, identity, True
        if not keep:
            _end_spare(process)


def _hand_over(spare: subprocess.Popen[bytes], job_dir: Path, log_path: Path) -> bool:
    """Tell the spare its job; False when it is gone (the caller starts a cold supervisor)."""
    assert spare.stdin is not None
    try:
        spare.stdin.write(json.dumps({"job_dir": str(job_dir), "log": str(log_path)}).encode() + b"\n")
        spare.stdin.close()
    except (BrokenPipeError, OSError):
        _end_spare(spare)
        return False
    return True


def _end_spare(spare: subprocess.Popen[bytes]) -> None:
    try:
        if spare.stdin is not None:
            spare.stdin.close()
    except OSError:
        pass
    try:
        spare.wait(timeout=2)
    except subprocess.TimeoutExpired:
        spare.kill()


def await_job(stream: IO[bytes]) -> tuple[Path, Path] | None:
    """In a spare: the job directory and log path the server hands over, or None at EOF (no job will come)."""
    line = stream.readline(64 * 1024)
    if not line.strip():
        return None
    handed = json.loads(line)
    return Path(handed["job_dir"]), Path(handed["log"])


def become_supervisor_of(job_dir: Path, log_path: Path) -> None:
    """In a spare that got its job: output appended to the job's log, and the job's marker for every process it
    starts from now on."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ[JOB_DIR_ENV] = str(job_dir)
