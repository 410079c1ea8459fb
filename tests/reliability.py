"""The rows of docs/reliability.md, recorded by the tests that try each bad input and each fault.

A test that refuses an input or survives a fault calls the `reliability` fixture (tests/conftest.py) with what it
tried, what a user should see and what was observed (taken from the real outcome: the error message, the job's
final status, the processes left). The row is appended, as one JSON line, to the file named by
`SM_EXPLAIN_RELIABILITY_LOG` when it is set (`make reliability` sets it and renders the table with
scripts/reliability_report.py); otherwise nothing is written. Standard library only: both environments' tests
import it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

LOG_ENV = "SM_EXPLAIN_RELIABILITY_LOG"
KINDS = ("input", "fault")


@dataclass(frozen=True)
class Row:
    kind: str  # "input": bad input refused; "fault": a fault survived
    area: str  # what part of the system (endpoint, staging, request, DAG, ...)
    case: str  # what was tried
    expected: str  # what a user should see
    observed: str  # what happened (from the real outcome)
    ok: bool  # refused / survived as expected
    test: str = ""
    jobs_leaked: int = 0  # training jobs or processes left running by the case
    artifacts_lost: int = 0  # objects or files already written that the case destroyed
    at: float = field(default_factory=time.time)


class Recorder:
    def __init__(self, test: str) -> None:
        self.test = test

    def _write(self, row: Row) -> None:
        path = os.environ.get(LOG_ENV)
        if not path:
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(row)) + "\n")

    def refused(self, area: str, case: str, expected: str, observed: str, *, ok: bool = True,
                artifacts_lost: int = 0) -> None:
        """A bad input was refused: `observed` is the message the user got."""
        self._write(Row("input", area, case, expected, " ".join(observed.split())[:400], ok, self.test,
                        artifacts_lost=artifacts_lost))

    def survived(self, area: str, case: str, expected: str, observed: str, *, ok: bool = True,
                 jobs_leaked: int = 0, artifacts_lost: int = 0) -> None:
        """A fault was survived: `observed` says how (final states, retries used, processes left)."""
        self._write(Row("fault", area, case, expected, " ".join(observed.split())[:400], ok, self.test,
                        jobs_leaked=jobs_leaked, artifacts_lost=artifacts_lost))
