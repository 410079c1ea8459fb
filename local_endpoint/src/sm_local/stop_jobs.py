"""Stop every job (training and processing) of a local endpoint and every process the jobs started:
`python -m sm_local.stop_jobs --state-dir DIR` (what `make local-down` runs once the server is stopped).

Supervisors live in sessions of their own so that jobs survive a server restart; their algorithm, rule and
image-installer (and processing containers) too (the installer in the supervisor's group, the others in their own
sessions). So stopping the server stops no job. This does what StopTrainingJob / StopProcessingJob does for each
running job: `StopRequested` in
its job.json and SIGTERM to its supervisor, which stops its children and writes `Stopped`. A supervisor still
running after the grace period is killed with its group, and then every process still carrying a job marker
(sm_local.process.JOB_DIR_ENV) below the state directory. A recorded supervisor pid is signalled only while the
process with that pid has the recorded start time: pids are reused.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from sm_local import process as processes
from sm_local.store import JOB_KIND_DIRS, JobStore

DEFAULT_GRACE_SECONDS = 15.0  # the supervisor's own stop: 5 s for its children, then the final uploads
_KILL_ROUNDS = 5  # a process may start a child between scan and kill: scan again until none is left


@dataclass
class StopReport:
    supervisors_stopped: int = 0  # exited within the grace period after SIGTERM
    supervisors_killed: int = 0
    processes_killed: int = 0  # algorithm, rule and installer processes still alive after their supervisor
    processes_left: list[int] | None = None


def stop_all_jobs(state_dir: Path, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> StopReport:
    report = StopReport()
    running: list[processes.ProcessIdentity] = []
    for store in (JobStore(state_dir, kind_dir) for kind_dir in JOB_KIND_DIRS):
        for name in store.names():
            job = store.read_job(name) or {}
            identity = processes.ProcessIdentity.of_supervisor(job)
            if identity is None or not processes.is_alive(identity):
                continue
            if not job.get("StopRequested"):  # read as a stop by the supervisor and by the server's reconciling
                store.write_job(name, dict(job, StopRequested=True, StopRequestedTime=time.time()))
            processes.signal_supervisor(identity, signal.SIGTERM)
            running.append(identity)
    deadline = time.monotonic() + grace_seconds
    while any(processes.is_alive(identity) for identity in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for identity in running:
        if processes.is_alive(identity):
            processes.signal_supervisor(identity, signal.SIGKILL)
            report.supervisors_killed += 1
        else:
            report.supervisors_stopped += 1
    state = state_dir.resolve()
    for _ in range(_KILL_ROUNDS):
        left = _job_processes(state)
        if not left:
            break
        for member in left:
            try:
                member.kill()  # psutil refuses when the pid now belongs to another process
                report.processes_killed += 1
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(left, timeout=5)
    report.processes_left = [member.pid for member in _job_processes(state)]
    return report


def _job_processes(state_dir: Path) -> list[psutil.Process]:
    return [member for kind_dir in JOB_KIND_DIRS for member in processes.processes_of_jobs_under(state_dir / kind_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sm_local.stop_jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="the endpoint's --state-dir")
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                        help="how long supervisors may take to stop before they are killed")
    args = parser.parse_args(argv)
    if not any((args.state_dir / kind_dir).is_dir() for kind_dir in JOB_KIND_DIRS):
        print(json.dumps(asdict(StopReport(processes_left=[]))))
        return 0
    report = stop_all_jobs(args.state_dir, args.grace_seconds)
    print(json.dumps(asdict(report)))
    return 1 if report.processes_left else 0


if __name__ == "__main__":
    sys.exit(main())
