"""Figure shortcuts change nothing in the figures: the same PNG bytes as matplotlib's and shap's plain way."""

from __future__ import annotations

import contextlib
import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from sm_explain import figures

NAMES = [f"feature_{i:02d}" for i in range(20)]


def _plain_png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _force_case(seed: int) -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng(seed)
    shap_row = (rng.normal(size=len(NAMES)) * np.where(np.arange(len(NAMES)) < 8, 1.0, 0.02)).astype(np.float32)
    return shap_row, [float(f"{v:.4g}") for v in rng.normal(size=len(NAMES))]


@pytest.mark.parametrize("seed", [0, 1])
def test_force_png_is_byte_identical_to_shaps_own_draws(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    shap_row, values = _force_case(seed)
    fast = figures.force_png(-1.0, shap_row, values, NAMES)
    monkeypatch.setattr(figures, "_measuring_draws_without_pixels", contextlib.nullcontext)
    monkeypatch.setattr(figures, "_png_of", _plain_png)
    assert fast == figures.force_png(-1.0, shap_row, values, NAMES)
    assert fast.startswith(b"\x89PNG")


def test_force_png_leaves_matplotlib_drawing_as_it_was() -> None:
    real_draw = FigureCanvasAgg.draw
    figures.force_png(-1.0, *_force_case(2), NAMES)
    assert FigureCanvasAgg.draw is real_draw
    figure, axis = plt.subplots()
    axis.plot([0, 1], [0, 1])
    figure.canvas.draw()
    assert np.asarray(figure.canvas.buffer_rgba()).min() < 255  # a real draw still puts pixels down
    plt.close(figure)


def test_charts_are_cropped_exactly_as_bbox_inches_tight(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    curve = pd.DataFrame(rng.normal(size=(20, 3)).cumsum(axis=0), columns=["a", "b", "c"],
                         index=pd.Index(range(20), name="step"))
    shap_values, feature_values = rng.normal(size=(200, len(NAMES))), rng.normal(size=(200, len(NAMES)))
    draw = {
        "line": lambda: figures.line_chart(curve, "Metrics per step", "value"),
        "bar": lambda: figures.mean_abs_shap_bar(np.abs(shap_values).mean(axis=0), NAMES),
        "beeswarm": lambda: figures.shap_beeswarm(shap_values, feature_values, NAMES, seed=3),
    }
    ours = {name: make() for name, make in draw.items()}
    monkeypatch.setattr(figures, "_png_of", _plain_png)
    assert ours == {name: make() for name, make in draw.items()}


def test_bar_from_mean_abs_shap_is_shaps_bar_of_the_whole_matrix() -> None:
    import shap

    shap_values = np.random.default_rng(5).normal(size=(300, len(NAMES)))
    ours = figures.mean_abs_shap_bar(np.abs(shap_values).mean(axis=0), NAMES)
    shap.summary_plot(shap_values, feature_names=NAMES, plot_type="bar", max_display=20, show=False)
    assert ours == _plain_png(plt.gcf())
