"""SHAP values of the explained rows, as the analyses use them: per-row SHAP sums and predictions for every row,
full contribution vectors for the few rows that are plotted, and mean |SHAP| over every row.

From the model, the only expensive part is mean |SHAP| (SHAP values of every row). It runs in the background,
started as soon as the rows are loaded, while the caller draws everything else, and only accumulates |SHAP| per
feature in row chunks, so memory holds one chunk's values, never rows x features for the whole data set:
- normally in its own process (forked, so it shares the rows without copying them) with `tree_shap.TreeShap`,
  the same values as xgboost's `pred_contribs` for about a twentieth of the CPU. A process, not a thread: TreeShap is
  many short numpy calls, and a thread would wait for the GIL behind the caller's drawing at every one of them;
- else (models TreeShap does not handle, platforms without fork) in a thread with xgboost's `pred_contribs` on
  its own booster copy: xgboost releases the GIL for a whole chunk.
Everything else comes from cheap predictions: a row's SHAP values (bias excluded) add up to its margin minus the
base value, and `pred_contribs` of a row does not depend on the other rows in its batch, so a small pass over the
sampled rows gives exactly the values a full pass gives them."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection

import numpy as np
import xgboost as xgb

from sm_explain import tree_shap

CHUNK_ROWS = 131_072  # rows per pred_contribs call of the thread pass
PASS_NAME = "sm_explain-shap-pass"


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
    mean_abs_method: str  # how mean |SHAP| is computed, for the manifest
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
        self.mean_abs_method = "Debugger full_shap tensor"
        self.base_value = float(contributions[0, -1])
        self.shap_sums = contributions[:, :-1].sum(axis=1, dtype=np.float64)
        self.predictions = model_output(objective, contributions.sum(axis=1, dtype=np.float64))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        return self._contributions[rows]

    def mean_abs_shap(self) -> np.ndarray:
        return np.abs(self._contributions[:, :-1]).mean(axis=0, dtype=np.float64)


class _BackgroundPass(ABC):
    """Sum of |SHAP| per feature over every row, computed while the caller does other work."""

    method: str  # how, for the manifest

    @abstractmethod
    def abs_sums(self) -> np.ndarray:
        """Waits for the pass; re-raises its error in the caller's thread."""


class _TreeShapProcess(_BackgroundPass):
    def __init__(self, model: dict, features: np.ndarray, chunk_rows: int) -> None:
        self.method = "tree_shap leaf tables (sm_explain.tree_shap), in a forked process"
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_tree_shap_pass, args=(model, features, chunk_rows, sender),
                                        name=PASS_NAME, daemon=True)
        self._process.start()
        sender.close()  # the child holds the only sending end: its death reads as EOF here

    def abs_sums(self) -> np.ndarray:
        try:
            outcome, value = self._receiver.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the mean |SHAP| pass process (pid {self._process.pid}) ended with exit code "
                f"{self._process.exitcode} before its result (killed for memory?)"
            ) from None
        finally:
            self._receiver.close()
        self._process.join()
        if outcome == "error":
            raise value
        return value


def _tree_shap_pass(model: dict, features: np.ndarray, chunk_rows: int, sender: Connection) -> None:
    """The forked child: numpy and json only (no xgboost, whose OpenMP state does not survive a fork)."""
    try:
        sender.send(("ok", tree_shap.TreeShap(model, features.shape[1]).abs_sums(features, chunk_rows)))
    except BaseException as exc:  # sent whole when it pickles, else as its text
        try:
            sender.send(("error", exc))
        except Exception:
            sender.send(("error", RuntimeError(f"the mean |SHAP| pass failed: {exc!r}")))
    finally:
        sender.close()


class _PredContribsThread(_BackgroundPass):
    def __init__(self, booster: xgb.Booster, features: np.ndarray, chunk_rows: int, why: str) -> None:
        self.method = f"xgboost pred_contribs, in a thread ({why})"
        self._sums = np.zeros(features.shape[1], dtype=np.float64)
        self._error: BaseException | None = None
        # Its own booster: prediction is thread-safe in xgboost, but nothing else here then shares state with it.
        pass_booster = booster.copy()
        pass_booster.set_param({"nthread": len(os.sched_getaffinity(0))})
        self._thread = threading.Thread(target=self._run, args=(pass_booster, features, chunk_rows),
                                        name=PASS_NAME, daemon=True)
        self._thread.start()

    def _run(self, booster: xgb.Booster, features: np.ndarray, chunk_rows: int) -> None:
        try:
            for start in range(0, features.shape[0], chunk_rows):
                chunk = booster.predict(dmatrix_for(booster, features[start: start + chunk_rows]), pred_contribs=True)
                self._sums += np.abs(chunk[:, :-1]).sum(axis=0, dtype=np.float64)
        except BaseException as exc:  # re-raised in the caller's thread by abs_sums()
            self._error = exc

    def abs_sums(self) -> np.ndarray:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sums


def start_background_pass(booster: xgb.Booster, features: np.ndarray, chunk_rows: int | None = None
                          ) -> _BackgroundPass:
    """TreeShap in a forked process when the model and the platform allow it, else pred_contribs in a thread."""
    model = json.loads(booster.save_raw("json"))
    why = tree_shap.unsupported_reason(model)
    if why is not None:
        why = f"tree_shap does not handle {why}"
    elif "fork" not in multiprocessing.get_all_start_methods():
        why = "no fork on this platform"
    elif multiprocessing.current_process().daemon:
        why = "a daemonic process may not have children"
    else:
        try:
            return _TreeShapProcess(model, features, chunk_rows or tree_shap.CHUNK_ROWS)
        except OSError as exc:  # no process to spare (ulimit, memory): slower, but the run goes on
            why = f"could not fork: {exc}"
    return _PredContribsThread(booster, features, chunk_rows or CHUNK_ROWS, why)


class ModelShap(ExplainedShap):
    """SHAP values from the booster: margins now, the mean |SHAP| pass in the background (see the module doc)."""

    def __init__(self, booster: xgb.Booster, objective: str, features: np.ndarray,
                 chunk_rows: int | None = None) -> None:
        """Starts the pass, then predicts the margins with `booster` as the caller set it up."""
        self._booster = booster
        self._features = features
        self._pass = start_background_pass(booster, features, chunk_rows)
        self.mean_abs_method = self._pass.method
        margins = booster.predict(dmatrix_for(booster, features), output_margin=True).astype(np.float64)
        self.base_value = float(self.contributions(np.arange(1))[0, -1])
        self.shap_sums = margins - self.base_value
        self.predictions = model_output(objective, margins)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        values = self._booster.predict(dmatrix_for(self._booster, self._features[rows]), pred_contribs=True)
        return np.asarray(values, dtype=np.float32)

    def mean_abs_shap(self) -> np.ndarray:
        return self._pass.abs_sums() / self.n_rows
