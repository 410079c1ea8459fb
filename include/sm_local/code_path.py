"""PYTHONPATH for the processes the local endpoint starts in other environments (each image's algorithm process).

Those environments hold only their image's libraries, so the endpoint's own code comes by path: the directory of
`sm_local` (beside `lean_xgboost`) and the shared contracts package. The contracts package may be installed among
the runtime's other distributions (site-packages): putting that directory on an image's path would hand it the
runtime's numpy and pandas. So it is reached through a directory of its own holding a link to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import sm_explain_contracts

LINKS_DIR = "pythonpath"


def include_dir() -> Path:
    """The directory that holds the `sm_local` package, so children import the same code."""
    return Path(__file__).resolve().parent.parent


def child_pythonpath(scratch: Path) -> list[str]:
    """Entries that make sm_local, lean_xgboost and sm_explain_contracts importable, and nothing else installed."""
    package = Path(sm_explain_contracts.__file__).resolve().parent
    links = scratch / LINKS_DIR
    link = links / package.name
    if not link.exists():
        links.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(package, link, target_is_directory=True)
        except FileExistsError:  # another process of the job made it first
            pass
    return [str(include_dir()), str(links)]
