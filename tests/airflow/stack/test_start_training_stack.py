"""Against the real local stack: a retried start task re-attaches, so the run has exactly one job,
and the XCom paths are where the job really writes its model and Debugger tensors."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from sm_explain_ops.job_naming import DEPLOYMENT_ENV, deployment_identity, training_job_name
from sm_explain_ops.links import TrainingJobLink
from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator

pytestmark = pytest.mark.stack

BUCKET = "start-training"
PREFIX = "tiny/v1"
DAG_ID = "start_training_stack"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
WAIT_SECONDS = 300


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def minimal_context(dag_id: str = DAG_ID, run_id: str = RUN_ID) -> dict[str, Any]:
    """The context keys the operator reads, to call ``op.execute(context)`` outside a DAG run."""
    return {
        "dag": SimpleNamespace(dag_id=dag_id),
        "dag_run": SimpleNamespace(run_id=run_id),
        "run_id": run_id,
        "ti": RecordingTaskInstance(),
    }


def _tiny_csv(rows: int, rng: random.Random) -> str:
    """Label first, no header; the label depends on the first feature so training has signal."""
    lines = []
    for _ in range(rows):
        features = [rng.uniform(-1, 1) for _ in range(4)]
        label = int(features[0] + rng.gauss(0, 0.3) > 0)
        lines.append(",".join([str(label), *(f"{value:.4f}" for value in features)]))
    return "\n".join(lines) + "\n"


def _spec() -> dict[str, Any]:
    return {
        "train_uri": f"s3://{BUCKET}/{PREFIX}/data/train.csv",
        "validation_uri": f"s3://{BUCKET}/{PREFIX}/data/validation.csv",
        "output_s3_uri": f"s3://{BUCKET}/{PREFIX}/training",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "hyperparameters": {"objective": "binary:logistic", "num_round": 20, "max_depth": 3, "eta": 0.3},
        "instance_type": "ml.m5.large",
        "max_runtime_seconds": 600,
        "data_shape": {"rows": 300, "features": 4, "validation_rows": 100},
    }


def _operator() -> StartDebuggedTrainingOperator:
    return StartDebuggedTrainingOperator(
        task_id="start_training", spec=_spec(), dataset_version="v1", aws_conn_id=None
    )


def _wait_until_terminal(sagemaker: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        described = sagemaker.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            return described
        if time.monotonic() > deadline:
            pytest.fail(f"{name} still {described['TrainingJobStatus']} after {WAIT_SECONDS} s")
        time.sleep(1)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def test_retried_start_task_creates_one_job_and_its_paths_are_real(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEPLOYMENT_ENV, raising=False)
    region = local_stack.region
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(3)
    for channel, rows in (("train", 300), ("validation", 100)):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/{channel}.csv", Body=_tiny_csv(rows, rng))

    first = _operator()
    first_context = minimal_context()
    first_result = first.execute(first_context)
    # The retry: the same task of the same run executes again (new operator instance, as after a
    # worker restart), and once more on the very same instance.
    retry_result = _operator().execute(minimal_context())
    again_result = first.execute(minimal_context())

    deployment = deployment_identity(None, aws_conn_id=None, output_s3_uri=_spec()["output_s3_uri"])
    expected_name = training_job_name(DAG_ID, RUN_ID, "v1", deployment=deployment)
    assert first_result["job_name"] == expected_name
    assert retry_result == first_result == again_result

    sagemaker = boto3.client("sagemaker", region_name=region)
    # The session's stack is shared with other tests: count only this DAG's jobs.
    def jobs_of_this_dag() -> list[str]:
        summaries = sagemaker.list_training_jobs(NameContains=expected_name.rsplit("-", 1)[0], MaxResults=100)
        return [summary["TrainingJobName"] for summary in summaries["TrainingJobSummaries"]]

    assert jobs_of_this_dag() == [expected_name]

    link = first_context["ti"].pushed[TrainingJobLink.key]
    assert (
        TrainingJobLink().format_link(**link) == f"{local_stack.sagemaker_endpoint}/jobs/{expected_name}/log"
    )

    described = _wait_until_terminal(sagemaker, expected_name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TrainingJobArn"] == first_result["training_job_arn"]
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == first_result["model_artifact_path"]
    # The endpoint takes RetryStrategy as SageMaker does (botocore's shape) and reports it back.
    assert described["RetryStrategy"] == {"MaximumRetryAttempts": 2}

    bucket, key = _split_s3(first_result["model_artifact_path"])
    s3.head_object(Bucket=bucket, Key=key)
    bucket, prefix = _split_s3(first_result["debug_output_path"])
    written = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]]
    assert any(name.endswith("training_job_end.ts") for name in written), written
    assert any("/events/" in name for name in written), written

    # A later retry of the finished run still attaches: ListTrainingJobs keeps one job.
    assert _operator().execute(minimal_context()) == first_result
    assert jobs_of_this_dag() == [expected_name]
