"""SHAP outliers, the notebook's way: z-score of each row's SHAP sum (bias excluded), top N on each tail.

Over all rows, from partial results: each part keeps its rows with the N largest and N smallest SHAP sums
(`candidates`), and the reduce ranks the union of every part's candidates (`rank_tails`); a row of the global
top N of a tail is in its own part's top N, so the candidates always hold it. Ranked by the SHAP sum (the z-score
is an increasing function of it), ties by the lower global row number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sm_explain.features import FeatureSpace

TOP_CONTRIBUTIONS = 3


def _display(space: FeatureSpace, feature: int, value: float) -> str:
    shown = space.display_value(feature, value)
    return shown if isinstance(shown, str) else f"{shown:.6g}"


def rank_tails(rows: np.ndarray, shap_sums: np.ndarray, per_tail: int) -> dict[str, np.ndarray]:
    """Positions (into `rows`) of the `per_tail` highest and lowest SHAP sums, most extreme first, ties by row."""
    return {"high": np.lexsort((rows, -shap_sums))[:per_tail], "low": np.lexsort((rows, shap_sums))[:per_tail]}


def candidates(rows: np.ndarray, shap_sums: np.ndarray, per_tail: int) -> np.ndarray:
    """Positions of the rows either tail of these rows could contribute to the global outliers, in row order."""
    tails = rank_tails(rows, shap_sums, per_tail)
    return np.union1d(tails["high"], tails["low"]).astype(np.int64)


def outlier_table(tails: dict[str, np.ndarray], z_scores: np.ndarray, shap_sums: np.ndarray,
                  predictions: np.ndarray, contributions: np.ndarray, features: np.ndarray, rows: np.ndarray,
                  space: FeatureSpace) -> pd.DataFrame:
    """2 x top_n rows (fewer only when there are fewer rows): `tail` high first, each tail most extreme first.
    The arrays are aligned with `rows` (the candidates); `tails` holds positions into them.

    Columns: tail, rank, row, z_score, shap_sum, prediction, then feature_k / value_k / shap_k for the
    TOP_CONTRIBUTIONS largest |SHAP| of that row.
    """
    records = []
    for tail in ("high", "low"):
        for rank, position in enumerate(tails[tail], start=1):
            row_shap = contributions[position, :-1]
            top = np.argsort(-np.abs(row_shap), kind="stable")[:TOP_CONTRIBUTIONS]
            record: dict[str, object] = {
                "tail": tail,
                "rank": rank,
                "row": int(rows[position]),
                "z_score": float(z_scores[position]),
                "shap_sum": float(shap_sums[position]),
                "prediction": float(predictions[position]),
            }
            for k, feature in enumerate(top, start=1):
                record[f"feature_{k}"] = space.names[feature]
                record[f"value_{k}"] = _display(space, int(feature), float(features[position, feature]))
                record[f"shap_{k}"] = float(row_shap[feature])
            records.append(record)
    return pd.DataFrame.from_records(records)
