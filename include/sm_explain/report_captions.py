"""What each figure of the report shows and how to read it: one caption per artifact, in plain words.

A caption is two sentences or so of "what": what is drawn, from which rows and which source (Debugger's tensors
or the model artifact, from the manifest's summary), and a "how to read it". They are plain text; the report
escapes them like everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Summary = Mapping[str, Any]

IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")


@dataclass(frozen=True)
class FigureText:
    artifact: str  # the manifest's name of the PNG or HTML
    anchor: str  # its id in the report
    title: str
    what: Callable[[Summary], str]
    how: str


def _rows(summary: Summary) -> str:
    """'the 6,513 rows of the validation channel', as far as the summary says."""
    channel = summary.get("explained_rows")
    count = summary.get("n_rows")
    counted = f"{count:,} " if isinstance(count, int) else ""
    return f"the {counted}rows of the {channel} channel" if channel else f"the {counted}explained rows"


def _curve_source(summary: Summary, key: str) -> str:
    source = (summary.get("curve_sources") or {}).get(key)
    if source == "debugger":
        return "Recorded by SageMaker Debugger while the job trained."
    if source == "model":
        return "Recomputed from the saved model, cut off after each boosting round."
    return ""


def _shap_source(summary: Summary) -> str:
    if summary.get("source") == "debugger":
        step = summary.get("shap_step")
        at = f" at step {step}" if step is not None else ""
        return f"SHAP values from the job's Debugger full_shap tensors{at}."
    return "SHAP values computed exactly (TreeSHAP) from the model artifact."


def _metrics(summary: Summary) -> str:
    return ("One line per evaluation metric and data channel (for example train-logloss, validation-error) after "
            f"each boosting round. {_curve_source(summary, 'metrics')}")


_IMPORTANCE_MEANING = {
    "weight": "how often the feature is used to split, counted over every tree built so far",
    "gain": "the average improvement of the training loss brought by the splits on the feature",
    "cover": "the average number of training rows (weighted by their hessian) that reach the splits on the feature",
    "total_gain": "the total improvement of the training loss brought by all splits on the feature (gain times "
                  "weight)",
    "total_cover": "the total cover of all splits on the feature (cover times weight)",
}
_IMPORTANCE_HOW = {
    "weight": "Counting splits favours features with many distinct values (continuous ones), even when each split "
              "helps little; set it beside gain before concluding a feature matters.",
    "gain": "Gain is the closest of XGBoost's measures to usefulness, but it is an average: a feature used in a few "
            "very good splits can outrank one used everywhere.",
    "cover": "High cover means the feature's splits sit where many rows pass, usually high up in the trees; it says "
             "how broadly a feature acts, not how much.",
    "total_gain": "Total gain rewards both how good and how many the splits are, so it usually ranks features "
                  "closest to the mean |SHAP| bar.",
    "total_cover": "Like cover but summed: features split on often and near the roots come first.",
}


def _importance(kind: str) -> Callable[[Summary], str]:
    def what(summary: Summary) -> str:
        return (f"XGBoost's own feature importance of type {kind}: {_IMPORTANCE_MEANING[kind]}. Each step shows "
                "every feature's share of the total at that round (the shares add up to 1); the ten features "
                f"largest at the last step are drawn. {_curve_source(summary, f'importance_{kind}')}")
    return what


_IMPORTANCE_COMMON = (" A rising line took on more of the model's work as trees were added; lines that settle early "
                      "show what the model relies on. These describe the trees, not single predictions.")


def _average_shap(summary: Summary) -> str:
    source = _curve_source(summary, "average_shap")
    return ("The mean signed SHAP value of each feature over a sample of rows, for the model after each boosting "
            f"round; the ten features largest at the last step are drawn. {source}")


def _shap_bar(summary: Summary) -> str:
    return (f"The mean absolute SHAP value of each feature over {_rows(summary)}, largest first (at most 20). "
            "A bar's length is how far, on average, the feature moves a prediction away from the base value, in "
            f"either direction, in the model's margin units (log-odds for binary:logistic). {_shap_source(summary)}")


def _beeswarm(summary: Summary) -> str:
    return ("One dot per row of a seeded sample (beeswarm_sample_size rows) and feature, features in the order of "
            "the bar chart. A dot's horizontal position is that row's SHAP value for the feature, its colour the "
            "feature's value in that row: red high, blue low (the category code for a categorical feature). "
            f"{_shap_source(summary)}")


def _force_row(summary: Summary) -> str:
    return ("How the model reached its output for one row (force_plot_row of the explained rows). It starts from "
            "the base value, the model's average margin, and each feature's SHAP value pushes it: red to the "
            "right (up), blue to the left (down), a wider arrow pushes more. Where they meet is the row's output "
            "f(x), in margin units; under each name is the feature's value in that row.")


def _force_row_interactive(summary: Summary) -> str:
    return ("The same row as shap's interactive force plot: hover over a segment to see the feature, its value and "
            "its effect. It needs JavaScript, which runs in a sandboxed frame that can reach nothing outside it; "
            "without JavaScript the frame stays empty and the image above shows the same.")


def _force_stacked(summary: Summary) -> str:
    return ("The force plots of a seeded sample of rows (stacked_sample_size), each turned upright and set side "
            "by side: one column per row, the vertical axis the model's output (margin), red areas pushing it up "
            "and blue down. The menus reorder the rows (by similarity, by output, by a feature's value) and choose "
            "which feature's effect is drawn. Needs JavaScript, in a sandboxed frame.")


FIGURES: dict[str, FigureText] = {figure.artifact: figure for figure in [
    FigureText("metrics.png", "fig-metrics", "Metrics per step", _metrics,
               "For loss and error metrics lower is better (for auc, higher). Train and validation improving "
               "together means the model is still learning; validation flattening or getting worse while train "
               "keeps improving means it has begun to fit noise, and later rounds add little. Debugger's "
               "LossNotDecreasing rule watches a curve like these."),
    *[FigureText(f"importance_{kind}.png", f"fig-importance-{kind.replace('_', '-')}",
                 f"Feature importance per step: {kind}", _importance(kind), _IMPORTANCE_HOW[kind] + _IMPORTANCE_COMMON)
      for kind in IMPORTANCE_TYPES],
    FigureText("average_shap.png", "fig-average-shap", "Average SHAP per step", _average_shap,
               "Above zero the feature raises the average prediction, below zero it lowers it. Signed effects of "
               "different rows cancel out, so a feature near zero here can still matter a lot for single rows (see "
               "the mean |SHAP| bar); a line that flattens shows the round from which the feature's average effect "
               "stopped changing."),
    FigureText("shap_bar.png", "fig-shap-bar", "Mean |SHAP| per feature", _shap_bar,
               "A longer bar means the feature matters more to the predictions overall. It does not say in which "
               "direction (the beeswarm below does), and a feature can rank high through a few rows with large "
               "effects."),
    FigureText("shap_beeswarm.png", "fig-shap-beeswarm", "SHAP beeswarm", _beeswarm,
               "Dots right of zero push the prediction up, left of zero down. Red on the right and blue on the "
               "left means higher values of the feature raise the prediction; the reverse, that they lower it; "
               "mixed colours on both sides mean the effect depends on other features. A wide swarm marks a "
               "feature whose effect differs much between rows."),
    FigureText("force_row.png", "fig-force-row", "Force plot of the chosen row", _force_row,
               "The widest arrows explain most of how this row differs from the base value. Only the largest "
               "effects are labelled; the small ones are merged at the ends."),
    FigureText("force_row.html", "fig-force-row-interactive", "Interactive force plot of the chosen row",
               _force_row_interactive,
               "As in the image, red segments push the output up and blue ones down; hovering gives each "
               "feature's value and SHAP value exactly, also for the small effects the image leaves unlabelled."),
    FigureText("force_stacked.html", "fig-force-stacked", "Stacked force plot of a sample", _force_stacked,
               "Stretches where the colour pattern repeats are groups of rows the model explains the same way; "
               "ordering the rows by one feature's value shows how its effect changes with that value."),
]}


def outliers_what(summary: Summary, per_tail: int) -> str:
    count = f"{per_tail} " if per_tail else ""
    return (f"The {count}rows with the highest and the {count}with the lowest SHAP sum (the row's margin minus the "
            f"base value) among {_rows(summary)}, with how far each lies from the mean in standard deviations "
            "(z-score), the model's prediction (the probability of the positive class for a logistic objective), "
            "its three largest contributions and, below each row, its force plot.")


OUTLIERS_HOW = ("An outlier is not a mistake: it is a row the model explains very differently from the average one. "
                "Check that its largest contributions make sense for that row; an unexpected feature, or a value "
                "far outside the usual range, points at a data problem or at a pattern learnt from few rows.")
