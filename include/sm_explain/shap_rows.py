"""SHAP values of the explained rows, as the analyses use them: per-row SHAP sums and predictions for every row,
full contribution vectors for the few rows that are plotted, and mean |SHAP| over every row.

From the model, the only expensive part is mean |SHAP| (one `pred_contribs` pass over every row). It runs in a
background thread, on its own copy of the booster, while the caller draws everything else: xgboost releases the
GIL, and the pass leaves enough of two cores idle (it scales about 1.85x on two threads) that the figures drawn
meanwhile barely slow it (see bench/RESULTS.md). The pass goes in row chunks, so memory holds one chunk's
contributions, never rows x features for the whole data set. Everything else comes from cheap predictions: a
row's SHAP values (bias excluded) add up to its margin minus the base value, and `pred_contribs` of a row does
not depend on the other rows in its batch, so a small pass over the sampled rows gives exactly the values the
full pass gives them."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod

import numpy as np
import xgboost as xgb

CHUNK_ROWS = 131_072


def dmatrix_for(booster: xgb.Booster, features: np.ndarray) -> xgb.DMatrix:
    # A booster trained with named columns refuses an unnamed DMatrix; the staged CSV order is the same.
    return xgb.DMatrix(features, feature_names=booster.feature_names, nthread=-1)


def model_output(objective: str, margin: np.ndarray) -> np.ndarray:
    """What the model predicts from a raw margin: logistic objectives squash it, regression returns it."""
    if objective in ("binary:logistic", "reg:logistic"):
        return 1.0 / (1.0 + np.exp(-margin))
    return margin


class ExplainedShap(ABC):
    """SHAP values of `n_rows` explained rows; contributions are (rows, features + 1), bias (base value) last."""

    base_value: float
    shap_sums: np.ndarray  # (rows,) float64: sum of each row's SHAP values, bias excluded
    predictions: np.ndarray  # (rows,) float64: the model's output

    @property
    def n_rows(self) -> int:
        return int(self.shap_sums.shape[0])

    @abstractmethod
    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """float32 contributions of the given row numbers, in that order."""

    @abstractmethod
    def mean_abs_shap(self) -> np.ndarray:
        """(features,) float64 mean |SHAP| over every explained row."""


class TensorShap(ExplainedShap):
    """A whole SHAP matrix already in memory (Debugger's full_shap tensors)."""

    def __init__(self, contributions: np.ndarray, objective: str) -> None:
        self._contributions = contributions
        self.base_value = float(contributions[0, -1])
        self.shap_sums = contributions[:, :-1].sum(axis=1, dtype=np.float64)
        self.predictions = model_output(objective, contributions.sum(axis=1, dtype=np.float64))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        return self._contributions[rows]

    def mean_abs_shap(self) -> np.ndarray:
        return np.abs(self._contributions[:, :-1]).mean(axis=0, dtype=np.float64)


class ModelShap(ExplainedShap):
    """SHAP values from the booster: margins now, the mean |SHAP| pass in the background (see the module doc)."""

    def __init__(self, booster: xgb.Booster, objective: str, features: np.ndarray,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        """Starts the pass on every core, then predicts the margins with `booster` as the caller set it up."""
        self._booster = booster
        self._features = features
        self._sums = np.zeros(features.shape[1], dtype=np.float64)
        self._error: BaseException | None = None
        # Its own booster: prediction is thread-safe in xgboost, but nothing else here then shares state with it.
        pass_booster = booster.copy()
        pass_booster.set_param({"nthread": len(os.sched_getaffinity(0))})
        self._thread = threading.Thread(target=self._full_pass, args=(pass_booster, chunk_rows),
                                        name="sm_explain-shap-pass", daemon=True)
        self._thread.start()
        margins = booster.predict(dmatrix_for(booster, features), output_margin=True).astype(np.float64)
        self.base_value = float(self.contributions(np.arange(1))[0, -1])
        self.shap_sums = margins - self.base_value
        self.predictions = model_output(objective, margins)

    def _full_pass(self, booster: xgb.Booster, chunk_rows: int) -> None:
        try:
            for start in range(0, self._features.shape[0], chunk_rows):
                chunk = booster.predict(dmatrix_for(booster, self._features[start: start + chunk_rows]),
                                        pred_contribs=True)
                self._sums += np.abs(chunk[:, :-1]).sum(axis=0, dtype=np.float64)
        except BaseException as exc:  # re-raised in the caller's thread by mean_abs_shap()
            self._error = exc

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        values = self._booster.predict(dmatrix_for(self._booster, self._features[rows]), pred_contribs=True)
        return np.asarray(values, dtype=np.float32)

    def mean_abs_shap(self) -> np.ndarray:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sums / self.n_rows
