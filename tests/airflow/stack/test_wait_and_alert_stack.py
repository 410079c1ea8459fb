"""Against the real local stack: a rising-loss job ends IssuesFound, alerts reach SNS, policy applies.

The job overfits on purpose (random labels, eta 1, deep trees, no regularisation), so the validation
loss rises and LossNotDecreasing on ``metrics`` meets its condition. The poke-mode sensor (in a
thread) and the trigger (asyncio) wait on the same running job at the same time.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException
from sagemaker.core import image_uris

from sm_explain_ops.notifiers.rule_alert import sns_rule_alert_notifier
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger

pytestmark = pytest.mark.stack

BUCKET = "rule-alerts"
PREFIX = "rising/v1"
JOB = "rising-loss-alert-1"
RULE = "LossNotDecreasing"
WAIT_SECONDS = 600


def _random_label_csv(rows: int, rng: random.Random) -> str:
    """Label first, no header, labels independent of the features: nothing generalises."""
    lines = []
    for _ in range(rows):
        features = ",".join(f"{rng.uniform(-1, 1):.5f}" for _ in range(6))
        lines.append(f"{rng.randint(0, 1)},{features}")
    return "\n".join(lines) + "\n"


def _channel(name: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                        "S3Uri": f"s3://{BUCKET}/{PREFIX}/data/{name}.csv"}},
    }


def _rising_loss_request(region: str) -> dict[str, Any]:
    output = f"s3://{BUCKET}/{PREFIX}/training"
    return {
        "TrainingJobName": JOB,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": image_uris.retrieve("xgboost", region, "1.7-1"),
                                   "TrainingInputMode": "File"},
        "HyperParameters": {"objective": "binary:logistic", "eval_metric": "logloss", "eta": "1",
                            "max_depth": "12", "min_child_weight": "0", "gamma": "0", "num_round": "40"},
        "InputDataConfig": [_channel("train"), _channel("validation")],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "DebugHookConfig": {"S3OutputPath": output, "CollectionConfigurations": [
            {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "1"}}]},
        "DebugRuleConfigurations": [{
            "RuleConfigurationName": RULE,
            "RuleEvaluatorImage": image_uris.retrieve("debugger", region),
            "RuleParameters": {"rule_to_invoke": RULE, "collection_names": "metrics", "num_steps": "10"},
        }],
    }


def _sqs_messages(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(messages) < expected and time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages += [json.loads(message["Body"]) for message in batch.get("Messages", [])]
    return messages


def test_rising_loss_alerts_on_sns_and_the_policy_decides(local_stack: Any) -> None:
    region = local_stack.region
    s3, sns, sqs = (boto3.client(name, region_name=region) for name in ("s3", "sns", "sqs"))
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(7)
    for channel, rows in (("train", 400), ("validation", 200)):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/{channel}.csv", Body=_random_label_csv(rows, rng))
    topic_arn = sns.create_topic(Name="debugger-rule-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rule-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    boto3.client("sagemaker", region_name=region).create_training_job(**_rising_loss_request(region))

    # Poke mode, default policy (IssuesFound fails), in a thread while the trigger waits below.
    poking = TrainingAndRulesSensor(
        task_id="wait_poke", job_name=JOB, aws_conn_id=None, region_name=region, deferrable=False,
        poke_interval=1, timeout=WAIT_SECONDS, notifiers=[sns_rule_alert_notifier(topic_arn, aws_conn_id=None)],
    )
    poke_result: dict[str, Any] = {}

    def poke() -> None:
        try:
            poke_result["verdict"] = poking.execute({})
        except Exception as error:
            poke_result["error"] = error

    poke_thread = threading.Thread(target=poke)
    poke_thread.start()

    trigger = TrainingAndRulesTrigger(job_name=JOB, poke_interval=1, aws_conn_id=None, region_name=region)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event

    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(first_event(), timeout=WAIT_SECONDS))
    print(f"trigger waited {time.monotonic() - started:.1f} s for training and rules")
    poke_thread.join(timeout=WAIT_SECONDS)
    assert not poke_thread.is_alive()

    # The trigger's verdict: training completed, the rule found the rising loss.
    assert event.payload["status"] == "success", event.payload
    verdict = event.payload["verdict"]
    assert verdict["training_status"] == "Completed"
    (rule,) = verdict["rules"]
    assert rule["name"] == RULE and rule["status"] == "IssuesFound", rule
    assert "RuleEvaluationConditionMet" in rule["details"] and "validation-logloss" in rule["details"]
    assert verdict["issues_found"] == [RULE]
    assert verdict["job_url"] == f"{local_stack.sagemaker_endpoint}/jobs/{JOB}/log"
    metrics = verdict["final_metrics"]
    assert metrics["validation:logloss"] > metrics["train:logloss"], metrics  # it overfit, as intended

    # Poke mode reached the same verdict and the default policy failed the task, naming rule and job.
    error = poke_result.get("error")
    assert isinstance(error, AirflowFailException), poke_result
    assert RULE in str(error) and JOB in str(error)

    # Deferrable resume with "continue": the task succeeds with the verdict and alerts all the same.
    resumed = TrainingAndRulesSensor(
        task_id="wait_deferred", job_name=JOB, aws_conn_id=None, region_name=region,
        rule_policies={RULE: {"issues_found": "continue"}},
        notifiers=[sns_rule_alert_notifier(topic_arn, aws_conn_id=None)],
    )
    assert resumed.execute_complete({}, event.payload) == verdict

    # One SNS alert per sensor, whatever the policy: both are in the topic's queue on moto.
    messages = _sqs_messages(sqs, queue_url, expected=2)
    assert len(messages) == 2, messages
    for message in messages:
        assert message["TopicArn"] == topic_arn
        assert message["Subject"] == f"Debugger IssuesFound: {RULE} in {JOB}"
        assert RULE in message["Message"] and JOB in message["Message"]
        assert rule["details"][:200] in message["Message"]
        assert verdict["job_url"] in message["Message"]
