"""TrainingAndRulesSensor: poke and reschedule modes through botocore's Stubber, deferral, resume."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    TaskDeferred,
)
from botocore.stub import Stubber

from sm_explain_ops.hooks.job_logs import LogLimits, limits_as_dict
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
from sm_explain_ops.verdict import compact_verdict
from tests.airflow.unit.test_verdict import JOB, LOSS_DETAILS, describe_response

RULE = "LossNotDecreasing"


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


class RecordingNotifier:
    """A plain callable notifier that keeps the alerts it was given."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    def __call__(self, context: dict[str, Any]) -> None:
        self.alerts.append(context["rule_alert"])


def _sensor(**overrides: Any) -> TrainingAndRulesSensor:
    kwargs: dict[str, Any] = {
        "task_id": "wait_for_training_and_rules", "job_name": JOB, "aws_conn_id": None,
        "region_name": "eu-west-1", "deferrable": False,
        "poke_interval": 1 if overrides.get("deferrable") else 0,  # no sleeping between stubbed pokes
    }
    return TrainingAndRulesSensor(**{**kwargs, **overrides})


def _stub(sensor: TrainingAndRulesSensor, answers: list[dict[str, Any] | str]) -> Stubber:
    stubber = Stubber(sensor.hook.conn)
    for answer in answers:
        if isinstance(answer, str):
            stubber.add_client_error("describe_training_job", service_error_code=answer,
                                     service_message=f"{answer} from stub", expected_params={"TrainingJobName": JOB})
        else:
            stubber.add_response("describe_training_job", answer, {"TrainingJobName": JOB})
    stubber.activate()
    return stubber


RISING_LOSS = [
    describe_response("InProgress", {RULE: "InProgress"}),
    describe_response("Completed", {RULE: "InProgress"}),
    describe_response("Completed", {RULE: ("IssuesFound", LOSS_DETAILS)}),
]


@pytest.mark.parametrize("final", ["NoIssuesFound", "Error"])
def test_poke_mode_waits_for_rules_and_returns_the_verdict(final: str) -> None:
    sensor = _sensor(rule_policies={RULE: {"error": "warn"}})
    stubber = _stub(sensor, [
        describe_response("InProgress", {RULE: "InProgress"}),
        describe_response("Completed", {RULE: "InProgress"}),
        describe_response("Completed", {RULE: final}, metrics={"validation:logloss": 0.3}),
    ])
    verdict = sensor.execute({})
    stubber.assert_no_pending_responses()  # exactly one describe per poke, none after the end
    assert verdict["training_status"] == "Completed"
    assert verdict["rules"][0]["status"] == final
    assert verdict["final_metrics"] == {"validation:logloss": 0.3}


def test_issues_found_fails_by_default_after_alerting() -> None:
    notifier = RecordingNotifier()
    sensor = _sensor(notifiers=[notifier])
    _stub(sensor, RISING_LOSS)
    with pytest.raises(AirflowFailException) as failure:
        sensor.execute({})
    assert RULE in str(failure.value) and JOB in str(failure.value) and LOSS_DETAILS in str(failure.value)
    (alert,) = notifier.alerts
    assert alert["rule_name"] == RULE and alert["job_name"] == JOB and alert["status"] == "IssuesFound"
    assert alert["status_details"] == LOSS_DETAILS and JOB in alert["job_url"]


def test_issues_found_with_continue_alerts_and_succeeds() -> None:
    notifier = RecordingNotifier()
    sensor = _sensor(notifiers=notifier, rule_policies={"*": {"issues_found": "continue"}})
    _stub(sensor, RISING_LOSS)
    verdict = sensor.execute({})
    assert verdict["issues_found"] == [RULE]
    assert [alert["rule_name"] for alert in notifier.alerts] == [RULE]


def test_rule_error_fails_under_the_default_policy() -> None:
    sensor = _sensor()
    _stub(sensor, [describe_response("Completed", {RULE: ("Error", "rule process exited with code 1")})])
    with pytest.raises(AirflowFailException, match="rule process exited with code 1"):
        sensor.execute({})


@pytest.mark.parametrize("training", ["Failed", "Stopped"])
def test_failed_or_stopped_training_fails_with_its_reason(training: str) -> None:
    sensor = _sensor(rule_policies={"*": {"issues_found": "continue", "error": "warn"}})
    _stub(sensor, [describe_response(training, {RULE: "Stopped"}, failure_reason="AlgorithmError: eta")])
    with pytest.raises(AirflowFailException, match=f"{training}: AlgorithmError: eta"):
        sensor.execute({})


def test_throttling_in_poke_mode_is_just_not_yet() -> None:
    sensor = _sensor()
    stubber = _stub(sensor, ["ThrottlingException", describe_response("Completed", {RULE: "NoIssuesFound"})])
    assert sensor.execute({})["rules"][0]["status"] == "NoIssuesFound"
    stubber.assert_no_pending_responses()


def test_unknown_job_fails_with_the_api_message() -> None:
    sensor = _sensor()
    _stub(sensor, ["ValidationException"])
    with pytest.raises(AirflowException, match=f"{JOB}.*ValidationException") as failure:
        sensor.execute({})
    assert not isinstance(failure.value, AirflowFailException), "a retry may find the job"


def test_reschedule_mode_releases_the_slot_until_terminal() -> None:
    sensor = _sensor(mode="reschedule", poke_interval=30)
    ti = mock.Mock()
    ti.get_first_reschedule_date.return_value = None
    stubber = _stub(sensor, [
        describe_response("Completed", {RULE: "InProgress"}),
        describe_response("Completed", {RULE: "NoIssuesFound"}),
    ])
    with pytest.raises(AirflowRescheduleException):
        sensor.execute({"ti": ti})
    assert sensor.execute({"ti": ti})["rules"][0]["status"] == "NoIssuesFound"
    stubber.assert_no_pending_responses()


def test_deferrable_by_default_defers_with_the_full_trigger_and_timeout() -> None:
    sensor = _sensor(deferrable=True, poke_interval=45, verify="/etc/ssl/ca.pem",
                     botocore_config={"read_timeout": 5}, timeout=timedelta(hours=30), cancel_on_kill=False,
                     log_limits={"lines_per_poll": 200})
    assert TrainingAndRulesSensor(task_id="t", job_name=JOB).deferrable is True
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingAndRulesTrigger)
    assert trigger.serialize()[1] == {
        "job_name": JOB, "poke_interval": 45.0, "aws_conn_id": None, "region_name": "eu-west-1",
        "verify": "/etc/ssl/ca.pem", "botocore_config": {"read_timeout": 5}, "cancel_on_kill": False,
        "follow_logs": True, "log_limits": {**limits_as_dict(LogLimits()), "lines_per_poll": 200},
    }
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(hours=30)


def test_default_timeout_is_a_week() -> None:
    sensor = TrainingAndRulesSensor(task_id="t", job_name=JOB)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.timeout == timedelta(days=7)


def _event(training: str, rules: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {"status": "success", "verdict": compact_verdict(describe_response(training, rules, **kwargs))}


def test_execute_complete_applies_policy_and_alerts() -> None:
    notifier = RecordingNotifier()
    event = _event("Completed", {RULE: ("IssuesFound", LOSS_DETAILS)})
    with pytest.raises(AirflowFailException, match=RULE):
        _sensor(deferrable=True, notifiers=[notifier]).execute_complete({}, event)
    verdict = _sensor(deferrable=True, notifiers=[notifier],
                      rule_policies={RULE: {"issues_found": "continue"}}).execute_complete({}, event)
    assert verdict == event["verdict"]
    assert len(notifier.alerts) == 2, "the alert fires whether the policy fails or continues"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "event is None"),
        ({"status": "error", "message": "DescribeTrainingJob for 'x' failed: AccessDenied"}, "AccessDenied"),
        ({"status": "timeout"}, "unexpected event"),
        ({"status": "success", "verdict": "Completed"}, "unexpected event"),
        ({"status": "success", "verdict": {"job_name": "another-job"}}, "another-job"),
    ],
)
def test_execute_complete_rejects_bad_events(event: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(AirflowException, match=message):
        _sensor(deferrable=True).execute_complete({}, event)


def test_a_failing_notifier_never_hides_the_verdict() -> None:
    def broken(context: dict[str, Any]) -> None:
        raise ConnectionError("SMTP is down")

    later = RecordingNotifier()
    sensor = _sensor(deferrable=True, notifiers=[broken, later], rule_policies={"*": {"issues_found": "continue"}})
    verdict = sensor.execute_complete({}, _event("Completed", {RULE: "IssuesFound"}))
    assert verdict["issues_found"] == [RULE] and len(later.alerts) == 1
    with pytest.raises(AirflowFailException, match=RULE):
        _sensor(deferrable=True, notifiers=[broken]).execute_complete({}, _event("Completed", {RULE: "IssuesFound"}))


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="deferrable=False"):
        TrainingAndRulesSensor(task_id="t", job_name=JOB, mode="reschedule")
    with pytest.raises(ValueError, match="issues_found must be 'fail' or 'continue'"):
        _sensor(rule_policies={RULE: {"issues_found": "retry"}})
    with pytest.raises(TypeError, match="notifier must be"):
        _sensor(notifiers=["sns"])


def test_templated_fields_and_policies_checked_after_rendering() -> None:
    assert {"job_name", "rule_policies", "aws_conn_id", "region_name", "verify"} <= set(
        TrainingAndRulesSensor.template_fields
    )
    sensor = _sensor(rule_policies="{{ params.policies }}")
    sensor.rule_policies = {RULE: {"error": "ignore"}}  # what rendering could produce
    with pytest.raises(ValueError, match="error must be 'fail' or 'warn'"):
        sensor.execute({})


def test_policies_given_as_a_dag_param_are_checked_after_rendering() -> None:
    from airflow.sdk import DAG

    with DAG(dag_id="policies", schedule=None) as dag:
        sensor = _sensor(rule_policies=dag.param("rule_policies"))  # no value yet: not checked at parse time
    sensor.rule_policies = {RULE: {"issues_found": "retry"}}  # what rendering could produce
    with pytest.raises(ValueError, match="issues_found must be 'fail' or 'continue'"):
        sensor.execute({})


@pytest.mark.reliability
def test_a_capacity_error_fails_the_wait_saying_it_is_transient(reliability) -> None:
    reason = "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML " \
             "instance type."
    sensor = _sensor()
    _stub(sensor, [describe_response("InProgress", {RULE: "InProgress"}),
                   describe_response("Failed", {RULE: "Stopped"}, failure_reason=reason)])
    with pytest.raises(AirflowFailException) as failure:
        sensor.execute({})
    message = str(failure.value)
    assert "transient reason" in message and reason.rstrip(".") + ". A new job" in message and JOB in message
    assert "run start_training again" in message
    reliability.survived("wait sensor", "training job Failed with CapacityError",
                         "the task fails naming the failure transient and how a new job is started", message)
