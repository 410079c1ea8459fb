"""The live part of DescribeTrainingJob (and DescribeProcessingJob) that the supervisor publishes as
`<jobdir>/status.json`.

Keys are botocore's DescribeTrainingJob (DescribeProcessingJob) member names and timestamps epoch floats, so the server can
merge the file into its answer without translating anything. Every change is written at once
(temp file + rename, `sm_explain_contracts.envelope.write_json_atomic`): the server may read it at any moment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sm_explain_contracts.envelope import write_json_atomic

MAX_REASON_CHARS = 1024  # FailureReason and StatusDetails limits in botocore's SageMaker model

# SecondaryStatus -> the TrainingJobStatus it belongs to (botocore's SecondaryStatus documentation).
PRIMARY_STATUS = {
    "Starting": "InProgress",
    "Downloading": "InProgress",
    "Training": "InProgress",
    "Uploading": "InProgress",
    "Completed": "Completed",
    "Failed": "Failed",
    "Stopping": "Stopping",
    "Stopped": "Stopped",
    "MaxRuntimeExceeded": "Stopped",
}

# The StatusMessage SageMaker shows for each SecondaryStatusTransition.
STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped.",
    "MaxRuntimeExceeded": "Training job ran longer than StoppingCondition.MaxRuntimeInSeconds",
}

# Training's StatusMessage while the image is pulled (sm_local.image_envs), before the one above.
PULLING_IMAGE_MESSAGE = "Downloading the training image"

TERMINAL_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
TERMINAL_RULE_STATUSES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
RULE_RESULT_STATUSES = frozenset({"NoIssuesFound", "IssuesFound", "Error"})


def truncate(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Fit `text` into a SageMaker string limit, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JobStatus:
    """status.json of one job: secondary-status transitions, rule statuses, results; saved on change."""

    def __init__(self, path: Path, rule_arns: dict[str, str], created: float | None = None) -> None:
        self.path = path
        self.data: dict[str, Any] = {"SecondaryStatusTransitions": []}
        if rule_arns:
            modified = time.time() if created is None else created
            self.data["DebugRuleEvaluationStatuses"] = [
                {
                    "RuleConfigurationName": name,
                    "RuleEvaluationJobArn": arn,
                    "RuleEvaluationStatus": "InProgress",
                    "LastModifiedTime": modified,
                }
                for name, arn in rule_arns.items()
            ]

    @property
    def secondary_status(self) -> str | None:
        return self.data.get("SecondaryStatus")

    @property
    def job_status(self) -> str | None:
        return self.data.get("TrainingJobStatus")

    @property
    def is_terminal(self) -> bool:
        return self.job_status in TERMINAL_JOB_STATUSES

    def transition(
        self, secondary: str, *, at: float | None = None, save: bool = True, message: str | None = None
    ) -> None:
        """Enter `secondary` (closing the previous transition); terminal ones are closed at once,
        as SageMaker shows them with StartTime == EndTime. `message` replaces the usual StatusMessage."""
        now = time.time() if at is None else at
        transitions = self.data["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        entry: dict[str, Any] = {
            "Status": secondary,
            "StartTime": now,
            "StatusMessage": message or STATUS_MESSAGES[secondary],
        }
        primary = PRIMARY_STATUS[secondary]
        if primary in TERMINAL_JOB_STATUSES:
            entry["EndTime"] = now
        transitions.append(entry)
        self.data["SecondaryStatus"] = secondary
        self.data["TrainingJobStatus"] = primary
        self.data["LastModifiedTime"] = now
        if save:
            self.save()

    def set_message(self, message: str) -> None:
        """Change the StatusMessage of the current transition, as SageMaker does within one (Training:
        "Downloading the training image" until the image is there)."""
        transitions = self.data["SecondaryStatusTransitions"]
        if transitions:
            transitions[-1]["StatusMessage"] = message
        self.update()

    def update(self, **fields: Any) -> None:
        """Set top-level DescribeTrainingJob fields (None removes one) and save."""
        for key, value in fields.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.data["LastModifiedTime"] = time.time()
        self.save()

    def rule_statuses(self) -> list[dict[str, Any]]:
        return self.data.get("DebugRuleEvaluationStatuses", [])

    def rule_status(self, name: str) -> str:
        return self._rule(name)["RuleEvaluationStatus"]

    def pending_rules(self) -> list[str]:
        """Rules whose evaluation has not reached a terminal status."""
        return [
            rule["RuleConfigurationName"]
            for rule in self.rule_statuses()
            if rule["RuleEvaluationStatus"] not in TERMINAL_RULE_STATUSES
        ]

    def set_rule(self, name: str, status: str, details: str | None = None, *, save: bool = True) -> None:
        rule = self._rule(name)
        rule["RuleEvaluationStatus"] = status
        if details:
            rule["StatusDetails"] = truncate(details)
        rule["LastModifiedTime"] = time.time()
        if save:
            self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def _rule(self, name: str) -> dict[str, Any]:
        for rule in self.rule_statuses():
            if rule["RuleConfigurationName"] == name:
                return rule
        raise KeyError(f"no rule configuration named {name!r} in this job")


# -- processing jobs: DescribeProcessingJob's live fields, no secondary statuses ---------------------------------

PROCESSING_STATUS_KEY = "ProcessingJobStatus"


def initial_processing_status(created: float) -> dict[str, Any]:
    """What DescribeProcessingJob shows before the supervisor writes its first status.json."""
    return {PROCESSING_STATUS_KEY: "InProgress", "LastModifiedTime": created}


def finished_processing_status(
    status: dict[str, Any], final: str, at: float, *, failure_reason: str | None = None,
    exit_message: str | None = None,
) -> dict[str, Any]:
    """A private copy of a processing job's status ended `final` (Completed, Failed, Stopped) at `at`: the one
    rule for the supervisor's own end and for the server's when the supervisor died."""
    ended = json.loads(json.dumps(status))
    ended.update({PROCESSING_STATUS_KEY: final, "ProcessingEndTime": at, "LastModifiedTime": at})
    if failure_reason:
        ended["FailureReason"] = truncate(failure_reason)
    if exit_message:
        ended["ExitMessage"] = truncate(exit_message)
    return ended


class ProcessingStatus:
    """status.json of one processing job, saved on every change."""

    def __init__(self, path: Path, created: float) -> None:
        self.path = path
        self.data: dict[str, Any] = initial_processing_status(created)

    def update(self, **fields: Any) -> None:
        """Set DescribeProcessingJob fields and save."""
        self.data.update(fields)
        self.data["LastModifiedTime"] = time.time()
        write_json_atomic(self.path, self.data)

    def finish(self, final: str, *, failure_reason: str | None = None, exit_message: str | None = None) -> None:
        self.data = finished_processing_status(
            self.data, final, time.time(), failure_reason=failure_reason, exit_message=exit_message
        )
        write_json_atomic(self.path, self.data)
