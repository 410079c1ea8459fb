"""The Amazon provider's own SageMakerProcessingOperator, unmodified, against the local stack: blocking
(`wait_for_completion=True`), deferrable (execute defers, the trigger runs to its event as a triggerer runs it,
execute_complete ends the task), and its failure path. The job runs the runtime image's Python over the code and
data it gets as S3 inputs (tests/local_endpoint/processing_container.py, as SageMaker's ScriptProcessor ships code)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk.exceptions import TaskDeferred

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[3]
CODE = REPO / "tests" / "local_endpoint" / "processing_container.py"
RUNTIME_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime:latest"
WAIT_SECONDS = 300


@pytest.fixture(scope="module")
def bucket(local_stack: Any) -> str:
    name = f"processing-op-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", region_name=local_stack.region)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="code/processing_container.py", Body=CODE.read_bytes())
    for index in range(3):
        s3.put_object(Bucket=name, Key=f"data/part-{index}.csv", Body=f"row {index}\n".encode())
    return name


def _config(name: str, bucket: str, *arguments: str) -> dict[str, Any]:
    """A processing job as the provider's documentation writes one: ints as strings are fine, the operator casts."""
    return {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AppSpecification": {
            "ImageUri": RUNTIME_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/processing_container.py"],
            "ContainerArguments": ["config=/opt/ml/config/resourceconfig.json", "input=/opt/ml/processing/input/data",
                                   "output=/opt/ml/processing/output", *arguments],
        },
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/code/", "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "data", "S3Input": {"S3Uri": f"s3://{bucket}/data/", "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
        ],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": f"s3://{bucket}/out/{name}", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": "1", "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": "5"}},
        "StoppingCondition": {"MaxRuntimeInSeconds": "600"},
    }


def _operator(config: dict[str, Any], **kwargs: Any) -> SageMakerProcessingOperator:
    return SageMakerProcessingOperator(task_id="process", config=config, aws_conn_id=None, region_name="us-east-1",
                                       check_interval=1, **kwargs)


def _run_trigger(trigger: SageMakerTrigger) -> Any:
    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(first_event(), timeout=WAIT_SECONDS))


def test_the_blocking_operator_runs_a_job_to_completed_and_reads_its_output(local_stack: Any, bucket: str) -> None:
    name = f"blocking-{uuid.uuid4().hex[:8]}"
    operator = _operator(_config(name, bucket), wait_for_completion=True, output_files_to_xcom=[
        {"output_name": "result", "file_name": "algo-1.json", "result_name": "Report"}])
    result = operator.execute({})
    assert result["Processing"]["ProcessingJobName"] == name
    assert result["Processing"]["ProcessingJobStatus"] == "Completed"
    assert result["OutputFiles"]["Report"]["files"] == ["part-0.csv", "part-1.csv", "part-2.csv"]

    # A second task with the same name: the operator's existence check (a describe) finds the job and, with
    # action_if_job_exists="timestamp", picks a new name; with "fail" it refuses.
    again = _operator(_config(name, bucket), wait_for_completion=False)
    renamed = again.execute({})["Processing"]["ProcessingJobName"]
    assert renamed.startswith(f"{name}-") and renamed != name
    with pytest.raises(AirflowException, match=f"A SageMaker job with name {name} already exists"):
        _operator(_config(name, bucket), action_if_job_exists="fail").execute({})


def test_the_deferrable_operator_defers_and_its_trigger_completes_the_task(local_stack: Any, bucket: str) -> None:
    name = f"deferred-{uuid.uuid4().hex[:8]}"
    # The container waits for an S3 key the test writes once the task has deferred: execute never finds the job
    # ended already, the trigger does the waiting.
    key_uri = f"s3://{bucket}/go/{name}"
    operator = _operator(_config(name, bucket, f"key_uri={key_uri}"), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    classpath, kwargs = deferred.value.trigger.serialize()  # the triggerer rebuilds it from this
    assert classpath.endswith("SageMakerTrigger") and kwargs["job_type"] == "Processing"
    boto3.client("s3", region_name=local_stack.region).put_object(Bucket=bucket, Key=f"go/{name}", Body=b"")
    event = _run_trigger(SageMakerTrigger(**kwargs))
    assert event.payload == {"status": "success", "job_name": name}
    result = getattr(operator, deferred.value.method_name)({}, event.payload)
    assert result["Processing"]["ProcessingJobStatus"] == "Completed"


@pytest.mark.reliability
def test_a_failing_job_fails_the_task_with_its_failure_reason_blocking_and_deferred(
    local_stack: Any, bucket: str, reliability
) -> None:
    blocking = f"fails-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AirflowException) as raised:
        _operator(_config(blocking, bucket, "mode=fail", "message=/opt/ml/output/message")).execute({})
    reason = "AlgorithmError: the input had no rows (host algo-1, exit code 3)"
    assert str(raised.value) == f"SageMaker resource failed because {reason}"

    deferred_name = f"fails-deferred-{uuid.uuid4().hex[:8]}"
    key = f"go/{deferred_name}"  # the container fails once the task has deferred
    operator = _operator(_config(deferred_name, bucket, "mode=fail", "message=/opt/ml/output/message",
                                 f"key_uri=s3://{bucket}/{key}"), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    boto3.client("s3", region_name=local_stack.region).put_object(Bucket=bucket, Key=key, Body=b"")
    event = _run_trigger(SageMakerTrigger(**deferred.value.trigger.serialize()[1]))
    assert event.payload == {"status": "failed", "job_name": deferred_name, "message": reason}
    with pytest.raises(AirflowException) as completed:
        getattr(operator, deferred.value.method_name)({}, event.payload)
    observed = str(completed.value)
    assert reason in observed
    reliability.survived("processing operator", "the provider's SageMakerProcessingOperator on a container that "
                         "exits 3 (blocking and deferrable)", "the task fails with the job's FailureReason",
                         f"blocking: {raised.value}; deferrable: {observed}")
