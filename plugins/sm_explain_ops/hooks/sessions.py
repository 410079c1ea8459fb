"""The Amazon provider's session factory, with botocore's JSON models parsed once per process.

Each provider hook builds its own boto3 session, and a new session parses again every model file its clients
need: the service's ``service-2.json`` (SageMaker's is about 4 MB), ``endpoints.json``, the retry and default
configs. Parsing is most of what creating a client costs, so a process that runs many hooks pays it again and
again: ``dag.test()`` and the demo run every task in one process, and a sensor, an operator and its log follower
each make their own. The provider already shares one loader among its async (trigger) sessions, to save memory;
this factory does the same for the sync sessions, through the provider's own extension point::

    [aws]
    session_factory = sm_explain_ops.hooks.sessions.SharedModelsSessionFactory

(``AIRFLOW__AWS__SESSION_FACTORY``; the local stack's Airflow environment sets it). A session gets the loader of
the first session this process made, so ``AWS_DATA_PATH`` and the config's ``data_path`` still apply. The loaded
models are read only once loaded (botocore shares a loader among the clients of one session the same way), and a
race between two threads only parses a file twice.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

_lock = threading.Lock()
_shared_loader: Any = None


def share_models(session: boto3.session.Session) -> boto3.session.Session:
    """``session`` with this process's one botocore loader (the first session's own loader becomes it)."""
    global _shared_loader
    core = session._session  # boto3 keeps its botocore session here; there is no public accessor
    with _lock:
        if _shared_loader is None:
            _shared_loader = core.get_component("data_loader")
        loader = _shared_loader
    core.register_component("data_loader", loader)
    return session


class SharedModelsSessionFactory(BaseSessionFactory):
    """The provider's session factory; every sync session it makes parses no model another one already parsed."""

    def create_session(self, deferrable: bool = False) -> Any:
        session = super().create_session(deferrable=deferrable)
        if isinstance(session, boto3.session.Session):  # async sessions share the provider's loader already
            share_models(session)
        return session
