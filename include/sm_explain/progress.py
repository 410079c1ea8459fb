"""Progress lines of an explanation, on stderr: the task log shows them (the worker copies the runtime's stderr line
by line; a processing job's stderr goes to CloudWatch, which the waiting task follows).

A few lines, never one per row: what was written (one line per artifact) and the mean |SHAP| pass's rows done of
total, at every tenth of the rows or every ``seconds`` in between, whichever comes first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

PREFIX = "sm_explain:"


def say(message: str) -> None:
    """One progress line on stderr, flushed (a processing job's log shows it now, not at exit)."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


class RowProgress:
    """``<what>: <done> of <total> rows (<percent>%)`` as rows get done: at the start, at every ``1/steps`` of the
    rows, at least every ``seconds`` while rows move, and at the end."""

    def __init__(self, what: str, total: int, *, steps: int = 10, seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, out: Callable[[str], None] = say) -> None:
        self.what = what
        self.total = max(0, int(total))
        self.steps = max(1, steps)
        self.seconds = seconds
        self._clock = clock
        self._out = out
        self._started = clock()
        self._last_time = self._started
        self._last_step = 0
        self._done = 0
        self._finished = False
        out(f"{what}: 0 of {self.total:,} rows")

    def update(self, done: int) -> None:
        """``done`` rows of the total are done (a count, not an increment)."""
        self._done = min(self.total, max(self._done, int(done)))
        if self._done >= self.total:
            self.finish()
            return
        step = self._done * self.steps // self.total if self.total else 0
        now = self._clock()
        if step > self._last_step or now - self._last_time >= self.seconds:
            self._last_step, self._last_time = step, now
            self._out(f"{self.what}: {self._done:,} of {self.total:,} rows ({100 * self._done // self.total}%)")

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._out(f"{self.what}: {self.total:,} of {self.total:,} rows (100%) in {self._clock() - self._started:.1f} s")
