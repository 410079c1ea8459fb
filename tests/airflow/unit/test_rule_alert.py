"""Rule alerts: text, templated Airflow notifiers, plain callables, failures, and SNS on moto."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from airflow.sdk import BaseNotifier
from moto import mock_aws

from sm_explain_ops.notifiers.rule_alert import fire_rule_alerts, rule_alerts, sns_rule_alert_notifier
from sm_explain_ops.verdict import compact_verdict
from tests.airflow.unit.test_verdict import JOB, LOSS_DETAILS, describe_response

REGION = "us-east-1"


def _verdict(rules: dict[str, Any]) -> dict[str, Any]:
    return compact_verdict(describe_response("Completed", rules))


class TemplatedNotifier(BaseNotifier):
    """An Airflow notifier whose message is a template, like the provider's notifiers."""

    template_fields = ("message",)
    sent: list[str] = []

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        TemplatedNotifier.sent.append(self.message)


def test_one_alert_per_issues_found_rule_with_everything_needed() -> None:
    verdict = _verdict({"LossNotDecreasing": ("IssuesFound", LOSS_DETAILS), "Overfit": "NoIssuesFound",
                        "VanishingGradient": "Error"})
    (alert,) = rule_alerts(verdict)
    assert alert["rule_name"] == "LossNotDecreasing"
    assert alert["job_name"] == JOB
    assert alert["status"] == "IssuesFound"
    assert alert["status_details"] == LOSS_DETAILS
    assert alert["job_url"] == verdict["job_url"]
    for part in ("LossNotDecreasing", JOB, LOSS_DETAILS, verdict["job_url"], "RuleEvaluationConditionMet"):
        assert part in alert["text"]
    assert len(alert["subject"]) <= 100


def test_long_names_keep_the_sns_subject_within_its_limit() -> None:
    long_job = "j" * 63
    (alert,) = rule_alerts(compact_verdict(describe_response("Completed", {"r" * 63: "IssuesFound"}, job_name=long_job)))
    assert len(alert["subject"]) == 100 and alert["subject"].endswith("...")


def test_templated_notifier_renders_each_alert_and_stays_reusable() -> None:
    TemplatedNotifier.sent = []
    notifier = TemplatedNotifier(message="{{ rule_alert.rule_name }} on {{ rule_alert.job_name }} ({{ ti_note }})")
    verdict = _verdict({"LossNotDecreasing": "IssuesFound", "Overfit": "IssuesFound"})
    failures = fire_rule_alerts([notifier], {"ti_note": "from the task context"}, verdict)
    assert failures == []
    assert TemplatedNotifier.sent == [
        f"LossNotDecreasing on {JOB} (from the task context)",
        f"Overfit on {JOB} (from the task context)",
    ]
    assert notifier.message.startswith("{{"), "the configured notifier keeps its template for the next run"


def test_no_alert_when_no_rule_found_issues() -> None:
    calls: list[Any] = []
    fire_rule_alerts(calls.append, {}, _verdict({"LossNotDecreasing": "NoIssuesFound"}))
    assert calls == []


def test_a_failing_notifier_is_logged_and_the_others_still_fire(caplog: pytest.LogCaptureFixture) -> None:
    def broken(context: dict[str, Any]) -> None:
        raise RuntimeError("webhook returned 500")

    received: list[dict[str, Any]] = []
    with caplog.at_level(logging.ERROR):
        failures = fire_rule_alerts([broken, lambda c: received.append(c["rule_alert"])], {},
                                    _verdict({"LossNotDecreasing": "IssuesFound"}))
    assert [str(error) for _, _, error in failures] == ["webhook returned 500"]
    assert "webhook returned 500" in caplog.text and "LossNotDecreasing" in caplog.text
    assert received[0]["rule_name"] == "LossNotDecreasing"


@pytest.fixture
def sns_topic_with_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any, str]]:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="debugger-rule-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="rule-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield topic_arn, sqs, queue_url


def test_sns_notifier_publishes_the_alert_to_the_topic(sns_topic_with_queue: tuple[str, Any, str]) -> None:
    topic_arn, sqs, queue_url = sns_topic_with_queue
    notifier = sns_rule_alert_notifier(topic_arn, aws_conn_id=None, region_name=REGION)
    verdict = _verdict({"LossNotDecreasing": ("IssuesFound", LOSS_DETAILS), "Overfit": "NoIssuesFound"})
    assert fire_rule_alerts([notifier], {}, verdict) == []
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    (envelope,) = [json.loads(message["Body"]) for message in messages]
    assert envelope["TopicArn"] == topic_arn
    assert envelope["Subject"] == f"Debugger IssuesFound: LossNotDecreasing in {JOB}"
    assert envelope["Message"] == rule_alerts(verdict)[0]["text"]
    assert LOSS_DETAILS in envelope["Message"] and verdict["job_url"] in envelope["Message"]
    assert envelope["MessageAttributes"]["rule_name"]["Value"] == "LossNotDecreasing"
    assert envelope["MessageAttributes"]["job_name"]["Value"] == JOB
