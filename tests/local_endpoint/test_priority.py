"""The preload's priority: nice 19 inside, every thread's own value back after, and no lowering where the value
could not be restored."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sm_local import priority


def _nice_of(thread: int) -> int:
    return int(Path(f"/proc/self/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_body_runs_at_nice_19_and_every_thread_started_in_it_gets_the_priority_back() -> None:
    if not priority.can_raise_to(os.getpriority(os.PRIO_PROCESS, 0)):
        pytest.skip("this process may not raise its priority back (no CAP_SYS_NICE, RLIMIT_NICE too low)")
    original = os.getpriority(os.PRIO_PROCESS, 0)
    release = threading.Event()
    started: list[int] = []
    pool = threading.Thread(target=lambda: (started.append(threading.get_native_id()), release.wait(30)))
    with priority.lowest_priority() as lowered:
        assert lowered
        assert os.getpriority(os.PRIO_PROCESS, 0) == priority.LOWEST
        pool.start()  # a library's worker pool started during the preload inherits nice 19
        while not started:
            threading.Event().wait(0.01)
        assert _nice_of(started[0]) == priority.LOWEST
    try:
        assert os.getpriority(os.PRIO_PROCESS, 0) == original
        assert _nice_of(started[0]) == original
    finally:
        release.set()
        pool.join()


def test_nothing_is_lowered_where_the_priority_could_not_be_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    original = os.getpriority(os.PRIO_PROCESS, 0)
    monkeypatch.setattr(priority, "can_raise_to", lambda nice: False)
    with priority.lowest_priority() as lowered:
        assert not lowered
        assert os.getpriority(os.PRIO_PROCESS, 0) == original


def test_rlimit_nice_decides_without_the_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(priority, "_has_cap_sys_nice", lambda: False)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (0, 0))
    assert not priority.can_raise_to(0)  # RLIMIT_NICE 0: no process may lower its nice value
    monkeypatch.setattr(resource, "getrlimit", lambda which: (20, 20))
    assert priority.can_raise_to(0) and not priority.can_raise_to(-1)
