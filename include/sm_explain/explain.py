"""One explanation run: choose the source, compute every analysis, write each artifact under output_uri (only
fixed names, so a rerun overwrites exactly its own keys) and return the small manifest.

The full-data work is a map over the part files of each channel the run reads (`sm_explain.map`: one partial
per map) and a reduce that merges the partials (`sm_explain.reduce`) and draws everything (`draw`). One process
(`python -m sm_explain`, `run_explanations`) is one map per channel over all its parts and the reduce, in
memory: the mean |SHAP| pass runs in the background while everything else is drawn, and only the global bar,
drawn last, waits for it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sm_explain import model_source, storage, tables
from sm_explain.debugger_trial import IMPORTANCE_TYPES
from sm_explain.errors import BadRequest
from sm_explain.features import FeatureSpace
from sm_explain.outliers import outlier_table, rank_tails
from sm_explain.progress import say
from sm_explain.reduce import Merged, merge
from sm_explain.request import ExplainRequest
from sm_explain.run import Run, open_run

TOP_FEATURES = 10
MANIFEST_NAME = "manifest.json"
_CONTENT_TYPES = {".png": "image/png", ".csv": "text/csv", ".html": "text/html; charset=utf-8",
                  ".parquet": "application/vnd.apache.parquet", ".json": "application/json"}


@dataclass
class ArtifactWriter:
    output_uri: str
    artifacts: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, data: bytes | str) -> None:
        uri = storage.join(self.output_uri, name)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        storage.write_bytes(uri, payload, _CONTENT_TYPES.get(name[name.rfind("."):], "application/octet-stream"))
        self.artifacts[name] = uri
        say(f"wrote {name} ({len(payload):,} bytes) to {uri}")


def _named(frame: pd.DataFrame, space: FeatureSpace) -> pd.DataFrame:
    """Feature-index columns -> real names (fN -> features.json), step index kept as a column."""
    renamed = frame.rename(columns={i: space.names[i] for i in frame.columns if isinstance(i, (int, np.integer))})
    return renamed.reset_index()


def _write_curve(writer: ArtifactWriter, stem: str, frame: pd.DataFrame, title: str, ylabel: str) -> None:
    """CSV with every column; the PNG shows the TOP_FEATURES columns largest at the last step."""
    from sm_explain import figures  # lazily, as in run_explanations

    writer.put(f"{stem}.csv", tables.csv_bytes(frame))
    values = frame.set_index("step")
    if values.shape[1] > TOP_FEATURES:
        last = values.iloc[-1].abs().sort_values(ascending=False, kind="stable")
        values = values[list(last.index[:TOP_FEATURES])]
    writer.put(f"{stem}.png", figures.line_chart(values, title, ylabel))


def _display_matrix(space: FeatureSpace, values: np.ndarray) -> np.ndarray:
    """Object matrix of shown values (for small samples): category labels, numbers to 4 significant digits."""
    shown = np.array([[float(f"{v:.4g}") for v in row] for row in values.tolist()], dtype=object).reshape(values.shape)
    for feature, labels in space.categorical_labels.items():
        column = values[:, feature]
        shown[:, feature] = [labels.get(float(v), f"{v:g}") for v in column]
    return shown


def run_explanations(request: ExplainRequest) -> dict[str, object]:
    """Every explanation of one job in this process: one map per channel over all its parts, then the reduce."""
    from sm_explain.map import map_channel

    with contextlib.ExitStack() as cleanup:  # stops the background SHAP pass when a step fails
        run = open_run(request)
        say(f"explaining the {run.explained_channel} rows with SHAP values from "
            f"{'the Debugger tensors' if run.use_debugger else 'the model'} (model file: {run.model_file}); "
            f"parts: {', '.join(f'{channel} {len(parts)}' for channel, parts in run.parts.items())}")
        partials = [(map_channel(run, channel, run.parts[channel], None, cleanup), f"the {channel} rows")
                    for channel in run.channels]
        return draw(run, merge(run, partials))


def draw(run: Run, merged: Merged) -> dict[str, object]:
    """Every figure and table from the merged partials, and the manifest."""
    request, space, booster, trial = run.request, run.space, run.booster, run.trial
    writer = ArtifactWriter(request.output_uri)
    names = space.names
    n_rows = merged.n_rows
    plan = merged.plan
    summary: dict[str, object] = {"source": "debugger" if run.use_debugger else "model",
                                  "model_file": run.model_file,
                                  "staged_data_checked": space.staged_sha256 is not None}
    if merged.shap_step is not None:
        summary["shap_step"] = merged.shap_step
    if request.force_plot_row >= n_rows:
        raise BadRequest(f"force_plot_row {request.force_plot_row} is out of range: {run.explained_channel} has "
                         f"{n_rows} rows")
    base_value = merged.base_value
    summary.update(explained_rows=run.explained_channel, n_rows=int(n_rows), n_features=len(names),
                   base_value=base_value)
    say(f"drawing the figures and tables of {n_rows:,} {run.explained_channel} rows x {len(names)} features")

    # Imported only now: matplotlib and shap take seconds to import, which then overlap the SHAP pass.
    from sm_explain import figures

    # Curves over steps: Debugger tensors when the trial has them, else the truncated model on a row sample.
    steps = run.steps
    step_sample = merged.features_of(plan.step)
    curve_sources: dict[str, str] = {}

    def from_trial_or_model(key: str, from_trial: Callable[[], pd.DataFrame], from_model: Callable[[], pd.DataFrame],
                            trial_has_it: bool) -> pd.DataFrame:
        if not trial_has_it and booster is None:
            raise BadRequest(f"the Debugger output has no tensors for {key}, and the model file is {run.model_file}")
        curve_sources[key] = "debugger" if trial_has_it else "model"
        return from_trial() if trial_has_it else from_model()

    metrics = from_trial_or_model(
        "metrics", lambda: trial.metric_curves(),
        lambda: model_source.metric_curves_from_sums(run.objective, merged.metric_sums, steps),
        not run.metric_sums_needed and trial is not None and trial.has_metrics())
    _write_curve(writer, "metrics", metrics.reset_index(), "Metrics per step", "metric value")

    trial_names = set(trial._names("feature_importance")) if run.use_debugger else set()
    for importance_type in IMPORTANCE_TYPES:
        in_trial = any(n.startswith(f"feature_importance/{importance_type}/") for n in trial_names)
        frame = from_trial_or_model(
            f"importance_{importance_type}", lambda t=importance_type: trial.feature_importance(t),
            lambda t=importance_type: model_source.feature_importance_over_steps(booster, steps, t, len(names)),
            in_trial)
        frame = frame.reindex(columns=range(len(names)), fill_value=0.0)
        _write_curve(writer, f"importance_{importance_type}", _named(frame, space),
                     f"Feature importance ({importance_type}) per step", f"{importance_type} (share of total)")

    average = from_trial_or_model(
        "average_shap", lambda: trial.average_shap(),
        lambda: model_source.average_shap_over_steps(booster, step_sample, steps),
        run.use_debugger and bool(trial._names("average_shap")))
    average = average.reindex(columns=range(len(names)))
    _write_curve(writer, "average_shap", _named(average, space), "Average SHAP per step", "mean SHAP value")
    summary["curve_sources"] = curve_sources

    # Beeswarm on a seeded sample.
    swarm_rows = plan.swarm
    swarm_shap, swarm_values = merged.contributions_of(swarm_rows)[:, :-1], merged.features_of(swarm_rows)
    swarm_table = pd.concat([
        pd.DataFrame({"row": swarm_rows}),
        pd.DataFrame(swarm_shap, columns=[f"shap:{n}" for n in names]),
        pd.DataFrame(swarm_values, columns=[f"value:{n}" for n in names]),
    ], axis=1)
    writer.put("shap_beeswarm.csv", tables.csv_bytes(swarm_table))
    writer.put("shap_beeswarm.png", figures.shap_beeswarm(swarm_shap, swarm_values, names, request.seed))

    # Local: force plot of the chosen row, stacked force plot of a seeded sample.
    row = np.array([request.force_plot_row])
    row_shap = merged.contributions_of(row)[0, :-1]
    row_display = _display_matrix(space, merged.features_of(row))[0]
    writer.put("force_row.csv", tables.csv_bytes(pd.DataFrame({
        "feature": names, "value": [str(v) for v in row_display], "shap": row_shap})))
    writer.put("force_row.png", figures.force_png(base_value, row_shap, list(row_display), names))
    writer.put("force_row.html", figures.force_html(base_value, row_shap, row_display, names))
    stacked_rows = plan.stacked
    stacked_shap = merged.contributions_of(stacked_rows)[:, :-1]
    writer.put("force_stacked.csv", tables.csv_bytes(pd.concat([
        pd.DataFrame({"row": stacked_rows, "prediction": merged.predictions_of(stacked_rows)}),
        pd.DataFrame(stacked_shap, columns=names)], axis=1)))
    writer.put("force_stacked.html", figures.force_html(
        base_value, stacked_shap, _display_matrix(space, merged.features_of(stacked_rows)), names))

    # Outliers: table (CSV + Parquet) and one force plot per outlier row, from every part's candidates.
    candidates = merged.candidate_rows
    sums = merged.shap_sums_of(candidates)
    spread = merged.shap_std
    z_scores = (sums - merged.shap_mean) / spread if spread > 0 else np.zeros_like(sums)
    tails = rank_tails(candidates, sums, plan.per_tail)
    contributions = merged.contributions_of(candidates)
    values = merged.features_of(candidates)
    outliers = outlier_table(tails, z_scores, sums, merged.predictions_of(candidates), contributions, values,
                             candidates, space)
    writer.put("outliers.csv", tables.csv_bytes(outliers))
    writer.put("outliers.parquet", tables.parquet_bytes(outliers))
    for tail in ("high", "low"):
        for rank, position in enumerate(tails[tail], start=1):
            display = _display_matrix(space, values[position: position + 1])[0]
            writer.put(f"outlier_{tail}_{rank}.png",
                       figures.force_png(base_value, contributions[position, :-1], list(display), names))
    summary["outliers"] = [{"row": int(r), "z_score": float(z), "prediction": float(p)}
                           for r, z, p in outliers[["row", "z_score", "prediction"]].itertuples(index=False)
                           ] if len(outliers) else []

    # Global: mean |SHAP| over every explained row (waits for the full pass).
    mean_abs, summary["mean_abs_shap_method"] = merged.mean_abs_shap()
    ranking = pd.DataFrame({"feature": names, "mean_abs_shap": mean_abs}).sort_values(
        "mean_abs_shap", ascending=False, kind="stable")
    writer.put("shap_bar.csv", tables.csv_bytes(ranking))
    writer.put("shap_bar.png", figures.mean_abs_shap_bar(mean_abs, names))
    summary["top_features"] = [{"feature": f, "mean_abs_shap": float(v)}
                               for f, v in ranking.head(TOP_FEATURES).itertuples(index=False)]

    manifest: dict[str, object] = {"artifacts": dict(sorted(writer.artifacts.items())), "summary": summary}
    manifest_uri = storage.join(request.output_uri, MANIFEST_NAME)
    manifest["artifacts"][MANIFEST_NAME] = manifest_uri  # type: ignore[index]
    storage.write_bytes(manifest_uri, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"),
                        _CONTENT_TYPES[".json"])
    say(f"wrote {MANIFEST_NAME} ({len(writer.artifacts)} artifacts) to {manifest_uri}")
    return manifest
