"""Every DAG imports cleanly, is tagged, retries, and makes no AWS call while being parsed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXPECTED_DAGS = {
    "adult_income_explainability",
    "adult_income_register_version",
    "adult_income_explainability_on_new_version",
    "adult_income_version_comparison",
}


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a DAG file opened a network connection at parse time: {args}")

    monkeypatch_module.setattr(socket.socket, "connect", no_network)
    monkeypatch_module.setattr(socket, "create_connection", no_network)
    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_expected_dags_exist(dagbag) -> None:
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


def test_every_dag_is_tagged_documented_and_retries(dagbag) -> None:
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        # Values reach tasks as XComArgs and dag.param references: a version "20261122" must stay a string.
        assert not dag.render_template_as_native_obj, f"{dag_id} renders templates as native objects"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} does not retry"


PIPELINE_TASKS = [
    "resolve_run_config", "stage_dataset", "start_training", "wait_for_training_and_rules", "explain", "report",
]


def test_scheduled_dag_is_weekly_bounded_and_holds_the_pipeline_group(dagbag) -> None:
    dag = dagbag.dags["adult_income_explainability"]
    assert dag.max_active_runs >= 2, "backfills should run several versions at once"
    # The task ids users, docs and past runs know: the group does not prefix them.
    assert [t.task_id for t in dag.topological_sort()] == PIPELINE_TASKS
    group = dag.task_group_dict["explainability_pipeline"]
    assert sorted(group.children) == sorted(PIPELINE_TASKS)
    assert dag.params["hyperparameters"]["num_round"] == 51
    assert "backfill create" in dag.doc_md


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def test_the_pipeline_hands_values_on_as_xcom_args_not_xcom_pull_templates(dagbag) -> None:
    from airflow.sdk import XComArg

    dag = dagbag.dags["adult_income_explainability"]
    templates = {
        f"{task.task_id}.{field}": text
        for task in dag.tasks for field in task.template_fields
        for text in _strings(getattr(task, field)) if "xcom_pull" in text or "ti." in text
    }
    assert templates == {}
    start, report = dag.get_task("start_training"), dag.get_task("report")
    assert isinstance(start.spec["train_uri"], XComArg) and isinstance(report.manifest, XComArg)
    assert {t.task_id for t in start.upstream_list} == {"resolve_run_config", "stage_dataset"}


def test_asset_dag_is_scheduled_on_the_asset_the_register_dag_updates(dagbag) -> None:
    consumer = dagbag.dags["adult_income_explainability_on_new_version"]
    producer = dagbag.dags["adult_income_register_version"]
    outlets = {a.name for t in producer.tasks for a in t.outlets}
    assert "adult_income_raw_versions" in outlets
    assert "adult_income_raw_versions" in repr(consumer.timetable.asset_condition)


def test_the_comparison_renders_digit_only_versions_as_the_strings_given(dagbag) -> None:
    """Airflow's own rendering of the comparison task for a run with versions 20261122 and 20261129."""
    from types import SimpleNamespace

    dag = dagbag.dags["adult_income_version_comparison"]
    task = dag.get_task("compare_versions")
    conf = {"versions": ["20261122", "20261129"], "bucket": "bkt", "prefix": "adult"}
    params = {**dag.params.dump(), **conf}  # a run's params: the conf over every default
    task.render_template_fields({"params": params, "dag_run": SimpleNamespace(conf=conf)}, dag.get_template_env())
    assert task.versions == ["20261122", "20261129"]
    assert task.output_uri == "s3://bkt/adult/comparisons/20261122_to_20261129/"
