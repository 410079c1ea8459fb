"""Data set versions as Airflow partitions: a backfill of the weekly DAG creates one run per Sunday whose partition
key is the version it processes, and a registered version is an asset event whose partition key names it, queued for
the partition-aware consumer. Airflow's own CLI and models do the work (no scheduler needed to create the runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_local_env import aws_connection_uri_json
from run_dag_locally import task_xcom

REPO = Path(__file__).resolve().parents[3]
DAG_ID = "adult_income_explainability"
SUNDAYS = ["2026-11-08", "2026-11-15", "2026-11-22"]


def _airflow(*args: str) -> str:
    """The Airflow CLI on the tests' private AIRFLOW_HOME, importing this checkout's plugins (Airflow itself would
    append plugins/ behind any installed copy)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def backfilled(airflow_db) -> dict[str, Any]:
    """`airflow backfill create` over three Sundays (no scheduler: the runs stay queued), and its dry run."""
    _airflow("dags", "reserialize")
    window = ["--dag-id", DAG_ID, "--from-date", SUNDAYS[0], "--to-date", SUNDAYS[-1]]
    dry_run = _airflow("backfill", "create", *window, "--dry-run")
    _airflow("backfill", "create", *window)

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.run_id.startswith("backfill__")).all()
        return {"dry_run": dry_run, "runs": {run.partition_key: (run.run_id, run.logical_date) for run in runs}}


def test_a_backfill_runs_one_partition_per_sunday_keyed_by_its_version(backfilled) -> None:
    assert all(sunday in backfilled["dry_run"] for sunday in SUNDAYS), backfilled["dry_run"]
    assert sorted(backfilled["runs"]) == SUNDAYS
    assert {logical_date for _, logical_date in backfilled["runs"].values()} == {None}, "partitioned runs"


def test_a_backfilled_run_processes_the_version_its_partition_key_names(backfilled) -> None:
    """The real first task of one backfilled run (`airflow tasks test` on that run): no param, no logical date,
    so the partition key alone names the version, in the XCom and in every location."""
    run_id, _ = backfilled["runs"]["2026-11-15"]
    _airflow("tasks", "test", DAG_ID, "resolve_run_config", run_id)

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id).one()
        session.expunge(dag_run)
    config = task_xcom(dag_run, "resolve_run_config")
    assert config["dataset_version"] == "2026-11-15"
    assert task_xcom(dag_run, "resolve_run_config", "dataset_version") == "2026-11-15"
    assert config["source_uri"].endswith("/adult-income/raw/2026-11-15/adult.data")
    assert config["dataset_uri"].endswith("/adult-income/2026-11-15/data/")


@pytest.mark.stack
def test_a_registered_version_is_an_asset_event_whose_partition_key_names_it(local_stack, airflow_db) -> None:
    """adult_income_register_version run for "20261129": its event carries the version as its partition key, Airflow
    queues one run of the partition-aware consumer for that key, and the consumer turns the real event into one
    pipeline run of that version, where the event says."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetPartitionDagRun
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor
    from airflow.utils.session import create_session

    bucket, version = "sm-explain-partitions", "20261129"
    consumer_id = "adult_income_explainability_on_new_version"
    _airflow("dags", "reserialize")
    _airflow("dags", "unpause", consumer_id)  # Airflow queues runs for unpaused DAGs only
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=f"adult-income/raw/{version}/adult.data", Body=b"39, State-gov, <=50K\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(local_stack))
        bag = DagBag(dag_folder=str(REPO / "dags" / "adult_income_on_new_version.py"))
        assert bag.import_errors == {}
        register = bag.dags["adult_income_register_version"]
        run = register.test(run_conf={"dataset_version": version, "bucket": bucket, "prefix": "adult-income"})
    assert str(run.state) == "success"

    with create_session() as session:
        [event] = session.query(AssetEvent).filter_by(source_dag_id=register.dag_id, source_run_id=run.run_id).all()
        queued = session.query(AssetPartitionDagRun).filter_by(
            target_dag_id=consumer_id, partition_key=version).count()
        reference = AssetEventDagRunReferenceResult(
            asset={"name": event.asset.name, "uri": event.asset.uri, "extra": {}}, extra=event.extra,
            source_task_id=event.source_task_id, source_dag_id=event.source_dag_id, source_run_id=event.source_run_id,
            source_map_index=event.source_map_index, source_aliases=[], timestamp=event.timestamp,
            partition_key=event.partition_key,
        )
    assert event.partition_key == version and event.extra["dataset_version"] == version
    assert queued == 1, "one consumer run queued for the version's partition"

    consumer = bag.dags[consumer_id]
    calls = consumer.get_task("announced_versions").python_callable(
        params={"dataset_versions": [], "bucket": "sm-explain-local", "prefix": "adult-income"},
        run_id="asset_triggered__p", partition_key=version,
        triggering_asset_events=TriggeringAssetEventsAccessor.build([reference]),
    )
    assert json.loads(json.dumps(calls)) == [{"trigger_run_id": f"asset_triggered__p__0_{version}", "conf": {
        "dataset_version": version, "bucket": bucket, "prefix": "adult-income",
        "source_uri": f"s3://{bucket}/adult-income/raw/{version}/adult.data"}}]
