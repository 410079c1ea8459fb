"""Turn a DescribeTrainingJob response into a terminal check, a compact verdict and a policy outcome.

Pure logic, no I/O: the sensor (poke mode) and the trigger (deferrable mode) share it, so both
modes decide the same way from the same response. The provider's sensors look at
``TrainingJobStatus`` only; here a job is done only when training AND every Debugger rule is done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sm_explain_ops.links import training_job_url

TRAINING_TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
RULE_TERMINAL_STATUSES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
#: Rule statuses that carry no answer from the rule; they follow the ``error`` policy.
RULE_WITHOUT_VERDICT_STATUSES = frozenset({"Error", "Stopped"})
#: Key in a policy mapping that sets the policy of every rule not named explicitly.
DEFAULT_POLICY_KEY = "*"
#: FailureReason prefixes that say nothing about the job itself: SageMaker found no capacity for the instance
#: type, or failed internally (after the request's RetryStrategy, which covers only InternalServerError, ran
#: out). The same request started again as a new job may well succeed; any other failure would fail again.
TRANSIENT_FAILURE_PREFIXES = ("CapacityError", "InternalServerError")

IssuesFoundAction = Literal["fail", "continue"]
ErrorAction = Literal["fail", "warn"]


def _expected_rule_names(describe: Mapping[str, Any]) -> list[str]:
    return [
        config["RuleConfigurationName"]
        for config in describe.get("DebugRuleConfigurations") or []
        if config.get("RuleConfigurationName")
    ]


def is_terminal(describe: Mapping[str, Any]) -> bool:
    """True when training has ended and no Debugger rule can change its status any more.

    A rule configured on a Completed job but not yet listed in ``DebugRuleEvaluationStatuses`` is
    still to come, so the job is not terminal. After Failed/Stopped training a rule that never
    started never will, so only the listed rules must have ended.
    """
    training_status = describe.get("TrainingJobStatus")
    if training_status not in TRAINING_TERMINAL_STATUSES:
        return False
    statuses = describe.get("DebugRuleEvaluationStatuses") or []
    if any(status.get("RuleEvaluationStatus") not in RULE_TERMINAL_STATUSES for status in statuses):
        return False
    if training_status == "Completed":
        reported = {status.get("RuleConfigurationName") for status in statuses}
        return all(name in reported for name in _expected_rule_names(describe))
    return True


def is_transient_failure(training_status: Any, failure_reason: Any) -> bool:
    """True when training Failed for a reason a new job of the same request may not meet again."""
    return (
        training_status == "Failed"
        and isinstance(failure_reason, str)
        and failure_reason.lstrip().startswith(TRANSIENT_FAILURE_PREFIXES)
    )


def _iso(value: Any) -> str | None:
    """ISO 8601 for the timestamp shapes a describe response can carry (datetime, epoch, text)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat()
    return str(value)


def region_from_arn(arn: str | None) -> str | None:
    """The region field of an ARN (``arn:partition:service:region:account:resource``)."""
    parts = (arn or "").split(":")
    return (parts[3] or None) if len(parts) > 5 and parts[0] == "arn" else None


def compact_verdict(describe: Mapping[str, Any], endpoint_url: str | None = None) -> dict[str, Any]:
    """The small, JSON-safe summary that goes to XCom instead of the whole describe response.

    ``endpoint_url`` is the SageMaker endpoint the response came from; a non-AWS one (the local
    endpoint) makes ``job_url`` the job's log there instead of the console page.
    """
    job_name = describe["TrainingJobName"]
    rules = [
        {
            "name": status.get("RuleConfigurationName"),
            "status": status.get("RuleEvaluationStatus"),
            "details": status.get("StatusDetails"),
            "last_modified": _iso(status.get("LastModifiedTime")),
        }
        for status in describe.get("DebugRuleEvaluationStatuses") or []
    ]
    verdict: dict[str, Any] = {
        "job_name": job_name,
        "training_status": describe.get("TrainingJobStatus"),
        "secondary_status": describe.get("SecondaryStatus"),
        "final_metrics": {
            metric["MetricName"]: float(metric["Value"])
            for metric in describe.get("FinalMetricDataList") or []
            if "MetricName" in metric and "Value" in metric
        },
        "rules": rules,
        "issues_found": [rule["name"] for rule in rules if rule["status"] == "IssuesFound"],
        "training_start_time": _iso(describe.get("TrainingStartTime")),
        "training_end_time": _iso(describe.get("TrainingEndTime")),
        "job_url": training_job_url(
            job_name, region_from_arn(describe.get("TrainingJobArn")) or "", endpoint_url=endpoint_url
        ),
    }
    if describe.get("FailureReason"):
        verdict["failure_reason"] = describe["FailureReason"]
    verdict["transient_failure"] = is_transient_failure(describe.get("TrainingJobStatus"), describe.get("FailureReason"))
    return verdict


@dataclass(frozen=True)
class RulePolicy:
    """What a rule's final status does to the task.

    ``issues_found``: ``"fail"`` the task, or ``"continue"`` (the alert still fires).
    ``error`` (the rule ended Error or Stopped without an answer): ``"fail"`` or ``"warn"``.
    """

    issues_found: IssuesFoundAction = "fail"
    error: ErrorAction = "fail"

    def __post_init__(self) -> None:
        if self.issues_found not in ("fail", "continue"):
            raise ValueError(
                f"RulePolicy.issues_found must be 'fail' or 'continue', got {self.issues_found!r}"
            )
        if self.error not in ("fail", "warn"):
            raise ValueError(f"RulePolicy.error must be 'fail' or 'warn', got {self.error!r}")

    @classmethod
    def coerce(cls, value: RulePolicy | Mapping[str, Any], *, where: str) -> RulePolicy:
        """Accept a RulePolicy or a plain mapping (DAG params, templated JSON)."""
        if isinstance(value, RulePolicy):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{where} must be a RulePolicy or a mapping, got {type(value).__name__}")
        unknown = set(value) - {"issues_found", "error"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}; allowed: issues_found, error")
        return cls(**value)


def parse_rule_policies(
    policies: Mapping[str, RulePolicy | Mapping[str, Any]] | None,
) -> dict[str, RulePolicy]:
    """Validate a ``{rule name | "*": policy}`` mapping; ``"*"`` is the default for unnamed rules."""
    if policies is None:
        return {}
    if not isinstance(policies, Mapping):
        raise TypeError(f"rule policies must be a mapping of rule name to policy, got {type(policies).__name__}")
    return {
        str(name): RulePolicy.coerce(policy, where=f"policy for rule {name!r}")
        for name, policy in policies.items()
    }


@dataclass(frozen=True)
class Outcome:
    """The decision for a terminal verdict: fail with a message, or succeed (possibly with warnings)."""

    failed: bool
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: The training failed for a transient reason (see :data:`TRANSIENT_FAILURE_PREFIXES`): a new job may succeed.
    transient: bool = False


def decide(
    verdict: Mapping[str, Any],
    policies: Mapping[str, RulePolicy | Mapping[str, Any]] | None = None,
) -> Outcome:
    """Apply per-rule policies to a terminal verdict.

    Training Failed/Stopped always fails (with its FailureReason). Every failing reason is named in
    the message, so one task failure tells the whole story.
    """
    parsed = parse_rule_policies(policies)
    default = parsed.get(DEFAULT_POLICY_KEY, RulePolicy())
    job_name = verdict.get("job_name")
    failures: list[str] = []
    warnings: list[str] = []

    training_status = verdict.get("training_status")
    transient = is_transient_failure(training_status, verdict.get("failure_reason"))
    if transient:
        failures.append(
            f"training job {job_name!r} ended Failed for a transient reason, not because of its data or settings: "
            f"{verdict['failure_reason'].rstrip('. ')}. A new job may succeed: run start_training again (clear it and the "
            f"tasks after it); a job that ended Failed is never re-attached, the next try starts one under a new name"
        )
    elif training_status in ("Failed", "Stopped"):
        reason = verdict.get("failure_reason") or "no FailureReason given"
        failures.append(f"training job {job_name!r} ended {training_status}: {reason}")
    elif training_status != "Completed":
        failures.append(f"training job {job_name!r} is not terminal (status {training_status!r})")

    rule_names = {rule.get("name") for rule in verdict.get("rules") or []}
    for name in sorted(set(parsed) - rule_names - {DEFAULT_POLICY_KEY}):
        warnings.append(
            f"a policy names rule {name!r}, which training job {job_name!r} does not have "
            f"(its rules: {sorted(n for n in rule_names if n)})"
        )

    for rule in verdict.get("rules") or []:
        name, status, details = rule.get("name"), rule.get("status"), rule.get("details")
        policy = parsed.get(name, default)
        suffix = f": {details}" if details else ""
        if status == "IssuesFound":
            text = f"Debugger rule {name!r} found issues in training job {job_name!r}{suffix}"
            (failures if policy.issues_found == "fail" else warnings).append(text)
        elif status in RULE_WITHOUT_VERDICT_STATUSES:
            text = f"Debugger rule {name!r} of training job {job_name!r} ended {status}{suffix}"
            (failures if policy.error == "fail" else warnings).append(text)
        elif status != "NoIssuesFound":
            failures.append(f"Debugger rule {name!r} of training job {job_name!r} is not terminal ({status})")

    if failures:
        return Outcome(failed=True, message="; ".join(failures), warnings=warnings, transient=transient)
    return Outcome(failed=False, warnings=warnings)
