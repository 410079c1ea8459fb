"""The built-in XGBoost algorithm's hyperparameters: one table for the training request
(`sm_explain_ops.training_request.hyperparameters`: a bad request fails in Airflow, before a job exists) and
the local endpoint's algorithm process (which fails the job as the image does).

SageMaker passes every value as a string. The algorithm refuses unknown names, missing `num_round`,
values of the wrong type or outside their range, and a few inconsistent combinations, before it reads
any data; the names, ranges and aliases below are the documented ones of the 1.7-1 image (facts from
the public sagemaker-xgboost-container repository). Every refusal is one sentence that names the
hyperparameter and what it accepts. Pure standard library, so a bad request fails in milliseconds.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class HyperparameterError(ValueError):
    """A hyperparameter the built-in algorithm refuses; the message is the sentence the algorithm fails with."""


# Metrics XGBoost computes itself, and those the container computes (with scikit-learn) and reports
# under the same `<eval>-<metric>` names. Larger-is-better ones steer early stopping's direction.
MAXIMIZE_METRICS = frozenset({
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
})
MINIMIZE_METRICS = frozenset({
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
    "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
})
CONTAINER_METRICS = frozenset({
    "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "precision",
    "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
})
_THRESHOLD_METRICS = ("error", "ndcg", "map")

OBJECTIVES = (
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax",
    "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror",
    "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror",
    "reg:tweedie", "survival:aft", "survival:cox",
)
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
# Used by the container itself, never passed to xgboost.train().
CONTAINER_KEYS = frozenset({
    "num_round", "csv_weights", "early_stopping_rounds", "save_model_on_termination",
    "_tuning_objective_metric", "_kfold", "_num_cv_round", "use_dask_gpu_training",
})
# Accepted by the 1.x images but removed from xgboost 2+; passing them on only makes xgboost warn.
REMOVED_IN_XGBOOST_2 = frozenset({
    "predictor", "dsplit", "sketch_eps", "lambda_bias", "prob_buffer_row", "deterministic_histogram",
})


@dataclass(frozen=True)
class Interval:
    """A numeric range printed in the notation the algorithm's messages use: `[0, 1]`, `(0, +inf)`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        low = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{_num(self.low)}"
        high = "+inf)" if self.high is None else f"{_num(self.high)}{')' if self.high_open else ']'}"
        return f"{low}, {high}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: how to turn its string into a value, or say why it cannot."""

    name: str
    parse: Callable[[str, str], Any]


def integer(interval: Interval) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise HyperparameterError(
                f"Hyperparameter {name}: value {raw!r} is not a valid integer; expected an integer in {interval}."
            ) from None
        if value not in interval:
            raise HyperparameterError(f"Hyperparameter {name}: value {value} is out of range; expected an integer in {interval}.")
        return value

    return parse


def number(interval: Interval) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise HyperparameterError(
                f"Hyperparameter {name}: value {raw!r} is not a valid float; expected a number in {interval}."
            ) from None
        if not math.isfinite(value) or value not in interval:
            raise HyperparameterError(f"Hyperparameter {name}: value {raw.strip()} is out of range; expected a number in {interval}.")
        return value

    return parse


def choice(*values: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if value not in values:
            raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} is not one of {', '.join(values)}.")
        return value

    return parse


def _metric_list(name: str, raw: str) -> list[str]:
    metrics = [metric.strip() for metric in raw.split(",") if metric.strip()]
    if not metrics:
        raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} names no metric; expected a comma-separated list.")
    for metric in metrics:
        if "@" in metric:
            base, _, threshold = metric.partition("@")
            if base.strip() not in _THRESHOLD_METRICS:
                raise HyperparameterError(
                    f"Hyperparameter {name}: metric {metric!r} is not supported; a '@t' threshold is only "
                    f"allowed for {', '.join(_THRESHOLD_METRICS)}."
                )
            try:
                float(threshold)
            except ValueError:
                raise HyperparameterError(f"Hyperparameter {name}: threshold in {metric!r} is not a number.") from None
        elif metric not in MAXIMIZE_METRICS | MINIMIZE_METRICS:
            raise HyperparameterError(
                f"Hyperparameter {name}: metric {metric!r} is not supported; expected a comma-separated list of "
                f"{', '.join(sorted(MAXIMIZE_METRICS | MINIMIZE_METRICS))}."
            )
    return metrics


def _tuning_metric(name: str, raw: str) -> str:
    channel, _, metric = raw.strip().partition(":")
    if channel != "validation" or metric not in MAXIMIZE_METRICS | MINIMIZE_METRICS:
        raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} is not 'validation:<metric>' with a supported metric.")
    return metric


def _int_tuple(name: str, raw: str) -> tuple[int, ...]:
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, tuple | list) or any(element not in (-1, 0, 1) for element in value):
        raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} is not a tuple of -1, 0 and 1, e.g. '(1,0,-1)'.")
    return tuple(value)


def _nested_list(name: str, raw: str) -> list[list[int]]:
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = None
    valid = isinstance(value, list) and all(
        isinstance(group, list) and all(isinstance(index, int) and index >= 0 for index in group) for group in value
    )
    if not valid:
        raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} is not a list of lists of feature indices, e.g. '[[0,1],[2]]'.")
    return value


def _updater(name: str, raw: str) -> str:
    known = ("grow_colmaker", "grow_histmaker", "grow_quantile_histmaker", "sync", "refresh", "prune",
             "shotgun", "coord_descent")
    updaters = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [part for part in updaters if part not in known]
    if not updaters or unknown:
        raise HyperparameterError(f"Hyperparameter {name}: value {raw!r} is not a comma-separated list of {', '.join(known)}.")
    return ",".join(updaters)


_UNIT = Interval(0, 1)
_NON_NEGATIVE = Interval(0)
_FRACTION = Interval(0, 1, low_open=True)

SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("num_round", integer(Interval(1))),
        Spec("csv_weights", integer(Interval(0, 1))),
        Spec("early_stopping_rounds", integer(Interval(1))),
        Spec("booster", choice("gbtree", "gblinear", "dart")),
        Spec("verbosity", integer(Interval(0, 3))),
        Spec("nthread", integer(Interval(1))),
        Spec("eta", number(_UNIT)),
        Spec("gamma", number(_NON_NEGATIVE)),
        Spec("max_depth", integer(_NON_NEGATIVE)),
        Spec("min_child_weight", number(_NON_NEGATIVE)),
        Spec("max_delta_step", number(_NON_NEGATIVE)),
        Spec("subsample", number(_FRACTION)),
        Spec("colsample_bytree", number(_FRACTION)),
        Spec("colsample_bylevel", number(_FRACTION)),
        Spec("colsample_bynode", number(_FRACTION)),
        Spec("lambda", number(_NON_NEGATIVE)),
        Spec("alpha", number(_NON_NEGATIVE)),
        Spec("tree_method", choice("auto", "exact", "approx", "hist", "gpu_hist")),
        Spec("sketch_eps", number(Interval(0, 1, low_open=True, high_open=True))),
        Spec("scale_pos_weight", number(Interval(0, low_open=True))),
        Spec("updater", _updater),
        Spec("dsplit", choice("row", "col")),
        Spec("refresh_leaf", integer(Interval(0, 1))),
        Spec("process_type", choice("default", "update")),
        Spec("grow_policy", choice("depthwise", "lossguide")),
        Spec("max_leaves", integer(_NON_NEGATIVE)),
        Spec("max_bin", integer(_NON_NEGATIVE)),
        Spec("predictor", choice("auto", "cpu_predictor", "gpu_predictor")),
        Spec("monotone_constraints", _int_tuple),
        Spec("interaction_constraints", _nested_list),
        Spec("sample_type", choice("uniform", "weighted")),
        Spec("normalize_type", choice("tree", "forest")),
        Spec("rate_drop", number(_UNIT)),
        Spec("one_drop", integer(Interval(0, 1))),
        Spec("skip_drop", number(_UNIT)),
        Spec("lambda_bias", number(_UNIT)),
        Spec("tweedie_variance_power", number(Interval(1, 2, low_open=True, high_open=True))),
        Spec("objective", choice(*OBJECTIVES)),
        Spec("num_class", integer(Interval(2))),
        Spec("base_score", number(_NON_NEGATIVE)),
        Spec("_kfold", integer(Interval(2))),
        Spec("_num_cv_round", integer(Interval(1))),
        Spec("_tuning_objective_metric", _tuning_metric),
        Spec("eval_metric", _metric_list),
        Spec("seed", integer(Interval(-(2**31), 2**31 - 1, low_open=True, high_open=True))),
        Spec("num_parallel_tree", integer(Interval(1))),
        Spec("save_model_on_termination", choice("true", "false")),
        Spec("aft_loss_distribution", choice("normal", "logistic", "extreme")),
        Spec("aft_loss_distribution_scale", number(_NON_NEGATIVE)),
        Spec("sampling_method", choice("uniform", "gradient_based")),
        Spec("use_dask_gpu_training", choice("true", "false")),
    )
}


@dataclass
class Hyperparameters:
    """The validated request, split into what the container uses and what xgboost.train() gets."""

    num_round: int
    booster_params: dict[str, Any]
    early_stopping_rounds: int | None = None
    early_stopping_metric: str | None = None
    csv_weights: int = 0
    save_model_on_termination: bool = False
    container_metrics: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def objective(self) -> str:
        return self.booster_params.get("objective", "reg:squarederror")


def parse_hyperparameters(raw: Mapping[str, Any], *, xgboost_version: str) -> Hyperparameters:
    """Validate `hyperparameters.json` (a string map) or raise `HyperparameterError` naming the first problem.

    `xgboost_version` is the image's library: what xgboost 2+ removed is dropped only for those.
    """
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = ALIASES.get(key, key)
        if name not in SPECS:
            close = difflib.get_close_matches(name, list(SPECS) + list(ALIASES), n=1)
            hint = f"; did you mean {close[0]}?" if close else "."
            raise HyperparameterError(f"Extraneous hyperparameter found: {key} is not a hyperparameter of the XGBoost algorithm{hint}")
        if name in values:
            raise HyperparameterError(f"Hyperparameter {name} is given twice (as {name} and as its alias {key}).")
        text = value if isinstance(value, str) else json_scalar(value)
        values[name] = SPECS[name].parse(name, text)
    if "num_round" not in values:
        raise HyperparameterError("Missing required hyperparameter: num_round (an integer in [1, +inf)).")
    _check_combinations(values)
    return _split(values, xgboost_major=int(xgboost_version.split(".")[0]))


def json_scalar(value: Any) -> str:
    """Non-string JSON values (hand-written configs) are read as SageMaker would have stringified them."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check_combinations(values: dict[str, Any]) -> None:
    objective = values.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in values:
        raise HyperparameterError(f"Hyperparameter num_class is required for objective {objective} (an integer in [2, +inf)).")
    if "num_class" in values and objective not in ("multi:softmax", "multi:softprob"):
        raise HyperparameterError("Hyperparameter num_class is only used with objective multi:softmax or multi:softprob.")
    metrics = values.get("eval_metric", [])
    effective_objective = objective or "reg:squarederror"
    if "auc" in metrics and not effective_objective.startswith(("binary:", "rank:")):
        raise HyperparameterError("Hyperparameter eval_metric: metric 'auc' can only be applied to binary: and rank: objectives.")
    if "aft-nloglik" in metrics and effective_objective != "survival:aft":
        raise HyperparameterError("Hyperparameter eval_metric: metric 'aft-nloglik' can only be applied to objective survival:aft.")
    tree_method = values.get("tree_method")
    if "monotone_constraints" in values and tree_method not in ("exact", "hist"):
        raise HyperparameterError("Hyperparameter monotone_constraints needs tree_method 'exact' or 'hist'.")
    if "interaction_constraints" in values and tree_method not in ("exact", "hist", "approx"):
        raise HyperparameterError("Hyperparameter interaction_constraints needs tree_method 'exact', 'hist' or 'approx'.")
    if tree_method == "gpu_hist" or values.get("use_dask_gpu_training") == "true":
        raise HyperparameterError("Hyperparameter tree_method: GPU training is not available on the local endpoint (no GPU).")
    if "_kfold" in values or "_num_cv_round" in values:
        raise HyperparameterError("Hyperparameter _kfold: cross-validation training is not supported by the local endpoint.")


def _split(values: dict[str, Any], xgboost_major: int) -> Hyperparameters:
    params = {name: value for name, value in values.items() if name not in CONTAINER_KEYS}
    ignored = sorted(name for name in params if name in REMOVED_IN_XGBOOST_2) if xgboost_major >= 2 else []
    for name in ignored:
        del params[name]
    if params.get("objective") == "reg:linear" and xgboost_major >= 2:  # an alias 2+ accepts, with a warning
        params["objective"] = "reg:squarederror"
    if "monotone_constraints" in params:
        params["monotone_constraints"] = "(" + ",".join(str(c) for c in params["monotone_constraints"]) + ")"
    if "interaction_constraints" in params:
        params["interaction_constraints"] = str(params["interaction_constraints"])

    requested = list(values.get("eval_metric", []))
    tuning_metric = values.get("_tuning_objective_metric")
    if tuning_metric and tuning_metric not in requested:
        requested.append(tuning_metric)
    builtin = [metric for metric in requested if metric not in CONTAINER_METRICS]
    container = [metric for metric in requested if metric in CONTAINER_METRICS]
    if builtin:
        params["eval_metric"] = builtin
    else:
        params.pop("eval_metric", None)
    return Hyperparameters(
        num_round=values["num_round"],
        booster_params=params,
        early_stopping_rounds=values.get("early_stopping_rounds"),
        early_stopping_metric=tuning_metric or (requested[-1] if requested else None),
        csv_weights=values.get("csv_weights", 0),
        save_model_on_termination=values.get("save_model_on_termination") == "true",
        container_metrics=container,
        ignored=ignored,
    )
