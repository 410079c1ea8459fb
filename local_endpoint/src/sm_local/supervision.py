"""What every job supervisor (training, processing) does the same way: children in sessions of their own, stopped
together; the stop flag (SIGTERM or `StopRequested` in job.json); one host's log, to a file and CloudWatch Logs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from sm_local import cwlogs, priority, s3io
from sm_local import process as processes
from sm_local.store import read_json

STOP_GRACE_SECONDS = 5.0

logger = logging.getLogger(__name__)


class JobFailure(Exception):
    """Ends the job `Failed` with this FailureReason (already in SageMaker's `<Kind>Error: ...` form)."""


class StopRequested(Exception):
    """StopTrainingJob / StopProcessingJob arrived (SIGTERM or `StopRequested` in job.json)."""


@dataclass
class Child:
    """A child process in its own session: signals go to its whole process group."""

    name: str
    process: subprocess.Popen[bytes]

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def terminate(children: list[Child], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each child's process group, SIGKILL what is left after the grace period."""
    running = [child for child in children if child.process.poll() is None]
    for child in running:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while any(child.process.poll() is None for child in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in children:
        # Also reaches grandchildren left in the group after the leader exited.
        child.signal_group(signal.SIGKILL)
        try:
            child.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("%s (pid %d) did not die after SIGKILL", child.name, child.process.pid)


class StopWatch:
    """Whether the job was asked to stop: a SIGTERM (the server signals the supervisor's group) or
    `StopRequested` in job.json, the flag the server sets even if the signal was lost."""

    def __init__(self, job_file: Path) -> None:
        self.job_file = job_file
        self.signalled = False
        self._mtime = 0.0
        self._next_check = 0.0

    def on_signal(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Signal handler: only sets the flag; the loops act on it at their next check."""
        self.signalled = True

    def requested(self) -> bool:
        if self.signalled:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + 0.5
        try:
            mtime = self.job_file.stat().st_mtime
        except FileNotFoundError:
            return False
        if mtime != self._mtime:
            self._mtime = mtime
            if (read_json(self.job_file) or {}).get("StopRequested"):
                self.signalled = True
        return self.signalled

    def check(self) -> None:
        """Raise StopRequested once a stop was asked for."""
        if self.requested():
            raise StopRequested


class HostLog:
    """The log of one host of a job: `<log dir>/<host>.log` and its CloudWatch Logs stream, line by line."""

    def __init__(
        self, path: Path, client_factory: Callable[[], Any], stream_name: str, group_name: str
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._last = 0.0
        self.shipper = cwlogs.LogShipper(client_factory, stream_name, group_name)
        self.shipper.start()

    def line(self, text: str) -> float:
        """Write one line (file and CloudWatch); returns its time.

        The time is taken, and the event queued, under the lock that orders the file, never decreasing: the
        stdout and stderr readers both write here, and CloudWatch returns a stream's events sorted by timestamp, so
        it then reads in the file's order."""
        with self._lock:
            now = max(time.time(), self._last)
            self._last = now
            if self._file is not None:
                self._file.write(text + "\n")
                self._file.flush()
            self.shipper.put(text, now)
        return now

    def flush(self, timeout: float = 10.0) -> bool:
        """Every line so far in CloudWatch (see `LogShipper.flush`)."""
        return self.shipper.flush(timeout)

    def close(self) -> None:
        self.shipper.close()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Supervisor(Protocol):
    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None: ...

    def run(self) -> int: ...


def supervisor_main(
    module: str, factory: Callable[[Path], Supervisor], early_stop_signals: list[int], argv: list[str] | None,
    on_spare: Callable[[], None] | None = None,
) -> int:
    """`python -m <module> JOBDIR`: the supervisor of that job directory, stopped by SIGTERM or SIGINT (also by one
    that arrived while the module was still importing, recorded in `early_stop_signals`).

    `python -m <module> --spare` is a spare (`sm_local.process.SpareSupervisors`): it parses botocore's models for
    S3 and CloudWatch Logs now (and runs `on_spare`, on this main thread), both at nice 19 (`sm_local.priority`; its
    own priority is back before it waits), then waits on its stdin for its job, and ends without one at EOF."""
    args = sys.argv[1:] if argv is None else argv
    if args == [processes.SPARE_ARG]:
        with priority.lowest_priority():  # a spare refilled while a job runs takes only CPU the job leaves idle
            s3io.preload_models("s3", "logs")
            if on_spare is not None:
                on_spare()
        handed = processes.await_job(sys.stdin.buffer)
        if handed is None:
            return 0
        processes.become_supervisor_of(*handed)
        args = [str(handed[0])]
    if len(args) != 1:
        print(f"usage: python -m {module} JOBDIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    supervisor = factory(Path(args[0]).resolve())
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    if early_stop_signals:
        supervisor.request_stop()
    return supervisor.run()
