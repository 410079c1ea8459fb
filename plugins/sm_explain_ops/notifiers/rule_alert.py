"""Alerts for RuleEvaluationConditionMet: a Debugger rule that ended ``IssuesFound``.

Any Airflow notifier (the provider's ``SnsNotifier``, Slack's ``SlackNotifier``, the SMTP
provider's notifier, your own ``BaseNotifier``) or a plain ``callable(context)`` can be configured.
Each one receives the task context plus ``context["rule_alert"]``, so templated notifier fields
such as ``message="{{ rule_alert.text }}"`` render per alert. Alerts fire whatever the policy
decides (fail or continue), before the task fails, and a broken notifier never hides the verdict.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

Notifier = BaseNotifier | Callable[[dict[str, Any]], Any]

#: SNS refuses subjects longer than 100 characters.
_SUBJECT_LIMIT = 100


def rule_alerts(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One alert per rule that ended IssuesFound, with everything a person needs to act on it."""
    job_name = verdict.get("job_name")
    job_url = verdict.get("job_url")
    alerts = []
    for rule in verdict.get("rules") or []:
        if rule.get("status") != "IssuesFound":
            continue
        details = rule.get("details") or "no details given"
        text = (
            f"SageMaker Debugger rule {rule.get('name')} found issues (RuleEvaluationConditionMet) "
            f"in training job {job_name}.\nDetails: {details}\nJob: {job_url or 'no link available'}"
        )
        subject = f"Debugger IssuesFound: {rule.get('name')} in {job_name}"
        alerts.append(
            {
                "rule_name": rule.get("name"),
                "job_name": job_name,
                "status": "IssuesFound",
                "status_details": rule.get("details"),
                "job_url": job_url,
                "text": text,
                "subject": (subject[: _SUBJECT_LIMIT - 3] + "...") if len(subject) > _SUBJECT_LIMIT else subject,
            }
        )
    return alerts


def normalize_notifiers(notifiers: Notifier | Iterable[Notifier] | None) -> list[Notifier]:
    """A list of notifiers, checked early (at DAG parse time) so a wrong value fails before any job."""
    if notifiers is None:
        return []
    if callable(notifiers):  # a BaseNotifier is callable too
        return [notifiers]
    listed = list(notifiers)
    for notifier in listed:
        if not callable(notifier):
            raise TypeError(f"a notifier must be an Airflow notifier or a callable, got {notifier!r}")
    return listed


def fire_rule_alerts(
    notifiers: Notifier | Sequence[Notifier] | None,
    context: Mapping[str, Any],
    verdict: Mapping[str, Any],
) -> list[tuple[dict[str, Any], Notifier, Exception]]:
    """Call every notifier once per IssuesFound rule; return the (alert, notifier, error) failures.

    A ``BaseNotifier`` renders its template fields in place, irreversibly, so each call gets a
    shallow copy of it; each call also gets its own copy of the context.
    """
    failures: list[tuple[dict[str, Any], Notifier, Exception]] = []
    for alert in rule_alerts(verdict):
        log.warning("%s", alert["text"])
        for notifier in normalize_notifiers(notifiers):
            alert_context = {**context, "rule_alert": dict(alert)}
            target = copy.copy(notifier) if isinstance(notifier, BaseNotifier) else notifier
            try:
                target(alert_context)
            except Exception as error:  # a broken notifier must not hide the verdict
                log.error(
                    "Notifier %r failed to send the alert for rule %s of job %s: %s",
                    notifier,
                    alert["rule_name"],
                    alert["job_name"],
                    error,
                )
                failures.append((alert, notifier, error))
    return failures


class SnsRuleAlertNotifier(SnsNotifier):
    """The provider's SNS notifier, templated to publish the rule alert (text, subject, rule/job/status)."""

    def __init__(
        self,
        *,
        target_arn: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            target_arn=target_arn,
            message="{{ rule_alert.text }}",
            subject="{{ rule_alert.subject }}",
            message_attributes={
                "rule_name": "{{ rule_alert.rule_name }}",
                "job_name": "{{ rule_alert.job_name }}",
                "status": "{{ rule_alert.status }}",
            },
            **kwargs,
        )


def sns_rule_alert_notifier(
    target_arn: str,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
) -> SnsRuleAlertNotifier:
    """The rule-alert SNS notifier for `target_arn` (what the pipeline's `sns_topic_arn` param configures)."""
    return SnsRuleAlertNotifier(target_arn=target_arn, aws_conn_id=aws_conn_id, region_name=region_name)
