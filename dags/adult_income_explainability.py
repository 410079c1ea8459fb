"""Adult census income: train explainable XGBoost on SageMaker with Debugger, weekly and by backfill."""

from __future__ import annotations

from airflow.sdk import DAG, CronPartitionTimetable

from sm_explain_ops.pipeline import build_explainability_pipeline, pipeline_dag_kwargs

DOC_MD = """
### Explainable XGBoost on the Adult census income data

`resolve_run_config` -> `stage_dataset` -> `start_training` -> `wait_for_training_and_rules` ->
`explain` -> `report` (the task group `explainability_pipeline`): the SageMaker notebook *Explainability with
Amazon SageMaker Debugger*, run on a schedule. Each run processes one **data set version**: the `dataset_version`
param (any 1-64 letters, digits, `.`, `_`, `-`: `20261122` too), or else the run's **partition key**, its Sunday
(`YYYY-MM-DD`), read from `s3://<bucket>/<prefix>/raw/<version>/adult.data` unless `source_uri` says otherwise.
Everything a run writes lives under `s3://<bucket>/<prefix>/<version>/`, so runs of different versions never
collide.

**Run once**: trigger with params (`dataset_version`, `source_uri`, `hyperparameters`, `debugger`,
`rule_policies`, `sns_topic_arn`, ...).

**Backfill** one version per week, each run's partition key naming its version:
`airflow backfill create --dag-id adult_income_explainability --from-date 2026-11-01 --to-date 2026-11-22`
(`--max-active-runs N` to run several at once; `--dry-run` lists the partition keys).

**Alerts**: a Debugger rule that ends `IssuesFound` publishes to `sns_topic_arn`; `rule_policies`
decides whether the run fails (default) or continues to the explanations.

The report is `s3://<bucket>/<prefix>/<version>/<job>/explanations/report.html`.
"""

with DAG(
    dag_id="adult_income_explainability",
    description="Stage, train with SageMaker Debugger, wait on rules, explain, report",
    # Weekly, Sunday 00:00 UTC. Each scheduled or backfilled run is a partition whose key is its Sunday, the data set
    # version it processes (the date the logical date gave before). Partitioned runs carry no logical date.
    schedule=CronPartitionTimetable("0 0 * * 0", timezone="UTC", key_format="%Y-%m-%d"),
    **pipeline_dag_kwargs(),
    tags=["sagemaker", "xgboost", "debugger", "explainability", "adult-income"],
    doc_md=DOC_MD,
) as dag:
    build_explainability_pipeline()
