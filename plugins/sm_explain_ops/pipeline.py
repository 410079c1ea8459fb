"""The explainability pipeline as one reusable piece, a TaskGroup: stage -> start training -> wait on training
and rules -> explanations -> report. One function builds it; the scheduled DAG holds it, and the asset-driven DAG
runs it by triggering that DAG once per announced version, so the two cannot drift apart.

Nothing here calls AWS at DAG parse time: every location is resolved in the first task of a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, TaskGroup, task

from sm_explain_contracts.explain_request import SOURCES as EXPLANATION_SOURCES
from sm_explain_contracts.staging_request import MAX_TRAIN_PARTS
from sm_explain_ops.dataset_versions import (
    DATASET_VERSION_PATTERN,
    PREFIX_PATTERN,
    dataset_version_problem,
    run_announcements,
)
from sm_explain_ops.hooks.job_logs import limits_as_dict, log_limits_from_env
from sm_explain_ops.notifiers.rule_alert import sns_rule_alert_notifier
from sm_explain_ops.operators.explain import (
    MAX_INSTANCE_COUNT,
    BuildReportOperator,
    ExplainTrainingJobOperator,
)
from sm_explain_ops.operators.stage_dataset import StageDatasetOperator
from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor

# The notebook's hyperparameters ("Explainability with Amazon SageMaker Debugger").
NOTEBOOK_HYPERPARAMETERS: dict[str, Any] = {
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
    "objective": "binary:logistic",
    "num_round": 51,
}


def _env(name: str, default: str) -> str:
    """Deployment defaults come from the environment (no Variable or AWS lookups at parse time)."""
    return os.environ.get(name) or default


def pipeline_params() -> dict[str, Param]:
    """Validated run parameters with defaults that run the notebook on the local stack."""
    return {
        "dataset_version": Param(
            "", type="string", pattern=rf"^$|{DATASET_VERSION_PATTERN}",
            description="Data set version (any 1-64 letters, digits, '.', '_', '-', e.g. 20261122); empty = the "
            "run's partition key (a scheduled or backfilled run's Sunday, YYYY-MM-DD), else the version announced by "
            "the triggering asset event, else the logical date.",
        ),
        "source_uri": Param(
            "", type="string",
            description="s3://, or https:// with source_sha256 (a local path only where the deployment sets "
            "SM_EXPLAIN_ALLOW_LOCAL_SOURCES=1); empty = s3://<bucket>/<prefix>/raw/<version>/adult.data",
        ),
        "source_sha256": Param("", type="string", pattern=r"^$|^[0-9a-f]{64}$",
                               description="Expected sha256 of the source (required for https://)."),
        "bucket": Param(_env("SM_EXPLAIN_BUCKET", "sm-explain-local"), type="string", minLength=3),
        "prefix": Param(_env("SM_EXPLAIN_PREFIX", "adult-income"), type="string", pattern=PREFIX_PATTERN),
        "role_arn": Param(
            _env("SM_EXPLAIN_ROLE_ARN", "arn:aws:iam::123456789012:role/SageMakerExecutionRole"),
            type="string", pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
        ),
        "runtime_image_uri": Param(
            _env("SM_EXPLAIN_RUNTIME_IMAGE_URI", ""), type="string",
            description="The sm-explain-runtime image (docker/runtime.Dockerfile) staging, explanations and the "
            "report run on as SageMaker Processing jobs; empty = none (they run on the Airflow worker).",
        ),
        "compute": Param("", type="string", enum=["", "processing", "worker"],
                         description="Where staging, explanations and the report run: 'processing' (a SageMaker "
                         "Processing job on runtime_image_uri), 'worker' (the worker's runtime environment), or "
                         "empty: processing when runtime_image_uri is set, else worker."),
        "train_parts": Param(1, type="integer", minimum=1, maximum=MAX_TRAIN_PARTS,
                             description="Part files the training rows are staged as (train/part-*.csv); the "
                             "training job reads them as one channel, and a split explanation gives each instance a "
                             "share of them."),
        "explanation_instances": Param(1, type="integer", minimum=1, maximum=MAX_INSTANCE_COUNT,
                                       description="Processing instances the explanation's full-data work is split "
                                       "across (a map job, then a reduce job); needs a runtime image and "
                                       "train_parts >= this to keep every instance busy. 1 = one job."),
        "algorithm_version": Param("1.7-1", type="string", pattern=r"^\d+\.\d+-\d+$",
                                   description="Built-in XGBoost image; Debugger tensors need 0.90-2..1.7-1. "
                                   "Without Debugger (debugger 'off'), 3.0-5 or 3.2-0."),
        "instance_type": Param("ml.m5.xlarge", type="string", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$"),
        "retry_attempts": Param(2, type="integer", minimum=0, maximum=30,
                                description="How often SageMaker restarts the job itself when it fails with "
                                "InternalServerError (RetryStrategy); 0 = never."),
        "hyperparameters": Param(NOTEBOOK_HYPERPARAMETERS, type="object", required=["num_round"]),
        "debugger": Param(
            "notebook", type=["string", "object"],
            description="'notebook' (metrics, feature_importance, full_shap, average_shap every 5 steps, "
            "LossNotDecreasing on metrics), 'default' (cheap: metrics + feature_importance), 'off' (no "
            "DebugHookConfig, no rules: for accounts without Debugger; explanations come from the model), or a "
            "mapping {collections: [...], rules: [...], hook_parameters: {...}}.",
        ),
        "rule_policies": Param(
            {"*": {"issues_found": "fail", "error": "fail"}}, type="object",
            description="Per rule name (or '*'): issues_found fail|continue, error fail|warn.",
        ),
        "sns_topic_arn": Param(_env("SM_EXPLAIN_SNS_TOPIC_ARN", ""), type="string",
                               description="SNS topic alerted when a rule ends IssuesFound; empty = none."),
        "explanation_source": Param("auto", type="string", enum=list(EXPLANATION_SOURCES)),
        "explanation_options": Param(
            {"explain_rows": "train", "outlier_top_n": 5, "seed": 7}, type="object",
            description="force_plot_row, stacked_sample_size, beeswarm_sample_size, outlier_top_n, seed, ...",
        ),
    }


def pipeline_dag_kwargs() -> dict[str, Any]:
    """DAG arguments every DAG running this pipeline shares (the scheduled one, the asset-driven one)."""
    return {
        "start_date": datetime(2026, 11, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 3,
        "default_args": {"retries": 2, "retry_delay": timedelta(minutes=2), "owner": "data-platform"},
        "dagrun_timeout": timedelta(days=3),
        "params": pipeline_params(),
    }


def resolve_run_target(params: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The version this run processes and the params that locate it, in this order:

    1. the explicit ``dataset_version`` param;
    2. the run's partition key: a scheduled or backfilled run of a partitioned timetable names its version there
       (the weekly DAG's key is its Sunday, ``YYYY-MM-DD``), with the bucket, prefix and source of the asset
       events of that partition, if any;
    3. the one version announced by the triggering asset events (with the bucket, prefix and source it names);
    4. the logical date (``YYYY-MM-DD``), for a run that has one and nothing above (say ``dag.test``).

    A run one version at a time cannot serve several announcements; it refuses them by name rather than process
    only one."""
    version = str(params.get("dataset_version") or "")
    located = dict(params)
    if not version:
        announced = run_announcements(context.get("partition_key"), context.get("triggering_asset_events"))
        if len(announced) > 1:
            raise ValueError(
                f"this run was triggered by asset events announcing {len(announced)} data set versions "
                f"({', '.join(a.describe() for a in announced)}), but it processes one: schedule the pipeline's "
                "DAG per version (adult_income_explainability_on_new_version triggers one run for each announced "
                "version), or give the dataset_version param"
            )
        if announced:
            [announcement] = announced
            version = announcement.dataset_version
            located.update({key: value for key, value in (
                ("bucket", announcement.bucket), ("prefix", announcement.prefix),
                ("source_uri", announcement.source_uri)) if value})
    if not version:
        logical_date = context.get("logical_date")
        if logical_date is None:
            raise ValueError(
                "no dataset_version param, no partition key, no asset event and no logical date to derive one: "
                "give the dataset_version param"
            )
        version = logical_date.strftime("%Y-%m-%d")
    problem = dataset_version_problem(version)
    if problem:
        raise ValueError(problem)
    return version, located


def resolve_dataset_version(params: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The data set version this run processes (see :func:`resolve_run_target`)."""
    return resolve_run_target(params, context)[0]


def run_locations(params: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Every S3 location of one run, one root per data set version (docs/architecture.md)."""
    bucket = str(params["bucket"])
    prefix = str(params["prefix"]).strip("/")
    root = f"s3://{bucket}/{prefix}/{version}"
    return {
        "dataset_version": version,
        "source_uri": params.get("source_uri") or f"s3://{bucket}/{prefix}/raw/{version}/adult.data",
        "source_sha256": params.get("source_sha256") or None,
        "dataset_uri": f"{root}/data/",
        "training_output_uri": f"{root}/training",
        "processing_uri": f"{root}/processing/",
        "version_root": root,
    }


def notify_rule_issue(context: dict[str, Any]) -> None:
    """Send the rule alert to the run's SNS topic, when one is configured."""
    params = context.get("params") or {}
    topic = params.get("sns_topic_arn")
    if topic:
        notifier = sns_rule_alert_notifier(target_arn=topic, aws_conn_id=context["task"].aws_conn_id)
        notifier(context)


PIPELINE_GROUP_ID = "explainability_pipeline"


def build_explainability_pipeline(
    *, aws_conn_id: str = "aws_default", poke_interval: float | None = None
) -> TaskGroup:
    """Add the pipeline to the DAG being defined, as one TaskGroup, and return the group.

    Every hand-off is an XComArg (``task.output["key"]``) and every param a ``dag.param(name)``: Airflow resolves
    both while it renders a templated field, into the value itself, so mappings and ints arrive as they are and a
    version "20261122" stays a string. The DAG needs no ``render_template_as_native_obj``.

    The group does not prefix its task ids (``prefix_group_id=False``): the ids stay ``stage_dataset``,
    ``start_training``... as users, docs, alerts, ``airflow tasks clear -t`` and backfill history know them.
    """
    poke = poke_interval if poke_interval is not None else float(_env("SM_EXPLAIN_POKE_INTERVAL", "30"))
    # How the waits read the jobs' CloudWatch logs; a bad $SM_EXPLAIN_LOG_SETTLE_SECONDS fails the DAG's import.
    log_limits = limits_as_dict(log_limits_from_env())
    aws = {"aws_conn_id": aws_conn_id}

    with TaskGroup(
        group_id=PIPELINE_GROUP_ID,
        prefix_group_id=False,
        tooltip="stage -> start training -> wait on training and rules -> explain -> report, for one version",
    ) as group:
        dag = group.dag

        @task(task_id="resolve_run_config", multiple_outputs=True)
        def resolve_run_config(**context: Any) -> dict[str, Any]:
            """Fix this run's data set version and S3 locations once, for every later task."""
            version, located = resolve_run_target(context["params"], context)
            return run_locations(located, version)

        config = resolve_run_config()
        version = config["dataset_version"]
        # Where the runtime steps compute (sm_explain_ops.operators.runtime_compute), one setting for all three.
        compute = {
            "runtime_image_uri": dag.param("runtime_image_uri"),
            "compute": dag.param("compute"),
            "role_arn": dag.param("role_arn"),
            "processing_uri": config["processing_uri"],
            "check_interval": min(poke, 5.0),
            "log_limits": log_limits,
        }

        stage = StageDatasetOperator(
            task_id="stage_dataset",
            source=config["source_uri"],
            source_sha256=config["source_sha256"],
            destination=config["dataset_uri"],
            dataset_version=version,
            train_parts=dag.param("train_parts"),
            **compute,
            **aws,
        )
        start = StartDebuggedTrainingOperator(
            task_id="start_training",
            dataset_version=version,
            explanations_root=config["version_root"],
            spec={
                # The channels are the staged files' own prefixes (".../train/"), each holding that one file: an
                # S3Prefix on ".../train.csv" would also train on any "train.csv*" object beside it.
                "train_uri": stage.output["train_channel_uri"],
                "validation_uri": stage.output["validation_channel_uri"],
                "output_s3_uri": config["training_output_uri"],
                "role_arn": dag.param("role_arn"),
                "algorithm_version": dag.param("algorithm_version"),
                "instance_type": dag.param("instance_type"),
                "retry_attempts": dag.param("retry_attempts"),
                "hyperparameters": dag.param("hyperparameters"),
                "debugger": dag.param("debugger"),
                "data_shape": stage.output["data_shape"],
                "tags": {"dataset_version": version, "dag_id": dag.dag_id},
            },
            **aws,
        )
        job_name = start.output["job_name"]
        wait = TrainingAndRulesSensor(
            task_id="wait_for_training_and_rules",
            job_name=job_name,
            rule_policies=dag.param("rule_policies"),
            notifiers=[notify_rule_issue],
            poke_interval=poke,
            log_limits=log_limits,
            timeout=timedelta(days=2),
            **aws,
        )
        explain = ExplainTrainingJobOperator(
            task_id="explain",
            job_name=job_name,
            dataset_version=version,
            features_uri=stage.output["features_uri"],
            train_uri=stage.output["train_uri"],
            validation_uri=stage.output["validation_uri"],
            model_artifact_uri=start.output["model_artifact_path"],
            debug_output_uri=start.output["debug_output_path"],
            output_uri=start.output["explanations_uri"],
            source=dag.param("explanation_source"),
            options=dag.param("explanation_options"),
            objective="{{ params.hyperparameters.get('objective', '') }}",  # a string: plain Jinja renders it
            instance_count=dag.param("explanation_instances"),
            **compute,
            **aws,
        )
        report = BuildReportOperator(
            task_id="report",
            manifest=explain.output,
            verdict=wait.output,  # its job_url is the report's link to the training job
            job_name=job_name,
            dataset_version=version,
            output_uri=start.output["explanations_uri"],
            data_uri=stage.output["data_uri"],
            # The report task looks for the previous version's report beside this version's root.
            version_root=config["version_root"],
            **compute,
            **aws,
        )
        # The hand-offs already order most of it; the wait has no output the explanations need, yet they must
        # not start before the job and its rules ended (and passed the policy).
        config >> stage >> start >> wait >> explain >> report
    return group
