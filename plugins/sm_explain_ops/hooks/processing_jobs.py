"""SageMaker API calls for running one runtime module as a processing job, exactly once per name.

The provider's ``SageMakerHook.create_processing_job`` is used for the create (it casts the config as the
provider's own operator does); its name handling (``action_if_job_exists``: fail, or a timestamped second job)
cannot re-attach a retried task to the job it started, so ``start_or_attach`` does that, with the training
hook's follow-up names (``-r1``...) after a job of the name ended Failed or Stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from botocore.exceptions import ClientError

from sm_explain_ops.hooks.job_control import JobControlMixin, error_code
from sm_explain_ops.hooks.job_logs import JobLogFollower, final_read_delay, processing_log_source
from sm_explain_ops.hooks.training_jobs import ATTACHABLE_STATES, REPLACEABLE_STATES

#: Where the runtime module finds its request and writes its result inside the container.
CONTAINER_REQUEST = "/opt/ml/processing/input/request/request.json"
CONTAINER_RESULT = "/opt/ml/processing/output/result/result.json"
CONTAINER_RESULT_DIR = CONTAINER_RESULT.rsplit("/", 1)[0]
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})


class ForeignProcessingJobError(RuntimeError):
    """A processing job of the derived name exists but writes somewhere else: not this task's job."""


def _output_uri(config: Mapping[str, Any]) -> str:
    outputs = (config.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return str(((outputs[0] if outputs else {}).get("S3Output") or {}).get("S3Uri") or "").rstrip("/")


def runtime_processing_config(
    *,
    name: str,
    module: str,
    image_uri: str,
    role_arn: str,
    request_uri: str,
    result_uri: str,
    environment: Mapping[str, str],
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    volume_size_gb: int = 30,
    max_runtime_seconds: int = 86400,
    module_args: Sequence[str] | None = None,
    data_inputs: Sequence[Mapping[str, Any]] = (),
    output_local_path: str = CONTAINER_RESULT_DIR,
) -> dict[str, Any]:
    """The CreateProcessingJob request that runs ``python -m <module> --request R --result S`` in the image,
    with the request object as its first input and the result directory as its one output.

    A module with other arguments gives ``module_args`` (after ``--request R``) and the directory it writes
    (``output_local_path``, uploaded to ``result_uri``); ``data_inputs`` are further ProcessingInputs
    (``{"InputName", "S3Uri", "LocalPath", "S3DataDistributionType"}``), read as S3Prefix in File mode."""
    args = list(module_args) if module_args is not None else ["--result", CONTAINER_RESULT]
    inputs = [{"InputName": "request", "S3Input": {
        "S3Uri": request_uri, "LocalPath": CONTAINER_REQUEST.rsplit("/", 1)[0],
        "S3DataType": "S3Prefix", "S3InputMode": "File"}}]
    inputs += [{"InputName": str(data["InputName"]), "S3Input": {
        "S3Uri": str(data["S3Uri"]), "LocalPath": str(data["LocalPath"]), "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": str(data.get("S3DataDistributionType", "FullyReplicated"))}}
        for data in data_inputs]
    return {
        "ProcessingJobName": name,
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": image_uri,
            "ContainerEntrypoint": ["python", "-m", module, "--request", CONTAINER_REQUEST, *args],
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": result_uri, "LocalPath": output_local_path, "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": instance_count, "InstanceType": instance_type, "VolumeSizeInGB": volume_size_gb}},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "Environment": dict(environment),
    }


class RuntimeProcessingHook(JobControlMixin, SageMakerHook):
    """``SageMakerHook`` plus idempotent start, attach, wait and stop for processing jobs."""

    job_kind = "processing"
    status_key = "ProcessingJobStatus"

    def _request_stop(self, name: str) -> None:
        self.conn.stop_processing_job(ProcessingJobName=name)

    def _describe(self, name: str) -> dict[str, Any]:
        return self.describe_processing_job(name)

    def start_or_attach(
        self,
        config_for: Callable[[str], dict[str, Any]],
        name_for: Callable[[int], str],
        *,
        before_create: Callable[[str], None],
        max_replacements: int = 20,
    ) -> tuple[str, dict[str, Any]]:
        """Start the job ``config_for(name)`` unless a job of that name already runs or ran.

        InProgress or Completed: attached (the caller waits on it or reads its result). Failed, Stopped or
        Stopping: the next name ``name_for(n)``. ``before_create(name)`` runs just before a create (the caller
        writes the job's request object there). Returns the name and its describe."""
        ended: list[str] = []
        for replacement in range(max_replacements + 1):
            name = name_for(replacement)
            config = config_for(name)
            described = self.describe_or_none(name)
            if described is None:
                before_create(name)
                try:
                    self.create_processing_job(config, wait_for_completion=False)
                    self.log.info("Started processing job %s", name)
                except ClientError as error:
                    if error_code(error) not in ("ResourceInUse", "ResourceInUseException"):
                        raise
                    self.log.info("Processing job %s was created concurrently: attaching to it", name)
                described = self.describe_processing_job(name)
            if _output_uri(described) != _output_uri(config):
                raise ForeignProcessingJobError(
                    f"processing job {name!r} already exists ({described.get('ProcessingJobStatus')}) but writes to "
                    f"{_output_uri(described)!r}, this task to {_output_uri(config)!r}: it is not this task's job. "
                    "Refusing to attach to it or replace it."
                )
            status = described.get("ProcessingJobStatus")
            if status in ATTACHABLE_STATES:
                return name, described
            if status not in REPLACEABLE_STATES:
                raise RuntimeError(f"processing job {name} has unexpected status {status!r}")
            self.log.info("Processing job %s ended %s: trying the next deterministic name", name, status)
            ended.append(f"{name} ({status})")
        raise RuntimeError(
            f"gave up after {max_replacements + 1} processing job names that all ended Failed or Stopped: "
            + ", ".join(ended)
        )

    def wait_until_ended(self, name: str, check_interval: float,
                         follower: JobLogFollower | None = None) -> dict[str, Any]:
        """Describe until the job is Completed, Failed or Stopped; with a ``follower``, log the job's new
        CloudWatch lines (every host's stream) after each describe.

        The pauses between describes start at ``FIRST_CHECK_SECONDS`` and double up to ``check_interval``
        (``wait_schedule``): a job of a few seconds (staging a small version, the report) is seen ended about
        when it ends, not up to a whole interval later, and a long one costs a handful of extra describes. The last
        log read waits for CloudWatch's lag counted from the job's ProcessingEndTime (``final_read_delay``).
        The provider's ``check_status`` raises on Failed without the describe, and the runtime's bad-input
        message is in the describe's ExitMessage, so this returns the describe whatever the ending."""
        if follower is not None:
            follower.follow(processing_log_source(name))
        pauses = wait_schedule(check_interval)
        while True:
            described = self.describe_processing_job(name)
            ended = described.get("ProcessingJobStatus") in TERMINAL_STATES
            if follower is not None:
                if ended:  # CloudWatch may show the last lines a moment after the job ended
                    time.sleep(final_read_delay(check_interval, described.get("ProcessingEndTime")
                                                or described.get("LastModifiedTime"),
                                                settle=follower.limits.settle_seconds))
                follower.poll(final=ended)
            if ended:
                return described
            time.sleep(next(pauses))


#: The first pause of a blocking wait; each next one doubles until it reaches the task's check interval.
FIRST_CHECK_SECONDS = 0.25


def wait_schedule(check_interval: float) -> Iterator[float]:
    """The pauses between describes: ``FIRST_CHECK_SECONDS``, doubling, then ``check_interval`` for ever (never
    more than ``check_interval``, so a short interval is kept as it is)."""
    pause = min(FIRST_CHECK_SECONDS, check_interval)
    while pause < check_interval:
        yield pause
        pause *= 2
    while True:
        yield check_interval
