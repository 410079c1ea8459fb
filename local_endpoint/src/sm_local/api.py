"""The local endpoint's operations, with SageMaker's semantics and error messages: `EndpointApi` answers
every operation, training jobs here (`TrainingJobsApi`), processing jobs in `processing_api`.

Job state is entirely on disk (see store.py); what the server alone knows (whether a supervisor still runs) is
reconciled on every read by `sm_local.jobs`, the same way for every kind of job.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sm_local import listing, protocol
from sm_local.images import (
    AlgorithmImage,
    UnsupportedImageError,
    parse_algorithm_image,
    parse_rule_evaluator_image,
)
from sm_local.job_status import TERMINAL_JOB_STATUSES, TERMINAL_RULE_STATUSES
from sm_local.jobs import (
    DEFAULT_MAX_RUNNING_JOBS as DEFAULT_MAX_RUNNING_JOBS,
)
from sm_local.jobs import (
    MAX_RUNNING_JOBS_ENV as MAX_RUNNING_JOBS_ENV,
)
from sm_local.jobs import (
    Capacity,
    JobKind,
    SupervisedJobs,
    now,
)
from sm_local.process import DEFAULT_SUPERVISOR_MODULE, SUPERVISOR_MODULE_ENV
from sm_local.processing_api import ProcessingJobsApi
from sm_local.protocol import SageMakerError, validation_error
from sm_local.store import PROCESSING_JOBS_DIR, JobStore, rule_evaluation_job_arn, training_job_arn

# DescribeTrainingJob fields that come from the supervisor's status.json, not from the request.
LIVE_FIELDS = (
    "TrainingJobStatus",
    "SecondaryStatus",
    "SecondaryStatusTransitions",
    "TrainingStartTime",
    "TrainingEndTime",
    "LastModifiedTime",
    "FailureReason",
    "FinalMetricDataList",
    "ModelArtifacts",
    "DebugRuleEvaluationStatuses",
    "TrainingTimeInSeconds",
    "BillableTimeInSeconds",
)
# SageMaker's default when the request has no StoppingCondition (the response requires one).
DEFAULT_STOPPING_CONDITION = {"MaxRuntimeInSeconds": 86400}
NOT_FOUND_MESSAGE = "Requested resource not found."


class EndpointApi:
    """Every operation of the local endpoint: validates the request against botocore's model, runs it, and
    validates the response. Training and processing jobs share one lock and one running-jobs cap."""

    def __init__(
        self,
        state_dir: Path,
        region: str,
        stop_grace_seconds: float = 30.0,
        max_running_jobs: int = DEFAULT_MAX_RUNNING_JOBS,
        runtime_image_uri: str | None = None,
    ) -> None:
        lock = threading.RLock()
        self.capacity = Capacity([], max_running_jobs)
        self.training = TrainingJobsApi(JobStore(state_dir), region, lock, stop_grace_seconds, self.capacity)
        self.processing = ProcessingJobsApi(
            JobStore(state_dir, PROCESSING_JOBS_DIR), region, lock, stop_grace_seconds, self.capacity,
            runtime_image_uri=runtime_image_uri,
        )
        self.capacity.kinds.extend([self.training.jobs, self.processing.jobs])
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            **self.training.operations, **self.processing.operations
        }

    def handle(self, operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate the request against the model, run the operation, validate the response."""
        handler = self.operations.get(operation_name)
        if handler is None:
            raise SageMakerError(
                "UnknownOperationException",
                f"Operation {operation_name!r} is not supported by the local SageMaker endpoint; it "
                f"supports {', '.join(sorted(self.operations))}.",
            )
        operation = protocol.service_model().operation_model(operation_name)
        request = protocol.validate_request(operation, params)
        return protocol.prepare_response(operation, handler(request))

    def start_spares(self) -> None:
        """A spare supervisor of each kind, ready for its next job (`sm_local.process.SpareSupervisors`)."""
        for jobs in self.capacity.kinds:
            jobs.start_spares()

    def close_spares(self) -> None:
        for jobs in self.capacity.kinds:
            jobs.close_spares()

    def remove_expired_jobs(self, older_than_seconds: float) -> list[str]:
        """Remove every job (of each kind) that ended more than `older_than_seconds` ago; returns their names."""
        cutoff = now() - older_than_seconds
        return [name for jobs in self.capacity.kinds for name in jobs.remove_expired(cutoff)]


class TrainingJobsApi:
    """CreateTrainingJob, DescribeTrainingJob, StopTrainingJob and ListTrainingJobs over a JobStore."""

    def __init__(
        self,
        store: JobStore,
        region: str,
        lock: threading.RLock,
        stop_grace_seconds: float,
        capacity: Capacity,
    ) -> None:
        self.region = region
        self.capacity = capacity
        self._lock = lock
        kind = JobKind(
            noun="training",
            process_name="training process",
            status_key="TrainingJobStatus",
            not_found_message=lambda _name: NOT_FOUND_MESSAGE,
            supervisor_module=DEFAULT_SUPERVISOR_MODULE,
            supervisor_module_env=SUPERVISOR_MODULE_ENV,
            initial_status=self._initial_status,
            finalize=_finalize,
            needs_supervisor=_needs_supervisor,
        )
        self.jobs = SupervisedJobs(store, kind, lock, stop_grace_seconds)
        self.store = store
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "StopTrainingJob": self.stop_training_job,
            "ListTrainingJobs": self.list_training_jobs,
        }

    # -- CreateTrainingJob -------------------------------------------------------------------

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        image = self._check_runnable(request)
        arn = training_job_arn(self.region, name)
        with self._lock:
            if self.jobs.existing_name(name) is not None:
                raise SageMakerError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({arn})",
                )
            instance_type = (request.get("ResourceConfig") or {}).get("InstanceType", "ml.m5.xlarge")
            self.capacity.check(instance_type, "training job usage")
            record = dict(request)
            record.update(
                CreationTime=now(),
                TrainingJobArn=arn,
                Region=self.region,
                AlgorithmImage={
                    "Algorithm": image.algorithm,
                    "Version": image.version,
                    "WritesDebuggerTensors": image.writes_debugger_tensors,
                },
            )
            self.jobs.start(name, record)
        return {"TrainingJobArn": arn}

    def _check_runnable(self, request: dict[str, Any]) -> AlgorithmImage:
        """Refuse, before anything starts, what the local endpoint cannot run."""
        spec = request.get("AlgorithmSpecification") or {}
        if spec.get("AlgorithmName"):
            raise validation_error(
                "AlgorithmSpecification.AlgorithmName is not supported by the local SageMaker endpoint: "
                "give AlgorithmSpecification.TrainingImage, the built-in XGBoost image."
            )
        if not spec.get("TrainingImage"):
            raise validation_error("AlgorithmSpecification.TrainingImage is required.")
        try:
            image = parse_algorithm_image(spec["TrainingImage"])
        except UnsupportedImageError as exc:
            raise validation_error(str(exc)) from exc
        channel_names: set[str] = set()
        for index, channel in enumerate(request.get("InputDataConfig") or []):
            # Two channels of one name would share /opt/ml/input/data/<name> (SageMaker refuses them too).
            if channel["ChannelName"] in channel_names:
                raise validation_error(
                    f"InputDataConfig[{index}].ChannelName {channel['ChannelName']!r} is used more than once: "
                    "every channel needs a name of its own."
                )
            channel_names.add(channel["ChannelName"])
            # The model's pattern admits '.' and '..', which as /opt/ml/input/data/<name> are not a directory
            # of their own; every other allowed name ([A-Za-z0-9.-_]+) is one path segment.
            if channel["ChannelName"] in (".", ".."):
                raise validation_error(
                    f"InputDataConfig[{index}].ChannelName {channel['ChannelName']!r} is not supported by the "
                    "local SageMaker endpoint: the channel's data goes to /opt/ml/input/data/<ChannelName>, "
                    "so the name must be a directory name (letters, digits, '.', '-', '_'; not '.' or '..')."
                )
        # RuleConfigurationName may be any 1-256 characters: it never becomes a path (store.rule_dir_name).
        seen: set[str] = set()
        for index, rule in enumerate(request.get("DebugRuleConfigurations") or []):
            where = f"DebugRuleConfigurations[{index}]"
            rule_name = rule["RuleConfigurationName"]
            if rule_name in seen:
                raise validation_error(f"{where}.RuleConfigurationName {rule_name!r} is used more than once.")
            seen.add(rule_name)
            try:
                parse_rule_evaluator_image(rule.get("RuleEvaluatorImage", ""))
            except UnsupportedImageError as exc:
                raise validation_error(f"{where}: {exc}") from exc
            if not (rule.get("RuleParameters") or {}).get("rule_to_invoke"):
                raise validation_error(
                    f"{where}.RuleParameters.rule_to_invoke is required: it names the built-in rule to "
                    f"evaluate (for example 'LossNotDecreasing') for rule {rule_name!r}."
                )
        return image

    # -- DescribeTrainingJob -----------------------------------------------------------------

    def describe_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        job = self.jobs.load(name)
        status = self.jobs.reconciled_status(name, job)
        response = {key: value for key, value in job.items() if key not in LIVE_FIELDS}
        response.setdefault("StoppingCondition", DEFAULT_STOPPING_CONDITION)
        response.update({key: status[key] for key in LIVE_FIELDS if status.get(key) is not None})
        response.setdefault("ModelArtifacts", {"S3ModelArtifacts": self._model_location(job)})
        return response

    @staticmethod
    def _model_location(job: dict[str, Any]) -> str:
        """Where SageMaker puts (or will put) the model: the response requires the field."""
        output = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{output}/{job['TrainingJobName']}/output/model.tar.gz"

    # -- StopTrainingJob ---------------------------------------------------------------------

    def stop_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        self.jobs.request_stop(request["TrainingJobName"])
        return {}

    # -- ListTrainingJobs --------------------------------------------------------------------

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        summaries = [
            {
                "TrainingJobName": name,
                "TrainingJobArn": job["TrainingJobArn"],
                "CreationTime": job["CreationTime"],
                "TrainingEndTime": status.get("TrainingEndTime"),
                "LastModifiedTime": status.get("LastModifiedTime", job["CreationTime"]),
                "TrainingJobStatus": status["TrainingJobStatus"],
                "SecondaryStatus": status.get("SecondaryStatus"),
            }
            for name, job, status in self.jobs.records()
        ]
        return listing.list_response(
            summaries, request, result_key="TrainingJobSummaries", name_key="TrainingJobName", status_key="TrainingJobStatus"
        )

    # -- status ------------------------------------------------------------------------------

    def _initial_status(self, job: dict[str, Any]) -> dict[str, Any]:
        """What Describe shows before the supervisor writes its first status.json."""
        created = job["CreationTime"]
        status: dict[str, Any] = {
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "SecondaryStatusTransitions": [
                {
                    "Status": "Starting",
                    "StartTime": created,
                    "StatusMessage": "Preparing the instances for training",
                }
            ],
            "LastModifiedTime": created,
        }
        rules = job.get("DebugRuleConfigurations") or []
        if rules:
            region = job.get("Region", self.region)
            status["DebugRuleEvaluationStatuses"] = [
                {
                    "RuleConfigurationName": rule["RuleConfigurationName"],
                    "RuleEvaluationJobArn": rule_evaluation_job_arn(
                        region, job["TrainingJobName"], rule["RuleConfigurationName"]
                    ),
                    "RuleEvaluationStatus": "InProgress",
                    "LastModifiedTime": created,
                }
                for rule in rules
            ]
        return status


def _finalize(status: dict[str, Any], stopped: bool, reason: str, at: float) -> dict[str, Any]:
    """The terminal status the supervisor could not write: the job `Stopped` or `Failed`, open rules ended."""
    status = json.loads(json.dumps(status))  # a private deep copy
    if status["TrainingJobStatus"] not in TERMINAL_JOB_STATUSES:
        final = "Stopped" if stopped else "Failed"
        transitions = status.setdefault("SecondaryStatusTransitions", [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = at
        message = "Training job stopped." if stopped else reason
        transitions.append({"Status": final, "StartTime": at, "EndTime": at, "StatusMessage": message})
        status.update(TrainingJobStatus=final, SecondaryStatus=final)
        if not stopped:
            status["FailureReason"] = reason
        if status.get("TrainingStartTime") is not None:
            status["TrainingEndTime"] = at
            elapsed = max(1, round(at - status["TrainingStartTime"]))  # the model says >= 1
            status.setdefault("TrainingTimeInSeconds", elapsed)
            status.setdefault("BillableTimeInSeconds", elapsed)
    rule_outcome = "Stopped" if stopped else "Error"
    for rule in status.get("DebugRuleEvaluationStatuses") or []:
        if rule.get("RuleEvaluationStatus") not in TERMINAL_RULE_STATUSES:
            rule["RuleEvaluationStatus"] = rule_outcome
            rule["StatusDetails"] = (
                "Rule evaluation stopped with the training job."
                if stopped
                else f"The rule evaluation ended without a result: {reason}"
            )[:1024]
            rule["LastModifiedTime"] = at
    status["LastModifiedTime"] = at
    return status


def _needs_supervisor(status: dict[str, Any]) -> bool:
    """True while the job or one of its rules can still change."""
    if status.get("TrainingJobStatus") not in TERMINAL_JOB_STATUSES:
        return True
    return any(
        rule.get("RuleEvaluationStatus") not in TERMINAL_RULE_STATUSES
        for rule in status.get("DebugRuleEvaluationStatuses") or []
    )
