"""The training-job operations of the local endpoint, with SageMaker's semantics and error messages.

Job state is entirely on disk (see store.py). The one thing only the server can know is whether a
job's supervisor process is still alive; every read reconciles that, so a job whose supervisor died
(crash, kill, machine restart) ends `Failed`/`Stopped` instead of staying `InProgress` forever.
"""

from __future__ import annotations

import base64
import binascii
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sm_local import process as processes
from sm_local import protocol
from sm_local.images import (
    AlgorithmImage,
    UnsupportedImageError,
    parse_algorithm_image,
    parse_rule_evaluator_image,
)
from sm_local.protocol import SageMakerError, validation_error
from sm_local.store import SUPERVISOR_LOG, JobStore, rule_evaluation_job_arn, training_job_arn

TERMINAL_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
TERMINAL_RULE_STATUSES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
RUNNING_JOB_STATUSES = frozenset({"InProgress", "Stopping"})  # what counts against max_running_jobs
DEFAULT_MAX_RUNNING_JOBS = 8
MAX_RUNNING_JOBS_ENV = "SM_LOCAL_MAX_RUNNING_JOBS"
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
DEFAULT_MAX_RESULTS = 10


def _now() -> float:
    return time.time()


class TrainingJobsApi:
    """CreateTrainingJob, DescribeTrainingJob, StopTrainingJob and ListTrainingJobs over a JobStore."""

    def __init__(
        self,
        store: JobStore,
        region: str,
        stop_grace_seconds: float = 30.0,
        max_running_jobs: int = DEFAULT_MAX_RUNNING_JOBS,
    ) -> None:
        self.store = store
        self.region = region
        self.stop_grace_seconds = stop_grace_seconds
        self.max_running_jobs = max_running_jobs
        # One lock for every write: the only writers are this process's threads and (for
        # status.json) a supervisor, which is only overwritten once it is known to be dead.
        self._lock = threading.RLock()
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "StopTrainingJob": self.stop_training_job,
            "ListTrainingJobs": self.list_training_jobs,
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

    # -- CreateTrainingJob -------------------------------------------------------------------

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        image = self._check_runnable(request)
        arn = training_job_arn(self.region, name)
        with self._lock:
            for existing in self.store.names():
                if existing.lower() == name.lower():
                    raise SageMakerError(
                        "ResourceInUse",
                        "Training job names must be unique within an AWS account and region, and a "
                        f"training job with this name already exists ({arn})",
                    )
            self._check_capacity(request)
            job_dir = self.store.job_dir(name)
            job_dir.mkdir(parents=True, exist_ok=True)
            record = dict(request)
            record.update(
                CreationTime=_now(),
                TrainingJobArn=arn,
                Region=self.region,
                AlgorithmImage={
                    "Algorithm": image.algorithm,
                    "Version": image.version,
                    "WritesDebuggerTensors": image.writes_debugger_tensors,
                },
            )
            # Written before the supervisor starts, so it always finds its job description.
            self.store.write_job(name, record)
            try:
                identity = processes.spawn_supervisor(job_dir, job_dir / SUPERVISOR_LOG)
            except OSError as exc:
                self._finalize(
                    name,
                    record,
                    self._initial_status(record),
                    stopped=False,
                    reason=f"The training process could not be started: {exc}",
                )
                raise SageMakerError(
                    "InternalFailure", f"Could not start the training job: {exc}", 500
                ) from exc
            record.update(SupervisorPid=identity.pid, SupervisorCreateTime=identity.create_time)
            self.store.write_job(name, record)
        return {"TrainingJobArn": arn}

    def _check_capacity(self, request: dict[str, Any]) -> None:
        """At most `max_running_jobs` jobs InProgress or Stopping (their processes still run), refused the way
        SageMaker refuses a job over the account's instance quota. Called under the lock, so concurrent
        creates cannot both take the last place."""
        running = 0
        for name in self.store.names():
            job = self.store.read_job(name)
            if job is not None and self._reconciled_status(name, job)["TrainingJobStatus"] in RUNNING_JOB_STATUSES:
                running += 1
        if running >= self.max_running_jobs:
            instance_type = (request.get("ResourceConfig") or {}).get("InstanceType", "ml.m5.xlarge")
            raise SageMakerError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for training job usage' is "
                f"{self.max_running_jobs} Instances, with current utilization of {running} Instances and a "
                "request delta of 1 Instances. The local SageMaker endpoint runs at most "
                f"{self.max_running_jobs} training jobs at a time: wait for one to end or stop one, or raise "
                f"the limit (--max-running-jobs, {MAX_RUNNING_JOBS_ENV}).",
            )

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
        job = self._load(name)
        status = self._reconciled_status(name, job)
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
        name = request["TrainingJobName"]
        self._load(name)
        with self._lock:
            job = self._load(name)  # re-read under the lock: a create may have just added the pid
            status = self._reconciled_status(name, job)
            if status["TrainingJobStatus"] != "InProgress":
                raise validation_error(
                    f"The request was rejected because the training job is in status "
                    f"{status['TrainingJobStatus']}."
                )
            job.update(StopRequested=True, StopRequestedTime=_now())
            self.store.write_job(name, job)
        identity = self._identity(job)
        if identity is not None:
            processes.signal_supervisor(identity, signal.SIGTERM)
        threading.Thread(target=self._enforce_stop, args=(name,), name=f"stop-{name}", daemon=True).start()
        return {}

    def _enforce_stop(self, name: str) -> None:
        """Give the supervisor the grace period to stop cleanly, then kill its group."""
        job = self.store.read_job(name) or {}
        identity = self._identity(job)
        deadline = time.monotonic() + self.stop_grace_seconds
        while identity is not None and processes.is_alive(identity) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Reconciling finishes the job: it kills a supervisor past its grace, marks a dead one Stopped.
        self._reconciled_status(name, job)

    # -- ListTrainingJobs --------------------------------------------------------------------

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        summaries = []
        for name in self.store.names():
            job = self.store.read_job(name)
            if job is None:
                continue
            status = self._reconciled_status(name, job)
            summaries.append(
                {
                    "TrainingJobName": name,
                    "TrainingJobArn": job["TrainingJobArn"],
                    "CreationTime": job["CreationTime"],
                    "TrainingEndTime": status.get("TrainingEndTime"),
                    "LastModifiedTime": status.get("LastModifiedTime", job["CreationTime"]),
                    "TrainingJobStatus": status["TrainingJobStatus"],
                    "SecondaryStatus": status.get("SecondaryStatus"),
                }
            )
        summaries = [summary for summary in summaries if _matches(summary, request)]
        sort_by = request.get("SortBy", "CreationTime")
        sort_field = {
            "CreationTime": "CreationTime",
            "Name": "TrainingJobName",
            "Status": "TrainingJobStatus",
        }[sort_by]
        summaries.sort(
            key=lambda summary: (summary[sort_field], summary["TrainingJobName"]),
            reverse=request.get("SortOrder", "Ascending") == "Descending",
        )
        offset = _decode_token(request.get("NextToken"))
        limit = request.get("MaxResults", DEFAULT_MAX_RESULTS)
        response: dict[str, Any] = {"TrainingJobSummaries": summaries[offset : offset + limit]}
        if offset + limit < len(summaries):
            response["NextToken"] = _encode_token(offset + limit)
        return response

    # -- retention ---------------------------------------------------------------------------

    def remove_expired_jobs(self, older_than_seconds: float) -> list[str]:
        """Remove the records of jobs whose last change (job and every rule terminal) is older than
        `older_than_seconds`; returns their names. A job that can still change, or whose supervisor still
        runs, is never touched. Afterwards DescribeTrainingJob answers as for a job that never existed."""
        cutoff = _now() - older_than_seconds
        removed = []
        for name in list(self.store.names()):
            with self._lock:
                job = self.store.read_job(name)
                if job is None:
                    continue
                status = self._reconciled_status(name, job)
                identity = self._identity(job)
                if _needs_supervisor(status) or (identity is not None and processes.is_alive(identity)):
                    continue
                if float(status.get("LastModifiedTime") or job["CreationTime"]) > cutoff:
                    continue
                self.store.remove_job(name)
            removed.append(name)
        with self._lock:  # a create writes job.json into its new directory under the lock
            self.store.remove_abandoned(cutoff)
        return removed

    # -- liveness ----------------------------------------------------------------------------

    def _load(self, name: str) -> dict[str, Any]:
        job = self.store.read_job(name)
        if job is None:
            raise validation_error(NOT_FOUND_MESSAGE)
        return job

    @staticmethod
    def _identity(job: dict[str, Any]) -> processes.ProcessIdentity | None:
        return processes.ProcessIdentity.of_supervisor(job)

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

    def _reconciled_status(self, name: str, job: dict[str, Any]) -> dict[str, Any]:
        """status.json (or the initial status), finished by the server if the supervisor is gone."""
        status = self.store.read_status(name) or self._initial_status(job)
        if not _needs_supervisor(status):
            return status
        with self._lock:
            job = self.store.read_job(name) or job
            identity = self._identity(job)
            # Holding the lock, a record without a pid is a create that never finished (the server
            # died between writing job.json and starting the supervisor): nothing will run it.
            if identity is not None and processes.is_alive(identity):
                overdue = (
                    job.get("StopRequested")
                    and _now() - job.get("StopRequestedTime", 0) > self.stop_grace_seconds
                )
                if not overdue:
                    return self._as_seen(status, job)
                processes.kill_job(identity, self.store.job_dir(name))
                _wait_until_dead(identity, timeout=5.0)
            # Re-read: a supervisor writes its final status just before it exits.
            status = self.store.read_status(name) or self._initial_status(job)
            if not _needs_supervisor(status):
                return status
            if identity is not None:  # its algorithm and rule processes must not run on unsupervised
                processes.kill_job(identity, self.store.job_dir(name))
            stopped = bool(job.get("StopRequested")) or status["TrainingJobStatus"] == "Stopping"
            log = self.store.job_dir(name) / SUPERVISOR_LOG
            return self._finalize(name, job, status, stopped=stopped, reason=_exit_reason(log))

    def _as_seen(self, status: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """A stop that the supervisor has not acknowledged yet already reads `Stopping`."""
        if job.get("StopRequested") and status["TrainingJobStatus"] == "InProgress":
            status = dict(status, TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
        return status

    def _finalize(
        self, name: str, job: dict[str, Any], status: dict[str, Any], *, stopped: bool, reason: str
    ) -> dict[str, Any]:
        """Write the terminal status.json the supervisor could not write."""
        now = _now()
        status = json.loads(json.dumps(status))  # a private deep copy
        if status["TrainingJobStatus"] not in TERMINAL_JOB_STATUSES:
            final = "Stopped" if stopped else "Failed"
            transitions = status.setdefault("SecondaryStatusTransitions", [])
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            message = "Training job stopped." if stopped else reason
            transitions.append({"Status": final, "StartTime": now, "EndTime": now, "StatusMessage": message})
            status.update(TrainingJobStatus=final, SecondaryStatus=final)
            if not stopped:
                status["FailureReason"] = reason
            if status.get("TrainingStartTime") is not None:
                status["TrainingEndTime"] = now
                elapsed = max(1, round(now - status["TrainingStartTime"]))  # the model says >= 1
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
                rule["LastModifiedTime"] = now
        status["LastModifiedTime"] = now
        self.store.write_status(name, status)
        return status


def _needs_supervisor(status: dict[str, Any]) -> bool:
    """True while the job or one of its rules can still change."""
    if status.get("TrainingJobStatus") not in TERMINAL_JOB_STATUSES:
        return True
    return any(
        rule.get("RuleEvaluationStatus") not in TERMINAL_RULE_STATUSES
        for rule in status.get("DebugRuleEvaluationStatuses") or []
    )


def _exit_reason(log: Path) -> str:
    return f"The training process exited unexpectedly (see {log})"


def _wait_until_dead(identity: processes.ProcessIdentity, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while processes.is_alive(identity) and time.monotonic() < deadline:
        time.sleep(0.05)


def _matches(summary: dict[str, Any], request: dict[str, Any]) -> bool:
    """ListTrainingJobs filters; times are exclusive bounds, as SageMaker applies them."""
    contains = request.get("NameContains")
    if contains and contains.lower() not in summary["TrainingJobName"].lower():
        return False
    if request.get("StatusEquals") and summary["TrainingJobStatus"] != request["StatusEquals"]:
        return False
    bounds = (
        ("CreationTimeAfter", "CreationTime", lambda value, bound: value > bound),
        ("CreationTimeBefore", "CreationTime", lambda value, bound: value < bound),
        ("LastModifiedTimeAfter", "LastModifiedTime", lambda value, bound: value > bound),
        ("LastModifiedTimeBefore", "LastModifiedTime", lambda value, bound: value < bound),
    )
    return all(
        request.get(key) is None or compare(summary[field], request[key]) for key, field, compare in bounds
    )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise validation_error(
            f"Invalid pagination token {token!r}: pass the NextToken of a previous response."
        ) from exc
    if not isinstance(offset, int) or offset < 0:
        raise validation_error(
            f"Invalid pagination token {token!r}: pass the NextToken of a previous response."
        )
    return offset
