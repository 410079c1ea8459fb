"""SHAP outliers, the notebook's way: z-score of each row's SHAP sum (bias excluded), top N on each tail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sm_explain.features import FeatureSpace
from sm_explain.shap_rows import ExplainedShap

TOP_CONTRIBUTIONS = 3


def _display(space: FeatureSpace, feature: int, value: float) -> str:
    shown = space.display_value(feature, value)
    return shown if isinstance(shown, str) else f"{shown:.6g}"


def shap_outliers(shap: ExplainedShap, feature_values: np.ndarray, space: FeatureSpace, top_n: int) -> pd.DataFrame:
    """2 x top_n rows (fewer only when there are fewer rows): `tail` high first, each tail most extreme first.

    Columns: tail, rank, row, z_score, shap_sum, prediction, then feature_k / value_k / shap_k for the
    TOP_CONTRIBUTIONS largest |SHAP| of that row. Sorting is stable, so ties break by row number.
    """
    sums = shap.shap_sums
    spread = sums.std()
    z_scores = (sums - sums.mean()) / spread if spread > 0 else np.zeros_like(sums)
    order = np.argsort(z_scores, kind="stable")
    per_tail = min(top_n, len(order) // 2)
    high = np.argsort(-z_scores, kind="stable")[:per_tail]
    low = order[:per_tail]
    records = []
    for tail, rows in (("high", high), ("low", low)):
        contributions = shap.contributions(rows) if len(rows) else np.empty((0, len(space.names) + 1))
        for rank, (row, row_contributions) in enumerate(zip(rows, contributions, strict=True), start=1):
            row_shap = row_contributions[:-1]
            top = np.argsort(-np.abs(row_shap), kind="stable")[:TOP_CONTRIBUTIONS]
            record: dict[str, object] = {
                "tail": tail,
                "rank": rank,
                "row": int(row),
                "z_score": float(z_scores[row]),
                "shap_sum": float(sums[row]),
                "prediction": float(shap.predictions[row]),
            }
            for k, feature in enumerate(top, start=1):
                record[f"feature_{k}"] = space.names[feature]
                record[f"value_{k}"] = _display(space, int(feature), float(feature_values[row, feature]))
                record[f"shap_{k}"] = float(row_shap[feature])
            records.append(record)
    return pd.DataFrame.from_records(records)
