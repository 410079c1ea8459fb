"""Curves recomputed from the model agree with what xgboost itself reported while training."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from sm_explain import model_source


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_metric_curves_at_sparse_steps_match_the_training_log(objective: str) -> None:
    rng = np.random.default_rng(8)
    features = rng.normal(size=(600, 5)).astype(np.float32)
    signal = features[:, 0] - 0.5 * features[:, 3] + 0.4 * rng.normal(size=600)
    labels = (signal > 0).astype(np.float32) if objective == "binary:logistic" else signal.astype(np.float32)
    train, validation = slice(0, 450), slice(450, 600)
    dtrain = xgb.DMatrix(features[train], label=labels[train])
    dvalidation = xgb.DMatrix(features[validation], label=labels[validation])
    metrics = ["logloss", "error"] if objective == "binary:logistic" else ["rmse"]
    log: dict = {}
    booster = xgb.train({"objective": objective, "max_depth": 3, "eta": 0.1, "eval_metric": metrics}, dtrain,
                        num_boost_round=80, evals=[(dtrain, "train"), (dvalidation, "validation")],
                        evals_result=log, verbose_eval=False)
    steps = model_source.curve_steps(booster, limit=9)
    assert steps[0] == 0 and steps[-1] == 79 and len(steps) == 9

    curves = model_source.metric_curves(
        booster, objective,
        {"train": (features[train], labels[train]), "validation": (features[validation], labels[validation])}, steps)

    assert list(curves.index) == steps
    for channel in ("train", "validation"):
        for metric in metrics:
            recorded = np.asarray(log[channel][metric])[steps]
            np.testing.assert_allclose(curves[f"{channel}-{metric}"], recorded, rtol=1e-4, atol=1e-5)
