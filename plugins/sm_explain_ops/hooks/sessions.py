"""The Amazon provider's session factory, with botocore's JSON models parsed once per process.

Each provider hook builds its own boto3 session, and a new session parses again every model file its clients
need (SageMaker's ``service-2.json`` is about 4 MB). ``dag.test()`` and the demo run every task in one process,
and a sensor, an operator and its log follower each make their own hook, so the same files are parsed again and
again. The provider already shares one loader among its async (trigger) sessions, to save memory; this factory
does the same for the sync sessions (``sm_explain_contracts.botocore_models``), through the provider's own
extension point::

    [aws]
    session_factory = sm_explain_ops.hooks.sessions.SharedModelsSessionFactory

(``AIRFLOW__AWS__SESSION_FACTORY``; the local stack's Airflow environment and docker-compose set it).
"""

from __future__ import annotations

from typing import Any

import boto3
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

from sm_explain_contracts.botocore_models import share_models


class SharedModelsSessionFactory(BaseSessionFactory):
    """The provider's session factory; every sync session it makes parses no model another one already parsed."""

    def create_session(self, deferrable: bool = False) -> Any:
        session = super().create_session(deferrable=deferrable)
        if isinstance(session, boto3.session.Session):  # async sessions share the provider's loader already
            share_models(session)
        return session
