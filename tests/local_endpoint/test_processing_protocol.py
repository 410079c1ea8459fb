"""CreateProcessingJob, DescribeProcessingJob, StopProcessingJob and ListProcessingJobs over real HTTP against a real
`python -m sm_local.server`: what is refused (in SageMaker's words, naming the field, before anything starts) and
how a job that cannot start ends. The jobs here never reach S3: the ones that are accepted fail before their
inputs are read (an image the endpoint does not have, a container command it cannot start)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local_endpoint.endpoint_harness import (
    EndpointProcess,
    processing_job_ended,
    processing_job_request,
    serving,
    training_job_request,
    wait_for,
)

pytestmark = pytest.mark.process

OTHER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-processor:1.0"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    with serving(tmp_path_factory.mktemp("sm-state"), extra_args=["--max-running-jobs", "100"]) as server:
        yield server


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def _ended(endpoint: EndpointProcess, name: str) -> dict[str, Any]:
    return processing_job_ended(endpoint.client(), name)


def _failing_request(name: str, **overrides: Any) -> dict[str, Any]:
    """Accepted, and failed by its supervisor before any input is read: an image the endpoint does not have."""
    request = processing_job_request(name, "protocol-bucket", **overrides)
    request["AppSpecification"] = dict(request["AppSpecification"], ImageUri=OTHER_IMAGE)
    return request


@pytest.mark.reliability
def test_an_unknown_image_fails_the_job_naming_it_as_a_pull_failure_does(endpoint: EndpointProcess, reliability) -> None:
    client = endpoint.client()
    arn = client.create_processing_job(**_failing_request("other-image"))["ProcessingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:processing-job/other-image"
    job = _ended(endpoint, "other-image")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(f"ClientError: Failed to pull the image {OTHER_IMAGE!r}")
    assert "sm-explain-runtime" in job["FailureReason"] and "--runtime-image-uri" in job["FailureReason"]
    assert job["ProcessingJobArn"] == arn and job["CreationTime"] <= job["ProcessingEndTime"]
    assert job["AppSpecification"]["ImageUri"] == OTHER_IMAGE
    assert job["ProcessingInputs"][1]["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    assert "ProcessingStartTime" not in job, "it never started"
    reliability.refused("local endpoint", "CreateProcessingJob with an image other than the runtime image",
                        "job Failed, FailureReason naming the image and the runtime image (as an image that "
                        "cannot be pulled)", f"{job['ProcessingJobStatus']}: {job['FailureReason']}")


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda app: app.pop("ContainerEntrypoint"), "the runtime image has no default entrypoint"),
        (lambda app: app.update(ContainerEntrypoint=["bash", "-c", "echo hi"]),
         "ContainerEntrypoint[0] 'bash' is not a program of the runtime image"),
        (lambda app: app.update(ContainerEntrypoint=["/opt/ml/processing/input/code/run.sh"]),
         "is not a program of the runtime image"),
    ],
    ids=["no-entrypoint", "shell", "downloaded-file"],
)
def test_a_container_command_the_runtime_image_cannot_start_fails_the_job(
    endpoint: EndpointProcess, change: Callable[[dict[str, Any]], Any], expected: str, request: Any, reliability
) -> None:
    name = f"command-{request.node.callspec.id}"
    job_request = processing_job_request(name, "protocol-bucket")
    change(job_request["AppSpecification"])
    endpoint.client().create_processing_job(**job_request)
    job = _ended(endpoint, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Cannot start the container"), job["FailureReason"]
    assert expected in job["FailureReason"]
    reliability.refused("local endpoint", f"processing ContainerEntrypoint: {request.node.callspec.id}",
                        "job Failed before any input is read, naming the command; never run through a shell",
                        job["FailureReason"])


def test_another_registry_and_tag_of_the_runtime_repository_is_the_runtime_image(endpoint: EndpointProcess) -> None:
    """Accepted as the runtime image (it then fails only because this module's jobs have no command to run)."""
    job_request = processing_job_request("runtime-elsewhere", "protocol-bucket")
    job_request["AppSpecification"] = {"ImageUri": "registry.example.com/team/sm-explain-runtime:2.1"}
    endpoint.client().create_processing_job(**job_request)
    job = _ended(endpoint, "runtime-elsewhere")
    assert "no default entrypoint" in job["FailureReason"], "the image itself was accepted"


def test_describe_and_stop_of_an_unknown_job_are_validation_exceptions(endpoint: EndpointProcess) -> None:
    """ValidationException is what the provider's operator takes for "no such job" when it picks a name, and what
    botocore's ProcessingJobCompletedOrStopped waiter fails on."""
    client = endpoint.client()
    for call in (client.describe_processing_job, client.stop_processing_job):
        with pytest.raises(ClientError) as raised:
            call(ProcessingJobName="never-created")
        assert _error(raised) == ("ValidationException", "Could not find requested job with name never-created")


@pytest.mark.reliability
def test_a_duplicate_name_is_resource_in_use_whatever_the_case_and_training_names_apart(
    endpoint: EndpointProcess, reliability
) -> None:
    client = endpoint.client()
    client.create_processing_job(**_failing_request("dup-processing"))
    for name in ("dup-processing", "DUP-Processing"):
        with pytest.raises(ClientError) as raised:
            client.create_processing_job(**_failing_request(name))
        code, message = _error(raised)
        assert code == "ResourceInUse"
        assert message.startswith("Processing job names must be unique within an AWS account and region")
        assert "arn:aws:sagemaker:us-east-1:123456789012:processing-job/dup-processing" in message
    # SageMaker keeps the names of training and processing jobs apart.
    client.create_training_job(**training_job_request("dup-processing", "complete"))
    assert client.describe_training_job(TrainingJobName="dup-processing")["TrainingJobName"] == "dup-processing"
    reliability.refused("local endpoint", "CreateProcessingJob with the name of an existing job (other case)",
                        "ResourceInUse naming the job's ARN", message)


def test_stop_requires_an_in_progress_job(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_processing_job(**_failing_request("stop-ended"))
    _ended(endpoint, "stop-ended")
    with pytest.raises(ClientError) as raised:
        client.stop_processing_job(ProcessingJobName="stop-ended")
    assert _error(raised) == (
        "ValidationException", "The request was rejected because the processing job is in status Failed.")


@pytest.mark.reliability
def test_requests_breaking_the_model_are_refused_naming_each_field(endpoint: EndpointProcess, reliability) -> None:
    """botocore's client validates only types and minimums: the server checks lengths, counts, patterns, enums."""
    request = processing_job_request("model-check", "protocol-bucket")
    request["AppSpecification"]["ContainerArguments"] = ["x"] * 101
    request["AppSpecification"]["ContainerEntrypoint"] = ["python3", "y" * 257]
    request["Environment"] = {"1BAD": "v", "LONG": "z" * 257}
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 101
    request["ProcessingInputs"][0]["S3Input"]["S3DataType"] = "Folder"
    status, body = endpoint.raw_post("SageMaker.CreateProcessingJob", request)
    assert status == 400 and body["__type"] == "ValidationException"
    message = body["message"]
    assert message.startswith("6 validation errors detected"), message
    for field in ("AppSpecification.ContainerArguments'", "AppSpecification.ContainerEntrypoint[1]",
                  "Environment key '1BAD'", "Environment.LONG", "ClusterConfig.InstanceCount",
                  "ProcessingInputs[0].S3Input.S3DataType"):
        assert field in message, field
    assert not (endpoint.state_dir / "processing-jobs" / "model-check").exists()
    reliability.refused("local endpoint", "CreateProcessingJob breaking botocore's model (101 arguments, a 257-char "
                        "argument, bad environment, 101 instances, unknown S3DataType)",
                        "ValidationException naming every field, nothing created", message)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(request: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = request
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return change


_DELETE = object()
_CODE_INPUT = "ProcessingInputs.0"
_OUTPUT = "ProcessingOutputConfig.Outputs.0"


REFUSED_REQUESTS = [
    ("LocalPath outside /opt/ml/processing", _set(f"{_CODE_INPUT}.S3Input.LocalPath", "/etc/cron.d"),
     "ProcessingInputs[0].S3Input.LocalPath '/etc/cron.d' is not below /opt/ml/processing/"),
    ("LocalPath climbing out with '..'", _set(f"{_OUTPUT}.S3Output.LocalPath", "/opt/ml/processing/../../../tmp"),
     "ProcessingOutputConfig.Outputs[0].S3Output.LocalPath '/opt/ml/processing/../../../tmp' has a '.', '..'"),
    ("LocalPath missing", _set(f"{_CODE_INPUT}.S3Input.LocalPath", _DELETE),
     "ProcessingInputs[0].S3Input.LocalPath is required"),
    ("LocalPath /opt/ml/processing itself", _set(f"{_OUTPUT}.S3Output.LocalPath", "/opt/ml/processing"),
     "is not below /opt/ml/processing/"),
    ("two inputs of one name", _set("ProcessingInputs.1.InputName", "code"),
     "ProcessingInputs[1].InputName 'code' is used more than once"),
    ("an input inside another", _set("ProcessingInputs.1.S3Input.LocalPath", "/opt/ml/processing/input/code/data"),
     "ProcessingInputs[1].S3Input.LocalPath and ProcessingInputs[0].S3Input.LocalPath overlap"),
    ("Pipe input mode", _set(f"{_CODE_INPUT}.S3Input.S3InputMode", "Pipe"),
     "ProcessingInputs[0].S3Input.S3InputMode 'Pipe' is not supported by the local SageMaker endpoint"),
    ("Gzip input", _set(f"{_CODE_INPUT}.S3Input.S3CompressionType", "Gzip"),
     "S3CompressionType 'Gzip' is not supported"),
    ("an https:// input", _set(f"{_CODE_INPUT}.S3Input.S3Uri", "https://example.com/code.py"),
     "ProcessingInputs[0].S3Input.S3Uri 'https://example.com/code.py' is not an s3:// URI"),
    ("an Athena input", _set(f"{_CODE_INPUT}.DatasetDefinition", {"LocalPath": "/opt/ml/processing/athena"}),
     "ProcessingInputs[0].DatasetDefinition '(Athena/Redshift)' is not supported"),
    ("a Feature Store output", _set(f"{_OUTPUT}.FeatureStoreOutput", {"FeatureGroupName": "group"}),
     "Outputs[0].FeatureStoreOutput '(a feature group)' is not supported"),
    ("no InstanceCount", _set("ProcessingResources.ClusterConfig.InstanceCount", _DELETE),
     "ProcessingResources.ClusterConfig.InstanceCount is required"),
    ("an environment variable of the endpoint", _set("Environment", {"SM_LOCAL_JOB_DIR": "/"}),
     "Environment key 'SM_LOCAL_JOB_DIR' is reserved by the local SageMaker endpoint"),
    ("a NUL in an argument", _set("AppSpecification.ContainerArguments", ["a\x00b"]),
     "AppSpecification.ContainerArguments[0] contains a NUL character"),
]


@pytest.mark.reliability
@pytest.mark.parametrize(("case", "change", "expected"), REFUSED_REQUESTS, ids=[case for case, _, _ in REFUSED_REQUESTS])
def test_a_request_the_endpoint_cannot_run_is_refused_before_anything_starts(
    endpoint: EndpointProcess, case: str, change: Callable[[dict[str, Any]], None], expected: str, reliability
) -> None:
    name = "refused-" + "".join(c if c.isalnum() else "-" for c in case)[:40].strip("-")
    request = copy.deepcopy(processing_job_request(name, "protocol-bucket"))
    change(request)
    with pytest.raises(ClientError) as raised:
        endpoint.client().create_processing_job(**request)
    code, message = _error(raised)
    assert code == "ValidationException"
    assert expected in message, message
    assert not (endpoint.state_dir / "processing-jobs" / name).exists(), "nothing may start"
    reliability.refused("local endpoint", f"CreateProcessingJob: {case}",
                        "ValidationException naming the field, what was given and what is accepted; nothing starts",
                        message)


def test_list_filters_sorts_and_paginates_processing_jobs_only(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    for name in ("list-b", "list-a", "list-c"):
        client.create_processing_job(**_failing_request(name))
    for name in ("list-b", "list-a", "list-c"):
        _ended(endpoint, name)
    first = client.list_processing_jobs(NameContains="LIST-", SortBy="Name", MaxResults=2)
    assert [job["ProcessingJobName"] for job in first["ProcessingJobSummaries"]] == ["list-a", "list-b"]
    rest = client.list_processing_jobs(NameContains="list-", SortBy="Name", MaxResults=2, NextToken=first["NextToken"])
    assert [job["ProcessingJobName"] for job in rest["ProcessingJobSummaries"]] == ["list-c"]
    assert "NextToken" not in rest
    summary = rest["ProcessingJobSummaries"][0]
    assert summary["ProcessingJobStatus"] == "Failed" and "Failed to pull the image" in summary["FailureReason"]
    assert client.list_processing_jobs(StatusEquals="Completed", NameContains="list-")["ProcessingJobSummaries"] == []
    training_names = {job["TrainingJobName"] for job in client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]}
    assert not training_names & {"list-a", "list-b", "list-c"}


@pytest.mark.reliability
def test_the_running_jobs_cap_covers_processing_jobs(tmp_path: Path, reliability) -> None:
    with serving(tmp_path / "state", extra_args=["--max-running-jobs", "1"]) as server:
        client = server.client()
        client.create_training_job(**training_job_request("running-training", "sleep"))
        status, body = server.raw_post("SageMaker.CreateProcessingJob", _failing_request("over-the-cap"))
        assert status == 400 and body["__type"] == "ResourceLimitExceeded"
        assert body["message"].startswith(
            "The account-level service limit 'ml.m5.xlarge for processing job usage' is 1 Instances, with current "
            "utilization of 1 Instances"), body
        assert not (server.state_dir / "processing-jobs" / "over-the-cap").exists()
        client.stop_training_job(TrainingJobName="running-training")
        wait_for(lambda: client.describe_training_job(TrainingJobName="running-training")["TrainingJobStatus"]
                  == "Stopped")
        client.create_processing_job(**_failing_request("over-the-cap"))
    reliability.refused("local endpoint", "CreateProcessingJob with a training job running and a cap of 1",
                        "ResourceLimitExceeded (one cap for training and processing jobs); accepted once it stopped",
                        f"HTTP {status} {body['__type']}: {body['message']}")
