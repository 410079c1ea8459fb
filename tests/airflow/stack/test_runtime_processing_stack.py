"""Against the real local stack: the runtime steps run as SageMaker Processing jobs on the runtime image, return the
worker path's XCom, re-attach on retry, fail bad input without retries in the container's words, and a killed
task (blocking or deferred) stops its job."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from sm_explain_ops.operators.stage_dataset import StageDatasetOperator
from sm_explain_ops.runtime import RuntimeInputError
from sm_explain_ops.triggers.processing_jobs import RuntimeProcessingTrigger
from tests.airflow.stack import tiny_training
from tests.conftest import ADULT_DATA, ADULT_SHA256

pytestmark = [pytest.mark.stack, pytest.mark.process]

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
WAIT_SECONDS = 300


@pytest.fixture(scope="module")
def bucket(local_stack: Any) -> str:
    name = f"runtime-processing-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Adult rows 40 times over (1.3M rows): staging them keeps a job running for seconds, so a test can retry
    or kill its task while the job is still InProgress (Adult itself stages in about a second)."""
    path = tmp_path_factory.mktemp("long-source") / "adult-x40.data"
    rows = ADULT_DATA.read_bytes()
    with path.open("wb") as handle:
        for _ in range(40):
            handle.write(rows)
    return str(path)


def _stage(bucket: str, version: str, **overrides: Any) -> StageDatasetOperator:
    kwargs: dict[str, Any] = {
        "task_id": "stage_dataset",
        "source": str(ADULT_DATA),
        "source_sha256": ADULT_SHA256,
        "destination": f"s3://{bucket}/adult/{version}/data/",
        "dataset_version": version,
        "role_arn": ROLE,
        "processing_uri": f"s3://{bucket}/adult/{version}/processing/",
        "check_interval": 1,
        "aws_conn_id": None,
        **overrides,
    }
    return StageDatasetOperator(**kwargs)


def _jobs(prefix: str) -> list[dict[str, Any]]:
    summaries = boto3.client("sagemaker").list_processing_jobs(MaxResults=100)["ProcessingJobSummaries"]
    return [job for job in summaries if job["ProcessingJobName"].startswith(prefix)]


def _wait_ended(name: str) -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        described = sagemaker.describe_processing_job(ProcessingJobName=name)
        if described["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        time.sleep(1)
    raise AssertionError(f"processing job {name} did not end within {WAIT_SECONDS} s")


def test_staging_runs_as_a_processing_job_with_the_worker_paths_xcom_and_a_retry_reattaches(bucket: str) -> None:
    dag_id = f"processing-{uuid.uuid4().hex[:6]}"
    context = tiny_training.minimal_context(dag_id, "manual__2026-01-02T03:04:05+00:00")
    processed = _stage(bucket, "v1").execute(context)

    [job] = _jobs(dag_id)
    described = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job["ProcessingJobName"])
    assert described["ProcessingJobStatus"] == "Completed"
    assert described["AppSpecification"]["ContainerEntrypoint"][:3] == ["python", "-m", "sm_staging"]
    assert described["AppSpecification"]["ImageUri"].rsplit("/", 1)[1].startswith("sm-explain-runtime:")
    assert described["RoleArn"] == ROLE
    assert processed["rows"] == {"train": 26048, "validation": 6513}

    # The same request on the worker finds the staged files: the same XCom, key for key.
    assert _stage(bucket, "v1", compute="worker").execute(tiny_training.minimal_context(dag_id, "w")) == processed

    # A retried task (a new operator, the same run and task) reads the Completed job's result: no second job.
    assert _stage(bucket, "v1").execute(context) == processed
    assert [j["ProcessingJobName"] for j in _jobs(dag_id)] == [job["ProcessingJobName"]]


def test_a_result_larger_than_an_xcom_is_refused_naming_the_job_and_the_object(bucket: str) -> None:
    """A Completed job's result.json is the task's XCom: one larger than 1 MiB is not read into memory whole, and the
    task fails naming the job and the object."""
    from sm_explain_ops.operators.runtime_compute import MAX_RESULT_BYTES
    from sm_explain_ops.runtime import RuntimeTaskError

    dag_id = f"big-result-{uuid.uuid4().hex[:6]}"
    context = tiny_training.minimal_context(dag_id, "manual__2026-01-02T03:04:05+00:00")
    _stage(bucket, "v2").execute(context)
    [job] = _jobs(dag_id)
    described = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job["ProcessingJobName"])
    result_uri = described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/") + "/result.json"
    result_bucket, result_key = result_uri[len("s3://"):].split("/", 1)
    boto3.client("s3").put_object(Bucket=result_bucket, Key=result_key,
                                  Body=b'{"rows": "' + b"x" * MAX_RESULT_BYTES + b'"}')
    with pytest.raises(RuntimeTaskError) as raised:  # the retry reads the Completed job's (now oversized) result
        _stage(bucket, "v2").execute(context)
    message = str(raised.value)
    assert job["ProcessingJobName"] in message and result_uri in message
    assert f"larger than {MAX_RESULT_BYTES:,} bytes" in message


@pytest.mark.reliability
def test_bad_data_fails_the_processing_job_and_the_task_without_retries_in_the_containers_words(
    bucket: str, reliability
) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/v9/adult.data", Body=b"39, Private, <=50K\n50, Private, <=50K\n")
    dag_id = f"bad-{uuid.uuid4().hex[:6]}"
    operator = _stage(bucket, "v9", source=f"s3://{bucket}/raw/v9/adult.data", source_sha256=None,
                      columns=["Age", "Workclass", "Income"], label_column="Income", categorical_columns=["Workclass"])
    with pytest.raises(RuntimeInputError) as raised:
        operator.execute(tiny_training.minimal_context(dag_id, "manual__bad"))
    assert isinstance(raised.value, AirflowFailException)  # no retries
    message = str(raised.value)
    assert "label column 'Income' has only one class ('<=50K')" in message
    [job] = _jobs(dag_id)
    described = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job["ProcessingJobName"])
    assert described["ProcessingJobStatus"] == "Failed"
    assert "label column 'Income' has only one class" in described["FailureReason"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="adult/v9/data/").get("KeyCount", 0) == 0
    reliability.refused("processing job", "staging a source whose label has one class, as a processing job",
                        "the job fails with the runtime's message as its FailureReason; the task fails without "
                        "retries in the same words; nothing staged", f"{described['FailureReason']} -> {message}")


@pytest.mark.reliability
def test_a_killed_task_stops_its_processing_job_deferred_and_from_the_trigger(bucket: str, reliability) -> None:
    dag_id = f"kill-{uuid.uuid4().hex[:6]}"
    operator = _stage(bucket, "v2", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(tiny_training.minimal_context(dag_id, "manual__kill"))
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath.endswith("RuntimeProcessingTrigger") and kwargs["job_type"] == "Processing"
    operator.on_kill()
    stopped = _wait_ended(kwargs["job_name"])
    assert stopped["ProcessingJobStatus"] == "Stopped"

    # The deferred wait's own cancellation path: the triggerer calls the trigger's on_kill.
    other = _stage(bucket, "v3", deferrable=True)
    with pytest.raises(TaskDeferred) as again:
        other.execute(tiny_training.minimal_context(dag_id, "manual__kill-trigger"))
    trigger = RuntimeProcessingTrigger(**again.value.trigger.serialize()[1])
    asyncio.run(trigger.on_kill())
    by_trigger = _wait_ended(trigger.job_name)
    assert by_trigger["ProcessingJobStatus"] == "Stopped"

    # The next try of a stopped job's task starts a follow-up job (-r1) and completes.
    retried = _stage(bucket, "v2", deferrable=False).execute(tiny_training.minimal_context(dag_id, "manual__kill"))
    assert retried["rows"]["train"] == 26048
    names = sorted(j["ProcessingJobName"] for j in _jobs(dag_id))
    assert f"{kwargs['job_name']}-r1" in names
    reliability.survived("processing job", "the task (and, deferred, its trigger) killed while its processing "
                         "job runs", "the job is stopped; the next try starts -r1 and completes",
                         f"task kill: {stopped['ProcessingJobStatus']}; trigger kill: "
                         f"{by_trigger['ProcessingJobStatus']}; jobs {names}")


def test_execute_complete_refuses_an_event_it_cannot_read(bucket: str) -> None:
    operator = _stage(bucket, "v4")
    for event in (None, {"status": "weird", "job_name": "a"}, {"status": "success", "job_name": "../x"}):
        with pytest.raises(Exception, match="event"):
            operator.execute_complete({}, event)


@pytest.mark.reliability
def test_a_retry_while_the_job_runs_reattaches_and_a_killed_blocking_task_stops_its_job(
    bucket: str, long_source: str, reliability
) -> None:
    import threading

    from sm_explain_ops.runtime import RuntimeTaskError

    dag_id = f"attach-{uuid.uuid4().hex[:6]}"
    context = tiny_training.minimal_context(dag_id, "manual__attach")
    with pytest.raises(TaskDeferred) as first:
        _stage(bucket, "v5", deferrable=True, source=long_source, source_sha256=None).execute(context)
    name = first.value.trigger.serialize()[1]["job_name"]
    # The worker died while the job ran: the next try of the same task finds it InProgress and waits on it.
    retry = _stage(bucket, "v5", deferrable=True, source=long_source, source_sha256=None)
    with pytest.raises(TaskDeferred) as second:
        retry.execute(context)
    assert second.value.trigger.serialize()[1]["job_name"] == name
    assert [j["ProcessingJobName"] for j in _jobs(dag_id)] == [name]
    retry.on_kill()
    assert _wait_ended(name)["ProcessingJobStatus"] == "Stopped"

    # A blocking task killed while it waits: on_kill stops the job, and the wait ends with the job Stopped.
    blocking = _stage(bucket, "v6", deferrable=False, source=long_source, source_sha256=None)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            blocking.execute(tiny_training.minimal_context(dag_id, "manual__blocking"))
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(_jobs(dag_id)) < 2 and time.monotonic() < deadline:  # its job created (its name set before)
        time.sleep(0.2)
    blocking.on_kill()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    [error] = outcome
    assert isinstance(error, RuntimeTaskError) and "ended Stopped" in str(error)
    stopped = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=blocking._processing_job_name)
    assert stopped["ProcessingJobStatus"] == "Stopped"
    reliability.survived("processing job", "a task retried while its processing job runs, and a blocking task "
                         "killed while it waits", "the retry waits on the same job (one job); the kill stops the "
                         "job and the wait ends", f"{name} attached; {stopped['ProcessingJobName']} "
                         f"{stopped['ProcessingJobStatus']}: {error}")
