"""TrainingAndRulesTrigger: status sequences through a real aiobotocore client stubbed by botocore."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from sm_explain_ops.hooks.job_logs import LogLimits, limits_as_dict
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import (
    TrainingAndRulesTrigger,
    backoff_delay,
    client_config,
    is_retryable_error,
)
from tests.airflow.unit.test_verdict import JOB, LOSS_DETAILS, describe_response

POKE = 0.02


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


class StubbedSageMaker:
    """Replaces ``SageMakerHook.get_async_conn``: builds the real client, then stubs its answers.

    Each answer is a response dict or an error code (str); every describe call's time is recorded.
    """

    def __init__(self, answers: list[dict[str, Any] | str]) -> None:
        self.answers = answers
        self.hooks: list[SageMakerHook] = []
        self.clients: list[Any] = []
        self.call_times: list[float] = []
        self.contexts: list[_StubbedContext] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = SageMakerHook.get_async_conn
        stub = self

        async def get_async_conn(hook: SageMakerHook) -> Any:
            stub.hooks.append(hook)
            return _StubbedContext(await original(hook), stub)

        monkeypatch.setattr(SageMakerHook, "get_async_conn", get_async_conn)


class _StubbedContext:
    def __init__(self, context: Any, stub: StubbedSageMaker) -> None:
        self.context, self.stub = context, stub

    async def __aenter__(self) -> Any:
        client = await self.context.__aenter__()
        stubber = Stubber(client)
        for answer in self.stub.answers:
            if isinstance(answer, str):
                stubber.add_client_error(
                    "describe_training_job", service_error_code=answer, service_message=f"{answer} from stub",
                    http_status_code=400 if answer != "InternalFailure" else 500,
                    expected_params={"TrainingJobName": JOB},
                )
            else:
                stubber.add_response("describe_training_job", answer, {"TrainingJobName": JOB})
        stubber.activate()
        client.meta.events.register(
            "provide-client-params.sagemaker.DescribeTrainingJob", lambda **_: self.stub.call_times.append(time.monotonic())
        )
        self.stubber = stubber
        self.stub.clients.append(client)
        self.stub.contexts.append(self)
        return client

    async def __aexit__(self, *exc: Any) -> None:
        await self.context.__aexit__(*exc)


def _trigger(**overrides: Any) -> TrainingAndRulesTrigger:
    kwargs: dict[str, Any] = {
        "job_name": JOB, "poke_interval": POKE, "aws_conn_id": None, "region_name": "eu-west-1",
        "verify": False, "botocore_config": {"read_timeout": 7},
    }
    return TrainingAndRulesTrigger(**{**kwargs, **overrides})


def _events(trigger: TrainingAndRulesTrigger) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=30))


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedSageMaker]:
    stubbed = StubbedSageMaker([])
    stubbed.install(monkeypatch)
    yield stubbed
    for context in stubbed.contexts:
        context.stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("final_rule", "details"),
    [("NoIssuesFound", None), ("IssuesFound", LOSS_DETAILS), ("Error", "rule process exited with code 1")],
)
def test_waits_for_training_then_rules_and_sends_one_verdict(
    stub: StubbedSageMaker, final_rule: str, details: str | None
) -> None:
    stub.answers = [
        describe_response("InProgress", {"LossNotDecreasing": "InProgress"}),
        describe_response("Completed", {"LossNotDecreasing": "InProgress"}),
        describe_response("Completed", {"LossNotDecreasing": (final_rule, details) if details else final_rule}),
    ]
    events = _events(_trigger())
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    verdict = payload["verdict"]
    assert verdict["job_name"] == JOB and verdict["training_status"] == "Completed"
    assert verdict["rules"][0]["name"] == "LossNotDecreasing"
    assert verdict["rules"][0]["status"] == final_rule
    assert verdict["rules"][0]["details"] == details
    assert verdict["issues_found"] == (["LossNotDecreasing"] if final_rule == "IssuesFound" else [])
    assert len(stub.call_times) == 3, "exactly one describe per status"
    gaps = [b - a for a, b in zip(stub.call_times, stub.call_times[1:], strict=False)]
    assert all(gap >= POKE * 0.95 for gap in gaps), f"describes closer than poke_interval: {gaps}"


@pytest.mark.parametrize(("training", "reason"), [("Failed", "AlgorithmError: bad eta"), ("Stopped", None)])
def test_failed_or_stopped_training_is_a_verdict_not_an_error(
    stub: StubbedSageMaker, training: str, reason: str | None
) -> None:
    stub.answers = [
        describe_response("InProgress", {"LossNotDecreasing": "InProgress"}),
        describe_response(training, {"LossNotDecreasing": "Stopped"}, failure_reason=reason),
    ]
    (event,) = _events(_trigger())
    assert event.payload["status"] == "success"
    assert event.payload["verdict"]["training_status"] == training
    assert event.payload["verdict"].get("failure_reason") == reason


def test_throttling_and_transient_errors_back_off_and_never_fail(stub: StubbedSageMaker) -> None:
    stub.answers = [
        describe_response("InProgress", {"LossNotDecreasing": "InProgress"}),
        "ThrottlingException",
        "ThrottlingException",
        "InternalFailure",
        describe_response("Completed", {"LossNotDecreasing": "NoIssuesFound"}),
    ]
    (event,) = _events(_trigger())
    assert event.payload["status"] == "success"
    assert len(stub.call_times) == 5
    gaps = [b - a for a, b in zip(stub.call_times, stub.call_times[1:], strict=False)]
    assert all(gap >= POKE * 0.95 for gap in gaps), gaps
    # after three failures in a row the wait is at least 2**3 * 0.5 poke intervals
    assert gaps[-1] >= 4 * POKE * 0.95, gaps


def test_a_job_that_does_not_exist_ends_with_an_error_event(stub: StubbedSageMaker) -> None:
    stub.answers = ["ValidationException"]
    (event,) = _events(_trigger())
    assert event.payload["status"] == "error"
    assert JOB in event.payload["message"] and "ValidationException" in event.payload["message"]
    assert len(stub.call_times) == 1


def test_region_verify_and_botocore_config_reach_the_client(stub: StubbedSageMaker) -> None:
    stub.answers = [describe_response("Completed", {})]
    (event,) = _events(_trigger())
    verdict = event.payload["verdict"]
    (hook,) = stub.hooks
    (client,) = stub.clients
    assert hook.region_name == "eu-west-1"
    assert hook.verify is False
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.read_timeout == 7
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert verdict["job_url"].startswith("https://eu-west-1.console.aws.amazon.com/sagemaker/")


def test_serialize_round_trips() -> None:
    trigger = _trigger(poke_interval=45, verify="/etc/ca.pem", botocore_config={"retries": {"mode": "adaptive"}},
                       cancel_on_kill=False, follow_logs=False, log_limits={"line_bytes": 1000})
    classpath, kwargs = trigger.serialize()
    assert classpath == "sm_explain_ops.triggers.training_rules.TrainingAndRulesTrigger"
    assert kwargs == {
        "job_name": JOB, "poke_interval": 45, "aws_conn_id": None, "region_name": "eu-west-1",
        "verify": "/etc/ca.pem", "botocore_config": {"retries": {"mode": "adaptive"}}, "cancel_on_kill": False,
        "follow_logs": False, "log_limits": {**limits_as_dict(LogLimits()), "line_bytes": 1000},
    }
    module_name, class_name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    assert cls(**kwargs).serialize() == (classpath, kwargs)


def test_client_config_keeps_an_explicit_retry_setting() -> None:
    assert client_config(None) == {"retries": {"mode": "standard", "total_max_attempts": 1}}
    assert client_config({"retries": {"mode": "adaptive", "max_attempts": 5}})["retries"]["mode"] == "adaptive"


def test_backoff_grows_is_capped_and_never_undercuts_the_interval() -> None:
    assert all(backoff_delay(60, 1) >= 60 for _ in range(50))
    assert all(backoff_delay(60, 20) <= 300 for _ in range(50))
    assert min(backoff_delay(1, 6) for _ in range(50)) >= 32


def test_retryable_classification_follows_botocore_standard_mode() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "DescribeTrainingJob")

    assert is_retryable_error(client_error("ThrottlingException", 400))
    assert is_retryable_error(client_error("InternalFailure", 500))
    assert is_retryable_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not is_retryable_error(client_error("ValidationException", 400))
    assert not is_retryable_error(client_error("AccessDeniedException", 400))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="job_name"):
        TrainingAndRulesTrigger(job_name="")
    with pytest.raises(ValueError, match="poke_interval must be positive"):
        TrainingAndRulesTrigger(job_name=JOB, poke_interval=0)


@pytest.mark.reliability
def test_backoff_survives_ten_thousand_consecutive_errors(reliability) -> None:
    # An endpoint that keeps throttling for days: the count only grows, the wait stays capped.
    delays = [backoff_delay(60, failures) for failures in (1_000, 1_100, 10_000, 10**9)]
    assert all(150 <= delay <= 300 for delay in delays), delays
    assert all(0.5 <= backoff_delay(0.02, 10_000) <= 300 for _ in range(20))
    reliability.survived("wait trigger", "10,000 consecutive throttled/transient describes",
                         "backoff stays between half the 300 s cap and the cap, no OverflowError",
                         f"delays after 1,000 / 1,100 / 10,000 / 10^9 errors: {[round(d) for d in delays]} s")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.reliability
def test_a_kill_while_the_endpoint_is_unreachable_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], reliability
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{_closed_port()}")
    one_try = {"retries": {"mode": "standard", "total_max_attempts": 1}, "connect_timeout": 1}
    trigger = _trigger(botocore_config=one_try)
    sensor = TrainingAndRulesSensor(task_id="wait", job_name=JOB, aws_conn_id=None, region_name="eu-west-1",
                                    deferrable=False, botocore_config=one_try)
    asyncio.run(asyncio.wait_for(trigger.on_kill(), timeout=30))  # the triggerer's way: awaited, bounded
    sensor.on_kill()
    # Airflow's structlog writes the task log to stdout.
    logged = [line for line in capsys.readouterr().out.splitlines() if "[error" in line]
    assert len(logged) == 2, logged
    assert all(f"Could not stop training job {JOB}; it may still be running" in line for line in logged), logged
    assert f"stop-training-job --training-job-name {JOB}" in logged[0]
    reliability.survived("wait trigger and sensor", "the wait is killed while SageMaker is unreachable",
                         "the kill goes on; the log says the job may still run and how to stop it",
                         logged[0].split("]", 1)[1])
