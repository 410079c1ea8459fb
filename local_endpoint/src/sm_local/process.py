"""Starting the per-job supervisor and telling whether it still runs.

The supervisor gets its own session (process group) so it outlives a server restart and so a stop
can signal it together with the algorithm and rule processes it started. A pid alone is not proof
of life after a restart (pids are reused): the process start time recorded at spawn must match too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
