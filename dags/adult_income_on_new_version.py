"""Asset-driven variant: a "new version landed" DAG announces a data set version on an Asset, and the
same explainability pipeline runs for exactly that version."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Asset, Param, task

from sm_explain_ops.dataset_versions import DATASET_VERSION_PATTERN
from sm_explain_ops.pipeline import build_explainability_pipeline, pipeline_dag_kwargs, run_locations

_BUCKET = os.environ.get("SM_EXPLAIN_BUCKET") or "sm-explain-local"
_PREFIX = (os.environ.get("SM_EXPLAIN_PREFIX") or "adult-income").strip("/")
# One asset for the raw data of every version; each event's extra names the version that landed.
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
        "bucket": Param(_BUCKET, type="string"),
        "prefix": Param(_PREFIX, type="string"),
    },
    tags=["sagemaker", "adult-income", "assets"],
    doc_md="Trigger with `dataset_version` once `s3://<bucket>/<prefix>/raw/<version>/adult.data` exists: "
    "checks the object, then updates the `adult_income_raw_versions` asset, which runs "
    "`adult_income_explainability_on_new_version` for that version.",
) as register_dag:

    @task(outlets=[RAW_ADULT_VERSIONS])
    def register_version(*, outlet_events: Any, params: dict[str, Any]) -> str:
        """Refuse to announce a version whose data is not there, so no pipeline run starts in vain."""
        version = params["dataset_version"]
        source = run_locations(params, version)["source_uri"]
        bucket, key = S3Hook.parse_s3_url(source)
        if not S3Hook(aws_conn_id="aws_default").check_for_key(key, bucket_name=bucket):
            raise ValueError(f"data set version {version!r} has no data at {source}")
        outlet_events[RAW_ADULT_VERSIONS].extra = {"dataset_version": version, "source_uri": source}
        return version

    register_version()

with DAG(
    dag_id="adult_income_explainability_on_new_version",
    description="The explainability pipeline, run for each announced data set version",
    schedule=[RAW_ADULT_VERSIONS],
    **pipeline_dag_kwargs(),
    tags=["sagemaker", "xgboost", "debugger", "explainability", "adult-income", "assets"],
    doc_md="Runs the `adult_income_explainability` pipeline for the version named in the triggering "
    "asset event's extra (`dataset_version`).",
) as on_new_version_dag:
    build_explainability_pipeline()
