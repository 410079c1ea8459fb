"""Compare explanations across data set versions: how each feature's mean |SHAP| and rank move."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param

from sm_explain_ops.dataset_versions import DATASET_VERSION_PATTERN
from sm_explain_ops.operators.compare_versions import CompareDatasetVersionsOperator
from sm_explain_ops.pipeline import pipeline_params

# Where the comparison computes: the explainability pipeline's own settings (one definition, the same defaults).
COMPUTE_PARAMS = ("role_arn", "runtime_image_uri", "compute")

with DAG(
    dag_id="adult_income_version_comparison",
    description="Mean |SHAP| and feature rank across data set versions",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "owner": "data-platform"},
    params={
        "versions": Param(["2026-11-08", "2026-11-15", "2026-11-22"], type="array", minItems=2,
                          items={"type": "string", "pattern": DATASET_VERSION_PATTERN}),
        "bucket": Param(os.environ.get("SM_EXPLAIN_BUCKET") or "sm-explain-local", type="string"),
        "prefix": Param(os.environ.get("SM_EXPLAIN_PREFIX") or "adult-income", type="string"),
        **{name: pipeline_params()[name] for name in COMPUTE_PARAMS},
    },
    tags=["sagemaker", "explainability", "adult-income", "comparison"],
    doc_md="Trigger with `versions` (at least two already explained data set versions). Writes "
    "`shap_by_version.png` and CSVs under `s3://<bucket>/<prefix>/comparisons/<first>_to_<last>/`.",
) as dag:
    CompareDatasetVersionsOperator(
        task_id="compare_versions",
        bucket="{{ params.bucket }}",
        prefix="{{ params.prefix }}",
        versions=dag.param("versions"),  # the list itself (plain Jinja would render its text)
        output_uri="s3://{{ params.bucket }}/{{ params.prefix }}/comparisons/"
        "{{ params.versions | first }}_to_{{ params.versions | last }}/",
        **{name: dag.param(name) for name in COMPUTE_PARAMS},
    )
