"""What one DAG run left for the plugin to show, read from Airflow's metadata database (on the api-server).

The explanations prefix and the artifacts come from the XComs the run's tasks returned (``stage_dataset``,
``explain``, ``report``), the AWS connection from the DAG itself (the task's ``aws_conn_id`` in the serialized DAG
of the run's version; the rendered value when the DAG templates it). The XCom values are read as the plain JSON
they are stored as: nothing in them is deserialized into objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sm_explain_ops.ui.paths import EXPLAIN_TASK_ID, REPORT_TASK_ID, STAGE_TASK_ID

RESULT_TASK_IDS = (STAGE_TASK_ID, EXPLAIN_TASK_ID, REPORT_TASK_ID)
DEFAULT_AWS_CONN_ID = "aws_default"
#: A task's XCom larger than this is not read (a manifest is a few KiB).
MAX_XCOM_CHARS = 1_000_000


@dataclass(frozen=True)
class RunOutputs:
    """The results of one run's tasks (None: the task has none) and the AWS connection of each task."""

    dag_id: str
    run_id: str
    results: dict[str, Any] = field(default_factory=dict)
    aws_conn_ids: dict[str, str] = field(default_factory=dict)

    def result(self, task_id: str) -> Any:
        return self.results.get(task_id)

    def aws_conn_id(self, task_id: str) -> str:
        return self.aws_conn_ids.get(task_id) or DEFAULT_AWS_CONN_ID


def plain_json(value: Any) -> Any:
    """A stored XCom value as plain JSON data, or None for anything that is not (a value the Task SDK's serde
    wrapped as an object, or one too large): the plugin reads mappings of strings and numbers only."""
    if isinstance(value, (bytes, str)):
        if len(value) > MAX_XCOM_CHARS:
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return value if isinstance(value, str) else None
    if _has_serde_marker(value):
        return None
    return value


def _has_serde_marker(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return True
    if isinstance(value, dict):
        return any(isinstance(key, str) and key.startswith("__") for key in value) or any(
            _has_serde_marker(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_has_serde_marker(item, depth + 1) for item in value)
    return False


def load_run_outputs(dag_id: str, run_id: str) -> RunOutputs | None:
    """The run's outputs, or None when the DAG has no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id.in_(RESULT_TASK_IDS),
                XComModel.map_index == -1,
                XComModel.key == "return_value",
            )
        ).all()
        results = {task_id: plain_json(value) for task_id, value in rows}
        version_id = getattr(run, "created_dag_version_id", None)
    conn_ids = dict(_aws_conn_ids(version_id)) if version_id else {}
    for task_id in RESULT_TASK_IDS:
        if "{{" in conn_ids.get(task_id, ""):  # templated in the DAG: what the task rendered
            conn_ids[task_id] = _rendered_conn_id(dag_id, run_id, task_id) or DEFAULT_AWS_CONN_ID
    return RunOutputs(dag_id, run_id, results, conn_ids)


@lru_cache(maxsize=64)
def _aws_conn_ids(version_id: Any) -> tuple[tuple[str, str], ...]:
    """``aws_conn_id`` of the result tasks in one DAG version (a version never changes: cached)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = DBDagBag().get_dag(version_id, session=session)
    if dag is None:
        return ()
    found = []
    for task_id in RESULT_TASK_IDS:
        if dag.has_task(task_id):
            conn_id = getattr(dag.get_task(task_id), "aws_conn_id", None)
            if isinstance(conn_id, str) and conn_id:
                found.append((task_id, conn_id))
    return tuple(found)


def _rendered_conn_id(dag_id: str, run_id: str, task_id: str) -> str | None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        fields = session.scalar(select(Rtif.rendered_fields).where(
            Rtif.dag_id == dag_id, Rtif.run_id == run_id, Rtif.task_id == task_id, Rtif.map_index == -1))
    conn_id = (plain_json(fields) or {}).get("aws_conn_id") if fields else None
    return conn_id if isinstance(conn_id, str) and conn_id and "{{" not in conn_id else None
