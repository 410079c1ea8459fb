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

import builtins
import json
import multiprocessing
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from multiprocessing.connection import Connection

import numpy as np

from sm_explain import tree_shap
from sm_explain.exact_sums import exact_sums, to_float
from sm_explain.progress import RowProgress, say
from sm_explain_contracts.lean_xgboost import import_xgboost

xgb = import_xgboost()  # the lean import: see sm_explain_contracts.lean_xgboost

CHUNK_ROWS = 131_072  # rows per pred_contribs call of the thread pass
PASS_NAME = "sm_explain-shap-pass"
# The tree_shap child reports about once a second; this long without a word, it is taken as stuck.
STALL_SECONDS = 300.0


def dmatrix_for(booster: xgb.Booster, features: np.ndarray) -> xgb.DMatrix:
    # A booster trained with named columns refuses an unnamed DMatrix; the staged CSV order is the same.
    return xgb.DMatrix(features, feature_names=booster.feature_names, nthread=-1)


def margins_of(booster: xgb.Booster, features: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """float64 raw margins of every row, predicted a chunk of rows at a time: a DMatrix of all rows would copy
    them twice over (values and column indices), and a row's margin does not depend on its batch."""
    margins = np.empty(features.shape[0], dtype=np.float64)
    for start in range(0, features.shape[0], chunk_rows):
        chunk = dmatrix_for(booster, features[start: start + chunk_rows])
        margins[start: start + chunk_rows] = booster.predict(chunk, output_margin=True)
    return margins


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
    def abs_sums(self) -> list[int]:
        """Per feature, the exact sum of |SHAP| over every explained row (`exact_sums` units)."""

    def mean_abs_shap(self) -> np.ndarray:
        """(features,) float64 mean |SHAP| over every explained row: the exact sum over the row count, rounded once."""
        return np.array([to_float(total, self.n_rows) for total in self.abs_sums()])

    def close(self) -> None:
        """Stop background work (a failed run calls it; a no-op once the work is done)."""
        return None  # nothing runs in the background unless a subclass says so


class TensorShap(ExplainedShap):
    """A whole SHAP matrix already in memory (Debugger's full_shap tensors)."""

    def __init__(self, contributions: np.ndarray, objective: str) -> None:
        self._contributions = contributions
        self.mean_abs_method = "Debugger full_shap tensor"
        say(f"SHAP values of {contributions.shape[0]:,} rows from the Debugger full_shap tensor")
        self.base_value = float(contributions[0, -1])
        self.shap_sums = contributions[:, :-1].sum(axis=1, dtype=np.float64)
        self.predictions = model_output(objective, contributions.sum(axis=1, dtype=np.float64))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        return self._contributions[rows]

    def abs_sums(self) -> list[int]:
        return exact_sums(np.abs(self._contributions[:, :-1]).T)


class _BackgroundPass(ABC):
    """Sum of |SHAP| per feature over every row, computed while the caller does other work."""

    method: str  # how, for the manifest (may change if the pass has to fall back)

    @abstractmethod
    def abs_sums(self) -> list[int]:
        """Exact sums per feature (`exact_sums` units); waits for the pass, re-raises its error here."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the pass early (the caller failed); a no-op once it has finished."""


class _TreeShapProcess(_BackgroundPass):
    """TreeShap in a forked child that reports progress; a child silent for STALL_SECONDS (a deadlock inherited
    through the fork, say) is killed and the pass is redone with `fallback`, so a run is never stuck on it."""

    def __init__(self, model: dict, features: np.ndarray, chunk_rows: int,
                 fallback: Callable[[str], _BackgroundPass]) -> None:
        self.method = "tree_shap leaf tables (sm_explain.tree_shap), in a forked process"
        self._fallback = fallback
        self._result: list[int] | None = None
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_tree_shap_pass, args=(model, features, chunk_rows, sender),
                                        name=PASS_NAME, daemon=True)
        self._process.start()
        sender.close()  # the child holds the only sending end: its death reads as EOF here

    def abs_sums(self) -> list[int]:
        if self._result is None:
            try:
                self._result = self._wait()
                self._process.join(timeout=10)  # it exits right after sending its result
            finally:
                self.cancel()
        return self._result

    def _wait(self) -> list[int]:
        while True:
            if not self._receiver.poll(STALL_SECONDS):
                fallback = self._fallback(f"the tree_shap process was silent for {STALL_SECONDS:.0f} s")
                self.cancel()
                self.method = fallback.method
                return fallback.abs_sums()
            try:
                message = self._receiver.recv()
            except EOFError:
                self._process.join()
                raise RuntimeError(
                    f"the mean |SHAP| pass process (pid {self._process.pid}) ended with exit code "
                    f"{self._process.exitcode} before its result (killed for memory?)"
                ) from None
            if message[0] == "ok":
                return message[1]
            if message[0] == "error":
                raise _rebuilt_error(message[1], message[2])

    def cancel(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receiver.close()


def _rebuilt_error(type_name: str, text: str) -> BaseException:
    """The child's error as the same built-in type (MemoryError stays MemoryError), else a RuntimeError naming it."""
    builtin = getattr(builtins, type_name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin(text)
    return RuntimeError(f"the mean |SHAP| pass failed: {type_name}: {text}")


def _tree_shap_pass(model: dict, features: np.ndarray, chunk_rows: int, sender: Connection) -> None:
    """The forked child: numpy, pyarrow and json only (no xgboost, whose OpenMP state does not survive a fork).
    Sends ("alive",) as it goes, then ("ok", sums) or ("error", type name, text): plain data, nothing to unpickle."""
    last = time.monotonic()

    def alive() -> None:
        nonlocal last
        if time.monotonic() - last >= 1.0:
            sender.send(("alive",))
            last = time.monotonic()

    try:
        compiled = tree_shap.TreeShap(model, features.shape[1], progress=alive)
        rows = RowProgress("mean |SHAP| pass (tree_shap)", features.shape[0])
        sums = compiled.exact_abs_sums(features, chunk_rows, progress=alive, rows_done=rows.update)
        rows.finish()
        sender.send(("ok", sums))
    except BaseException as exc:
        sender.send(("error", type(exc).__name__, str(exc)))
    finally:
        sender.close()


class _PredContribsThread(_BackgroundPass):
    def __init__(self, booster: xgb.Booster, features: np.ndarray, chunk_rows: int, why: str) -> None:
        self.method = f"xgboost pred_contribs, in a thread ({why})"
        self._sums = [0] * features.shape[1]
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        # Its own booster: prediction is thread-safe in xgboost, but nothing else here then shares state with it.
        pass_booster = booster.copy()
        pass_booster.set_param({"nthread": len(os.sched_getaffinity(0))})
        self._thread = threading.Thread(target=self._run, args=(pass_booster, features, chunk_rows),
                                        name=PASS_NAME, daemon=True)
        self._thread.start()

    def _run(self, booster: xgb.Booster, features: np.ndarray, chunk_rows: int) -> None:
        try:
            rows = RowProgress("mean |SHAP| pass (pred_contribs)", features.shape[0])
            for start in range(0, features.shape[0], chunk_rows):
                if self._cancelled.is_set():
                    return
                chunk = booster.predict(dmatrix_for(booster, features[start: start + chunk_rows]), pred_contribs=True)
                chunk_sums = exact_sums(np.ascontiguousarray(np.abs(chunk[:, :-1]).T))
                self._sums = [a + b for a, b in zip(self._sums, chunk_sums, strict=True)]
                rows.update(min(features.shape[0], start + chunk_rows))
            rows.finish()
        except BaseException as exc:  # re-raised in the caller's thread by abs_sums()
            self._error = exc

    def abs_sums(self) -> list[int]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._sums

    def cancel(self) -> None:
        self._cancelled.set()  # stops after the chunk in progress


def start_background_pass(booster: xgb.Booster, features: np.ndarray, chunk_rows: int | None = None,
                          rows_for_choice: int | None = None) -> _BackgroundPass:
    """TreeShap in a forked process when the model, the row count and the platform make it the faster way, else
    pred_contribs in a thread. The way is chosen for `rows_for_choice` rows (default: these rows): a part of the
    rows is given the whole channel's count, so every part takes the way one run over all of them takes."""
    model = json.loads(booster.save_raw("json"))

    def in_a_thread(why: str) -> _BackgroundPass:
        return _PredContribsThread(booster, features, chunk_rows or CHUNK_ROWS, why)

    why = tree_shap.pred_contribs_reason(model, features.shape[0] if rows_for_choice is None else rows_for_choice)
    if why is None and "fork" not in multiprocessing.get_all_start_methods():
        why = "no fork on this platform"
    elif why is None and multiprocessing.current_process().daemon:
        why = "a daemonic process may not have children"
    if why is None:
        try:
            return _TreeShapProcess(model, features, chunk_rows or tree_shap.CHUNK_ROWS, in_a_thread)
        except OSError as exc:  # no process to spare (ulimit, memory): slower, but the run goes on
            why = f"could not fork: {exc}"
    return in_a_thread(why)


class ModelShap(ExplainedShap):
    """SHAP values from the booster: margins now, the mean |SHAP| pass in the background (see the module doc)."""

    def __init__(self, booster: xgb.Booster, objective: str, features: np.ndarray,
                 chunk_rows: int | None = None, rows_for_choice: int | None = None) -> None:
        """Starts the pass, then predicts the margins with `booster` as the caller set it up."""
        self._booster = booster
        self._features = features
        self._pass = start_background_pass(booster, features, chunk_rows, rows_for_choice)
        try:
            margins = margins_of(booster, features)
            self.base_value = float(self.contributions(np.arange(1))[0, -1])
        except BaseException:
            self._pass.cancel()
            raise
        self.shap_sums = margins - self.base_value
        self.predictions = model_output(objective, margins)

    @property
    def mean_abs_method(self) -> str:  # type: ignore[override]
        return self._pass.method

    def close(self) -> None:
        self._pass.cancel()

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        values = self._booster.predict(dmatrix_for(self._booster, self._features[rows]), pred_contribs=True)
        return np.asarray(values, dtype=np.float32)

    def abs_sums(self) -> list[int]:
        """Waits for the pass (the same sums on every call)."""
        return self._pass.abs_sums()
