"""PYTHONPATH for the processes the local endpoint starts in other environments (each image's algorithm process).

Those environments hold only their image's libraries, so the endpoint's own code comes by path: `sm_local` and
the shared contracts package. Both may be installed among the runtime's other distributions (site-packages), and
putting that directory on an image's path would hand it the runtime's numpy and pandas. So each is reached
through a directory of the job's own that holds a link to just that package.
"""

from __future__ import annotations

import os
from pathlib import Path

import sm_explain_contracts
import sm_local

LINKS_DIR = "pythonpath"


def _package_dirs() -> list[Path]:
    return [Path(module.__file__).resolve().parent for module in (sm_local, sm_explain_contracts)]


def child_pythonpath(scratch: Path) -> list[str]:
    """One entry that makes sm_local and sm_explain_contracts importable, and nothing else installed."""
    links = scratch / LINKS_DIR
    for package in _package_dirs():
        link = links / package.name
        if not link.exists():
            links.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(package, link, target_is_directory=True)
            except FileExistsError:  # another process of the job made it first
                pass
    return [str(links)]
