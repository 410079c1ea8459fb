"""Against the real local stack: a retried start task re-attaches, so the run has exactly one job,
and the XCom paths are where the job really writes its model and Debugger tensors."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from sm_explain_ops.job_naming import DEPLOYMENT_ENV, deployment_identity, training_job_name
from sm_explain_ops.links import TrainingJobLink
from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator
from tests.airflow.stack import tiny_training

pytestmark = pytest.mark.stack

BUCKET = "start-training"
PREFIX = "tiny/v1"
DAG_ID = "start_training_stack"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
WAIT_SECONDS = 300


def minimal_context() -> dict[str, Any]:
    return tiny_training.minimal_context(DAG_ID, RUN_ID)


def _spec() -> dict[str, Any]:
    return tiny_training.tiny_spec(BUCKET, PREFIX)


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
    tiny_training.stage(BUCKET, PREFIX)

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


@pytest.mark.reliability
def test_the_training_request_check_and_the_endpoint_refuse_a_broken_request_in_the_same_words(
    local_stack, reliability
) -> None:
    """One walker over botocore's model on both sides (sm_explain_contracts.botocore_shapes): a limit the builder
    enforces is the limit the endpoint (and SageMaker) enforces, worded alike."""
    from botocore.exceptions import ClientError

    from sm_explain_ops.training_request import build_training_request, validate_request

    request = build_training_request(_spec(), "drift-check-job", region=local_stack.region)
    request["RoleArn"] = "arn:aws:iam::123:role/too-short-account"
    with pytest.raises(ValueError) as builder:
        validate_request(request)
    with pytest.raises(ClientError) as endpoint:
        boto3.client("sagemaker").create_training_job(**request)
    sentence = ("Value 'arn:aws:iam::123:role/too-short-account' at 'RoleArn' failed to satisfy constraint: Member "
                "must satisfy regular expression pattern")
    assert sentence in str(builder.value)
    assert endpoint.value.response["Error"]["Code"] == "ValidationException"
    assert sentence in endpoint.value.response["Error"]["Message"]
    reliability.refused("training request", "a RoleArn outside botocore's pattern, from Airflow and at the endpoint",
                        "both refuse it in SageMaker's words", endpoint.value.response["Error"]["Message"])


@pytest.mark.parametrize(
    ("hyperparameters", "accepted"),
    [
        ({"num_round": "3", "learning_rate": "0.3", "reg_alpha": "0.1"}, True),  # aliases the algorithm knows
        ({"num_round": "3", "num_parallel_tree": "2"}, True),
        ({"num_round": "3", "objective": "reg:quantileerror"}, False),  # not in the images' objective list
        ({"num_round": "3", "eta": "1.5"}, False),
        ({"num_round": "3", "max_depth": "3.5"}, False),
    ],
)
def test_the_training_request_and_the_algorithm_accept_and_refuse_the_same_hyperparameters(
    local_stack, hyperparameters: dict[str, str], accepted: bool
) -> None:
    """One table (sm_explain_contracts.hyperparameters): what Airflow refuses before a job exists is what the
    image's algorithm process refuses on the endpoint, with the same sentence; what it accepts trains."""
    from sm_explain_ops.training_request import TrainingSpec, build_training_request, validate_hyperparameters

    spec = {**_spec(), "hyperparameters": {"num_round": 3}, "debugger": None}
    request = build_training_request(TrainingSpec.from_dict(spec), f"hp-{abs(hash(str(hyperparameters))) % 10**8}",
                                     region=local_stack.region)
    request["HyperParameters"] = dict(hyperparameters)
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**request)
    described = _wait_until_terminal(sagemaker, request["TrainingJobName"])
    if accepted:
        validate_hyperparameters(hyperparameters)
        assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    else:
        with pytest.raises(ValueError) as refused:
            validate_hyperparameters(hyperparameters)
        assert described["TrainingJobStatus"] == "Failed"
        assert str(refused.value) in described["FailureReason"], (str(refused.value), described["FailureReason"])
