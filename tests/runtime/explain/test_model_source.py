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


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_metric_sums_of_any_split_of_the_rows_add_up_to_one_pass(objective: str) -> None:
    """The per-step sums a map computes over its part files merge to exactly the sums over all rows: each row's
    margin after each step must not depend on which rows share its batch (the reduce draws metrics.csv from
    them, byte for byte the same for any number of parts)."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(3000, 8)).astype(np.float32)
    signal = features[:, 0] * features[:, 1] + features[:, 2] + 0.5 * rng.normal(size=3000)
    labels = (signal > 0.3).astype(np.float32) if objective == "binary:logistic" else signal.astype(np.float32)
    booster = xgb.train({"objective": objective, "max_depth": 5, "eta": 0.2, "subsample": 0.7},
                        xgb.DMatrix(features, label=labels), num_boost_round=51)
    steps = model_source.curve_steps(booster)
    whole = model_source.metric_sums(booster, objective, features, labels, steps)
    for cuts in ([1000, 2000], [1, 1500], [2999]):
        bounds = [0, *cuts, 3000]
        parts = [model_source.metric_sums(booster, objective, features[a:b], labels[a:b], steps)
                 for a, b in zip(bounds, bounds[1:], strict=False)]
        merged = {name: [sum(values) for values in zip(*(p[name] for p in parts), strict=True)] for name in whole}
        assert merged == whole, cuts
