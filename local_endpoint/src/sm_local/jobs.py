"""The server's side of every supervised job, whatever its kind (training, processing).

A job is a directory of a `JobStore` with the server's `job.json` and the supervisor's `status.json`. The one thing
only the server can know is whether a job's supervisor process is still alive; every read reconciles that, so a
job whose supervisor died (crash, kill, machine restart) ends `Failed` (or `Stopped` after a stop) instead of
staying `InProgress` forever. What differs per kind (the status field, what a terminal status holds, which module
supervises) is a `JobKind`; the liveness, stop, capacity and retention rules are written once, here.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sm_local import process as processes
from sm_local.protocol import SageMakerError, validation_error
from sm_local.store import SUPERVISOR_LOG, JobStore

RUNNING_JOB_STATUSES = frozenset({"InProgress", "Stopping"})  # what counts against max_running_jobs
DEFAULT_MAX_RUNNING_JOBS = 8
MAX_RUNNING_JOBS_ENV = "SM_LOCAL_MAX_RUNNING_JOBS"


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class JobKind:
    """What one kind of job does differently; every function takes and returns plain status dicts."""

    noun: str  # "training", "processing": in messages
    process_name: str  # what FailureReason calls the supervisor: "training process", "processing job's supervisor"
    status_key: str  # "TrainingJobStatus", "ProcessingJobStatus"
    not_found_message: Callable[[str], str]  # the ValidationException message for an unknown job name
    supervisor_module: str
    supervisor_module_env: str  # a variable that replaces the module (the tests' stand-in supervisors)
    initial_status: Callable[[dict[str, Any]], dict[str, Any]]  # Describe before the first status.json
    # Make a private copy of `status` terminal: (status, stopped, reason, now) -> the final status.
    finalize: Callable[[dict[str, Any], bool, str, float], dict[str, Any]]
    # True while the job can still change (training: also while a rule evaluates).
    needs_supervisor: Callable[[dict[str, Any]], bool]


class SupervisedJobs:
    """The jobs of one kind in one store: create, reconcile, stop, count and expire them."""

    def __init__(self, store: JobStore, kind: JobKind, lock: threading.RLock, stop_grace_seconds: float) -> None:
        self.store = store
        self.kind = kind
        # Shared by every kind: the running-jobs cap spans them all.
        self._lock = lock
        self.stop_grace_seconds = stop_grace_seconds
        self.spares: processes.SpareSupervisors | None = None

    def start_spares(self) -> None:
        """Keep a spare supervisor ready for the next job (the server does; a stand-in module starts cold)."""
        if self.spares is None and not os.environ.get(self.kind.supervisor_module_env):
            self.spares = processes.SpareSupervisors(self.kind.supervisor_module, self.store.jobs_dir)
            self.spares.start()

    def close_spares(self) -> None:
        if self.spares is not None:
            self.spares.close()

    # -- records -----------------------------------------------------------------------------

    def load(self, name: str) -> dict[str, Any]:
        job = self.store.read_job(name)
        if job is None:
            raise validation_error(self.kind.not_found_message(name))
        return job

    def existing_name(self, name: str) -> str | None:
        """The job whose name equals `name` ignoring case (SageMaker's names are unique that way)."""
        return next((existing for existing in self.store.names() if existing.lower() == name.lower()), None)

    def records(self) -> Iterable[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, job.json, reconciled status) of every job."""
        for name in self.store.names():
            job = self.store.read_job(name)
            if job is not None:
                yield name, job, self.reconciled_status(name, job)

    # -- create ------------------------------------------------------------------------------

    def start(self, name: str, record: dict[str, Any]) -> None:
        """Write job.json, then start its supervisor and record it. The caller holds the lock and has checked
        the name and the capacity; a supervisor that cannot start ends the job `Failed` (InternalFailure)."""
        job_dir = self.store.job_dir(name)
        job_dir.mkdir(parents=True, exist_ok=True)
        # Written before the supervisor starts, so it always finds its job description.
        self.store.write_job(name, record)
        try:
            identity = self.spares.spawn(job_dir, job_dir / SUPERVISOR_LOG) if self.spares is not None else None
            if identity is None:
                identity = processes.spawn_supervisor(
                    job_dir, job_dir / SUPERVISOR_LOG, self.kind.supervisor_module, self.kind.supervisor_module_env
                )
        except OSError as exc:
            self._finish(name, self.kind.initial_status(record), stopped=False,
                         reason=f"The {self.kind.process_name} could not be started: {exc}")
            raise SageMakerError(
                "InternalFailure", f"Could not start the {self.kind.noun} job: {exc}", 500
            ) from exc
        record.update(SupervisorPid=identity.pid, SupervisorCreateTime=identity.create_time)
        self.store.write_job(name, record)

    # -- stop --------------------------------------------------------------------------------

    def request_stop(self, name: str) -> None:
        """StopTrainingJob / StopProcessingJob: `StopRequested` in job.json and SIGTERM to the supervisor's group;
        after the grace period the supervisor and every process of the job are killed."""
        self.load(name)
        with self._lock:
            job = self.load(name)  # re-read under the lock: a create may have just added the pid
            status = self.reconciled_status(name, job)
            if status[self.kind.status_key] != "InProgress":
                raise validation_error(
                    f"The request was rejected because the {self.kind.noun} job is in status "
                    f"{status[self.kind.status_key]}."
                )
            job.update(StopRequested=True, StopRequestedTime=now())
            self.store.write_job(name, job)
        identity = processes.ProcessIdentity.of_supervisor(job)
        if identity is not None:
            processes.signal_supervisor(identity, signal.SIGTERM)
        threading.Thread(target=self._enforce_stop, args=(name,), name=f"stop-{name}", daemon=True).start()

    def _enforce_stop(self, name: str) -> None:
        """Give the supervisor the grace period to stop cleanly, then kill its group."""
        job = self.store.read_job(name) or {}
        identity = processes.ProcessIdentity.of_supervisor(job)
        deadline = time.monotonic() + self.stop_grace_seconds
        while identity is not None and processes.is_alive(identity) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Reconciling finishes the job: it kills a supervisor past its grace, marks a dead one Stopped.
        self.reconciled_status(name, job)

    # -- liveness ----------------------------------------------------------------------------

    def reconciled_status(self, name: str, job: dict[str, Any]) -> dict[str, Any]:
        """status.json (or the initial status), finished by the server if the supervisor is gone."""
        kind = self.kind
        status = self.store.read_status(name) or kind.initial_status(job)
        if not kind.needs_supervisor(status):
            return status
        with self._lock:
            job = self.store.read_job(name) or job
            identity = processes.ProcessIdentity.of_supervisor(job)
            # Holding the lock, a record without a pid is a create that never finished (the server
            # died between writing job.json and starting the supervisor): nothing will run it.
            if identity is not None and processes.is_alive(identity):
                overdue = (
                    job.get("StopRequested")
                    and now() - job.get("StopRequestedTime", 0) > self.stop_grace_seconds
                )
                if not overdue:
                    return self._as_seen(status, job)
                processes.kill_job(identity, self.store.job_dir(name))
                _wait_until_dead(identity, timeout=5.0)
            # Re-read: a supervisor writes its final status just before it exits.
            status = self.store.read_status(name) or kind.initial_status(job)
            if not kind.needs_supervisor(status):
                return status
            if identity is not None:  # the processes it started must not run on unsupervised
                processes.kill_job(identity, self.store.job_dir(name))
            stopped = bool(job.get("StopRequested")) or status[kind.status_key] == "Stopping"
            log = self.store.job_dir(name) / SUPERVISOR_LOG
            reason = f"The {kind.process_name} exited unexpectedly (see {log})"
            return self._finish(name, status, stopped=stopped, reason=reason)

    def _as_seen(self, status: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """A stop that the supervisor has not acknowledged yet already reads `Stopping`."""
        key = self.kind.status_key
        if job.get("StopRequested") and status[key] == "InProgress":
            status = dict(status, **{key: "Stopping"})
            if "SecondaryStatus" in status:
                status["SecondaryStatus"] = "Stopping"
        return status

    def _finish(self, name: str, status: dict[str, Any], *, stopped: bool, reason: str) -> dict[str, Any]:
        """Write the terminal status.json the supervisor could not write."""
        final = self.kind.finalize(status, stopped, reason, now())
        self.store.write_status(name, final)
        return final

    def is_running(self, status: dict[str, Any]) -> bool:
        return status.get(self.kind.status_key) in RUNNING_JOB_STATUSES

    # -- retention ---------------------------------------------------------------------------

    def remove_expired(self, cutoff: float) -> list[str]:
        """Remove the records of jobs whose last change is before `cutoff` (epoch seconds); returns their names.
        A job that can still change, or whose supervisor still runs, is never touched. Afterwards Describe
        answers as for a job that never existed."""
        removed = []
        for name in list(self.store.names()):
            with self._lock:
                job = self.store.read_job(name)
                if job is None:
                    continue
                status = self.reconciled_status(name, job)
                identity = processes.ProcessIdentity.of_supervisor(job)
                if self.kind.needs_supervisor(status) or (identity is not None and processes.is_alive(identity)):
                    continue
                if float(status.get("LastModifiedTime") or job["CreationTime"]) > cutoff:
                    continue
                self.store.remove_job(name)
            removed.append(name)
        with self._lock:  # a create writes job.json into its new directory under the lock
            self.store.remove_abandoned(cutoff)
        return removed


class Capacity:
    """At most `max_running_jobs` jobs of every kind InProgress or Stopping (their processes still run), refused
    the way SageMaker refuses a job over the account's instance quota."""

    def __init__(self, kinds: list[SupervisedJobs], max_running_jobs: int) -> None:
        self.kinds = kinds
        self.max_running_jobs = max_running_jobs

    def check(self, instance_type: str, usage: str) -> None:
        """Called under the shared lock, so concurrent creates cannot both take the last place. `usage` is
        SageMaker's quota name ("training job usage", "processing job usage")."""
        running = sum(
            1 for jobs in self.kinds for _, _, status in jobs.records() if jobs.is_running(status)
        )
        if running >= self.max_running_jobs:
            raise SageMakerError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for {usage}' is "
                f"{self.max_running_jobs} Instances, with current utilization of {running} Instances and a "
                "request delta of 1 Instances. The local SageMaker endpoint runs at most "
                f"{self.max_running_jobs} jobs (training and processing) at a time: wait for one to end or stop "
                f"one, or raise the limit (--max-running-jobs, {MAX_RUNNING_JOBS_ENV}).",
            )


def _wait_until_dead(identity: processes.ProcessIdentity, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while processes.is_alive(identity) and time.monotonic() < deadline:
        time.sleep(0.05)
