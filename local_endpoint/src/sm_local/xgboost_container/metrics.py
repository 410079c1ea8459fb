"""Evaluation metrics the built-in algorithm computes itself (accuracy, f1, r2, ...), with scikit-learn.

XGBoost has no such metrics; the container adds them to the per-round evaluation so they print (and
reach Debugger's `metrics` collection) as `<eval>-<metric>` next to XGBoost's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xgboost

MetricFunction = Callable[[np.ndarray, "xgboost.DMatrix"], list[tuple[str, float]]]


def _scorers() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    from sklearn import metrics as sk

    return {
        "accuracy": sk.accuracy_score,
        "balanced_accuracy": sk.balanced_accuracy_score,
        "f1": lambda y, p: sk.f1_score(y, p, average="macro"),
        "f1_binary": lambda y, p: sk.f1_score(y, p, average="binary"),
        "f1_macro": lambda y, p: sk.f1_score(y, p, average="macro"),
        "precision": sk.precision_score,
        "precision_macro": lambda y, p: sk.precision_score(y, p, average="macro", zero_division=0),
        "precision_micro": lambda y, p: sk.precision_score(y, p, average="micro", zero_division=0),
        "recall": sk.recall_score,
        "recall_macro": lambda y, p: sk.recall_score(y, p, average="macro", zero_division=0),
        "recall_micro": lambda y, p: sk.recall_score(y, p, average="micro", zero_division=0),
    }


def margin_to_prediction(objective: str, margins: np.ndarray, rows: int) -> np.ndarray:
    """What xgboost's prediction is for these raw margins: the objective's transformation."""
    if objective.startswith("multi:"):
        margins = margins.reshape(rows, -1)
        if objective == "multi:softmax":
            return margins.argmax(axis=1).astype(np.float64)
        shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if objective in ("binary:logistic", "reg:logistic"):
        return 1.0 / (1.0 + np.exp(-margins))
    if objective == "binary:hinge":
        return (margins > 0).astype(np.float64)
    if objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"):
        return np.exp(margins)
    return margins


def container_metric(names: list[str], objective: str, margins: bool = False) -> MetricFunction:
    """One metric function for xgb.train that reports every requested container metric.

    It computes on transformed predictions (probabilities for binary:logistic and multi:softprob, class ids
    for multi:softmax, margins for binary:logitraw), which `custom_metric` receives; a `feval` receives raw
    margins from xgboost 1.2 on (`margins=True`), which are transformed first.
    """
    scorers = _scorers()

    def to_classes(predictions: np.ndarray) -> np.ndarray:
        if predictions.ndim == 2:
            return predictions.argmax(axis=1)
        if objective == "binary:logitraw":
            return (predictions > 0).astype(np.int64)
        if objective in ("multi:softmax", "binary:hinge"):
            return predictions.astype(np.int64)
        return (predictions > 0.5).astype(np.int64)

    def evaluate(predictions: np.ndarray, data: xgboost.DMatrix) -> list[tuple[str, float]]:
        from sklearn.metrics import mean_squared_error, r2_score

        labels = data.get_label()
        if margins:
            predictions = margin_to_prediction(objective, np.asarray(predictions, dtype=np.float64), len(labels))
        results = []
        classes = None
        for name in names:
            if name == "mse":
                results.append((name, float(mean_squared_error(labels, predictions))))
            elif name == "r2":
                results.append((name, float(r2_score(labels, predictions))))
            else:
                classes = to_classes(predictions) if classes is None else classes
                results.append((name, float(scorers[name](labels.astype(np.int64), classes))))
        return results

    return evaluate
