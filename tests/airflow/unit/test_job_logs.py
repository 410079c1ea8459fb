"""JobLogFollower: the new CloudWatch lines of SageMaker jobs, bounded per poll, never twice across pokes, restarts
(its state handed to a new follower) and reschedules; against an in-memory CloudWatch and against moto's."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from sm_explain_ops.hooks import job_logs
from sm_explain_ops.hooks.job_logs import (
    PROCESSING_LOG_GROUP,
    TRAINING_LOG_GROUP,
    JobLogFollower,
    LogLimits,
    poll_training_job,
    processing_log_source,
    rule_job_name,
    rule_log_sources,
    training_log_source,
)
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
from tests.airflow.unit.cloudwatch_fake import FakeCloudWatchLogs
from tests.airflow.unit.test_verdict import JOB, describe_response

NOW = 1_800_000_000.0  # seconds; the jobs' lines are written just after
STREAM = f"{JOB}/algo-1-1800000000"


class RecordingLog:
    """A logger that keeps the formatted lines (what the task log would show)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args if args else message)

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args if args else message)

    def job_lines(self, prefix: str = "[training algo-1] ") -> list[str]:
        return [line[len(prefix):] for line in self.lines if line.startswith(prefix)]


def _follower(fake: Any, log: RecordingLog, **limits: Any) -> JobLogFollower:
    state = limits.pop("state", None)
    follower = JobLogFollower(lambda: fake, log, limits=LogLimits(**limits), state=state, clock=lambda: NOW)
    follower.follow(training_log_source(JOB))
    return follower


def _write(fake: FakeCloudWatchLogs, start: int, count: int, stream: str = STREAM, ms: int = 1000) -> None:
    fake.put(TRAINING_LOG_GROUP, stream, [f"line {i}" for i in range(start, start + count)],
             timestamp=int(NOW * 1000) + ms)


def test_each_poll_logs_what_arrived_since_the_last_in_order() -> None:
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    follower = _follower(fake, log)
    assert follower.poll() == 0  # no log group yet: nothing, silently
    assert log.lines == [] and log.warnings == []
    _write(fake, 0, 5)
    assert follower.poll() == 5
    assert follower.poll() == 0
    _write(fake, 5, 3, ms=2000)
    assert follower.poll() == 3
    assert log.job_lines() == [f"line {i}" for i in range(8)]


def test_a_poll_is_bounded_in_lines_and_requests_and_the_backlog_follows_without_loss_or_repeats() -> None:
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    follower = _follower(fake, log, lines_per_poll=500, requests_per_poll=6)
    _write(fake, 0, 1234)
    counts = []
    for _ in range(4):
        before = sum(fake.calls.values())
        counts.append(follower.poll())
        assert sum(fake.calls.values()) - before <= 6
    assert counts == [500, 500, 234, 0]
    assert log.job_lines() == [f"line {i}" for i in range(1234)]
    capped = [line for line in log.lines if "the most one poll logs" in line]
    assert len(capped) == 2 and capped[0].endswith("the rest follows")


def test_bytes_are_capped_per_poll_and_per_line_resuming_inside_a_page() -> None:
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    follower = _follower(fake, log, bytes_per_poll=4096, line_bytes=1024)
    messages = [f"{i:04d}" + "x" * 596 for i in range(20)] + ["huge " + "y" * 100_000]
    fake.put(TRAINING_LOG_GROUP, STREAM, messages, timestamp=int(NOW * 1000) + 1)
    polls = []
    while (count := follower.poll()) or not polls or polls[-1]:
        polls.append(count)
    assert polls[:3] == [6, 6, 6] and sum(polls) == 21  # 6 lines of 600 bytes fit in 4 KiB, the page read again
    logged = log.job_lines()
    assert logged[:20] == messages[:20]
    assert logged[20].startswith("huge yyy") and logged[20].endswith(" ... [100005 bytes, cut]")
    assert len(logged[20].encode()) <= 1024


def test_state_hands_over_to_a_new_follower_without_repeating_or_losing_a_line() -> None:
    """What a restarted trigger (its checkpoint) or the next reschedule poke (task_state_store) gets."""
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    first = _follower(fake, log, lines_per_poll=100)
    _write(fake, 0, 250)
    first.poll()
    first.poll()
    state = json.loads(json.dumps(first.take_state()))  # JSON, as an XCom or the state store keep it
    assert first.take_state() is None  # unchanged since
    _write(fake, 250, 10, ms=5000)
    second = _follower(fake, log, lines_per_poll=100, state=state)
    while second.poll():
        pass
    assert log.job_lines() == [f"line {i}" for i in range(260)]
    assert not any("not repeated here" in line for line in log.lines)


def test_a_follower_without_state_starts_catch_up_seconds_back() -> None:
    """A new try or a restart without checkpoint of a wait on a day-old job: the recent lines only, saying so."""
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    day_ago = int((NOW - 86_400) * 1000)
    fake.put(TRAINING_LOG_GROUP, STREAM, ["old 1", "old 2"], timestamp=day_ago, created=day_ago)
    fake.put(TRAINING_LOG_GROUP, STREAM, ["recent"], timestamp=int((NOW - 60) * 1000))
    follower = _follower(fake, log, catch_up_seconds=600)
    assert follower.poll() == 1
    assert log.job_lines() == ["recent"]
    assert any("lines before 2027-01-15 07:50:00 UTC are not repeated here" in line for line in log.lines), log.lines


def test_every_host_and_every_rule_job_is_followed_in_time_order() -> None:
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    rule_job = "adult-xgb-2024-01-01-v1-LossNotDecreasing-1a2b3c4d"
    rule_arn = f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{rule_job.lower()}"
    describe = describe_response("InProgress", {"LossNotDecreasing": "InProgress"})
    describe["DebugRuleEvaluationStatuses"][0]["RuleEvaluationJobArn"] = rule_arn
    base = int(NOW * 1000)
    fake.put(TRAINING_LOG_GROUP, f"{JOB}/algo-1-1", ["[0] train-logloss:0.6"], timestamp=base + 10)
    fake.put(TRAINING_LOG_GROUP, f"{JOB}/algo-2-1", ["algo-2 up"], timestamp=base + 5)
    fake.put(TRAINING_LOG_GROUP, f"{JOB}x/algo-1-1", ["another job"], timestamp=base + 1)  # not <job>/
    fake.put(PROCESSING_LOG_GROUP, f"{rule_job}/algo-1-2", ["Started execution of rule LossNotDecreasing at step 0"],
             timestamp=base + 7)
    follower = JobLogFollower(lambda: fake, log, clock=lambda: NOW)
    assert poll_training_job(follower, describe) == 3
    assert log.lines == [
        "[training algo-2] algo-2 up",
        "[rule LossNotDecreasing algo-1] Started execution of rule LossNotDecreasing at step 0",
        "[training algo-1] [0] train-logloss:0.6",
    ]


def test_the_rule_job_name_keeps_its_case_as_its_log_streams_do() -> None:
    """AWS's Debugger notebooks: ARN .../processing-job/smdebugger-demo-mnist-tens-lossnotdecreasing-27ee2da1, log
    prefix smdebugger-demo-mnist-tens-LossNotDecreasing-27ee2da1 in /aws/sagemaker/ProcessingJobs."""
    arn = "arn:aws:sagemaker:us-east-2:072677473360:processing-job/smdebugger-demo-mnist-tens-lossnotdecreasing-27ee2da1"
    assert rule_job_name("smdebugger-demo-mnist-tensorflow-2019-12-01", "LossNotDecreasing", arn) == \
        "smdebugger-demo-mnist-tens-LossNotDecreasing-27ee2da1"
    # A name the service gave otherwise: the ARN's own.
    assert rule_job_name("job", "Rule", "arn:aws:sagemaker:us-east-1:1:processing-job/other-name") == "other-name"
    described = describe_response("InProgress", {"Overfit": "InProgress"})
    described["DebugRuleEvaluationStatuses"].append({"RuleConfigurationName": "NoArnYet", "RuleEvaluationStatus":
                                                     "InProgress"})
    assert rule_log_sources(described) == [processing_log_source("overfit", "rule Overfit")]


def test_cloudwatch_failures_are_warnings_never_errors() -> None:
    fake, log = FakeCloudWatchLogs(), RecordingLog()
    follower = _follower(fake, log)
    _write(fake, 0, 3)
    fake.fail_with = EndpointConnectionError(endpoint_url="https://logs.eu-west-1.amazonaws.com")
    assert follower.poll() == 0
    assert len(log.warnings) == 1 and "EndpointConnectionError" in log.warnings[0]
    fake.fail_with = None
    assert follower.poll() == 3

    def no_client() -> Any:
        raise RuntimeError("no credentials")

    broken = JobLogFollower(no_client, log, clock=lambda: NOW)
    broken.follow(training_log_source(JOB))
    assert broken.poll() == 0 and "no credentials" in log.warnings[-1]


def test_a_state_from_another_version_or_garbage_starts_afresh() -> None:
    log = RecordingLog()
    for state in ({"v": 99}, {"v": 1, "since_ms": "x", "streams": {}}, "not a dict"):
        follower = JobLogFollower(lambda: None, log, state=state, clock=lambda: NOW)  # type: ignore[arg-type]
        assert follower.since_ms == int((NOW - 600) * 1000) and follower.state["streams"] == {}


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="lines_per_poll"):
        LogLimits(lines_per_poll=0)
    with pytest.raises(ValueError, match="line_bytes"):
        LogLimits(bytes_per_poll=100, line_bytes=200)


def test_against_moto_tokens_too() -> None:
    """The same following through moto's CloudWatch Logs (its own token scheme): every line once, in order."""
    now = time.time()  # moto refuses events far from its clock
    with mock_aws():
        client = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        client.create_log_group(logGroupName=TRAINING_LOG_GROUP)
        client.create_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=STREAM)
        log = RecordingLog()
        follower = JobLogFollower(lambda: client, log, limits=LogLimits(lines_per_poll=40, requests_per_poll=4))
        follower.follow(training_log_source(JOB))
        assert follower.poll() == 0
        written = 0
        for batch in (25, 0, 90, 7):
            if batch:
                client.put_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=STREAM, logEvents=[
                    {"timestamp": int(now * 1000) + written + i, "message": f"line {written + i}"}
                    for i in range(batch)])
            written += batch
            follower.poll()
        restarted = JobLogFollower(lambda: client, log, limits=LogLimits(lines_per_poll=40), state=follower.state)
        restarted.follow(training_log_source(JOB))
        while restarted.poll():
            pass
        assert log.job_lines() == [f"line {i}" for i in range(written)]


# -- the wait task: poke mode, reschedule mode, the trigger -------------------------------------------------------

def _running() -> dict[str, Any]:
    return describe_response("InProgress", {"LossNotDecreasing": "InProgress"})


def test_poke_mode_logs_new_lines_at_each_poke_never_twice(cloudwatch: FakeCloudWatchLogs,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLog()
    monkeypatch.setattr(TrainingAndRulesSensor, "log", property(lambda _self: log))
    sensor = TrainingAndRulesSensor(task_id="w", job_name=JOB, aws_conn_id=None, region_name="eu-west-1",
                                    deferrable=False, poke_interval=0)
    _write(cloudwatch, 0, 3, ms=-1000)
    sensor._follow_logs({}, _running(), final=False)
    _write(cloudwatch, 3, 2, ms=0)
    sensor._follow_logs({}, _running(), final=False)
    sensor._follow_logs({}, describe_response("Completed", {"LossNotDecreasing": "NoIssuesFound"}), final=True)
    assert log.job_lines() == [f"line {i}" for i in range(5)]


def test_reschedule_mode_keeps_the_position_in_the_task_state_store(cloudwatch: FakeCloudWatchLogs,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    class Store(dict):
        def set(self, key: str, value: Any) -> None:
            self[key] = json.loads(json.dumps(value))

    store, log = Store(), RecordingLog()
    monkeypatch.setattr(TrainingAndRulesSensor, "log", property(lambda _self: log))
    _write(cloudwatch, 0, 4, ms=-1000)
    for batch in range(3):  # each reschedule poke is a new process: a new sensor object
        sensor = TrainingAndRulesSensor(task_id="w", job_name=JOB, aws_conn_id=None, region_name="eu-west-1",
                                        deferrable=False, mode="reschedule", poke_interval=60)
        sensor._follow_logs({"task_state_store": store}, _running(), final=False)
        _write(cloudwatch, 4 + batch * 2, 2, ms=batch * 1000)
    assert log.job_lines() == [f"line {i}" for i in range(8)]
    assert job_logs.CHECKPOINT_XCOM_KEY in store


def test_a_restarted_trigger_goes_on_from_its_checkpoint(cloudwatch: FakeCloudWatchLogs,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The triggerer restarts the trigger from its kwargs; the checkpoint XCom tells it where the log stood."""
    checkpoints: dict[str, Any] = {}

    async def save(task_instance: Any, state: Any, log: Any) -> bool:
        checkpoints["state"] = json.loads(json.dumps(state))
        return True

    async def load(task_instance: Any, log: Any) -> Any:
        return checkpoints.get("state")

    monkeypatch.setattr("sm_explain_ops.triggers.training_rules.save_checkpoint", save)
    monkeypatch.setattr("sm_explain_ops.triggers.training_rules.load_checkpoint", load)
    log = RecordingLog()
    monkeypatch.setattr(TrainingAndRulesTrigger, "log", property(lambda _self: log))
    _write(cloudwatch, 0, 6, ms=-1000)

    async def two_polls(trigger: TrainingAndRulesTrigger) -> None:
        follower = await trigger._log_follower()
        for _ in range(2):
            await trigger._poll_logs(follower, _running(), final=False)

    for _restart in range(2):
        trigger = TrainingAndRulesTrigger(job_name=JOB, aws_conn_id=None, region_name="eu-west-1",
                                          log_limits={"lines_per_poll": 2})
        trigger.task_instance = SimpleNamespace(dag_id="d", task_id="w", run_id="r", map_index=-1)  # type: ignore[assignment]
        trigger._checkpoints = True
        asyncio.run(two_polls(trigger))
    assert log.job_lines() == [f"line {i}" for i in range(6)]  # 2 + 2, then the restart goes on: 2, nothing left


# -- processing jobs: the blocking wait and the trigger ----------------------------------------------------------

PROCESSING_JOB = "explain-adult-v1-0123456789"


def _processing_lines(fake: FakeCloudWatchLogs, host: int, messages: list[str], ms: int) -> None:
    fake.put(PROCESSING_LOG_GROUP, f"{PROCESSING_JOB}/algo-{host}-1800000000", messages,
             timestamp=int(time.time() * 1000) + ms)


def test_the_blocking_processing_wait_logs_every_hosts_new_lines(cloudwatch: FakeCloudWatchLogs,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sm_explain_ops.hooks.processing_jobs import RuntimeProcessingHook

    statuses = iter(["InProgress", "InProgress", "Completed"])

    def describe(_hook: Any, name: str) -> dict[str, Any]:
        status = next(statuses)
        if status == "InProgress":  # each describe sees more lines arrive
            _processing_lines(cloudwatch, 1, [f"sm_explain: step {cloudwatch.calls['get_log_events']}"], 0)
        else:
            _processing_lines(cloudwatch, 2, ["sm_explain: wrote manifest.json"], 1)
        return {"ProcessingJobName": name, "ProcessingJobStatus": status}

    monkeypatch.setattr(RuntimeProcessingHook, "describe_processing_job", describe)
    log = RecordingLog()
    follower = JobLogFollower(lambda: cloudwatch, log)
    described = RuntimeProcessingHook(aws_conn_id=None, region_name="eu-west-1").wait_until_ended(
        PROCESSING_JOB, 0, follower)
    assert described["ProcessingJobStatus"] == "Completed"
    assert [line.split("] ", 1)[0] + "]" for line in log.lines] == [
        "[processing algo-1]", "[processing algo-1]", "[processing algo-2]"]
    assert log.lines[-1] == "[processing algo-2] sm_explain: wrote manifest.json"


def test_the_processing_trigger_logs_while_the_providers_waiter_waits(cloudwatch: FakeCloudWatchLogs,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's waiter is kept; a task beside it logs the job's lines, and a last poll runs before the event."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.triggers.base import TriggerEvent

    from sm_explain_ops.triggers.processing_jobs import RuntimeProcessingTrigger

    log = RecordingLog()
    monkeypatch.setattr(RuntimeProcessingTrigger, "log", property(lambda _self: log))
    seen_while_waiting: list[int] = []

    async def waiter(self: Any) -> Any:
        for step in range(3):
            _processing_lines(cloudwatch, 1, [f"working {step}"], step)
            await asyncio.sleep(0.3)
            seen_while_waiting.append(len(log.lines))
        _processing_lines(cloudwatch, 1, ["done"], 10)
        yield TriggerEvent({"status": "success", "job_name": self.job_name})

    monkeypatch.setattr(SageMakerTrigger, "run", waiter)
    trigger = RuntimeProcessingTrigger(job_name=PROCESSING_JOB, waiter_delay=0.05, waiter_max_attempts=100,
                                       aws_conn_id=None, region_name="eu-west-1")

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(asyncio.wait_for(events(), timeout=30))
    assert event.payload["status"] == "success"
    assert seen_while_waiting[-1] >= 2, seen_while_waiting  # lines reached the log before the job ended
    assert log.job_lines("[processing algo-1] ") == ["working 0", "working 1", "working 2", "done"]


def test_the_last_read_waits_for_cloudwatch_from_the_jobs_end_not_from_when_the_end_was_seen() -> None:
    from datetime import UTC, datetime, timedelta

    from sm_explain_ops.hooks.job_logs import FINAL_READ_DELAY_SECONDS, final_read_delay

    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    clock = now.timestamp
    assert final_read_delay(1.0, now, clock) == 1.0  # seen as it ended: the whole lag
    assert final_read_delay(1.0, now - timedelta(seconds=0.75), clock) == pytest.approx(0.25)
    assert final_read_delay(1.0, now - timedelta(seconds=30), clock) == 0.0  # noticed late: read at once
    assert final_read_delay(1.0, now + timedelta(seconds=30), clock) == 1.0  # a clock behind the service's: no more
    assert final_read_delay(1.0, None, clock) == 1.0  # no end time: the lag from now
    assert final_read_delay(60.0, now, clock) == FINAL_READ_DELAY_SECONDS
    assert final_read_delay(1.0, now.replace(tzinfo=None), clock) == 1.0  # a naive time is UTC


def test_a_settle_time_replaces_the_interval_as_cloudwatchs_lag() -> None:
    from datetime import UTC, datetime, timedelta

    from sm_explain_ops.hooks.job_logs import final_read_delay

    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    clock = now.timestamp
    assert final_read_delay(1.0, now, clock, settle=0.0) == 0.0  # a service with every line before the end
    assert final_read_delay(1.0, None, clock, settle=0.0) == 0.0
    assert final_read_delay(1.0, now, clock, settle=3.0) == 3.0  # longer than the interval, when asked
    assert final_read_delay(60.0, now - timedelta(seconds=2), clock, settle=3.0) == pytest.approx(1.0)
    assert final_read_delay(1.0, now, clock, settle=None) == 1.0  # unset: the interval, as before


@pytest.mark.reliability
@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "6", "soon", "1e9"])
def test_a_bad_settle_time_is_refused_naming_the_variable_when_the_dag_is_parsed(
        raw: str, monkeypatch: pytest.MonkeyPatch, reliability: Any) -> None:
    from airflow.sdk import DAG

    from sm_explain_ops.hooks.job_logs import LOG_SETTLE_ENV, log_limits_from_env
    from sm_explain_ops.pipeline import build_explainability_pipeline

    with pytest.raises(ValueError, match=f"{LOG_SETTLE_ENV} is '{raw}'; it must be a number of seconds from 0 to 5"):
        log_limits_from_env({LOG_SETTLE_ENV: raw})
    with pytest.raises(ValueError, match="LogLimits.settle_seconds"):
        LogLimits(settle_seconds=float(raw) if raw != "soon" else raw)  # type: ignore[arg-type]
    monkeypatch.setenv(LOG_SETTLE_ENV, raw)
    with pytest.raises(ValueError, match=LOG_SETTLE_ENV) as refused, DAG("settle_refused", schedule=None):
        build_explainability_pipeline()
    reliability.refused("DAG settings", f"{LOG_SETTLE_ENV}={raw}", "the DAG file fails to import, naming the variable",
                        str(refused.value))


def test_the_settle_time_reaches_every_wait_of_the_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    from sm_explain_ops.hooks.job_logs import LOG_SETTLE_ENV, log_limits_from
    from sm_explain_ops.pipeline import build_explainability_pipeline

    assert log_limits_from_env_default() is None
    monkeypatch.setenv(LOG_SETTLE_ENV, "0")
    with DAG("settle_set", schedule=None) as dag:
        build_explainability_pipeline()
    waits = {task.task_id: log_limits_from(task.log_limits).settle_seconds
             for task in dag.tasks if hasattr(task, "log_limits")}
    assert waits == {"stage_dataset": 0.0, "wait_for_training_and_rules": 0.0, "explain": 0.0, "report": 0.0}


def log_limits_from_env_default() -> float | None:
    from sm_explain_ops.hooks.job_logs import log_limits_from_env

    return log_limits_from_env({}).settle_seconds


def test_a_training_job_has_ended_when_the_job_and_its_last_rule_last_changed() -> None:
    from datetime import UTC, datetime, timedelta

    from sm_explain_ops.hooks.job_logs import training_end_time

    job_end = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    rule_end = job_end + timedelta(seconds=4)
    describe = {"LastModifiedTime": job_end, "DebugRuleEvaluationStatuses": [
        {"RuleConfigurationName": "LossNotDecreasing", "LastModifiedTime": rule_end},
        {"RuleConfigurationName": "Overfit"}]}
    assert training_end_time(describe) == rule_end
    assert training_end_time({"LastModifiedTime": job_end}) == job_end
    assert training_end_time({}) is None
