"""The local endpoint speaks SageMaker's protocol: unmodified boto3, aiobotocore and the AWS CLI work
against it, requests SageMaker would refuse are refused with the field named, errors look like AWS's."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sm_local.images import XGBOOST_VERSIONS, parse_algorithm_image
from tests.local_endpoint.endpoint_harness import (
    REGION,
    REPO,
    RULES_IMAGE,
    EndpointProcess,
    serving,
    training_job_request,
)

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

AIRFLOW_PYTHON = REPO / ".venv" / "bin" / "python"
IMAGE_REGIONS = ("us-east-1", "eu-west-1", "cn-north-1")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    # The module's jobs mostly stay InProgress (they sleep): more than the default cap of 8 running jobs.
    with serving(tmp_path_factory.mktemp("sm-state"), extra_args=["--max-running-jobs", "100"]) as server:
        yield server


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def test_ping_answers_ok(endpoint: EndpointProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(endpoint.url + "/ping", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"ok"


def test_create_then_describe_echoes_the_request_with_sagemaker_names(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    request = training_job_request("echo-job")
    before = time.time()
    created = client.create_training_job(**request)
    assert created["TrainingJobArn"] == f"arn:aws:sagemaker:{REGION}:123456789012:training-job/echo-job"

    described = client.describe_training_job(TrainingJobName="echo-job")
    for key in (
        "TrainingJobName",
        "RoleArn",
        "AlgorithmSpecification",
        "HyperParameters",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "DebugHookConfig",
        "DebugRuleConfigurations",
    ):
        assert described[key] == request[key], key
    assert described["TrainingJobArn"] == created["TrainingJobArn"]
    assert described["TrainingJobStatus"] == "InProgress"
    assert described["SecondaryStatus"] in ("Starting", "Training")
    assert before - 1 <= described["CreationTime"].timestamp() <= time.time() + 1
    [rule] = described["DebugRuleEvaluationStatuses"]
    assert rule["RuleConfigurationName"] == "LossNotDecreasing"
    assert rule["RuleEvaluationStatus"] == "InProgress"
    # SageMaker's rule job: <job[:26]>-<rule[:26]>-<8 hex>, lowercased in the ARN.
    assert re.fullmatch(
        r"arn:aws:sagemaker:us-east-1:123456789012:processing-job/echo-job-lossnotdecreasing-[0-9a-f]{8}",
        rule["RuleEvaluationJobArn"],
    )
    # The job record is on disk, for the supervisor and for restarts.
    record = json.loads((endpoint.state_dir / "jobs" / "echo-job" / "job.json").read_text())
    assert record["HyperParameters"] == request["HyperParameters"]
    assert record["AlgorithmImage"] == {
        "Algorithm": "xgboost",
        "Version": "1.7-1",
        "WritesDebuggerTensors": True,
    }


def test_wire_format_is_aws_json_with_epoch_timestamps(endpoint: EndpointProcess) -> None:
    endpoint.client().create_training_job(**training_job_request("wire-job"))
    status, body = endpoint.raw_post("SageMaker.DescribeTrainingJob", {"TrainingJobName": "wire-job"})
    assert status == 200
    assert isinstance(body["CreationTime"], float)
    assert all(value is not None for value in body.values())
    status, body = endpoint.raw_post("SageMaker.DescribeTrainingJob", {"TrainingJobName": "no-such-job"})
    assert (status, body) == (
        400,
        {"__type": "ValidationException", "message": "Requested resource not found."},
    )


def test_describe_and_stop_of_unknown_job_say_resource_not_found(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    with pytest.raises(ClientError) as describe:
        client.describe_training_job(TrainingJobName="never-created")
    assert _error(describe) == ("ValidationException", "Requested resource not found.")
    with pytest.raises(ClientError) as stop:
        client.stop_training_job(TrainingJobName="never-created")
    assert _error(stop) == ("ValidationException", "Requested resource not found.")


def test_duplicate_name_is_resource_in_use_whatever_the_case(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("dup-job"))
    for name in ("dup-job", "DUP-job"):
        with pytest.raises(ClientError) as excinfo:
            client.create_training_job(**training_job_request(name))
        code, message = _error(excinfo)
        assert code == "ResourceInUse"
        assert message.startswith("Training job names must be unique within an AWS account and region")
        assert "arn:aws:sagemaker:us-east-1:123456789012:training-job/dup-job" in message


@pytest.mark.parametrize("name", ["under_score", "-leading-dash", "x" * 64, "trailing-"])
def test_bad_job_name_is_refused_naming_the_field(endpoint: EndpointProcess, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        endpoint.client().create_training_job(**training_job_request(name))
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert "TrainingJobName" in message
    assert not (endpoint.state_dir / "jobs" / name).exists()


def test_request_breaking_the_model_is_refused_naming_each_field(endpoint: EndpointProcess) -> None:
    # botocore's client-side validation is off so that the server's own checks are what answers.
    client = endpoint.client(parameter_validation=False)
    request = training_job_request("model-check")
    del request["RoleArn"]
    request["ResourceConfig"] = dict(request["ResourceConfig"], InstanceType="ml.nope.xlarge")
    request["HyperParameters"] = {"num_round": 20}
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert message.startswith("3 validation errors detected")
    assert '"RoleArn"' in message
    assert "ResourceConfig.InstanceType" in message
    assert "HyperParameters.num_round" in message


def test_unknown_training_image_is_refused_naming_the_supported_images(endpoint: EndpointProcess) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-algorithm:latest"
    request = training_job_request("custom-image")
    request["AlgorithmSpecification"] = {"TrainingImage": image, "TrainingInputMode": "File"}
    with pytest.raises(ClientError) as excinfo:
        endpoint.client().create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert image in message
    assert "sagemaker-xgboost" in message and "1.7-1" in message


def test_rule_configuration_problems_are_refused_but_unknown_rule_names_are_not(
    endpoint: EndpointProcess,
) -> None:
    client = endpoint.client()
    bad_image = training_job_request("rule-image")
    bad_image["DebugRuleConfigurations"][0]["RuleEvaluatorImage"] = "docker.io/someone/rules:latest"
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**bad_image)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert "docker.io/someone/rules:latest" in message and "sagemaker-debugger-rules:latest" in message

    no_rule = training_job_request("rule-missing")
    no_rule["DebugRuleConfigurations"][0]["RuleParameters"] = {"num_steps": "5"}
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(**no_rule)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert "rule_to_invoke" in message

    unknown_rule = training_job_request("rule-unknown")
    unknown_rule["DebugRuleConfigurations"][0]["RuleParameters"] = {"rule_to_invoke": "NoSuchRule"}
    client.create_training_job(**unknown_rule)  # the rule process reports Error, not the request


@pytest.mark.reliability
@pytest.mark.parametrize("channel", [".", ".."])
def test_a_channel_name_that_is_no_directory_name_is_refused(
    endpoint: EndpointProcess, channel: str, reliability
) -> None:
    name = f"channel-dots-{len(channel)}"
    request = training_job_request(name)
    request["InputDataConfig"][0]["ChannelName"] = channel
    with pytest.raises(ClientError) as excinfo:
        endpoint.client().create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert f"InputDataConfig[0].ChannelName {channel!r} is not supported" in message, message
    assert not (endpoint.state_dir / "jobs" / name).exists(), "nothing may start"
    reliability.refused("local endpoint", f"ChannelName {channel!r} (the model's pattern admits it)",
                        "ValidationException naming the field before anything starts", message)


@pytest.mark.reliability
def test_two_channels_of_one_name_are_refused(endpoint: EndpointProcess, reliability) -> None:
    """They would share /opt/ml/input/data/<name>: the second's objects mixed into the first's."""
    name = "channel-twice"
    request = training_job_request(name)
    request["InputDataConfig"] = [request["InputDataConfig"][0], dict(request["InputDataConfig"][0])]
    with pytest.raises(ClientError) as excinfo:
        endpoint.client().create_training_job(**request)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    channel = request["InputDataConfig"][0]["ChannelName"]
    assert f"InputDataConfig[1].ChannelName {channel!r} is used more than once" in message, message
    assert not (endpoint.state_dir / "jobs" / name).exists(), "nothing may start"
    reliability.refused("local endpoint", "two InputDataConfig channels of one name",
                        "ValidationException naming the second before anything starts", message)


def test_unknown_operation_is_refused(endpoint: EndpointProcess) -> None:
    with pytest.raises(ClientError) as excinfo:
        endpoint.client().list_models()
    code, message = _error(excinfo)
    assert code == "UnknownOperationException"
    assert "ListModels" in message and "CreateTrainingJob" in message
    status, body = endpoint.raw_post("SageMaker.DescribeTrainingJob", [])  # type: ignore[arg-type]
    assert status == 400 and body["__type"] == "SerializationException"


def test_stop_requires_an_in_progress_job(endpoint: EndpointProcess) -> None:
    client = endpoint.client()
    client.create_training_job(**training_job_request("done-job", behaviour="complete"))
    deadline = time.monotonic() + 20
    while client.describe_training_job(TrainingJobName="done-job")["TrainingJobStatus"] != "Completed":
        assert time.monotonic() < deadline, "the job never completed"
        time.sleep(0.1)
    with pytest.raises(ClientError) as excinfo:
        client.stop_training_job(TrainingJobName="done-job")
    assert _error(excinfo) == (
        "ValidationException",
        "The request was rejected because the training job is in status Completed.",
    )


def test_list_filters_sorts_and_paginates(tmp_path: Path) -> None:
    server = EndpointProcess(tmp_path).start()
    try:
        client = server.client()
        names = ["list-b", "list-a", "list-c", "other-d", "list-e"]
        for name in names:
            client.create_training_job(**training_job_request(name, behaviour="complete"))
            time.sleep(0.02)  # distinct creation times
        # Exact epoch floats as sent on the wire (botocore's datetimes keep only microseconds).
        created = {
            name: server.raw_post("SageMaker.DescribeTrainingJob", {"TrainingJobName": name})[1][
                "CreationTime"
            ]
            for name in names
        }

        everything = client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        assert [job["TrainingJobName"] for job in everything] == names  # CreationTime, Ascending
        assert {job["TrainingJobStatus"] for job in everything} <= {"InProgress", "Completed"}

        by_name = client.list_training_jobs(SortBy="Name", SortOrder="Descending", NameContains="LIST")
        assert [job["TrainingJobName"] for job in by_name["TrainingJobSummaries"]] == [
            "list-e",
            "list-c",
            "list-b",
            "list-a",
        ]

        # Exclusive bounds; botocore sends whole seconds, so the sub-second window goes over the wire raw.
        status, window = server.raw_post(
            "SageMaker.ListTrainingJobs",
            {"CreationTimeAfter": created["list-b"], "CreationTimeBefore": created["list-e"]},
        )
        assert status == 200
        assert [job["TrainingJobName"] for job in window["TrainingJobSummaries"]] == [
            "list-a",
            "list-c",
            "other-d",
        ]
        hour_ago = datetime.datetime.fromtimestamp(created["list-b"] - 3600, tz=datetime.UTC)
        assert len(client.list_training_jobs(CreationTimeAfter=hour_ago)["TrainingJobSummaries"]) == 5
        assert client.list_training_jobs(CreationTimeBefore=hour_ago)["TrainingJobSummaries"] == []

        pages = list(client.get_paginator("list_training_jobs").paginate(PaginationConfig={"PageSize": 2}))
        assert [len(page["TrainingJobSummaries"]) for page in pages] == [2, 2, 1]
        assert [job["TrainingJobName"] for page in pages for job in page["TrainingJobSummaries"]] == names

        deadline = time.monotonic() + 20
        while len(client.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]) < 5:
            assert time.monotonic() < deadline, "the jobs never completed"
            time.sleep(0.1)
        assert client.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"] == []

        with pytest.raises(ClientError) as excinfo:
            client.list_training_jobs(NextToken="not-a-token")
        assert _error(excinfo)[0] == "ValidationException"
    finally:
        server.stop()
        server.kill_jobs()


def _sagemaker_core(code: str) -> str:
    """Run `code` in the Airflow environment, where sagemaker-core lives."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"{AIRFLOW_PYTHON} (the Airflow environment) is not built")
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def sagemaker_core_images() -> dict[str, object]:
    """The image URIs sagemaker-core builds for IMAGE_REGIONS (one slow import, so once)."""
    return json.loads(
        _sagemaker_core(
            "import json, sagemaker.core.image_uris as u\n"
            "from sagemaker.core.debugger.debugger import get_rule_container_image_uri\n"
            "versions = u.config_for_framework('xgboost')['training']['versions']\n"
            f"regions = {IMAGE_REGIONS!r}\n"
            "print(json.dumps({'xgboost': {r: {v: u.retrieve('xgboost', r, v) for v in versions} for r in regions},"
            " 'rules': [get_rule_container_image_uri(None, r) for r in regions]}))"
        )
    )


def test_every_sagemaker_core_xgboost_image_is_accepted(
    endpoint: EndpointProcess, sagemaker_core_images: dict[str, Any]
) -> None:
    listing = sagemaker_core_images["xgboost"]
    assert set(listing) == set(IMAGE_REGIONS)
    for region, images in listing.items():
        # "1" is the legacy pre-2019 XGBoost algorithm (another repository), which is not emulated.
        assert set(images) - {"1"} == set(XGBOOST_VERSIONS), region
        for version, uri in images.items():
            if version == "1":
                with pytest.raises(ValueError, match="sagemaker-xgboost"):
                    parse_algorithm_image(uri)
                continue
            image = parse_algorithm_image(uri)
            assert (image.version, image.region) == (version, region), uri
            assert image.writes_debugger_tensors == (version not in ("0.90-1", "3.0-5", "3.2-0")), uri
    client = endpoint.client()
    for region in IMAGE_REGIONS:
        request = training_job_request(f"image-{region}", behaviour="exit")
        request["AlgorithmSpecification"]["TrainingImage"] = listing[region]["1.7-1"]
        client.create_training_job(**request)


def test_every_sagemaker_core_rule_image_is_accepted(
    endpoint: EndpointProcess, sagemaker_core_images: dict[str, Any]
) -> None:
    client = endpoint.client()
    assert len(sagemaker_core_images["rules"]) == len(IMAGE_REGIONS)
    for index, image in enumerate(sagemaker_core_images["rules"]):
        request = training_job_request(f"rule-image-{index}", behaviour="exit")
        request["DebugRuleConfigurations"][0]["RuleEvaluatorImage"] = image
        client.create_training_job(**request)


def test_aiobotocore_client_works(endpoint: EndpointProcess) -> None:
    endpoint.client().create_training_job(**training_job_request("async-job"))
    code = (
        "import asyncio, aiobotocore.session\n"
        "async def main():\n"
        "    session = aiobotocore.session.get_session()\n"
        f"    async with session.create_client('sagemaker', region_name='{REGION}', endpoint_url='{endpoint.url}',"
        " aws_access_key_id='x', aws_secret_access_key='y') as client:\n"
        "        job = await client.describe_training_job(TrainingJobName='async-job')\n"
        "        print(job['TrainingJobStatus'], job['DebugRuleEvaluationStatuses'][0]['RuleEvaluationStatus'])\n"
        "asyncio.run(main())\n"
    )
    assert _sagemaker_core(code).split() == ["InProgress", "InProgress"]


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_works(endpoint: EndpointProcess) -> None:
    endpoint.client().create_training_job(**training_job_request("cli-job"))
    env = dict(os.environ, AWS_ENDPOINT_URL_SAGEMAKER=endpoint.url, AWS_DEFAULT_REGION=REGION)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    result = subprocess.run(
        ["aws", "sagemaker", "describe-training-job", "--training-job-name", "cli-job", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["TrainingJobName"] == "cli-job"
    assert described["DebugRuleConfigurations"][0]["RuleEvaluatorImage"] == RULES_IMAGE
