"""Debugger tensors of the XGBoost algorithm process, read back with smdebug's own trial API."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xgboost

from tests.local_endpoint.test_xgb_container_helpers import (
    csv_rows,
    layout_opt_ml,
    open_trial,
    run_container,
    separable_data,
)

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

FEATURES = 4
TRAIN_ROWS = 160
HYPERPARAMETERS = {
    "num_round": "9",
    "max_depth": "3",
    "eta": "0.3",
    "objective": "binary:logistic",
    "eval_metric": "logloss,auc",
}
# Per-collection save configurations, in smdebug's semantics: a step is saved when it is in save_steps,
# or when it is in [start_step, end_step) and a multiple of save_interval (HookParameters give defaults).
COLLECTIONS = {
    "metrics": {"save_interval": "1"},
    "losses": {},
    "feature_importance": {"save_interval": "4"},
    "average_shap": {"save_interval": "100", "save_steps": "1,4"},
    "full_shap": {"save_interval": "3", "start_step": "3", "end_step": "7", "save_steps": "8"},
    "predictions": {},
    "labels": {"save_interval": "100"},
    "hyperparameters": {"save_interval": "100"},
}


def _channels() -> tuple[dict[str, dict[str, str]], np.ndarray, np.ndarray]:
    labels, features = separable_data(TRAIN_ROWS + 40, features=FEATURES, seed=5)
    channels = {
        "train": {"train.csv": csv_rows(labels[:TRAIN_ROWS], features[:TRAIN_ROWS])},
        "validation": {"validation.csv": csv_rows(labels[TRAIN_ROWS:], features[TRAIN_ROWS:])},
    }
    return channels, labels, features


@pytest.fixture(scope="module")
def debugged_run(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (run, trial, labels, features)
    channels, labels, features = _channels()
    opt_ml = layout_opt_ml(
        tmp_path_factory.mktemp("debugger"),
        HYPERPARAMETERS,
        channels,
        collections=COLLECTIONS,
        hook_parameters={"save_interval": "2"},
    )
    run = run_container(opt_ml, "1.7-1")
    assert run.returncode == 0, run.stdout + run.stderr
    return run, open_trial(run.tensors_dir), labels, features


def test_every_collection_has_the_real_tensor_names(debugged_run) -> None:  # noqa: ANN001
    _, trial, _, _ = debugged_run
    feature_names = [f"f{index}" for index in range(FEATURES)]
    assert set(trial.tensor_names(collection="metrics")) == {
        "train-logloss",
        "train-auc",
        "validation-logloss",
        "validation-auc",
    }
    assert set(trial.tensor_names(collection="losses")) == {"train-logloss", "validation-logloss"}
    importance = set(trial.tensor_names(collection="feature_importance"))
    for kind in ("weight", "gain", "cover", "total_gain", "total_cover"):
        assert f"feature_importance/{kind}/f0" in importance
    assert importance <= {
        f"feature_importance/{kind}/{name}"
        for kind in ("weight", "gain", "cover", "total_gain", "total_cover")
        for name in feature_names
    }
    assert set(trial.tensor_names(collection="average_shap")) == {
        f"average_shap/{name}" for name in feature_names
    }
    assert set(trial.tensor_names(collection="full_shap")) == {f"full_shap/{name}" for name in feature_names}
    assert trial.tensor_names(collection="predictions") == ["predictions"]
    assert trial.tensor_names(collection="labels") == ["labels"]
    assert "hyperparameters/max_depth" in trial.tensor_names(collection="hyperparameters")


def test_save_configurations_are_honoured_per_collection(debugged_run) -> None:  # noqa: ANN001
    _, trial, _, _ = debugged_run
    assert trial.tensor("validation-auc").steps() == list(range(9))  # metrics: every step
    assert trial.tensor("feature_importance/gain/f0").steps() == [0, 4, 8]
    assert trial.tensor("average_shap/f0").steps() == [0, 1, 4]
    assert trial.tensor("full_shap/f0").steps() == [3, 6, 8]
    assert trial.tensor("predictions").steps() == [0, 2, 4, 6, 8]  # HookParameters' save_interval
    assert trial.tensor("labels").steps() == [0]


def test_values_match_the_saved_model(debugged_run) -> None:  # noqa: ANN001
    run, trial, labels, features = debugged_run
    booster = xgboost.Booster()
    booster.load_model(bytearray(run.model_path.read_bytes()))
    train, validation = features[:TRAIN_ROWS], features[TRAIN_ROWS:]

    contributions = booster.predict(xgboost.DMatrix(train), pred_contribs=True)
    full_shap = trial.tensor("full_shap/f2").value(8)
    assert full_shap.shape == (TRAIN_ROWS, FEATURES + 1)
    np.testing.assert_allclose(full_shap, contributions, rtol=1e-5, atol=1e-6)
    after_round_4 = booster[:5].predict(xgboost.DMatrix(train), pred_contribs=True).mean(axis=0)
    for index in range(FEATURES):
        assert trial.tensor(f"average_shap/f{index}").value(4)[0] == pytest.approx(
            after_round_4[index], rel=1e-4, abs=1e-6
        )
    np.testing.assert_allclose(
        trial.tensor("predictions").value(8), booster.predict(xgboost.DMatrix(validation)), rtol=1e-5
    )
    np.testing.assert_array_equal(trial.tensor("labels").value(0), labels[TRAIN_ROWS:])
    gains = [trial.tensor(name).value(8)[0] for name in trial.tensor_names(regex=r"feature_importance/gain/")]
    assert sum(gains) == pytest.approx(1.0, rel=1e-5)  # normalised by the sum, as smdebug does
    assert int(trial.tensor("hyperparameters/max_depth").value(0)[0]) == 3
    metric_lines = [line for line in run.stdout.splitlines() if line.startswith("[8]\t")]
    printed_auc = float(metric_lines[0].split("validation-auc:")[1].split()[0])
    assert trial.tensor("validation-auc").value(8)[0] == pytest.approx(printed_auc, abs=1e-5)


@pytest.mark.parametrize("framework_version", ["3.0-5"])
def test_versions_without_the_hook_train_and_write_no_tensors(tmp_path: Path, framework_version: str) -> None:
    channels, _, _ = _channels()
    opt_ml = layout_opt_ml(tmp_path, HYPERPARAMETERS, channels, collections=COLLECTIONS)
    run = run_container(opt_ml, framework_version)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.model_path.stat().st_size > 0
    assert not run.tensors_dir.exists()
    assert f"Framework version {framework_version} does not run the Debugger hook" in run.stdout


def test_gblinear_with_config_from_the_environment_variable(tmp_path: Path) -> None:
    """smdebug's hook asks xgboost 3 for gain importances of a linear model unless adapted (see debugger.py)."""
    channels, _, _ = _channels()
    opt_ml = layout_opt_ml(
        tmp_path, {**HYPERPARAMETERS, "booster": "gblinear"}, channels,
        collections={"metrics": {}, "feature_importance": {}, "average_shap": {}}, hook_parameters={"save_interval": "2"},
    )
    elsewhere = tmp_path / "hook.json"
    shutil.move(opt_ml / "input" / "config" / "debughookconfig.json", elsewhere)
    run = run_container(opt_ml, "1.0-1", env={"SMDEBUG_CONFIG_FILE_PATH": str(elsewhere)})
    assert run.returncode == 0, run.stdout + run.stderr
    trial = open_trial(run.tensors_dir)
    assert trial.tensor("validation-logloss").steps() == [0, 2, 4, 6, 8]
    assert trial.tensor_names(regex="feature_importance") == []
    assert len(trial.tensor_names(collection="average_shap")) == FEATURES


def test_unreadable_hook_config_fails_the_job_with_a_reason(tmp_path: Path) -> None:
    channels, _, _ = _channels()
    opt_ml = layout_opt_ml(tmp_path, HYPERPARAMETERS, channels, collections={"metrics": {}})
    (opt_ml / "input" / "config" / "debughookconfig.json").write_text("{not json")
    run = run_container(opt_ml, "1.7-1")
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("The Debugger hook could not be created from ")
    assert not run.model_path.exists()
