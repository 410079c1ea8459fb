"""Built-in rules on real Debugger tensors: written by smdebug's XGBoost hook in the default image's environment
(xgboost 1.7.4), as the 1.7-1 container writes them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sm_explain_contracts.images import DEFAULT_VERSION
from sm_local.rules import SUPPORTED_RULES, evaluate_rule
from tests.runtime.image_training import train_in_image

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

SAVE_INTERVAL = 5
COLLECTIONS = ["metrics", "losses", "trees", "labels", "predictions"]


def train_trial(
    out_dir: Path, features: np.ndarray, labels: np.ndarray, params: dict[str, object], rounds: int
) -> Path:
    """Train with the Debugger hook like the built-in container does, then write the end marker
    as the local supervisor does when the algorithm exits."""
    split = int(len(labels) * 2 / 3)
    train_in_image(DEFAULT_VERSION, (features[:split], labels[:split]), params, rounds,
                   validation=(features[split:], labels[split:]), tensors_dir=out_dir, collections=COLLECTIONS,
                   save_interval=SAVE_INTERVAL)
    return out_dir


def normal_data(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 6))
    logit = 1.5 * features[:, 0] + features[:, 1] - features[:, 2]
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    return features, labels


@pytest.fixture(scope="module")
def normal_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy run: shallow trees, small eta; both losses fall for all 40 rounds."""
    features, labels = normal_data()
    params = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 3}
    return train_trial(tmp_path_factory.mktemp("normal"), features, labels, params, rounds=40)


@pytest.fixture(scope="module")
def rising_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random labels + eta 1 + deep trees: train loss falls, validation loss rises from round 0."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3000, 6))
    labels = rng.integers(0, 2, 3000).astype(float)
    params = {"objective": "binary:logistic", "eta": 1, "max_depth": 8, "min_child_weight": 0}
    return train_trial(tmp_path_factory.mktemp("rising"), features, labels, params, rounds=30)


@pytest.fixture(scope="module")
def imbalanced_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 positive per 25 negatives, with label noise so the minority class is hard to predict."""
    rng = np.random.default_rng(2)
    features = rng.normal(size=(3000, 6))
    labels = (features[:, 0] + rng.normal(scale=0.7, size=3000) > 2.1).astype(float)
    params = {"objective": "binary:logistic", "eta": 0.3, "max_depth": 3}
    return train_trial(tmp_path_factory.mktemp("imbalanced"), features, labels, params, rounds=10)


def run(trial: Path, rule: str, timeout: float = 60, **parameters: str) -> tuple[str, str]:
    config = {
        "RuleConfigurationName": f"{rule}-test",
        "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
        "RuleParameters": {"rule_to_invoke": rule, **parameters},
    }
    result = evaluate_rule(str(trial), config, timeout=timeout).to_dict()
    assert len(result["StatusDetails"]) <= 1024
    return result["RuleEvaluationStatus"], result["StatusDetails"]


def condition_step(details: str) -> int:
    match = re.match(r"RuleEvaluationConditionMet: Evaluation of the rule \w+ at step (\d+) resulted in the condition being met: ", details)
    assert match, details
    return int(match.group(1))


# --- LossNotDecreasing ---------------------------------------------------------------------------


def test_loss_not_decreasing_no_issues_on_a_normal_run(normal_trial: Path) -> None:
    status, details = run(normal_trial, "LossNotDecreasing", collection_names="metrics")
    assert status == "NoIssuesFound", details
    assert "train-logloss, validation-logloss decreased in all" in details


def test_loss_not_decreasing_finds_the_rising_validation_loss(rising_trial: Path) -> None:
    status, details = run(rising_trial, "LossNotDecreasing", collection_names="metrics", num_steps="10")
    assert status == "IssuesFound", details
    # Saved every 5 rounds: the first step with a saved step at or before s - 10 is 10 (against 0).
    assert condition_step(details) == 10
    assert "validation-logloss rose by" in details and "at step 0 ->" in details and "at step 10" in details


def test_num_steps_sets_which_steps_are_compared(rising_trial: Path) -> None:
    status, details = run(rising_trial, "LossNotDecreasing", collection_names="metrics", num_steps="12")
    assert status == "IssuesFound"
    assert condition_step(details) == 15 and "at step 0 ->" in details  # latest saved step <= 15 - 12 is 0
    status, details = run(rising_trial, "LossNotDecreasing", collection_names="metrics", num_steps="50")
    assert status == "NoIssuesFound" and "nothing was compared" in details


def test_diff_percent_requires_a_minimum_decrease(normal_trial: Path) -> None:
    status, details = run(normal_trial, "LossNotDecreasing", collection_names="metrics", diff_percent="20")
    assert status == "IssuesFound", details
    assert "less than diff_percent=20" in details


def test_increase_threshold_percent_tolerates_a_small_rise(rising_trial: Path) -> None:
    status, details = run(rising_trial, "LossNotDecreasing", collection_names="metrics", increase_threshold_percent="60")
    assert status == "NoIssuesFound", details
    status, details = run(rising_trial, "LossNotDecreasing", collection_names="metrics", increase_threshold_percent="5")
    assert status == "IssuesFound" and "more than increase_threshold_percent=5" in details


def test_tensor_regex_and_collection_names_choose_the_losses(rising_trial: Path) -> None:
    status, details = run(rising_trial, "LossNotDecreasing", tensor_regex="^train-", use_losses_collection="False")
    assert status == "NoIssuesFound", details
    assert "train-logloss" in details and "validation-logloss" not in details
    # use_losses_collection (default True) adds validation-logloss from the losses collection.
    status, details = run(rising_trial, "LossNotDecreasing", tensor_regex="^train-")
    assert status == "IssuesFound" and "validation-logloss" in details


def test_collection_never_saved_is_an_error(normal_trial: Path) -> None:
    status, details = run(normal_trial, "LossNotDecreasing", collection_names="feature_importance")
    assert status == "Error" and "feature_importance" in details
    status, details = run(normal_trial, "LossNotDecreasing", collection_names="no_such_collection")
    assert status == "Error" and "no_such_collection" in details and "metrics" in details
    status, details = run(normal_trial, "LossNotDecreasing", tensor_regex="nothing-matches", use_losses_collection="False")
    assert status == "Error" and "tensor_regex=nothing-matches" in details


def test_mode_without_saved_steps_is_an_error(normal_trial: Path) -> None:
    status, details = run(normal_trial, "LossNotDecreasing", collection_names="metrics", mode="TRAIN")
    assert status == "Error" and "mode TRAIN" in details
    assert run(normal_trial, "LossNotDecreasing", collection_names="metrics", mode="GLOBAL")[0] == "NoIssuesFound"


# --- Overfit --------------------------------------------------------------------------------------


def test_overfit_on_the_overfitting_run(rising_trial: Path) -> None:
    status, details = run(rising_trial, "Overfit")
    assert status == "IssuesFound", details
    assert condition_step(details) == 0 and "validation-logloss=" in details
    status, details = run(rising_trial, "Overfit", start_step="10")
    assert condition_step(details) == 10


def test_overfit_thresholds_and_patience(normal_trial: Path) -> None:
    # The healthy run's validation/train gap grows slowly to about 0.1 by round 30.
    status, details = run(normal_trial, "Overfit", ratio_threshold="0.3")
    assert status == "NoIssuesFound", details
    assert "largest (validation - train) / train ratio" in details
    status, details = run(normal_trial, "Overfit", ratio_threshold="0.05", patience="2")
    assert status == "IssuesFound", details
    first = condition_step(details)
    assert "for 2 saved step(s)" in details
    status, details = run(normal_trial, "Overfit", ratio_threshold="0.05", patience="3")
    assert condition_step(details) == first + SAVE_INTERVAL


# --- TreeDepth and ClassImbalance -----------------------------------------------------------------


def test_tree_depth(normal_trial: Path) -> None:
    status, details = run(normal_trial, "TreeDepth")
    assert status == "NoIssuesFound" and "deepest tree: depth 3" in details
    status, details = run(normal_trial, "TreeDepth", depth="2")
    assert status == "IssuesFound" and condition_step(details) == 0
    assert "depth 3 > depth=2" in details


def test_tree_depth_without_trees_collection_is_an_error(tmp_path: Path) -> None:
    features, labels = normal_data(rows=600)
    out = tmp_path / "tensors"
    split = 400
    train_in_image(DEFAULT_VERSION, (features[:split], labels[:split]), {"objective": "binary:logistic"}, 4,
                   tensors_dir=out, collections=["metrics"], save_interval=2)
    status, details = run(out, "TreeDepth")
    assert status == "Error" and "trees collection" in details


def test_class_imbalance(normal_trial: Path, imbalanced_trial: Path) -> None:
    status, details = run(normal_trial, "ClassImbalance")
    assert status == "NoIssuesFound", details
    status, details = run(imbalanced_trial, "ClassImbalance")
    assert status == "IssuesFound", details
    assert "class 0 has" in details and "threshold_imbalance=10" in details
    # With a looser imbalance limit the minority class's mispredictions (default limit 0.7) are found.
    status, details = run(imbalanced_trial, "ClassImbalance", threshold_imbalance="100")
    assert status == "IssuesFound" and "class 1:" in details and "mispredicted" in details
    # Not enough labels seen yet: nothing is evaluated.
    status, details = run(imbalanced_trial, "ClassImbalance", samples="1000000")
    assert status == "NoIssuesFound" and "fewer than samples=1000000" in details


# --- configuration errors and missing data --------------------------------------------------------


def test_unknown_rule_is_an_error_listing_the_supported_rules(normal_trial: Path) -> None:
    status, details = run(normal_trial, "VanishingGradient")
    assert status == "Error"
    assert "VanishingGradient" in details and all(rule in details for rule in SUPPORTED_RULES)


@pytest.mark.parametrize(
    ("rule", "parameters", "message"),
    [
        ("LossNotDecreasing", {"num_steps": "ten"}, "num_steps='ten' is not an integer"),
        ("LossNotDecreasing", {"num_steps": "0"}, "num_steps=0 must be >= 1"),
        ("LossNotDecreasing", {"diff_percent": "100"}, "diff_percent=100 must be < 100"),
        ("LossNotDecreasing", {"use_losses_collection": "maybe"}, "not a boolean"),
        ("LossNotDecreasing", {"mode": "PREDICTING"}, "not a Debugger mode"),
        ("LossNotDecreasing", {"tensor_regex": "([a-z"}, "not a valid regex"),
        ("LossNotDecreasing", {"num_step": "5"}, "unknown parameter(s) num_step"),
        ("Overfit", {"ratio_threshold": "-1"}, "ratio_threshold=-1 must be >= 0"),
        ("ClassImbalance", {"threshold_misprediction": "2"}, "must be <= 1"),
    ],
)
def test_bad_parameter_is_an_error_before_waiting(tmp_path: Path, rule: str, parameters: dict[str, str], message: str) -> None:
    # No trial at all: a rule that waited for one would end in the timeout's error, not the parameter's.
    status, details = run(tmp_path, rule, timeout=5, **parameters)
    assert status == "Error" and message in details and "timed out" not in details, details


def test_no_tensors_and_end_marker_is_an_error_at_once(tmp_path: Path) -> None:
    (tmp_path / "training_job_end.ts").touch()
    status, details = run(tmp_path, "LossNotDecreasing", timeout=5)  # waiting would end in "timed out"
    assert status == "Error" and "no Debugger tensors were saved" in details
