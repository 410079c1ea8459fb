"""Airflow's simple auth manager, except that it refuses the DAGs named in ``SM_EXPLAIN_TEST_REFUSED`` to some users:
``"user:dag_id,user:dag_id"``. The UI tests use it to see the plugin ask the configured auth manager (403)."""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

REFUSED_ENV = "SM_EXPLAIN_TEST_REFUSED"


def refused_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for item in os.environ.get(REFUSED_ENV, "").split(","):
        user, _, dag_id = item.strip().partition(":")
        if user and dag_id:
            pairs.add((user, dag_id))
    return pairs


class RefusingAuthManager(SimpleAuthManager):
    """Refuses every access to a listed DAG for a listed user; otherwise the simple auth manager's answer."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        dag_id = getattr(details, "id", None)
        if dag_id and (user.get_name(), dag_id) in refused_pairs():
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
