"""Terminal detection, compact verdict and rule policies, from DescribeTrainingJob responses.

``describe_response`` builds responses that pass botocore's SageMaker model, so the sensor and
trigger tests can feed the same responses through botocore's Stubber.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from sm_explain_ops.verdict import (
    RulePolicy,
    compact_verdict,
    decide,
    is_terminal,
    parse_rule_policies,
    region_from_arn,
)

JOB = "adult-xgb-2024-01-01-v1"
REGION = "eu-west-1"
T0 = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


def describe_response(
    training: str = "InProgress",
    rules: dict[str, str | tuple[str, str]] | None = None,
    *,
    job_name: str = JOB,
    failure_reason: str | None = None,
    configured_rules: list[str] | None = None,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A DescribeTrainingJob response; ``rules`` maps rule name to status or (status, details)."""
    rules = rules or {}
    secondary = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}
    response: dict[str, Any] = {
        "TrainingJobName": job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{job_name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/adult/v1/training/{job_name}/output/model.tar.gz"},
        "TrainingJobStatus": training,
        "SecondaryStatus": secondary[training],
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": T0,
        "TrainingStartTime": T0 + dt.timedelta(minutes=1),
        "DebugRuleConfigurations": [
            {"RuleConfigurationName": name, "RuleEvaluatorImage": "rules:latest"}
            for name in (configured_rules if configured_rules is not None else list(rules))
        ],
        "DebugRuleEvaluationStatuses": [],
    }
    for name, status in rules.items():
        status, details = status if isinstance(status, tuple) else (status, None)
        entry = {
            "RuleConfigurationName": name,
            "RuleEvaluationJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/{name.lower()}",
            "RuleEvaluationStatus": status,
            "LastModifiedTime": T0 + dt.timedelta(minutes=5),
        }
        if details:
            entry["StatusDetails"] = details
        response["DebugRuleEvaluationStatuses"].append(entry)
    if training != "InProgress":
        response["TrainingEndTime"] = T0 + dt.timedelta(minutes=4)
    if failure_reason:
        response["FailureReason"] = failure_reason
    if metrics:
        response["FinalMetricDataList"] = [
            {"MetricName": name, "Value": value, "Timestamp": T0} for name, value in metrics.items()
        ]
    return response


LOSS_DETAILS = "RuleEvaluationConditionMet: train-logloss did not decrease between step 10 and step 20"


@pytest.mark.parametrize(
    ("training", "rules", "terminal"),
    [
        ("InProgress", {"LossNotDecreasing": "InProgress"}, False),
        ("Completed", {"LossNotDecreasing": "InProgress"}, False),
        ("Completed", {"LossNotDecreasing": "Stopping"}, False),
        ("Completed", {"LossNotDecreasing": "NoIssuesFound", "Overfit": "InProgress"}, False),
        ("Completed", {"LossNotDecreasing": "NoIssuesFound"}, True),
        ("Completed", {"LossNotDecreasing": "IssuesFound", "Overfit": "Error"}, True),
        ("Completed", {}, True),
        ("Failed", {"LossNotDecreasing": "Stopped"}, True),
        ("Stopped", {"LossNotDecreasing": "InProgress"}, False),
        ("Stopped", {"LossNotDecreasing": "Stopped"}, True),
    ],
)
def test_terminal_only_when_training_and_every_rule_have_ended(
    training: str, rules: dict[str, str], terminal: bool
) -> None:
    assert is_terminal(describe_response(training, rules)) is terminal


def test_a_configured_rule_not_yet_reported_keeps_a_completed_job_waiting() -> None:
    describe = describe_response("Completed", {"LossNotDecreasing": "NoIssuesFound"},
                                 configured_rules=["LossNotDecreasing", "Overfit"])
    assert not is_terminal(describe)
    failed = describe_response("Failed", {}, configured_rules=["LossNotDecreasing"], failure_reason="boom")
    assert is_terminal(failed), "a rule can never start after training failed"


def test_compact_verdict_is_small_json_and_names_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    describe = describe_response(
        "Completed",
        {"LossNotDecreasing": ("IssuesFound", LOSS_DETAILS), "Overfit": "NoIssuesFound"},
        metrics={"validation:logloss": 0.31, "train:logloss": 0.12},
    )
    verdict = compact_verdict(describe)
    assert json.loads(json.dumps(verdict)) == verdict
    assert verdict["job_name"] == JOB
    assert verdict["training_status"] == "Completed"
    assert verdict["secondary_status"] == "Completed"
    assert verdict["final_metrics"] == {"validation:logloss": 0.31, "train:logloss": 0.12}
    assert verdict["rules"] == [
        {"name": "LossNotDecreasing", "status": "IssuesFound", "details": LOSS_DETAILS,
         "last_modified": "2024-01-01T12:05:00+00:00"},
        {"name": "Overfit", "status": "NoIssuesFound", "details": None,
         "last_modified": "2024-01-01T12:05:00+00:00"},
    ]
    assert verdict["issues_found"] == ["LossNotDecreasing"]
    assert verdict["training_start_time"] == "2024-01-01T12:01:00+00:00"
    assert verdict["training_end_time"] == "2024-01-01T12:04:00+00:00"
    assert "failure_reason" not in verdict
    assert JOB in verdict["job_url"] and REGION in verdict["job_url"]
    assert "ModelArtifacts" not in json.dumps(verdict)


def test_compact_verdict_links_the_local_endpoint_log_and_keeps_the_failure_reason() -> None:
    describe = describe_response("Failed", {}, failure_reason="AlgorithmError: eta must be > 0")
    verdict = compact_verdict(describe, endpoint_url="http://127.0.0.1:8765")
    assert verdict["failure_reason"] == "AlgorithmError: eta must be > 0"
    assert verdict["job_url"] == f"http://127.0.0.1:8765/jobs/{JOB}/log"


def test_timestamps_from_a_json_round_trip_still_become_iso() -> None:
    describe = describe_response("Completed", {})
    describe["TrainingStartTime"] = T0.timestamp()
    describe["TrainingEndTime"] = "2024-01-01T12:04:00+00:00"
    verdict = compact_verdict(describe)
    assert verdict["training_start_time"] == "2024-01-01T12:00:00+00:00"
    assert verdict["training_end_time"] == "2024-01-01T12:04:00+00:00"


def test_an_aws_endpoint_links_the_console_and_the_region_comes_from_the_arn() -> None:
    verdict = compact_verdict(describe_response("Completed", {}),
                              endpoint_url=f"https://api.sagemaker.{REGION}.amazonaws.com")
    assert verdict["job_url"].startswith(f"https://{REGION}.console.aws.amazon.com/sagemaker/")
    assert verdict["job_url"].endswith(f"/jobs/{JOB}")
    assert region_from_arn(f"arn:aws:sagemaker:{REGION}:1:training-job/x") == REGION
    assert region_from_arn("not-an-arn") is None


def _verdict(training: str, rules: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return compact_verdict(describe_response(training, rules, **kwargs))


def test_default_policy_fails_on_issues_found_naming_rule_job_and_details() -> None:
    outcome = decide(_verdict("Completed", {"LossNotDecreasing": ("IssuesFound", LOSS_DETAILS)}))
    assert outcome.failed
    assert "LossNotDecreasing" in outcome.message and JOB in outcome.message and LOSS_DETAILS in outcome.message


def test_continue_policy_succeeds_with_a_warning() -> None:
    verdict = _verdict("Completed", {"LossNotDecreasing": ("IssuesFound", LOSS_DETAILS)})
    outcome = decide(verdict, {"LossNotDecreasing": {"issues_found": "continue"}})
    assert not outcome.failed
    assert any("LossNotDecreasing" in w and LOSS_DETAILS in w for w in outcome.warnings)


def test_default_key_applies_to_rules_not_named() -> None:
    verdict = _verdict("Completed", {"LossNotDecreasing": "IssuesFound", "Overfit": "IssuesFound"})
    outcome = decide(verdict, {"*": RulePolicy(issues_found="continue"), "Overfit": RulePolicy()})
    assert outcome.failed
    assert "Overfit" in outcome.message and "LossNotDecreasing" not in outcome.message


@pytest.mark.parametrize("status", ["Error", "Stopped"])
def test_rule_without_an_answer_fails_or_warns_per_policy(status: str) -> None:
    verdict = _verdict("Completed", {"Overfit": (status, "rule container exited with code 1")})
    failing = decide(verdict)
    assert failing.failed and "Overfit" in failing.message and status in failing.message
    warning = decide(verdict, {"Overfit": {"error": "warn"}})
    assert not warning.failed and "rule container exited with code 1" in warning.warnings[0]


@pytest.mark.parametrize("training", ["Failed", "Stopped"])
def test_failed_or_stopped_training_fails_whatever_the_rules_policy(training: str) -> None:
    verdict = _verdict(training, {"LossNotDecreasing": "Stopped"}, failure_reason="ClientError: no data in train")
    outcome = decide(verdict, {"*": {"issues_found": "continue", "error": "warn"}})
    assert outcome.failed
    assert training in outcome.message and "ClientError: no data in train" in outcome.message


def test_all_clear_succeeds_without_warnings() -> None:
    outcome = decide(_verdict("Completed", {"LossNotDecreasing": "NoIssuesFound"}))
    assert not outcome.failed and outcome.message is None and outcome.warnings == []


def test_a_policy_for_an_unknown_rule_is_reported() -> None:
    outcome = decide(_verdict("Completed", {"LossNotDecreasing": "NoIssuesFound"}),
                     {"LossNotDecreasin": {"issues_found": "continue"}})
    assert not outcome.failed
    assert "LossNotDecreasin" in outcome.warnings[0] and "LossNotDecreasing" in outcome.warnings[0]


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"Overfit": {"issues_found": "ignore"}}, "issues_found must be 'fail' or 'continue'"),
        ({"Overfit": {"error": "continue"}}, "error must be 'fail' or 'warn'"),
        ({"Overfit": {"on_error": "warn"}}, "unknown keys ['on_error']"),
        ({"Overfit": "continue"}, "must be a RulePolicy or a mapping"),
        (["Overfit"], "must be a mapping of rule name to policy"),
    ],
)
def test_bad_policies_are_refused_with_a_message_naming_the_problem(policies: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rule_policies(policies)


@pytest.mark.parametrize(
    "reason",
    [
        "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML "
        "instance type.",
        "InternalServerError: We encountered an internal error. Please try again.",
    ],
)
def test_a_transient_failure_is_named_transient_with_what_starts_a_new_job(reason: str) -> None:
    verdict = _verdict("Failed", {"LossNotDecreasing": "Stopped"}, failure_reason=reason)
    assert verdict["transient_failure"] is True
    outcome = decide(verdict, {"*": {"error": "warn"}})
    assert outcome.failed and outcome.transient
    assert "transient reason" in outcome.message and reason.rstrip(".") + ". A new job" in outcome.message
    assert "run start_training again" in outcome.message and "new name" in outcome.message


@pytest.mark.parametrize(
    ("training", "reason"),
    [("Failed", "AlgorithmError: eta must be > 0"), ("Failed", "ClientError: no data in train"),
     ("Stopped", None), ("Completed", None), ("Failed", "Error: InternalServerError in the algorithm's own log")],
)
def test_failures_of_the_job_itself_are_not_transient(training: str, reason: str | None) -> None:
    verdict = _verdict(training, {}, failure_reason=reason)
    assert verdict["transient_failure"] is False
    outcome = decide(verdict)
    assert not outcome.transient
    assert outcome.message is None or "transient" not in outcome.message
