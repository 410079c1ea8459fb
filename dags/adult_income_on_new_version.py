"""Asset-driven variant: a "new version landed" DAG announces a data set version on an Asset, and the
explainability pipeline runs once for each announced version.

Each announcement is an asset event whose partition key is the version (its extra says where it landed), and the
consumer is partition-aware: Airflow starts one consumer run per version, whose partition key names it. Events of
one version that arrive before that run starts all reach it, and may name different buckets. So the consumer
processes none itself: it triggers one run of ``adult_income_explainability`` per distinct announcement, each with
its own run id, retries, timeout and report, as if triggered by hand for that version.

An event without a partition key (say one posted to the REST API with only an extra) starts no run: Airflow 3.3
queues partition-aware DAGs for partitioned events only (it records a "missing partition key" log entry). Post
announcements with ``partition_key`` set to the version.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, Param, PartitionedAssetTimetable, task

from sm_explain_ops.dataset_versions import (
    BUCKET_PATTERN,
    DATASET_VERSION_PATTERN,
    PREFIX_PATTERN,
    run_announcements,
)
from sm_explain_ops.pipeline import run_locations

_BUCKET = os.environ.get("SM_EXPLAIN_BUCKET") or "sm-explain-local"
_PREFIX = (os.environ.get("SM_EXPLAIN_PREFIX") or "adult-income").strip("/")
PIPELINE_DAG_ID = "adult_income_explainability"
# One asset for the raw data of every version; each event's extra names the version that landed and where.
RAW_ADULT_VERSIONS = Asset(name="adult_income_raw_versions", uri=f"s3://{_BUCKET}/{_PREFIX}/raw/")

with DAG(
    dag_id="adult_income_register_version",
    description="Announce that a new raw data set version landed",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "owner": "data-platform"},
    params={
        "dataset_version": Param(type="string", pattern=DATASET_VERSION_PATTERN),
        "bucket": Param(_BUCKET, type="string", pattern=BUCKET_PATTERN),
        "prefix": Param(_PREFIX, type="string", pattern=PREFIX_PATTERN),
    },
    tags=["sagemaker", "adult-income", "assets"],
    doc_md="Trigger with `dataset_version` once `s3://<bucket>/<prefix>/raw/<version>/adult.data` exists: "
    "checks the object, then updates the `adult_income_raw_versions` asset with an event whose partition key is the "
    "version (its extra names the bucket and prefix), which runs `adult_income_explainability` for that version.",
) as register_dag:

    @task(outlets=[RAW_ADULT_VERSIONS])
    def register_version(*, outlet_events: Any, params: dict[str, Any]) -> str:
        """Refuse to announce a version whose data is not there, so no pipeline run starts in vain."""
        version = params["dataset_version"]
        source = run_locations(params, version)["source_uri"]
        bucket, key = S3Hook.parse_s3_url(source)
        if not S3Hook(aws_conn_id="aws_default").check_for_key(key, bucket_name=bucket):
            raise ValueError(f"data set version {version!r} has no data at {source}")
        event = outlet_events[RAW_ADULT_VERSIONS]
        # The partition key names the version natively: the partition-aware consumer gets one run per version.
        event.add_partitions(version)
        event.extra = {
            "dataset_version": version, "bucket": params["bucket"], "prefix": params["prefix"].strip("/"),
            "source_uri": source,
        }
        return version

    register_version()

with DAG(
    dag_id="adult_income_explainability_on_new_version",
    description="One adult_income_explainability run for each announced data set version",
    # One run per announced version (the default IdentityMapper: the run's partition key is the event's).
    schedule=PartitionedAssetTimetable(assets=RAW_ADULT_VERSIONS),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "owner": "data-platform"},
    params={
        "dataset_versions": Param(
            [], type="array", items={"type": "string", "pattern": DATASET_VERSION_PATTERN},
            description="For a manual run: the versions to run the pipeline for (empty: the run's partition key, "
            "else the versions its asset events announce).",
        ),
        "bucket": Param(_BUCKET, type="string", pattern=BUCKET_PATTERN),
        "prefix": Param(_PREFIX, type="string", pattern=PREFIX_PATTERN),
    },
    tags=["sagemaker", "xgboost", "debugger", "explainability", "adult-income", "assets"],
    doc_md="Runs `adult_income_explainability` once for each data set version announced on "
    "`adult_income_raw_versions`: Airflow starts one run of this DAG per version (the events' partition key), and "
    "each distinct announcement of it (the extra's `bucket`, `prefix`, `source_uri`) gets its pipeline run. A "
    "manual run takes the `dataset_versions` param instead.",
) as on_new_version_dag:

    @task
    def announced_versions(**context: Any) -> list[dict[str, Any]]:
        """One TriggerDagRunOperator call per distinct announced version: its run id and its conf."""
        params = context["params"]
        if params["dataset_versions"]:
            confs = [{"dataset_version": v, "bucket": params["bucket"], "prefix": params["prefix"]}
                     for v in dict.fromkeys(params["dataset_versions"])]
        else:
            confs = [
                {"dataset_version": a.dataset_version, "bucket": a.bucket or params["bucket"],
                 "prefix": a.prefix or params["prefix"], **({"source_uri": a.source_uri} if a.source_uri else {})}
                for a in run_announcements(context.get("partition_key"), context.get("triggering_asset_events"))
            ]
        if not confs:
            raise ValueError(
                "this run has no asset event announcing a data set version, no partition key and no "
                "dataset_versions param: nothing to run the pipeline for"
            )
        run_id = context["run_id"]
        # Deterministic run ids: a retry of the trigger finds the runs it made (skip_when_already_exists).
        return [{"trigger_run_id": f"{run_id}__{index}_{conf['dataset_version']}", "conf": conf}
                for index, conf in enumerate(confs)]

    TriggerDagRunOperator.partial(
        task_id="run_pipeline_for_version",
        trigger_dag_id=PIPELINE_DAG_ID,
        logical_date=None,  # each run's version comes from its conf, and runs of one moment must not collide
        # No partition key for the pipeline run: the standard provider's TriggerDagRunOperator (1.21) has no such
        # argument, and the pipeline DAG's keys are dates (key_format %Y-%m-%d), which Airflow refuses for a version
        # such as "v2" or "20261122". The version goes in the conf's dataset_version, which wins anyway.
        skip_when_already_exists=True,
        wait_for_completion=False,
    ).expand_kwargs(announced_versions())
