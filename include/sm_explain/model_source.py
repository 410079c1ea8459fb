"""The "over steps" analyses straight from the trained model (the SHAP values of the explained rows are in
shap_rows): the model truncated to each step (`iteration_range`, tree slicing) on a seeded row sample for the
curves. Works for any XGBoost job, with or without Debugger tensors. Step s means "after round s" (s + 1
rounds), as the Debugger hook numbers them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from sm_explain.debugger_trial import IMPORTANCE_TYPES, MAX_CURVE_STEPS
from sm_explain.errors import BadRequest
from sm_explain.exact_sums import exact_sums, to_float
from sm_explain.shap_rows import CHUNK_ROWS, dmatrix_for, model_output
from sm_explain_contracts.explain_request import SUPPORTED_OBJECTIVES
from sm_explain_contracts.lean_xgboost import import_xgboost

xgb = import_xgboost()  # the lean import: see sm_explain_contracts.lean_xgboost


def check_supported(booster: xgb.Booster, objective: str) -> None:
    if objective not in SUPPORTED_OBJECTIVES:
        raise BadRequest(
            f"the model's objective {objective!r} is not supported (one output per row: {', '.join(SUPPORTED_OBJECTIVES)})"
        )
    if booster.num_boosted_rounds() < 1:
        raise BadRequest("the model has no trees")


def curve_steps(booster: xgb.Booster, limit: int = MAX_CURVE_STEPS) -> list[int]:
    """At most `limit` steps between the first and the last round, both included."""
    rounds = booster.num_boosted_rounds()
    return [int(s) for s in np.unique(np.linspace(0, rounds - 1, min(rounds, limit)).round().astype(int))]


def average_shap_over_steps(booster: xgb.Booster, sample: np.ndarray, steps: list[int]) -> pd.DataFrame:
    """Mean signed SHAP per feature (bias excluded) of the model truncated to each step, as Debugger's average_shap.

    TreeSHAP feature attributions add up over trees, so each step only explains the rounds added since the
    previous one (a model slice) and accumulates: one SHAP pass over the sample in total, not one per step.
    """
    matrix = dmatrix_for(booster, sample)
    running = np.zeros(sample.shape[1], dtype=np.float64)
    rows = []
    start = 0
    for step in steps:
        segment = booster[start: step + 1].predict(matrix, pred_contribs=True)
        running += np.asarray(segment)[:, :-1].mean(axis=0, dtype=np.float64)
        rows.append(running.copy())
        start = step + 1
    return pd.DataFrame(rows, index=pd.Index(steps, name="step"), columns=range(sample.shape[1]))


def _score_index(booster: xgb.Booster, key: str) -> int:
    names = booster.feature_names
    if names is not None and key in names:
        return names.index(key)
    return int(key.lstrip("f"))


def feature_importance_over_steps(
    booster: xgb.Booster, steps: list[int], importance_type: str, n_features: int
) -> pd.DataFrame:
    """get_score(importance_type) of each truncated model normalised by its sum (as smdebug saves it); 0 when unused."""
    if importance_type not in IMPORTANCE_TYPES:
        raise ValueError(f"unknown importance type {importance_type!r}")
    table = np.zeros((len(steps), n_features), dtype=np.float64)
    for row, step in enumerate(steps):
        scores = booster[: step + 1].get_score(importance_type=importance_type)
        total = float(sum(scores.values()))
        for key, value in scores.items():
            table[row, _score_index(booster, key)] = value / total if total else 0.0
    return pd.DataFrame(table, index=pd.Index(steps, name="step"), columns=range(n_features))


def _cumulative_margins(booster: xgb.Booster, features: np.ndarray, steps: list[int]
                        ) -> Iterator[tuple[slice, dict[int, np.ndarray]]]:
    """Per chunk of rows (CHUNK_ROWS at a time: memory holds one chunk's DMatrix and margins, never every step's
    margins of every row), the raw margins after each wanted step, adding the rounds since the previous wanted
    step at a time: one call per step and chunk, one full prediction's worth of tree work in total.

    Every partial prediction includes the base margin once, so it is subtracted again for every segment after the
    first. It is measured on one fixed row (every feature missing), not on these rows' first: in float32 the
    measured value differs a little from row to row, and a map over part files must subtract the same value
    whichever rows its parts hold.
    """
    wanted = sorted(set(steps))
    base = 0.0
    if len(wanted) > 1:
        first_row = dmatrix_for(booster, np.full((1, features.shape[1]), np.nan, dtype=np.float32))
        split = wanted[0] + 1
        base = float(
            booster.predict(first_row, output_margin=True, iteration_range=(0, split))[0]
            + booster.predict(first_row, output_margin=True, iteration_range=(split, split + 1))[0]
            - booster.predict(first_row, output_margin=True, iteration_range=(0, split + 1))[0]
        )
    for chunk_start in range(0, features.shape[0], CHUNK_ROWS):
        rows = slice(chunk_start, chunk_start + CHUNK_ROWS)
        matrix = dmatrix_for(booster, features[rows])
        margins: dict[int, np.ndarray] = {}
        running = np.zeros(matrix.num_row(), dtype=np.float64)
        start = 0
        for step in wanted:
            running += booster.predict(matrix, output_margin=True, iteration_range=(start, step + 1))
            if start > 0:
                running -= base
            margins[step] = running.copy()
            start = step + 1
        yield rows, margins


def metric_names(objective: str) -> tuple[str, ...]:
    return ("logloss", "error") if objective == "binary:logistic" else ("rmse",)


def metric_sums(booster: xgb.Booster, objective: str, features: np.ndarray, labels: np.ndarray, steps: list[int]
                ) -> dict[str, list[int]]:
    """Per metric, the exact sum over these rows of its per-row term at each step (`exact_sums` units): a row's
    log loss, its error (0 or 1) or its squared error. Exact, so sums of any split of the rows add up to one
    run's, and `metric_curves_from_sums` rounds each mean once."""
    sums: dict[str, list[int]] = {name: [0] * len(steps) for name in metric_names(objective)}
    for rows, margins in _cumulative_margins(booster, features, steps):
        targets = labels[rows].astype(np.float64)
        for i, step in enumerate(steps):
            prediction = model_output(objective, margins[step])
            if objective == "binary:logistic":
                clipped = np.clip(prediction, 1e-16, 1 - 1e-16)
                terms = {"logloss": -(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)),
                         "error": ((prediction > 0.5) != (targets > 0.5)).astype(np.float64)}
            else:
                terms = {"rmse": (prediction - targets) ** 2}
            for name, values in terms.items():
                sums[name][i] += exact_sums(values)[0]
    return sums


def metric_curves_from_sums(objective: str, sums: dict[str, tuple[dict[str, list[int]], int]], steps: list[int]
                            ) -> pd.DataFrame:
    """`<channel>-<metric>` per step from each channel's (metric sums, row count)."""
    columns: dict[str, list[float]] = {}
    for channel, (channel_sums, n_rows) in sums.items():
        for name in metric_names(objective):
            means = [to_float(total, n_rows) for total in channel_sums[name]]
            columns[f"{channel}-{name}"] = [float(np.sqrt(m)) for m in means] if name == "rmse" else means
    return pd.DataFrame(columns, index=pd.Index(steps, name="step"))


def metric_curves(
    booster: xgb.Booster, objective: str, channels: dict[str, tuple[np.ndarray, np.ndarray]], steps: list[int]
) -> pd.DataFrame:
    """`<channel>-<metric>` per step (train/validation), recomputed when no Debugger metrics exist."""
    return metric_curves_from_sums(objective, {
        channel: (metric_sums(booster, objective, features, labels, steps), features.shape[0])
        for channel, (features, labels) in channels.items()}, steps)
