"""Which data set version a run processes: the explicit param, the run's partition key, the announcing asset
event, the logical date (what a version may be is tested in tests/contracts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sm_explain_ops.dataset_versions import Announcement, announcements, run_announcements
from sm_explain_ops.pipeline import resolve_dataset_version, resolve_run_target, run_locations

SUNDAY = datetime(2026, 11, 22, tzinfo=UTC)


def test_explicit_param_wins_over_events_and_date() -> None:
    event = SimpleNamespace(extra={"dataset_version": "from-event"})
    context = {"logical_date": SUNDAY, "triggering_asset_events": {"asset": [event]}}
    assert resolve_dataset_version({"dataset_version": "v7"}, context) == "v7"


def test_asset_event_then_logical_date() -> None:
    event = SimpleNamespace(extra={"dataset_version": "from-event"})
    assert resolve_dataset_version({}, {"logical_date": SUNDAY, "triggering_asset_events": {"a": [event]}}) == (
        "from-event"
    )
    assert resolve_dataset_version({"dataset_version": ""}, {"logical_date": SUNDAY}) == "2026-11-22"


def test_a_bad_version_fails_with_the_reason() -> None:
    with pytest.raises(ValueError, match="'comparisons' is reserved"):
        resolve_dataset_version({"dataset_version": "comparisons"}, {"logical_date": SUNDAY})
    with pytest.raises(ValueError, match="no dataset_version param"):
        resolve_dataset_version({}, {})


# --- several asset events in one run -------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]
# As stored: Airflow normalises the asset URI (no trailing slash), and the accessor looks events up by it.
ASSET = {"name": "adult_income_raw_versions", "uri": "s3://sm-explain-local/adult-income/raw", "extra": {}}


def _events(*extras: dict[str, Any], keys: tuple[str | None, ...] = ()) -> Any:
    """The run context's `triggering_asset_events` as the task runner builds it: Airflow's own accessor over
    event references, one minute apart, in the order given; `keys` are their partition keys (default none)."""
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    keys = keys or (None,) * len(extras)
    return TriggeringAssetEventsAccessor.build([
        AssetEventDagRunReferenceResult(
            asset=ASSET, extra=extra, source_task_id="register_version", source_dag_id="adult_income_register_version",
            source_run_id=f"manual__{index}", source_map_index=-1, source_aliases=[],
            timestamp=SUNDAY + timedelta(minutes=index), partition_key=key,
        )
        for index, (extra, key) in enumerate(zip(extras, keys, strict=True))
    ])


PARAMS = {"dataset_version": "", "bucket": "sm-explain-local", "prefix": "adult-income", "source_uri": ""}


def test_every_distinct_announced_version_is_found_in_arrival_order() -> None:
    events = _events({"dataset_version": "v2", "bucket": "other-bucket", "prefix": "/adult/"},
                     {"dataset_version": "v1"}, {"dataset_version": "v2", "bucket": "other-bucket", "prefix": "adult"})
    assert announcements(events) == [Announcement("v2", "other-bucket", "adult"), Announcement("v1")]


def test_one_announcement_is_processed_where_its_event_says() -> None:
    source = "s3://other-bucket/adult/raw/v2/adult.data"
    events = _events({"dataset_version": "v2", "bucket": "other-bucket", "prefix": "adult", "source_uri": source})
    version, located = resolve_run_target(PARAMS, {"logical_date": SUNDAY, "triggering_asset_events": events})
    assert version == "v2"
    assert run_locations(located, version) == {
        "dataset_version": "v2", "source_uri": source, "source_sha256": None,
        "dataset_uri": "s3://other-bucket/adult/v2/data/", "training_output_uri": "s3://other-bucket/adult/v2/training",
        "version_root": "s3://other-bucket/adult/v2",
        "processing_uri": "s3://other-bucket/adult/v2/processing/",
    }


@pytest.mark.reliability
def test_a_pipeline_run_fed_several_versions_refuses_naming_each(reliability) -> None:
    events = _events({"dataset_version": "v1"}, {"dataset_version": "v2", "bucket": "other-bucket"})
    with pytest.raises(ValueError) as raised:
        resolve_dataset_version(PARAMS, {"logical_date": SUNDAY, "triggering_asset_events": events})
    message = str(raised.value)
    assert "announcing 2 data set versions ('v1', 'v2' (bucket 'other-bucket'))" in message
    assert "adult_income_explainability_on_new_version triggers one run for each announced version" in message
    reliability.refused("DAG", "one pipeline run fed two asset events (versions v1, v2)",
                        "refused naming both versions, none silently dropped", message)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"source_uri": "s3://b/raw/v1/adult.data"}, "announces no data set version (no partition key"),
        ({"dataset_version": "../v1"}, "dataset_version '../v1' is invalid"),
        ({"dataset_version": "v1", "bucket": "Not_A_Bucket"}, "invalid bucket 'Not_A_Bucket'"),
        ({"dataset_version": "v1", "prefix": "adult income"}, "invalid prefix 'adult income'"),
        ({"dataset_version": "v1", "prefix": "adult\n"}, "invalid prefix 'adult\\n'"),
    ],
)
def test_an_event_extra_that_is_no_valid_announcement_is_refused(extra: dict, named: str, reliability) -> None:
    with pytest.raises(ValueError) as raised:
        announcements(_events({"dataset_version": "v0"}, extra))
    assert named in str(raised.value) and "adult_income_register_version" in str(raised.value)
    reliability.refused("DAG", f"asset event extra {extra}", "refused naming the event and the field", str(raised.value))


# --- partition keys -------------------------------------------------------------------------------------------------


def test_the_partition_key_names_the_version_unless_the_param_does() -> None:
    context = {"partition_key": "2026-11-15", "logical_date": SUNDAY}
    assert resolve_dataset_version({"dataset_version": ""}, context) == "2026-11-15"
    assert resolve_dataset_version({"dataset_version": "v7"}, context) == "v7"


def test_a_partitioned_run_is_located_where_the_events_of_its_partition_say() -> None:
    events = _events({"bucket": "other-bucket", "prefix": "adult"}, keys=("20261129",))
    version, located = resolve_run_target(PARAMS, {"partition_key": "20261129", "triggering_asset_events": events})
    assert version == "20261129" and type(version) is str
    assert run_locations(located, version)["dataset_uri"] == "s3://other-bucket/adult/20261129/data/"


def test_an_event_may_name_its_version_by_its_partition_key_alone() -> None:
    found = announcements(_events({}, {"dataset_version": "v2", "bucket": "other-bucket"}, keys=("20261129", "v2")))
    assert found == [Announcement("20261129"), Announcement("v2", "other-bucket")]


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("given", "resolve", "named"),
    [
        ("asset event with partition key v2 and extra dataset_version v1",
         lambda: announcements(_events({"dataset_version": "v1"}, keys=("v2",))),
         "has the partition key 'v2' but announces dataset_version 'v1' in its extra"),
        ("run of partition v1 fed an event announcing v2",
         lambda: run_announcements("v1", _events({"dataset_version": "v1"}, {"dataset_version": "v2"},
                                                 keys=("v1", None))),
         "partition key names data set version 'v1', but its asset events also announce 'v2'"),
        ("run with partition key 'us|2026-11-22T00:00:00'",
         lambda: resolve_dataset_version(PARAMS, {"partition_key": "us|2026-11-22T00:00:00", "logical_date": SUNDAY}),
         "this run's partition key names no valid data set version: dataset_version 'us|2026-11-22T00:00:00'"),
    ],
    ids=["key-and-extra-disagree", "partition-fed-another-version", "key-no-valid-version"],
)
def test_a_partition_naming_no_one_valid_version_is_refused_by_name(given: str, resolve: Any, named: str,
                                                                     reliability) -> None:
    with pytest.raises(ValueError) as raised:
        resolve()
    assert named in str(raised.value)
    reliability.refused("DAG", given, "refused naming the versions, before staging; none silently dropped",
                        str(raised.value))


@pytest.fixture(scope="module")
def on_new_version_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "adult_income_on_new_version.py"))
    assert bag.import_errors == {}
    return bag.dags["adult_income_explainability_on_new_version"]


def test_the_asset_dag_triggers_one_pipeline_run_per_announced_version(on_new_version_dag: Any) -> None:
    """Two announcements merged into one run (as Airflow merges events arriving between runs): both versions
    get their own run of the pipeline DAG, each where its event says."""
    trigger = on_new_version_dag.get_task("run_pipeline_for_version")
    assert trigger.partial_kwargs["trigger_dag_id"] == "adult_income_explainability"
    assert trigger.partial_kwargs["skip_when_already_exists"] is True
    assert {t.task_id for t in trigger.upstream_list} == {"announced_versions"}

    announce = on_new_version_dag.get_task("announced_versions")
    events = _events({"dataset_version": "v1"}, {"dataset_version": "v2", "bucket": "other-bucket", "prefix": "x/y"},
                     {"dataset_version": "v1"})
    calls = announce.python_callable(params={**PARAMS, "dataset_versions": []}, run_id="asset_triggered__t",
                                     triggering_asset_events=events)
    assert calls == [
        {"trigger_run_id": "asset_triggered__t__0_v1",
         "conf": {"dataset_version": "v1", "bucket": "sm-explain-local", "prefix": "adult-income"}},
        {"trigger_run_id": "asset_triggered__t__1_v2",
         "conf": {"dataset_version": "v2", "bucket": "other-bucket", "prefix": "x/y"}},
    ]


def test_the_asset_dag_run_of_one_partition_triggers_that_version_where_its_events_say(on_new_version_dag) -> None:
    """Airflow starts one run of the partition-aware consumer per version: its partition key names it."""
    from airflow.sdk import PartitionedAssetTimetable

    assert isinstance(on_new_version_dag.timetable, PartitionedAssetTimetable)
    announce = on_new_version_dag.get_task("announced_versions")
    events = _events({"dataset_version": "20261129", "bucket": "other-bucket"}, {"bucket": "third-bucket"},
                     keys=("20261129", "20261129"))
    calls = announce.python_callable(params={**PARAMS, "dataset_versions": []}, run_id="asset_triggered__t",
                                     partition_key="20261129", triggering_asset_events=events)
    assert calls == [
        {"trigger_run_id": "asset_triggered__t__0_20261129",
         "conf": {"dataset_version": "20261129", "bucket": "other-bucket", "prefix": "adult-income"}},
        {"trigger_run_id": "asset_triggered__t__1_20261129",
         "conf": {"dataset_version": "20261129", "bucket": "third-bucket", "prefix": "adult-income"}},
    ]


def test_a_manual_run_of_the_asset_dag_creates_the_pipeline_runs(on_new_version_dag: Any, airflow_db) -> None:
    """The real TriggerDagRunOperator, mapped: one queued run of the pipeline DAG per distinct version."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    parent = on_new_version_dag.test(run_conf={"dataset_versions": ["nv-a", "nv-b", "nv-a"]})
    assert str(parent.state) == "success"
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "adult_income_explainability",
                                            DagRun.run_id.startswith(parent.run_id)).all()
        triggered = sorted((run.run_id, run.conf["dataset_version"], run.logical_date) for run in runs)
    assert triggered == [(f"{parent.run_id}__0_nv-a", "nv-a", None), (f"{parent.run_id}__1_nv-b", "nv-b", None)]


@pytest.mark.reliability
def test_a_run_of_the_asset_dag_with_nothing_announced_fails_clearly(on_new_version_dag: Any, reliability) -> None:
    announce = on_new_version_dag.get_task("announced_versions")
    with pytest.raises(ValueError) as raised:
        announce.python_callable(params={**PARAMS, "dataset_versions": []}, run_id="manual__t",
                                 triggering_asset_events=_events())
    assert "no asset event announcing a data set version, no partition key and no dataset_versions param" in (
        str(raised.value))
    reliability.refused("DAG", "asset DAG run with no event and no dataset_versions",
                        "fails naming what is missing; no pipeline run triggered", str(raised.value))
