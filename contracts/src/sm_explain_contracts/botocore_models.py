"""botocore's JSON models parsed once per process, for every boto3 session it makes.

A new boto3 session parses again every model file its clients need (the service's ``service-2.json``,
``endpoints.json``, the retry and default configs), and parsing is most of what creating a client costs. Both
sides make many sessions in one process: the Airflow side one per provider hook (``sm_explain_ops.hooks.sessions``),
the local endpoint's supervisors one per client (S3, and CloudWatch Logs for every log stream they ship). Sharing
the first session's loader keeps ``AWS_DATA_PATH`` and the config's ``data_path``; the models are read only once
loaded (botocore shares a loader among the clients of one session the same way), and a race between two threads
only parses a file twice. Standard library only: it touches the sessions it is given.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

_lock = threading.Lock()
_shared_loader: Any = None

Session = TypeVar("Session")


def share_models(session: Session) -> Session:
    """``session`` (a boto3 session) with this process's one botocore loader: the first session's own."""
    global _shared_loader
    core = session._session  # type: ignore[attr-defined]  # boto3's botocore session; there is no public accessor
    with _lock:
        if _shared_loader is None:
            _shared_loader = core.get_component("data_loader")
        loader = _shared_loader
    core.register_component("data_loader", loader)
    return session


def forget_shared_models() -> None:
    """The next session's loader becomes the shared one (for tests that count what gets parsed)."""
    global _shared_loader
    with _lock:
        _shared_loader = None
