"""Against the real local stack: a rising-loss job ends IssuesFound, alerts reach SNS, policy applies.

The job overfits on purpose (random labels, eta 1, deep trees, no regularisation), so the validation
loss rises and LossNotDecreasing on ``metrics`` meets its condition. The poke-mode sensor (in a
thread) and the trigger (asyncio) wait on the same running job at the same time, and both log the
training job's and the rule job's CloudWatch lines as they arrive. Then an explanation of the job runs
as a processing job and its task log shows the runtime's progress lines.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException
from sagemaker.core import image_uris

from sm_explain_ops.notifiers.rule_alert import sns_rule_alert_notifier
from sm_explain_ops.operators.explain import ExplainTrainingJobOperator
from sm_explain_ops.sensors.training_rules import TrainingAndRulesSensor
from sm_explain_ops.triggers.training_rules import TrainingAndRulesTrigger
from tests.airflow.stack import tiny_training

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


SENSOR_LOGGER = "airflow.task.operators.sm_explain_ops.sensors.training_rules.TrainingAndRulesSensor"
TRIGGER_LOGGER = "sm_explain_ops.triggers.training_rules.TrainingAndRulesTrigger"
ROUNDS = 40


@pytest.fixture(scope="module")
def rising_loss_job(local_stack: Any) -> str:
    """The job, started once for the module: the wait tests below and the explanation share it."""
    region = local_stack.region
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(7)
    for channel, rows in (("train", 400), ("validation", 200)):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/{channel}.csv", Body=_random_label_csv(rows, rng))
    boto3.client("sagemaker", region_name=region).create_training_job(**_rising_loss_request(region))
    return JOB


def _logged_by(output: str, logger: str) -> list[str]:
    """The lines one logger wrote (the console renderer ends each with ``[<logger name>]``)."""
    return [line for line in output.splitlines() if f"[{logger}]" in line]


def test_rising_loss_alerts_on_sns_and_the_policy_decides(local_stack: Any, rising_loss_job: str,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    region = local_stack.region
    sns, sqs = (boto3.client(name, region_name=region) for name in ("sns", "sqs"))
    topic_arn = sns.create_topic(Name="debugger-rule-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rule-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

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

    # Both waits logged the training job's lines (every round once, in order) and the rule job's, as they came.
    output = capfd.readouterr().out
    for logger in (SENSOR_LOGGER, TRIGGER_LOGGER):
        lines = _logged_by(output, logger)
        rounds = [int(n) for n in re.findall(r"\[training algo-1\] \[(\d+)\]", "\n".join(lines))]
        assert rounds == list(range(ROUNDS)), (logger, rounds)
        rule_lines = [line for line in lines if f"[rule {RULE} algo-1]" in line]
        assert any(f"Started execution of rule {RULE} at step 0" in line for line in rule_lines), rule_lines
        assert any("IssuesFound: RuleEvaluationConditionMet" in line for line in rule_lines), rule_lines
        # Whether the first lines arrive before the job ends depends on how fast the machine trains (on a loaded
        # one the first poll may already see it Completed), so the order of log and status lines is not asserted.
    print("\n".join(line for line in _logged_by(output, TRIGGER_LOGGER)
                    if "[rule " in line or re.search(r"\[training algo-1\] \[(0|39)\]", line)))

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


def test_an_explanation_logs_its_progress_while_its_processing_job_runs(
        local_stack: Any, rising_loss_job: str, capfd: pytest.CaptureFixture[str]) -> None:
    """The explanation of the same job as a processing job (blocking): the task log shows the job's CloudWatch lines,
    among them the runtime's progress (one line per artifact, the SHAP pass's rows done of total)."""
    sagemaker = boto3.client("sagemaker", region_name=local_stack.region)
    deadline = time.monotonic() + WAIT_SECONDS
    while sagemaker.describe_training_job(TrainingJobName=rising_loss_job)["TrainingJobStatus"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(1)
    features = {"feature_names": [f"f{i}" for i in range(6)], "categorical": {}, "label": "label"}
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/features.json", Body=json.dumps(features))
    root = f"s3://{BUCKET}/{PREFIX}"
    explain = ExplainTrainingJobOperator(
        task_id="explain", job_name=rising_loss_job, dataset_version="v1", features_uri=f"{root}/data/features.json",
        train_uri=f"{root}/data/train.csv", validation_uri=f"{root}/data/validation.csv",
        model_artifact_uri=f"{root}/training/{rising_loss_job}/output/model.tar.gz",
        output_uri=f"{root}/{rising_loss_job}/explanations/", processing_uri=f"{root}/processing/",
        role_arn="arn:aws:iam::123456789012:role/SageMakerExecutionRole", aws_conn_id=None,
        compute="processing", deferrable=False, check_interval=1,
        options={"explain_rows": "validation", "beeswarm_sample_size": 100, "stacked_sample_size": 20,
                 "step_sample_size": 100, "outlier_top_n": 2},
    )
    manifest = explain.execute(tiny_training.minimal_context("wait_and_alert", "manual__explain"))
    lines = [line for line in capfd.readouterr().out.splitlines() if "[processing algo-1] sm_explain: " in line]
    for name in manifest["artifacts"]:
        assert any(f"sm_explain: wrote {name} (" in line for line in lines), (name, lines)
    assert any("mean |SHAP| pass (pred_contribs): 0 of 200 rows" in line for line in lines), lines
    assert any("mean |SHAP| pass (pred_contribs): 200 of 200 rows (100%)" in line for line in lines), lines
    print("\n".join(lines[:8]))
