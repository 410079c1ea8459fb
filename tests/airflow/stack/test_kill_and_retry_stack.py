"""Against the real local stack: killing the wait stops the training job (deferrable and poke mode), a job
already ended is left alone, and the next start_training try starts a new job instead of re-attaching to the
stopped one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import boto3
import pytest
from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
from tests.airflow.stack import tiny_training

pytestmark = pytest.mark.stack

BUCKET = "kill-the-wait"
WAIT_SECONDS = 300


def _spec(prefix: str) -> dict[str, Any]:
    """A job that trains for much longer than the test takes to kill it (thousands of rounds, hooked)."""
    return tiny_training.tiny_spec(BUCKET, prefix, hyperparameters={
        "objective": "binary:logistic", "num_round": 20000, "max_depth": 3, "eta": 0.01}, max_runtime_seconds=900)


def _stage(prefix: str) -> None:
    tiny_training.stage(BUCKET, prefix)


def _start(prefix: str, run_id: str) -> dict[str, Any]:
    operator = StartDebuggedTrainingOperator(
        task_id="start_training", spec=_spec(prefix), dataset_version="v1", aws_conn_id=None
    )
    return operator.execute(tiny_training.minimal_context("kill_the_wait", run_id))


def _describe(name: str) -> dict[str, Any]:
    return boto3.client("sagemaker").describe_training_job(TrainingJobName=name)


def _wait_for(name: str, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        described = _describe(name)
        if done(described):
            return described
        if time.monotonic() > deadline:
            pytest.fail(f"{name} never {what}: {described['TrainingJobStatus']}/{described['SecondaryStatus']}")
        time.sleep(0.2)


def _training(name: str) -> dict[str, Any]:
    return _wait_for(name, lambda d: d["SecondaryStatus"] == "Training" or d["TrainingJobStatus"] != "InProgress",
                     "started training")


def _ended(name: str) -> dict[str, Any]:
    def done(described: dict[str, Any]) -> bool:
        rules = described.get("DebugRuleEvaluationStatuses") or []
        return described["TrainingJobStatus"] not in ("InProgress", "Stopping") and all(
            rule["RuleEvaluationStatus"] not in ("InProgress", "Stopping") for rule in rules
        )

    return _wait_for(name, done, "ended")


def _running_jobs(*names: str) -> int:
    return sum(_describe(name)["TrainingJobStatus"] in ("InProgress", "Stopping") for name in names)


def _kill_deferred_wait(trigger: TrainingAndRulesTrigger, until: Any) -> None:
    """What the triggerer does when a user marks the deferred task failed or clears it: cancel the trigger's
    coroutine with the user-action message, then await ``on_kill`` (airflow.jobs.triggerer_job_runner)."""

    async def scenario() -> None:
        async def wait() -> None:
            async for _event in trigger.run():
                pytest.fail("the trigger fired although the job was still running")

        waiting = asyncio.create_task(wait())
        await asyncio.to_thread(until)
        await asyncio.sleep(1.5)  # the trigger has polled the running job at least once
        waiting.cancel(_USER_ACTION_CANCEL_MSG)
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(trigger.on_kill(), timeout=30)

    asyncio.run(scenario())


@pytest.mark.reliability
def test_killing_the_deferred_wait_stops_the_job_and_its_rules(local_stack: Any, reliability) -> None:
    _stage("deferred")
    started = _start("deferred", "manual__kill-deferred")
    name = started["job_name"]
    trigger = TrainingAndRulesTrigger(job_name=name, poke_interval=1, aws_conn_id=None, region_name=local_stack.region)

    _kill_deferred_wait(trigger, until=lambda: _training(name))

    # The stop was requested by on_kill itself: the very next describe sees it.
    assert _describe(name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    final = _ended(name)
    assert final["TrainingJobStatus"] == "Stopped", final.get("FailureReason")
    rules = {rule["RuleConfigurationName"]: rule["RuleEvaluationStatus"] for rule in final["DebugRuleEvaluationStatuses"]}
    assert rules == {"LossNotDecreasing": "Stopped"}

    # Killing it again (a second clear) leaves the ended job alone and raises nothing.
    asyncio.run(asyncio.wait_for(trigger.on_kill(), timeout=30))
    assert _describe(name)["TrainingJobStatus"] == "Stopped"
    reliability.survived("wait trigger", "deferred wait marked failed by a user while the job trains",
                         "on_kill stops the job and its rules; a second kill is a no-op",
                         f"job {final['TrainingJobStatus']}, rules {rules}", jobs_leaked=_running_jobs(name))


@pytest.mark.reliability
def test_killing_the_poking_wait_stops_the_job_and_the_next_try_starts_a_new_one(
    local_stack: Any, reliability
) -> None:
    _stage("poke")
    run_id = "manual__kill-poke"
    first = _start("poke", run_id)
    name = first["job_name"]
    sensor = TrainingAndRulesSensor(task_id="wait_for_training_and_rules", job_name=name, aws_conn_id=None,
                                    region_name=local_stack.region, deferrable=False, poke_interval=1,
                                    timeout=WAIT_SECONDS)
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["verdict"] = sensor.execute({})
        except Exception as error:
            outcome["error"] = error

    waiting = threading.Thread(target=wait)
    waiting.start()
    _training(name)
    sensor.on_kill()  # what the task runner calls on SIGTERM (mark failed, clear)

    assert _describe(name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    # The user clears start_training right away, while the killed job is still Stopping: a new job, never an
    # attach to the one being stopped.
    retry = _start("poke", run_id)
    assert retry["job_name"] != name
    assert retry["job_name"].endswith("-r1"), retry["job_name"]
    assert _describe(retry["job_name"])["TrainingJobStatus"] == "InProgress"

    waiting.join(timeout=WAIT_SECONDS)
    assert not waiting.is_alive()
    assert isinstance(outcome.get("error"), AirflowFailException), outcome
    assert f"{name!r} ended Stopped" in str(outcome["error"])
    final = _ended(name)
    assert final["TrainingJobStatus"] == "Stopped"

    # The replacement's own wait killed the same way; the ended job next to it is left alone.
    TrainingAndRulesSensor(task_id="wait_for_training_and_rules", job_name=retry["job_name"], aws_conn_id=None,
                           region_name=local_stack.region, deferrable=False).on_kill()
    sensor.on_kill()
    assert _ended(retry["job_name"])["TrainingJobStatus"] == "Stopped"
    assert _describe(name)["TrainingJobStatus"] == "Stopped"
    reliability.survived("wait sensor", "poking wait killed while the job trains, then start_training cleared",
                         "the job is stopped; the next try starts a new job under the next name",
                         f"killed job {final['TrainingJobStatus']}; retry started {retry['job_name']}",
                         jobs_leaked=_running_jobs(name, retry["job_name"]))
