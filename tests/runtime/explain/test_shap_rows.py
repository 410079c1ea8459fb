"""The SHAP values the analyses use, from the model (a background pass in row chunks, TreeShap in a forked process
or pred_contribs in a thread, plus small passes for the plotted rows) and from a SHAP matrix in memory, against
xgboost's own single `pred_contribs` pass."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
import xgboost as xgb

from sm_explain import shap_rows, tree_shap
from sm_explain.shap_rows import ModelShap, TensorShap


@pytest.fixture(scope="module")
def model() -> tuple[xgb.Booster, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(1000, 6)).astype(np.float32)
    labels = ((features[:, 0] - features[:, 2] + 0.5 * rng.normal(size=1000)) > 0).astype(np.float32)
    booster = xgb.train({"max_depth": 3, "eta": 0.3, "objective": "binary:logistic"},
                        xgb.DMatrix(features, label=labels), num_boost_round=12)
    reference = booster.predict(xgb.DMatrix(features), pred_contribs=True)
    return booster, features, reference


@pytest.fixture(params=["process", "thread"])
def background(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Either way of running the mean |SHAP| pass; "thread" is what models TreeShap refuses get."""
    if request.param == "thread":
        monkeypatch.setattr(tree_shap, "pred_contribs_reason", lambda model, n_rows: "a model it refuses (test)")
    return request.param


@pytest.mark.parametrize("chunk_rows", [7, 1000, 4096])
def test_model_shap_matches_one_pred_contribs_pass(model, background: str, chunk_rows: int) -> None:
    booster, features, reference = model
    shap = ModelShap(booster, "binary:logistic", features, chunk_rows=chunk_rows)
    assert shap.mean_abs_method.startswith("tree_shap" if background == "process" else "xgboost pred_contribs")
    np.testing.assert_allclose(shap.mean_abs_shap(), np.abs(reference[:, :-1]).mean(axis=0, dtype=np.float64), rtol=1e-6)
    assert shap.base_value == pytest.approx(float(reference[0, -1]))
    np.testing.assert_allclose(shap.shap_sums, reference[:, :-1].sum(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shap.predictions, booster.predict(xgb.DMatrix(features)), rtol=1e-5)
    # The plotted rows get exactly the values the whole pass gives them, in the order asked.
    rows = np.array([999, 3, 500, 3])
    np.testing.assert_array_equal(shap.contributions(rows), reference[rows])


def test_the_pass_reports_rows_done_of_total_a_few_times(model, background: str,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    """Rows done of total at every tenth of the rows (and at the end), from the forked process as from the thread:
    the task log gets a few lines, not one per chunk."""
    booster, features, _reference = model
    ModelShap(booster, "binary:logistic", features, chunk_rows=7).mean_abs_shap()  # 143 chunks
    lines = [line for line in capfd.readouterr().err.splitlines() if "mean |SHAP| pass" in line]
    method = "tree_shap" if background == "process" else "pred_contribs"
    assert lines[0] == f"sm_explain: mean |SHAP| pass ({method}): 0 of 1,000 rows"
    assert lines[-1].startswith(f"sm_explain: mean |SHAP| pass ({method}): 1,000 of 1,000 rows (100%) in ")
    percents = [int(line.rsplit("(", 1)[1].split("%")[0]) for line in lines[1:-1]]
    assert percents == sorted(percents) and 8 <= len(percents) <= 12, lines


def test_row_progress_steps_and_seconds() -> None:
    from sm_explain.progress import RowProgress

    now = [0.0]
    lines: list[str] = []
    progress = RowProgress("pass", 1000, seconds=30.0, clock=lambda: now[0], out=lines.append)
    for done in range(1, 1000):  # every row: a line only at each tenth
        progress.update(done)
    assert lines == ["pass: 0 of 1,000 rows"] + [f"pass: {n * 100:,} of 1,000 rows ({n * 10}%)" for n in range(1, 10)]
    now[0] = 45.0
    progress.update(999)  # no new tenth, but 30 s passed
    assert lines[-1] == "pass: 999 of 1,000 rows (99%)"
    progress.update(1000)
    progress.finish()
    assert lines[-1] == "pass: 1,000 of 1,000 rows (100%) in 45.0 s" and len(lines) == 12


def test_tensor_shap_reads_the_matrix(model) -> None:
    booster, features, reference = model
    shap = TensorShap(reference, "binary:logistic")
    np.testing.assert_allclose(shap.mean_abs_shap(), np.abs(reference[:, :-1]).mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(shap.predictions, booster.predict(xgb.DMatrix(features)), rtol=1e-5)
    np.testing.assert_array_equal(shap.contributions(np.array([2, 1])), reference[[2, 1]])
    assert shap.n_rows == 1000


def test_a_failing_thread_pass_raises_in_the_callers_thread(model, monkeypatch: pytest.MonkeyPatch) -> None:
    booster, features, _ = model
    monkeypatch.setattr(tree_shap, "pred_contribs_reason", lambda model, n_rows: "a model it refuses (test)")
    real_dmatrix_for = shap_rows.dmatrix_for

    def failing_in_the_pass(booster: xgb.Booster, rows: np.ndarray) -> xgb.DMatrix:
        if threading.current_thread().name == "sm_explain-shap-pass":
            raise MemoryError("no room for the chunk")
        return real_dmatrix_for(booster, rows)

    monkeypatch.setattr(shap_rows, "dmatrix_for", failing_in_the_pass)
    shap = ModelShap(booster, "binary:logistic", features, chunk_rows=100)
    assert shap.contributions(np.array([0])).shape == (1, 7)  # the caller's own predictions still work
    with pytest.raises(MemoryError, match="no room for the chunk"):
        shap.mean_abs_shap()


def test_a_failing_process_pass_raises_its_error_in_the_caller(model, monkeypatch: pytest.MonkeyPatch) -> None:
    booster, features, _ = model

    def failing(self: tree_shap.TreeShap, rows: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        raise MemoryError(f"no room in process {os.getpid()}")

    monkeypatch.setattr(tree_shap.TreeShap, "exact_abs_sums", failing)  # inherited by the forked child
    shap = ModelShap(booster, "binary:logistic", features)
    assert shap.contributions(np.array([0])).shape == (1, 7)
    with pytest.raises(MemoryError, match="no room in process") as raised:
        shap.mean_abs_shap()
    assert str(os.getpid()) not in str(raised.value)  # it failed in the child, and came back here


def test_a_pass_process_that_dies_is_reported_not_waited_for(model, monkeypatch: pytest.MonkeyPatch) -> None:
    booster, features, _ = model
    monkeypatch.setattr(tree_shap.TreeShap, "exact_abs_sums", lambda self, rows, *args, **kwargs: os._exit(9))
    shap = ModelShap(booster, "binary:logistic", features)
    with pytest.raises(RuntimeError, match=r"ended with exit code 9 before its result"):
        shap.mean_abs_shap()


def test_no_process_to_spare_falls_back_to_the_thread_pass(model, monkeypatch: pytest.MonkeyPatch) -> None:
    booster, features, reference = model

    def no_fork(self: object, *args: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(shap_rows._TreeShapProcess, "__init__", no_fork)
    shap = ModelShap(booster, "binary:logistic", features)
    assert shap.mean_abs_method == "xgboost pred_contribs, in a thread (could not fork: [Errno 11] Resource temporarily unavailable)"
    np.testing.assert_allclose(shap.mean_abs_shap(), np.abs(reference[:, :-1]).mean(axis=0, dtype=np.float64), rtol=1e-6)


def test_a_daemonic_process_uses_the_thread_pass(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """multiprocessing forbids children of daemonic processes (a worker pool running sm_explain in-process)."""
    booster, features, _ = model
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    shap = ModelShap(booster, "binary:logistic", features)
    assert "daemonic" in shap.mean_abs_method
    assert shap.mean_abs_shap().shape == (6,)


def test_the_result_can_be_asked_again(model) -> None:
    booster, features, _ = model
    shap = ModelShap(booster, "binary:logistic", features)
    first = shap.mean_abs_shap()
    np.testing.assert_array_equal(shap.mean_abs_shap(), first)


def _hang(self: tree_shap.TreeShap, rows: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
    time.sleep(120)  # as a child stuck on a lock it inherited through the fork would
    raise AssertionError("not reached")


def test_a_silent_pass_process_is_killed_and_the_pass_redone_in_a_thread(model, monkeypatch: pytest.MonkeyPatch) -> None:
    booster, features, reference = model
    monkeypatch.setattr(tree_shap.TreeShap, "exact_abs_sums", _hang)
    monkeypatch.setattr(shap_rows, "STALL_SECONDS", 1.0)
    shap = ModelShap(booster, "binary:logistic", features)
    child = shap._pass._process
    np.testing.assert_allclose(shap.mean_abs_shap(), np.abs(reference[:, :-1]).mean(axis=0, dtype=np.float64), rtol=1e-6)
    assert shap.mean_abs_method == "xgboost pred_contribs, in a thread (the tree_shap process was silent for 1 s)"
    assert not child.is_alive()


def test_closing_stops_the_pass_process(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails before it needs mean |SHAP| leaves no process behind."""
    booster, features, _ = model
    monkeypatch.setattr(tree_shap.TreeShap, "exact_abs_sums", _hang)
    shap = ModelShap(booster, "binary:logistic", features)
    child = shap._pass._process
    assert child.is_alive()
    shap.close()
    assert not child.is_alive() and child.exitcode is not None


def test_few_rows_and_deep_trees_use_pred_contribs() -> None:
    rng = np.random.default_rng(4)
    features = rng.normal(size=(4000, 10)).astype(np.float32)
    labels = (features[:, :4].sum(axis=1) > 0).astype(np.float32)
    deep = xgb.train({"max_depth": 10, "min_child_weight": 0, "objective": "binary:logistic"},
                     xgb.DMatrix(features, label=labels), num_boost_round=20)
    shap = ModelShap(deep, "binary:logistic", features[:50])
    assert shap.mean_abs_method.startswith("xgboost pred_contribs, in a thread (50 rows are too few")
    assert shap.mean_abs_shap().shape == (10,)
