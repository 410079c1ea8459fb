"""The wait survives what breaks around it, on a real local endpoint (127.0.0.1, bounded in time):

- the endpoint is killed and started again mid-wait: the sensor succeeds in its first try;
- the process that waits (a triggerer or a worker) is killed mid-wait: a new one resumes on the same job, and no
  second job is ever created;
- DescribeTrainingJob answers ThrottlingException N times: the wait backs off and succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from sagemaker.core import image_uris

from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
from tests.airflow.stack.fault_tools import RestartableEndpoint, ThrottlingProxy

pytestmark = [pytest.mark.stack, pytest.mark.reliability]

BUCKET = "fault-suite"
WAIT_SECONDS = 300
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data(local_stack: Any) -> str:
    """Training rows in the shared local S3: enough for a job of about ten seconds."""
    s3 = boto3.client("s3", region_name=local_stack.region)
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(3)
    for channel, rows in (("train", 6000), ("validation", 1500)):
        lines = []
        for _ in range(rows):
            x = [rng.gauss(0, 1) for _ in range(8)]
            lines.append(f"{int(x[0] + 0.5 * x[1] + rng.gauss(0, 1) > 0)}," + ",".join(f"{v:.4f}" for v in x))
        s3.put_object(Bucket=BUCKET, Key=f"data/{channel}/{channel}.csv", Body="\n".join(lines) + "\n")
    return f"s3://{BUCKET}/data"


def _request(name: str, data: str, region: str) -> dict[str, Any]:
    output = f"s3://{BUCKET}/training"
    channel = lambda c: {  # noqa: E731
        "ChannelName": c, "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/{c}/"}},
    }
    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": image_uris.retrieve("xgboost", region, "1.7-1"),
                                   "TrainingInputMode": "File"},
        "HyperParameters": {"objective": "binary:logistic", "max_depth": "6", "eta": "0.05", "num_round": "250"},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "DebugHookConfig": {"S3OutputPath": output, "CollectionConfigurations": [
            {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "10"}}]},
        "DebugRuleConfigurations": [{
            "RuleConfigurationName": "LossNotDecreasing",
            "RuleEvaluatorImage": image_uris.retrieve("debugger", region),
            "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics"},
        }],
    }


def _sagemaker(endpoint: str, region: str) -> Any:
    return boto3.client("sagemaker", endpoint_url=endpoint, region_name=region)


def _wait_for_status(client: Any, name: str, secondary: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == secondary:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {secondary}")


def _jobs_named(client: Any, prefix: str) -> list[str]:
    summaries = client.list_training_jobs(NameContains=prefix, MaxResults=100)["TrainingJobSummaries"]
    return sorted(summary["TrainingJobName"] for summary in summaries)


def _run_trigger(trigger: TrainingAndRulesTrigger) -> Any:
    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(first_event(), timeout=WAIT_SECONDS))


def test_endpoint_killed_and_restarted_mid_wait_the_sensor_succeeds_in_its_first_try(
    local_stack: Any, data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    """The deferrable sensor as a worker and a triggerer run it (execute defers, the trigger waits, execute_complete
    ends the task), while the endpoint behind it crashes and comes back on the same port and state."""
    from airflow.sdk.exceptions import TaskDeferred

    endpoint = RestartableEndpoint(local_stack, tmp_path / "sagemaker").start()
    try:
        client = _sagemaker(endpoint.url, local_stack.region)
        name = "fault-endpoint-restart"
        client.create_training_job(**_request(name, data, local_stack.region))
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", endpoint.url)  # what the sensor's hooks talk to
        # The verdict is not what this test is about: a rule that finds the loss flat late in training continues.
        sensor = TrainingAndRulesSensor(task_id="wait", job_name=name, aws_conn_id=None,
                                        region_name=local_stack.region, poke_interval=1,
                                        rule_policies={"*": {"issues_found": "continue"}})
        restarted = threading.Event()

        def crash_and_restart() -> None:
            _wait_for_status(client, name, "Training")
            time.sleep(2)  # the trigger has polled a few times
            endpoint.kill()
            time.sleep(3)  # describes meet a closed port meanwhile
            endpoint.start()
            restarted.set()

        chaos = threading.Thread(target=crash_and_restart)
        chaos.start()
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({})
        classpath, kwargs = deferred.value.trigger.serialize()  # the triggerer rebuilds it from this
        assert classpath.endswith("TrainingAndRulesTrigger")
        event = _run_trigger(TrainingAndRulesTrigger(**kwargs))
        verdict = getattr(sensor, deferred.value.method_name)({}, event.payload)  # raises if the task would fail
        chaos.join(timeout=120)
        assert restarted.is_set(), "the endpoint was not restarted during the wait"
        described = client.describe_training_job(TrainingJobName=name)
        assert verdict["training_status"] == described["TrainingJobStatus"] == "Completed", verdict
        assert [r["status"] in ("NoIssuesFound", "IssuesFound") for r in verdict["rules"]] == [True], verdict
        assert _jobs_named(client, "fault-endpoint") == [name]
    finally:
        endpoint.stop()
    reliability.survived("wait", "the local SageMaker endpoint killed (SIGKILL) and restarted mid-wait",
                         "the sensor succeeds in its first try; the job completes; no second job",
                         f"task succeeded in its first try; job {described['TrainingJobStatus']}; rules "
                         f"{[r['status'] for r in verdict['rules']]}; endpoint started {endpoint.starts} times")


_TRIGGER_SCRIPT = """
import asyncio, json, sys
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
classpath, kwargs = json.loads(sys.argv[1])
trigger = TrainingAndRulesTrigger(**kwargs)
async def main():
    async for event in trigger.run():
        print(json.dumps(event.payload), flush=True)
        return
asyncio.run(main())
"""


def test_a_killed_waiter_is_resumed_by_a_new_one_on_the_same_job(local_stack: Any, data: str, reliability) -> None:
    """A triggerer (or a worker in poke mode) dies mid-wait; the trigger, rebuilt from its serialized form as a new
    triggerer rebuilds it, finds the same job and finishes: waiting never creates a job."""
    client = _sagemaker(local_stack.sagemaker_endpoint, local_stack.region)
    name = "fault-killed-waiter"
    client.create_training_job(**_request(name, data, local_stack.region))
    serialized = TrainingAndRulesTrigger(job_name=name, poke_interval=1, aws_conn_id=None,
                                         region_name=local_stack.region).serialize()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.Popen([sys.executable, "-c", _TRIGGER_SCRIPT, json.dumps(serialized)], env=env,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_status(client, name, "Training")
    time.sleep(2)
    assert first.poll() is None, "the first waiter ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    second = subprocess.run([sys.executable, "-c", _TRIGGER_SCRIPT, json.dumps(serialized)], env=env,
                            capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert second.returncode == 0, second.stderr[-3000:]
    event = json.loads(second.stdout.strip().splitlines()[-1])
    assert event["status"] == "success" and event["verdict"]["training_status"] == "Completed", event
    jobs = _jobs_named(client, "fault-killed")
    assert jobs == [name]
    reliability.survived("wait", "the waiting process (triggerer) killed with SIGKILL mid-wait",
                         "a new waiter resumes on the same job; no duplicate job",
                         f"first waiter exit {first.returncode}; second: {event['verdict']['training_status']}; "
                         f"jobs: {len(jobs)}", jobs_leaked=len(jobs) - 1)


def test_throttled_describes_are_retried_until_the_wait_succeeds(
    local_stack: Any, data: str, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    client = _sagemaker(local_stack.sagemaker_endpoint, local_stack.region)
    name = "fault-throttled"
    client.create_training_job(**_request(name, data, local_stack.region))
    throttles = 6
    with ThrottlingProxy(local_stack.sagemaker_endpoint) as proxy:
        proxy.throttle("DescribeTrainingJob", throttles)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", proxy.url)
        trigger = TrainingAndRulesTrigger(job_name=name, poke_interval=0.2, aws_conn_id=None,
                                          region_name=local_stack.region)
        event = _run_trigger(trigger)
    assert proxy.throttled == {"DescribeTrainingJob": throttles}
    assert event.payload["status"] == "success", event.payload
    assert event.payload["verdict"]["training_status"] == "Completed"
    reliability.survived("wait", f"DescribeTrainingJob answers ThrottlingException {throttles} times in a row",
                         "the wait backs off and succeeds",
                         f"{proxy.throttled['DescribeTrainingJob']} throttled, "
                         f"{proxy.forwarded.get('DescribeTrainingJob', 0)} answered; verdict "
                         f"{event.payload['verdict']['training_status']}")
