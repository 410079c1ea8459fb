"""Request fields never become paths: a real CreateTrainingJob (boto3 -> local stack -> real supervisor, algorithm
and rules) whose RuleConfigurationNames are paths or hold control characters runs every rule below its job."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from sm_local.store import rule_dir_name

pytestmark = pytest.mark.stack

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
TERMINAL_RULE = {"NoIssuesFound", "IssuesFound", "Error", "Stopped"}


def _request(name: str, bucket: str, rule_names: list[str]) -> dict[str, Any]:
    def channel(channel_name: str) -> dict[str, Any]:
        uri = f"s3://{bucket}/data/{channel_name}/"
        return {"ChannelName": channel_name, "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}

    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"objective": "binary:logistic", "num_round": "6", "max_depth": "2"},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "DebugHookConfig": {"S3OutputPath": f"s3://{bucket}/training", "CollectionConfigurations": [
            {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "1"}}]},
        "DebugRuleConfigurations": [
            {"RuleConfigurationName": rule_name, "RuleEvaluatorImage": RULES_IMAGE,
             "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics",
                                "num_steps": "2"}}
            for rule_name in rule_names
        ],
    }


@pytest.mark.reliability
def test_rule_configuration_names_that_are_paths_never_leave_the_jobs_directory(local_stack: Any, reliability) -> None:
    bucket = f"names-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    rows = [f"{i % 2},{(i * 7) % 13 / 13:.3f},{(i * 3) % 11 / 11:.3f}" for i in range(120)]
    s3.put_object(Bucket=bucket, Key="data/train/train.csv", Body="\n".join(rows[:90]).encode())
    s3.put_object(Bucket=bucket, Key="data/validation/validation.csv", Body="\n".join(rows[90:]).encode())
    state_dir = Path(local_stack.state_dir)
    before = sorted(path.name for path in state_dir.iterdir())
    name = f"rule-names-{uuid.uuid4().hex[:8]}"
    rule_names = ["../../../../elsewhere", "tab\tand 'quotes' / slashes \\ ünïcode"]
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**_request(name, bucket, rule_names))

    deadline = time.monotonic() + 300
    while True:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        rules = job.get("DebugRuleEvaluationStatuses", [])
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and all(
                rule["RuleEvaluationStatus"] in TERMINAL_RULE for rule in rules):
            break
        assert time.monotonic() < deadline, f"{name} still {job['TrainingJobStatus']}: {rules}"
        time.sleep(0.5)

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [rule["RuleConfigurationName"] for rule in rules] == rule_names
    assert {rule["RuleEvaluationStatus"] for rule in rules} <= {"NoIssuesFound", "IssuesFound"}, rules
    for rule in rules:  # a processing-job name holds only letters, digits and hyphens
        assert re.fullmatch(r"arn:aws:sagemaker:us-east-1:123456789012:processing-job/[a-z0-9-]+",
                            rule["RuleEvaluationJobArn"]), rule["RuleEvaluationJobArn"]
    assert sorted(path.name for path in state_dir.iterdir()) == before, "something was created beside the stack"
    job_dir = state_dir / "sagemaker" / "jobs" / name
    assert sorted(path.name for path in (job_dir / "rules").iterdir()) == sorted(map(rule_dir_name, rule_names))
    reliability.survived("local endpoint", "CreateTrainingJob with RuleConfigurationName '../../../../elsewhere'",
                         "the rule runs below its job (hashed directory), its name kept verbatim",
                         f"job {job['TrainingJobStatus']}; rules {[rule['RuleEvaluationStatus'] for rule in rules]}; "
                         f"nothing created outside the job's directory")
