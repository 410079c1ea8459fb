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
from dataclasses import dataclass
from pathlib import Path

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


def spawn_supervisor(job_dir: Path, log_path: Path) -> ProcessIdentity:
    """`python -m sm_local.supervisor <jobdir>` in a new session, output appended to `log_path`.

    `SM_LOCAL_SUPERVISOR_MODULE` replaces the module (the endpoint's tests use it to exercise the
    server's own supervision with processes that die or hang on purpose).
    """
    module = os.environ.get(SUPERVISOR_MODULE_ENV) or DEFAULT_SUPERVISOR_MODULE
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


def group_members(identity: ProcessIdentity, job_dir: Path) -> list[psutil.Process]:
    """Live processes of the supervisor's process group that carry the job's marker variable."""
    members = []
    for process in psutil.process_iter():
        try:
            if (
                os.getpgid(process.pid) == identity.pid
                and process.status() != psutil.STATUS_ZOMBIE
                and process.environ().get(JOB_DIR_ENV) == str(job_dir)
            ):
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return members


def signal_group(identity: ProcessIdentity, signum: signal.Signals, job_dir: Path) -> bool:
    """Send `signum` to the job's processes; False if none was left."""
    if is_alive(identity):
        try:
            os.killpg(identity.pid, signum)
            return True
        except ProcessLookupError:
            return False
    # The supervisor itself is gone: signal the orphans it left behind, one by one.
    members = group_members(identity, job_dir)
    for process in members:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            continue
    return bool(members)
