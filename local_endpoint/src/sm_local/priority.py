"""Doing work ahead of a job at the lowest CPU priority, then giving the process its priority back.

A spare's warm container imports the runtime libraries (seconds of CPU) while another job may be running, on a
machine of two cores: at nice 19 that preload takes only idle CPU. A container must then run its job at the priority
a cold one would have, so the preload is lowered only where the priority can be restored (root or CAP_SYS_NICE, or
an RLIMIT_NICE that allows it), and a failed restore is an error the caller turns into a cold container.

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
            for thread in _threads():
                with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                    os.setpriority(os.PRIO_PROCESS, thread, original)
