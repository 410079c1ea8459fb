"""Figures, drawn with shap's own plots (summary bar, beeswarm, force) and matplotlib line charts for the curves.
Returns bytes so the caller decides where they go. Feature names are data: `$` is escaped for matplotlib's
mathtext, and the JSON that shap's force plots embed in `<script>` is made unable to close the tag."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shap  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # noqa: E402

_DPI = 100


def mathtext_safe(labels: Sequence[str]) -> list[str]:
    """Matplotlib treats text between `$` as math; a feature name is plain text."""
    return [str(label).replace("$", r"\$") for label in labels]


def _png_of(figure: plt.Figure) -> bytes:
    """The figure cropped as bbox_inches="tight" crops it, in one draw instead of two: the tight box is measured
    from the artists' extents, which needs no rendering (same bytes, about half the time)."""
    figure.set_dpi(_DPI)
    tight = figure.get_tightbbox(figure.canvas.get_renderer()).padded(plt.rcParams["savefig.pad_inches"])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches=tight, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def line_chart(frame: pd.DataFrame, title: str, ylabel: str, legend_limit: int = 10) -> bytes:
    """One line per column over the `step` index; the legend is capped so 50 features stay readable."""
    figure, axis = plt.subplots(figsize=(9, 5))
    for column in frame.columns:
        axis.plot(frame.index.to_numpy(), frame[column].to_numpy(dtype=float), label=mathtext_safe([column])[0])
    axis.set_title(mathtext_safe([title])[0])
    axis.set_xlabel("step (boosting round)")
    axis.set_ylabel(ylabel)
    axis.grid(True, alpha=0.3)
    if 0 < len(frame.columns) <= legend_limit:
        axis.legend(loc="best", fontsize="small")
    return _png_of(figure)


def mean_abs_shap_bar(mean_abs: np.ndarray, names: Sequence[str], max_display: int = 20) -> bytes:
    """shap's global bar plot from mean |SHAP| per feature: the bar plot averages |SHAP| over rows, and the mean
    of one row of non-negative means is those means, so the whole SHAP matrix need not be kept for it."""
    shap.summary_plot(np.asarray(mean_abs, dtype=np.float64)[None, :], feature_names=mathtext_safe(names),
                      plot_type="bar", max_display=max_display, show=False)
    return _png_of(plt.gcf())


def shap_beeswarm(shap_values: np.ndarray, feature_values: np.ndarray, names: Sequence[str], seed: int,
                  max_display: int = 20) -> bytes:
    """shap's summary (beeswarm) coloured by feature value; its jitter comes from a seeded generator."""
    shap.summary_plot(shap_values, features=feature_values, feature_names=mathtext_safe(names),
                      max_display=max_display, show=False, rng=np.random.default_rng(seed))
    return _png_of(plt.gcf())


@contextlib.contextmanager
def _measuring_draws_without_pixels() -> Iterator[None]:
    """shap's matplotlib force plot calls `fig.canvas.draw()` once per label only to measure the label's box, so
    a plot costs one full render per label (~1 s with ten labels). During the plot those draws lay the figure
    out without rasterizing it (what `Figure.draw_without_rendering` does, through the renderer's
    `_draw_disabled`); the PNG itself is rendered normally afterwards and is byte-identical (tested). Without
    that matplotlib internal, the draws stay as they are."""
    if not hasattr(RendererAgg, "_draw_disabled"):
        yield
        return
    real_draw = FigureCanvasAgg.draw

    def layout_only(canvas: FigureCanvasAgg) -> None:
        renderer = canvas.get_renderer()
        with renderer._draw_disabled():
            canvas.figure.draw(renderer)

    FigureCanvasAgg.draw = layout_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        FigureCanvasAgg.draw = real_draw  # type: ignore[method-assign]


def force_png(base_value: float, shap_row: np.ndarray, display_values: Sequence[object], names: Sequence[str]) -> bytes:
    with _measuring_draws_without_pixels():
        shap.force_plot(float(base_value), shap_row, features=np.array(display_values, dtype=object),
                        feature_names=mathtext_safe(names), matplotlib=True, show=False, figsize=(20, 3))
    return _png_of(plt.gcf())


def _script_safe_html(visualizer: object) -> str:
    """shap.save_html's document, with the data JSON escaped so no name or value can end its `<script>`."""
    buffer = io.StringIO()
    shap.save_html(buffer, visualizer)
    document = buffer.getvalue()
    raw = json.dumps(visualizer.data)  # what shap embedded (save_html has just added labelMargin where used)
    if raw not in document:
        raise RuntimeError("shap.save_html no longer embeds json.dumps(plot.data); revisit the escaping")
    safe = raw.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return document.replace(raw, safe).replace(
        "<html><head>", "<!DOCTYPE html><html><head><meta charset='utf-8'>", 1
    )


def force_html(base_value: float, shap_values: np.ndarray, display_values: np.ndarray, names: Sequence[str]) -> str:
    """Interactive force plot (one row) or stacked force plot (a 2-D sample) as a self-contained HTML page."""
    visualizer = shap.force_plot(float(base_value), shap_values, features=np.asarray(display_values, dtype=object),
                                 feature_names=list(names), matplotlib=False, show=False)
    return _script_safe_html(visualizer)
