"""The notebook's Debugger training on the real Adult data, read back as a user would with smdebug."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.model_selection import train_test_split

from tests.local_endpoint.test_xgb_container_helpers import (
    ADULT_DATA,
    layout_opt_ml,
    open_trial,
    run_container,
)

# "XGBoost census explanations" notebook configuration.
HYPERPARAMETERS = {
    "max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.7",
    "objective": "binary:logistic", "num_round": "51",
}
SAVE_INTERVAL = {"save_interval": "5"}
COLLECTIONS = {name: SAVE_INTERVAL for name in ("metrics", "feature_importance", "full_shap", "average_shap")}
SAVED_STEPS = list(range(0, 51, 5))
FEATURES = 14


def encode_adult(path: Path) -> pd.DataFrame:
    """Categoricals to integer codes, label (`>50K` = 1) moved to the first column."""
    frame = pd.read_csv(path, header=None, skipinitialspace=True)
    assert frame.shape == (32561, 15)
    for column in frame.select_dtypes(exclude="number").columns:
        frame[column] = frame[column].astype("category").cat.codes
    label = frame.pop(14)
    assert set(label.unique()) == {0, 1}  # categories sorted: <=50K -> 0, >50K -> 1
    frame.insert(0, "label", label)
    return frame


@pytest.mark.slow
def test_notebook_training_writes_readable_shap_metrics_and_importance(tmp_path: Path) -> None:
    assert ADULT_DATA.exists(), f"the real Adult data is expected at {ADULT_DATA}"
    train, validation = train_test_split(encode_adult(ADULT_DATA), test_size=0.2, random_state=7)
    channels = {
        "train": {"train.csv": train.to_csv(header=False, index=False)},
        "validation": {"validation.csv": validation.to_csv(header=False, index=False)},
    }
    run = run_container(layout_opt_ml(tmp_path, HYPERPARAMETERS, channels, collections=COLLECTIONS), "1.7-1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"Train matrix has {len(train)} rows and {FEATURES} columns" in run.stdout

    trial = open_trial(run.tensors_dir)
    assert trial.steps() == SAVED_STEPS

    full_shap = trial.tensor("full_shap/f0").value(SAVED_STEPS[-1])
    assert full_shap.shape == (len(train), FEATURES + 1)
    booster = xgboost.Booster()
    booster.load_model(bytearray(run.model_path.read_bytes()))
    margins = booster.predict(xgboost.DMatrix(train.iloc[:, 1:].to_numpy(np.float32)), output_margin=True)
    np.testing.assert_allclose(full_shap.sum(axis=1), margins, atol=2e-3)  # SHAP is additive, bias last
    for index in range(FEATURES):
        average = trial.tensor(f"average_shap/f{index}").value(SAVED_STEPS[-1])[0]
        assert average == pytest.approx(full_shap[:, index].mean(), abs=1e-4)

    for name in ("train-logloss", "validation-logloss"):
        curve = [trial.tensor(name).value(step)[0] for step in SAVED_STEPS]
        assert trial.tensor(name).steps() == SAVED_STEPS
        assert all(later < earlier for earlier, later in zip(curve, curve[1:], strict=False)), curve
    assert trial.tensor("validation-logloss").value(50)[0] < 0.32

    importance = trial.tensor_names(collection="feature_importance")
    for kind in ("weight", "gain", "cover", "total_gain", "total_cover"):
        names = [name for name in importance if name.startswith(f"feature_importance/{kind}/f")]
        assert len(names) >= 8, names
        assert sum(trial.tensor(name).value(50)[0] for name in names) == pytest.approx(1.0, rel=1e-4)
    strongest = max(importance, key=lambda name: trial.tensor(name).value(50)[0] if "/total_gain/" in name else -1)
    assert strongest in {f"feature_importance/total_gain/f{index}" for index in (5, 7, 10)}  # relationship/marital/capital gain
