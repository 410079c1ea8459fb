"""CreateProcessingJob, DescribeProcessingJob, StopProcessingJob and ListProcessingJobs, with SageMaker's semantics
and error messages. What a request may hold and how it runs locally: `processing_spec`; the supervisor:
`processing_supervisor`; liveness, stop, capacity and retention: `jobs`, as for training jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sm_local import listing
from sm_local.job_status import (
    PROCESSING_STATUS_KEY,
    TERMINAL_JOB_STATUSES,
    finished_processing_status,
    initial_processing_status,
)
from sm_local.jobs import Capacity, JobKind, SupervisedJobs, now
from sm_local.processing_spec import (
    ProcessingRequestError,
    check_request,
    default_runtime_image_uri,
    with_defaults,
)
from sm_local.protocol import SageMakerError, validation_error
from sm_local.store import JobStore, processing_job_arn

SUPERVISOR_MODULE = "sm_local.processing_supervisor"
SUPERVISOR_MODULE_ENV = "SM_LOCAL_PROCESSING_SUPERVISOR_MODULE"
# DescribeProcessingJob fields that come from the supervisor's status.json, not from the request.
LIVE_FIELDS = (
    PROCESSING_STATUS_KEY,
    "ExitMessage",
    "FailureReason",
    "ProcessingStartTime",
    "ProcessingEndTime",
    "LastModifiedTime",
)


def not_found_message(name: str) -> str:
    """DescribeProcessingJob's answer for a name it does not know, a ValidationException (the provider's operator
    and botocore's ProcessingJobCompletedOrStopped waiter take exactly that code for "no such job")."""
    return f"Could not find requested job with name {name}"


def _finalize(status: dict[str, Any], stopped: bool, reason: str, at: float) -> dict[str, Any]:
    if status.get(PROCESSING_STATUS_KEY) in TERMINAL_JOB_STATUSES:
        return status
    if stopped:
        return finished_processing_status(status, "Stopped", at)
    return finished_processing_status(status, "Failed", at, failure_reason=f"InternalServerError: {reason}")


class ProcessingJobsApi:
    """The processing-job operations over a JobStore of their own (`<state>/processing-jobs/`)."""

    def __init__(
        self,
        store: JobStore,
        region: str,
        lock: threading.RLock,
        stop_grace_seconds: float,
        capacity: Capacity,
        *,
        runtime_image_uri: str | None = None,
    ) -> None:
        self.region = region
        self.capacity = capacity
        self.runtime_image_uri = runtime_image_uri or default_runtime_image_uri(region)
        self._lock = lock
        kind = JobKind(
            noun="processing",
            process_name="processing job's supervisor",
            status_key=PROCESSING_STATUS_KEY,
            not_found_message=not_found_message,
            supervisor_module=SUPERVISOR_MODULE,
            supervisor_module_env=SUPERVISOR_MODULE_ENV,
            initial_status=lambda job: initial_processing_status(job["CreationTime"]),
            finalize=_finalize,
            needs_supervisor=lambda status: status.get(PROCESSING_STATUS_KEY) not in TERMINAL_JOB_STATUSES,
        )
        self.jobs = SupervisedJobs(store, kind, lock, stop_grace_seconds)
        self.store = store
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateProcessingJob": self.create_processing_job,
            "DescribeProcessingJob": self.describe_processing_job,
            "StopProcessingJob": self.stop_processing_job,
            "ListProcessingJobs": self.list_processing_jobs,
        }

    def create_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ProcessingJobName"]
        try:
            check_request(request)
        except ProcessingRequestError as error:
            raise validation_error(str(error)) from error
        arn = processing_job_arn(self.region, name)
        with self._lock:
            if self.jobs.existing_name(name) is not None:
                raise SageMakerError(
                    "ResourceInUse",
                    "Processing job names must be unique within an AWS account and region, and a processing job "
                    f"with this name already exists ({arn})",
                )
            cluster = request["ProcessingResources"]["ClusterConfig"]
            self.capacity.check(cluster.get("InstanceType", "ml.m5.xlarge"), "processing job usage")
            record = with_defaults(request)
            # The image is resolved by the supervisor (an image it cannot run fails the job, as a pull does).
            record.update(
                CreationTime=now(), ProcessingJobArn=arn, Region=self.region, RuntimeImageUri=self.runtime_image_uri
            )
            self.jobs.start(name, record)
        return {"ProcessingJobArn": arn}

    def describe_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ProcessingJobName"]
        job = self.jobs.load(name)
        status = self.jobs.reconciled_status(name, job)
        response = {key: value for key, value in job.items() if key not in LIVE_FIELDS}
        response.update({key: status[key] for key in LIVE_FIELDS if status.get(key) is not None})
        return response

    def stop_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        self.jobs.request_stop(request["ProcessingJobName"])
        return {}

    def list_processing_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        summaries = [
            {
                "ProcessingJobName": name,
                "ProcessingJobArn": job["ProcessingJobArn"],
                "CreationTime": job["CreationTime"],
                "ProcessingEndTime": status.get("ProcessingEndTime"),
                "LastModifiedTime": status.get("LastModifiedTime", job["CreationTime"]),
                PROCESSING_STATUS_KEY: status[PROCESSING_STATUS_KEY],
                "FailureReason": status.get("FailureReason"),
                "ExitMessage": status.get("ExitMessage"),
            }
            for name, job, status in self.jobs.records()
        ]
        return listing.list_response(
            summaries, request, result_key="ProcessingJobSummaries", name_key="ProcessingJobName", status_key=PROCESSING_STATUS_KEY
        )
