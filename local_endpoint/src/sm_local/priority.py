"""Doing work ahead of a job at the lowest CPU priority, then giving the process its priority back.

A spare supervisor and its warm container prepare (botocore's models, the runtime libraries: seconds of CPU) while
another job may be running, on a machine of two cores: at nice 19 that takes only idle CPU. A job must then run at
the priority a cold supervisor and container would have, so work is lowered only where the priority can be
restored (root or CAP_SYS_NICE, or an RLIMIT_NICE that allows it).

Linux keeps a nice value per thread (setpriority with PRIO_PROCESS and id 0 changes the calling thread; new threads
inherit it), so the restore sets every thread of the process, including pools a library started meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

LOWEST = 19
_CAP_SYS_NICE = 23


def _has_cap_sys_nice() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def can_raise_to(nice: int) -> bool:
    """May this process set a thread's nice value back down to `nice`?"""
    if _has_cap_sys_nice():
        return True
    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    return soft == resource.RLIM_INFINITY or 20 - soft <= nice


def set_every_thread(nice: int) -> None:
    """Give every thread of this process nice value `nice` (PermissionError where raising it is not allowed)."""
    for thread in _threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, thread, nice)


def match_parent() -> None:
    """Run at the parent's priority (its main thread's), as a process it started now would."""
    set_every_thread(os.getpriority(os.PRIO_PROCESS, os.getppid()))


def _threads() -> list[int]:
    try:
        return [int(entry.name) for entry in Path("/proc/self/task").iterdir()]
    except OSError:
        return [0]


@contextlib.contextmanager
def lowest_priority() -> Iterator[bool]:
    """Run the body at nice 19 and restore every thread's nice value after it; yields whether it lowered (not where
    the priority could not be restored). A restore refused raises PermissionError."""
    original = os.getpriority(os.PRIO_PROCESS, 0)
    lowered = original < LOWEST and can_raise_to(original)
    if lowered:
        os.setpriority(os.PRIO_PROCESS, 0, LOWEST)
    try:
        yield lowered
    finally:
        if lowered:
            set_every_thread(original)
