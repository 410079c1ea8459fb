"""TreeShap (leaf tables) gives xgboost's own `pred_contribs` values, row by row, on the models it accepts, and
refuses the ones it does not handle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from sm_explain.tree_shap import TreeShap, pred_contribs_reason, unsupported_reason


def _data(rows: int, n_features: int, seed: int, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, n_features)).astype(np.float32)
    logit = features[:, 0] - 2 * features[:, 1] + features[:, 0] * features[:, 2]
    labels = (logit + rng.normal(size=rows) > 0).astype(np.float32)
    if missing:
        features[rng.random(features.shape) < missing] = np.nan
    return features, labels


def _model(booster: xgb.Booster) -> dict:
    return json.loads(booster.save_raw("json"))


def _assert_same_as_pred_contribs(booster: xgb.Booster, features: np.ndarray, chunk_rows: int = 4096) -> None:
    reference = booster.predict(xgb.DMatrix(features), pred_contribs=True)[:, :-1]
    ours = TreeShap(_model(booster), features.shape[1]).contributions(features, chunk_rows=chunk_rows)
    assert ours.shape == reference.shape
    scale = np.abs(reference).max()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * scale)


CASES = {
    # The notebook's hyperparameters.
    "notebook": ({"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
                  "objective": "binary:logistic"}, 51, 0.0),
    # Missing values: each split's default direction decides (both directions get learned here).
    "missing values": ({"max_depth": 4, "objective": "binary:logistic"}, 20, 0.3),
    # Three features and deep trees: the same feature is split on several times along a path.
    "repeated features": ({"max_depth": 8, "objective": "reg:squarederror", "eta": 0.5}, 15, 0.0),
    "logistic regression output": ({"max_depth": 3, "objective": "reg:logistic", "base_score": 0.3}, 10, 0.1),
    "stumps": ({"max_depth": 1, "objective": "binary:logistic"}, 30, 0.0),
    # What xgboost 1.x's built-in containers default to on small data: the pruner leaves deleted nodes in the arrays.
    "exact with pruning": ({"tree_method": "exact", "updater": "grow_colmaker,prune", "gamma": 20, "max_depth": 6,
                            "objective": "binary:logistic"}, 10, 0.1),
    "lossguide": ({"grow_policy": "lossguide", "max_leaves": 20, "max_depth": 0, "objective": "binary:logistic"},
                  10, 0.0),
}


@pytest.mark.filterwarnings("ignore:.*manually specified the `updater`")
@pytest.mark.parametrize("case", list(CASES))
def test_tree_shap_equals_pred_contribs(case: str) -> None:
    params, rounds, missing = CASES[case]
    n_features = 3 if case == "repeated features" else 8
    features, labels = _data(3000, n_features, seed=len(case), missing=missing)
    weights = np.random.default_rng(1).uniform(0.2, 3.0, size=len(labels))  # covers are hessian sums, not counts
    booster = xgb.train(params, xgb.DMatrix(features, label=labels, weight=weights), num_boost_round=rounds)
    if case == "exact with pruning":  # the case is only worth its name with deleted nodes in the model
        assert any(int(t["tree_param"]["num_deleted"]) for t in _model(booster)["learner"]["gradient_booster"]["model"]["trees"])
    _assert_same_as_pred_contribs(booster, features, chunk_rows=1000)


def test_a_path_repeats_features_in_the_deep_case() -> None:
    """The repeated-features case really has paths that split twice on one feature (else it proves nothing)."""
    features, labels = _data(3000, 3, seed=len("repeated features"))
    params, rounds, _ = CASES["repeated features"]
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=rounds)
    compiled = TreeShap(_model(booster), 3)
    assert any(len(c) > 1 for tree in compiled._trees for leaf in tree.leaves for c in leaf.conditions)


def test_wide_paths_use_two_byte_patterns() -> None:
    """Paths with more than 8 distinct features (patterns past one byte), with missing values."""
    features, labels = _data(3000, 16, seed=12, missing=0.1)
    booster = xgb.train({"max_depth": 12, "min_child_weight": 0.5, "objective": "binary:logistic"},
                        xgb.DMatrix(features, label=labels), num_boost_round=3)
    compiled = TreeShap(_model(booster), 16)
    assert compiled._pattern_dtype == np.uint16
    _assert_same_as_pred_contribs(booster, features, chunk_rows=1000)


def test_rows_of_missing_values_only_and_a_single_leaf_tree() -> None:
    features, labels = _data(500, 4, seed=2)
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic", "min_split_loss": 1e9},
                        xgb.DMatrix(features, label=labels), num_boost_round=2)  # no split is worth it
    assert all(len(t["left_children"]) == 1 for t in _model(booster)["learner"]["gradient_booster"]["model"]["trees"])
    np.testing.assert_array_equal(TreeShap(_model(booster), 4).contributions(features), np.zeros((500, 4)))
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(features, label=labels), 5)
    blank = np.full((3, 4), np.nan, dtype=np.float32)
    _assert_same_as_pred_contribs(booster, np.concatenate([blank, features[:50]]))


def test_abs_sums_is_the_sum_of_absolute_contributions_in_any_chunking() -> None:
    features, labels = _data(2500, 6, seed=5, missing=0.05)
    booster = xgb.train({"max_depth": 4, "objective": "binary:logistic"}, xgb.DMatrix(features, label=labels), 8)
    reference = np.abs(booster.predict(xgb.DMatrix(features), pred_contribs=True)[:, :-1]).sum(axis=0, dtype=np.float64)
    compiled = TreeShap(_model(booster), 6)
    for chunk_rows in (1, 999, 2500, 100_000):
        np.testing.assert_allclose(compiled.abs_sums(features[:200] if chunk_rows == 1 else features, chunk_rows),
                                   reference if chunk_rows != 1 else
                                   np.abs(booster.predict(xgb.DMatrix(features[:200]), pred_contribs=True)[:, :-1])
                                   .sum(axis=0, dtype=np.float64), rtol=1e-5)


def test_models_it_does_not_handle_are_named() -> None:
    features, labels = _data(400, 4, seed=3)
    dart = xgb.train({"booster": "dart", "objective": "binary:logistic"}, xgb.DMatrix(features, label=labels), 3)
    assert "dart" in unsupported_reason(_model(dart))
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3},
                      xgb.DMatrix(features, label=(labels + (features[:, 3] > 1)).astype(np.float32)), 2)
    assert "more than one output" in unsupported_reason(_model(multi))
    categorical = np.where(features[:, :1] > 0, 1.0, 0.0).astype(np.float32)
    matrix = xgb.DMatrix(np.hstack([categorical, features[:, 1:]]), label=labels,
                         feature_types=["c", "q", "q", "q"], enable_categorical=True)
    with_categories = xgb.train({"max_depth": 2, "objective": "binary:logistic", "max_cat_to_onehot": 1}, matrix, 3)
    assert "categorical" in unsupported_reason(_model(with_categories))
    deep = xgb.train({"max_depth": 20, "min_child_weight": 0, "objective": "reg:squarederror"},
                     xgb.DMatrix(np.random.default_rng(0).normal(size=(4000, 16)).astype(np.float32),
                                 label=np.random.default_rng(1).normal(size=4000)), 1)
    assert "distinct features" in unsupported_reason(_model(deep))
    with pytest.raises(ValueError, match="dart"):
        TreeShap(_model(dart), 4)


def test_tables_are_only_built_when_they_pay_off() -> None:
    features, labels = _data(3000, 8, seed=9)
    notebook = _model(xgb.train(CASES["notebook"][0], xgb.DMatrix(features, label=labels), 51))
    assert pred_contribs_reason(notebook, 160_000) is None
    assert pred_contribs_reason(notebook, 5) is not None  # a handful of rows: pred_contribs is done before tables are
    deep = _model(xgb.train({"max_depth": 10, "min_child_weight": 0, "objective": "binary:logistic"},
                            xgb.DMatrix(features, label=labels), 20))
    assert pred_contribs_reason(deep, 1_000_000) is None
    assert "200 rows are too few" in pred_contribs_reason(deep, 200)
