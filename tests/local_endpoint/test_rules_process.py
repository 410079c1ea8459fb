"""The rule process as the supervisor runs it: `python -m sm_local.rules` started before training
writes anything, evaluating while tensors arrive; plus the documented rising-loss setup on real Adult."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sm_explain_contracts.images import DEFAULT_VERSION
from sm_local.rules import RISING_LOSS_HYPERPARAMETERS, evaluate_rule
from tests.runtime.image_training import train_in_image

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
ADULT = REPO.parent / "shared" / "data" / "adult.data"


def start_rule_process(trial: Path, result: Path, rule_parameters: dict[str, str]) -> subprocess.Popen[bytes]:
    config = trial.parent / f"{result.stem}-config.json"
    config.write_text(
        json.dumps(
            {
                "RuleConfigurationName": "LossNotDecreasingRule",
                "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
                "RuleParameters": rule_parameters,
            }
        )
    )
    env = dict(os.environ)
    command = [sys.executable, "-m", "sm_local.rules", "--trial-path", str(trial), "--config", str(config)]
    return subprocess.Popen([*command, "--result", str(result), "--timeout", "120"], env=env)


def wait_for_result(result: Path, process: subprocess.Popen[bytes], limit: float) -> dict[str, str]:
    assert process.wait(timeout=limit) == 0
    return json.loads(result.read_text())


def train(out: Path, features: np.ndarray, labels: np.ndarray, params: dict[str, object], rounds: int, slow: float) -> None:
    """The default image's xgboost and smdebug write the tensors; each round takes `slow` seconds more, so the
    rule process demonstrably runs during training. The end marker is left to the test."""
    split = int(len(labels) * 2 / 3)
    train_in_image(DEFAULT_VERSION, (features[:split], labels[:split]), params, rounds,
                   validation=(features[split:], labels[split:]), tensors_dir=out, collections=["metrics"],
                   save_interval=5, slow_seconds=slow, end_marker=False)


def test_rule_finds_rising_loss_while_training_still_runs(tmp_path: Path) -> None:
    trial, result = tmp_path / "tensors", tmp_path / "result.json"
    process = start_rule_process(trial, result, {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics"})
    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(3000, 6)), rng.integers(0, 2, 3000).astype(float)
    params = {"objective": "binary:logistic", "eta": 1, "max_depth": 8, "min_child_weight": 0}
    train(trial, features, labels, params, rounds=70, slow=0.1)
    finished_before_training_ended = result.exists()
    (trial / "training_job_end.ts").touch()
    outcome = wait_for_result(result, process, limit=30)
    assert outcome["RuleEvaluationStatus"] == "IssuesFound", outcome
    assert "at step 10 resulted in the condition being met: validation-logloss rose" in outcome["StatusDetails"]
    assert finished_before_training_ended, "the rule should stop at the first issue, before training ends"


def test_rule_ends_soon_after_the_end_marker(tmp_path: Path) -> None:
    trial, result = tmp_path / "tensors", tmp_path / "result.json"
    process = start_rule_process(trial, result, {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics"})
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 6))
    labels = (rng.random(3000) < 1 / (1 + np.exp(-(1.5 * features[:, 0] + features[:, 1])))).astype(float)
    # Long enough for the rule process to start and import smdebug while training runs, as it does in a job.
    train(trial, features, labels, {"objective": "binary:logistic", "eta": 0.1, "max_depth": 3}, rounds=40, slow=0.15)
    assert not result.exists(), "the rule must wait while training may still write tensors"
    (trial / "training_job_end.ts").touch()
    outcome = wait_for_result(result, process, limit=30)
    assert outcome["RuleEvaluationStatus"] == "NoIssuesFound", outcome
    # It evaluated the steps that arrived, then ended because of the marker (not a timeout, not a crash).
    assert "decreased in all" in outcome["StatusDetails"], outcome


def test_no_tensors_ends_in_error_without_hanging(tmp_path: Path) -> None:
    trial, result = tmp_path / "tensors", tmp_path / "result.json"
    trial.mkdir()
    process = start_rule_process(trial, result, {"rule_to_invoke": "LossNotDecreasing"})
    time.sleep(0.5)
    assert process.poll() is None, "the rule must wait while training may still write tensors"
    (trial / "training_job_end.ts").touch()  # what the supervisor writes when an XGBoost 3.x image exits
    outcome = wait_for_result(result, process, limit=30)
    assert outcome["RuleEvaluationStatus"] == "Error"
    assert "no Debugger tensors were saved" in outcome["StatusDetails"]


def test_unreadable_config_is_an_error_result(tmp_path: Path) -> None:
    config, result = tmp_path / "config.json", tmp_path / "result.json"
    config.write_text("{not json")
    env = dict(os.environ)
    command = [sys.executable, "-m", "sm_local.rules", "--trial-path", str(tmp_path), "--config", str(config)]
    completed = subprocess.run([*command, "--result", str(result)], env=env, timeout=30)
    assert completed.returncode == 0
    outcome = json.loads(result.read_text())
    assert outcome["RuleEvaluationStatus"] == "Error" and "config.json" in outcome["StatusDetails"]


def encoded_adult() -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(ADULT, header=None, skipinitialspace=True)
    labels = (frame.pop(14) == ">50K").to_numpy(dtype=float)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("category").cat.codes
    return frame.to_numpy(dtype=float), labels


@pytest.mark.slow
def test_rising_loss_configuration_on_adult(tmp_path: Path) -> None:
    """The documented rising-loss hyperparameters make LossNotDecreasing (metrics, num_steps 10) fire."""
    if not ADULT.exists():
        pytest.fail(f"the Adult data is missing at {ADULT}")
    features, labels = encoded_adult()
    order = np.random.default_rng(0).permutation(len(labels))
    features, labels = features[order], labels[order]
    params = {key: value for key, value in RISING_LOSS_HYPERPARAMETERS.items() if key != "num_round"}
    cut = int(0.8 * len(labels))
    trial = tmp_path / "tensors"
    rounds = 20  # the condition is met at step 10; the documented num_round is larger
    train_in_image(DEFAULT_VERSION, (features[:cut], labels[:cut]), params, rounds,
                   validation=(features[cut:], labels[cut:]), tensors_dir=trial, collections=["metrics"])
    config = {"RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics", "num_steps": "10"}}
    outcome = evaluate_rule(str(trial), config, timeout=60)
    assert outcome.status == "IssuesFound", outcome.details
    assert "at step 10 resulted in the condition being met: validation-logloss rose" in outcome.details
