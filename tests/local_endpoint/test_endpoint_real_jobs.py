"""The local endpoint as a user drives it with a plain boto3 client: the notebook's exact configuration
on the real Adult data trains, every rule ends, and smdebug reads the tensors straight from S3; a
rising loss is flagged; bad input fails the job with a reason; XGBoost 3.x trains without tensors and
the explanations still work from the model artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from sm_local.rules import RISING_LOSS_HYPERPARAMETERS
from sm_staging.stage import stage

pytestmark = [pytest.mark.stack, pytest.mark.slow]

BUCKET = "endpoint-real-jobs"
REGION = "us-east-1"
XGBOOST_17 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
XGBOOST_30 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
NOTEBOOK_HYPERPARAMETERS = {
    "max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.7",
    "objective": "binary:logistic", "num_round": "51",
}
TERMINAL_RULE = {"NoIssuesFound", "IssuesFound", "Error", "Stopped"}


@pytest.fixture(scope="module")
def staged(local_stack, adult_data_path) -> dict[str, Any]:
    """Adult staged as the notebook does (shap encoding, 80/20 split, random_state 7) into the stack's S3."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return stage({
        "source": str(adult_data_path),
        "destination": f"s3://{BUCKET}/adult/v1/data/",
        "dataset_version": "v1",
    })


def _request(name: str, staged: dict[str, Any], *, image: str = XGBOOST_17,
             hyperparameters: dict[str, str] = NOTEBOOK_HYPERPARAMETERS, debugger: bool = True) -> dict[str, Any]:
    def channel(channel_name: str, uri: str) -> dict[str, Any]:
        return {"ChannelName": channel_name, "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                                "S3DataDistributionType": "FullyReplicated"}}}

    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [channel("train", staged["train_uri"]), channel("validation", staged["validation_uri"])],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/adult/v1/training"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    if debugger:
        request["DebugHookConfig"] = {
            "S3OutputPath": f"s3://{BUCKET}/adult/v1/training",
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": {"save_interval": "5"}}
                for name in ("metrics", "feature_importance", "full_shap", "average_shap")
            ],
        }
        request["DebugRuleConfigurations"] = [{
            "RuleConfigurationName": "LossNotDecreasing",
            "RuleEvaluatorImage": RULES_IMAGE,
            "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics",
                               "num_steps": "10"},
        }]
    return request


def _wait_until_everything_ended(sagemaker: Any, name: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        rules = job.get("DebugRuleEvaluationStatuses", [])
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and all(
            r["RuleEvaluationStatus"] in TERMINAL_RULE for r in rules
        ):
            return job
        assert time.monotonic() < deadline, f"{name} still {job['TrainingJobStatus']}: {rules}"
        time.sleep(0.5)


def test_notebook_configuration_on_adult_through_boto3(local_stack, staged) -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**_request("notebook-adult", staged))
    job = _wait_until_everything_ended(sagemaker, "notebook-adult")

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [s["Status"] for s in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert [(r["RuleConfigurationName"], r["RuleEvaluationStatus"]) for r in job["DebugRuleEvaluationStatuses"]] == [
        ("LossNotDecreasing", "NoIssuesFound")]
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert 0 < metrics["validation:logloss"] < 0.35
    model = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model == f"s3://{BUCKET}/adult/v1/training/notebook-adult/output/model.tar.gz"

    # smdebug reads the tensors straight from the local S3 (its own process: the runtime env's smdebug).
    debug_output = f"s3://{BUCKET}/adult/v1/training/notebook-adult/debug-output"
    script = f"""
import json
from smdebug.trials import create_trial
trial = create_trial({debug_output!r})
shap = trial.tensor("full_shap/f0")
last = shap.steps()[-1]
print(json.dumps({{"steps": shap.steps(), "shape": list(shap.value(last).shape),
                   "train_logloss": [float(trial.tensor("train-logloss").value(s)) for s in trial.tensor("train-logloss").steps()],
                   "validation_logloss_steps": trial.tensor("validation-logloss").steps()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["steps"][-1] == 50
    assert read["shape"] == [staged["rows"]["train"], staged["n_features"] + 1]
    assert read["validation_logloss_steps"] == list(range(0, 51, 5))
    assert read["train_logloss"][0] > read["train_logloss"][-1], "the metric curve goes down"


def test_rising_loss_is_reported_as_issues_found(local_stack, staged) -> None:
    sagemaker = boto3.client("sagemaker")
    request = _request("rising-loss-adult", staged, hyperparameters=RISING_LOSS_HYPERPARAMETERS)
    request["DebugHookConfig"]["CollectionConfigurations"] = [
        {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "5"}}]
    sagemaker.create_training_job(**request)
    job = _wait_until_everything_ended(sagemaker, "rising-loss-adult")
    rule = job["DebugRuleEvaluationStatuses"][0]
    assert rule["RuleEvaluationStatus"] == "IssuesFound"
    assert rule["StatusDetails"].startswith("RuleEvaluationConditionMet")
    assert "validation-logloss" in rule["StatusDetails"]


def test_bad_hyperparameter_fails_the_job_with_a_reason(local_stack, staged) -> None:
    sagemaker = boto3.client("sagemaker")
    bad = {**NOTEBOOK_HYPERPARAMETERS, "eta": "fast"}
    sagemaker.create_training_job(**_request("bad-eta", staged, hyperparameters=bad, debugger=False))
    job = _wait_until_everything_ended(sagemaker, "bad-eta", timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert "eta" in job["FailureReason"] and "fast" in job["FailureReason"]


def test_xgboost_3_trains_without_tensors_and_explains_from_the_model(local_stack, staged, tmp_path: Path) -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**_request("xgboost-3", staged, image=XGBOOST_30, debugger=False))
    job = _wait_until_everything_ended(sagemaker, "xgboost-3")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    request = {
        "job_name": "xgboost-3", "dataset_version": "v1",
        "features_uri": staged["features_uri"], "train_uri": staged["train_uri"],
        "validation_uri": staged["validation_uri"],
        "model_artifact_uri": job["ModelArtifacts"]["S3ModelArtifacts"],
        "debug_output_uri": None, "source": "auto",
        "output_uri": f"s3://{BUCKET}/adult/v1/xgboost-3/explanations/",
        "beeswarm_sample_size": 500, "stacked_sample_size": 50, "step_sample_size": 500,
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-m", "sm_explain", "--request", str(tmp_path / "request.json"),
         "--result", str(tmp_path / "result.json")], capture_output=True, text=True, timeout=600,
        env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "result.json").read_text())
    assert manifest["summary"]["source"] == "model"
    s3 = boto3.client("s3")
    for name, uri in manifest["artifacts"].items():
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0, name
