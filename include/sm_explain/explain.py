"""One explanation run: choose the source, compute every analysis, write each artifact under output_uri (only
fixed names, so a rerun overwrites exactly its own keys) and return the small manifest."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

from sm_explain import model_source, storage, tables
from sm_explain.data import LabelledRows, read_csv_channel
from sm_explain.debugger_trial import IMPORTANCE_TYPES, DebuggerTrial, trial_present
from sm_explain.errors import BadRequest
from sm_explain.features import FeatureSpace, load_features
from sm_explain.model import ModelUnreadable, load_model_artifact, objective_of
from sm_explain.outliers import shap_outliers
from sm_explain.request import ExplainRequest
from sm_explain.shap_rows import ExplainedShap, ModelShap, TensorShap

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


#: The file staging wrote for each channel, as features.json's "files" names it.
STAGED_FILES = {"train": "train.csv", "validation": "validation.csv"}


@dataclass
class Channels:
    """Lazily read staged channels; each is read at most once, and checked against the sha256 staging recorded
    (when features.json records one) before it is parsed."""

    request: ExplainRequest
    space: FeatureSpace
    _cache: dict[str, LabelledRows] = field(default_factory=dict)

    def get(self, channel: str) -> LabelledRows:
        if channel not in self._cache:
            uri = self.request.train_uri if channel == "train" else self.request.validation_uri
            self._cache[channel] = read_csv_channel(uri, len(self.space.names), f"{channel}_uri",
                                                    self.expected_sha256(channel))
        return self._cache[channel]

    def expected_sha256(self, channel: str) -> str | None:
        recorded = self.space.staged_sha256
        if recorded is None:
            return None
        if STAGED_FILES[channel] not in recorded:
            raise BadRequest(
                f"features_uri {self.request.features_uri!r} records no sha256 for {STAGED_FILES[channel]} "
                f"(it records {', '.join(sorted(recorded)) or 'none'}), so {channel}_uri cannot be checked"
            )
        return recorded[STAGED_FILES[channel]]


def _seeded_rows(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted sample of row numbers (all rows when there are fewer than `size`)."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=size, replace=False))


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


def _open_trial(request: ExplainRequest) -> DebuggerTrial | None:
    if request.source == "debugger":
        assert request.debug_output_uri is not None  # parse_request guarantees it
        return DebuggerTrial.open(request.debug_output_uri, request.trial_timeout_seconds)
    if request.debug_output_uri is None or not trial_present(request.debug_output_uri):
        return None
    return DebuggerTrial.open(request.debug_output_uri, request.trial_timeout_seconds)


def _load_model(request: ExplainRequest, space: FeatureSpace) -> tuple[xgb.Booster | None, str, str]:
    """The booster, its objective and the model file's format; with the debugger source, a model that cannot be
    read is not fatal: every analysis then comes from the tensors, and the third value says why."""
    try:
        booster, objective, model_format = _read_model(request, space)
    except ModelUnreadable as problem:
        if request.source != "debugger":
            raise
        if request.objective is None:
            raise BadRequest(
                f"{str(problem).rstrip('.')}. To explain from the Debugger tensors alone, give the training "
                "job's objective (request key 'objective')."
            ) from problem
        return None, request.objective, f"not used: {problem}"
    return booster, objective, model_format


def _read_model(request: ExplainRequest, space: FeatureSpace) -> tuple[xgb.Booster, str, str]:
    booster, model_format = load_model_artifact(request.model_artifact_uri)
    objective = objective_of(booster)
    model_source.check_supported(booster, objective)
    if booster.num_features() != len(space.names):
        raise BadRequest(
            f"the model has {booster.num_features()} features but features_uri names {len(space.names)}"
        )
    return booster, objective, model_format


def run_explanations(request: ExplainRequest) -> dict[str, object]:
    with contextlib.ExitStack() as cleanup:  # stops the background SHAP pass when a step fails
        return _run_explanations(request, cleanup)


def _run_explanations(request: ExplainRequest, cleanup: contextlib.ExitStack) -> dict[str, object]:
    space = load_features(request.features_uri)
    booster, objective, model_file = _load_model(request, space)
    trial = _open_trial(request)
    use_debugger = trial is not None and (
        request.source == "debugger" or (request.source == "auto" and trial.has_full_shap())
    )
    channels = Channels(request, space)
    writer = ArtifactWriter(request.output_uri)
    names = space.names
    summary: dict[str, object] = {"source": "debugger" if use_debugger else "model", "model_file": model_file,
                                  "staged_data_checked": space.staged_sha256 is not None}

    # SHAP values of the explained rows. From the model, the mean |SHAP| pass starts here and runs in the
    # background while everything below is drawn; only the global bar, drawn last, waits for it.
    if use_debugger:
        assert trial is not None
        explained_channel = "train"  # the hook computes full_shap on the training data
        rows = channels.get("train")
        shap_step, contribs = trial.full_shap_last_step()
        if contribs.shape != (rows.features.shape[0], len(names) + 1):
            raise BadRequest(
                f"full_shap at step {shap_step} has shape {contribs.shape}, but train_uri has "
                f"{rows.features.shape[0]} rows of {len(names)} features"
            )
        summary["shap_step"] = shap_step
    else:
        explained_channel = request.explain_rows
        rows = channels.get(explained_channel)
    n_rows = rows.features.shape[0]
    if request.force_plot_row >= n_rows:
        raise BadRequest(f"force_plot_row {request.force_plot_row} is out of range: {explained_channel} has {n_rows} rows")
    has_metrics = trial is not None and trial.has_metrics()
    if not has_metrics and booster is not None:  # the curves recompute them on both channels: bad data fails here
        channels.get("train")
        channels.get("validation")
    if use_debugger:
        shap: ExplainedShap = TensorShap(contribs, objective)
    else:
        assert booster is not None  # only the debugger source goes on without the model
        # The pass takes one core (TreeShap's process) or all (the pred_contribs fallback); this thread's own
        # predictions (curves, samples) keep to one, so they do not fight the pass for the cores.
        booster.set_param({"nthread": 1})
        shap = ModelShap(booster, objective, rows.features)
    cleanup.callback(shap.close)
    base_value = shap.base_value
    summary.update(explained_rows=explained_channel, n_rows=int(n_rows), n_features=len(names),
                   base_value=base_value)

    # Imported only now: matplotlib and shap take seconds to import, which then overlap the SHAP pass.
    from sm_explain import figures

    # Curves over steps: Debugger tensors when the trial has them, else the truncated model on a row sample.
    steps = model_source.curve_steps(booster) if booster is not None else []
    step_sample = rows.features[_seeded_rows(n_rows, request.step_sample_size, request.seed)]
    curve_sources: dict[str, str] = {}

    def from_trial_or_model(key: str, from_trial: Callable[[], pd.DataFrame], from_model: Callable[[], pd.DataFrame],
                            trial_has_it: bool) -> pd.DataFrame:
        if not trial_has_it and booster is None:
            raise BadRequest(f"the Debugger output has no tensors for {key}, and the model file is {model_file}")
        curve_sources[key] = "debugger" if trial_has_it else "model"
        return from_trial() if trial_has_it else from_model()

    metrics = from_trial_or_model(
        "metrics", lambda: trial.metric_curves(),
        lambda: model_source.metric_curves(
            booster, objective, {c: (channels.get(c).features, channels.get(c).labels) for c in ("train", "validation")},
            steps),
        has_metrics)
    _write_curve(writer, "metrics", metrics.reset_index(), "Metrics per step", "metric value")

    trial_names = set(trial._names("feature_importance")) if use_debugger else set()
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
        use_debugger and bool(trial._names("average_shap")))
    average = average.reindex(columns=range(len(names)))
    _write_curve(writer, "average_shap", _named(average, space), "Average SHAP per step", "mean SHAP value")
    summary["curve_sources"] = curve_sources

    # Beeswarm on a seeded sample.
    swarm_rows = _seeded_rows(n_rows, request.beeswarm_sample_size, request.seed)
    swarm_shap, swarm_values = shap.contributions(swarm_rows)[:, :-1], rows.features[swarm_rows]
    swarm_table = pd.concat([
        pd.DataFrame({"row": swarm_rows}),
        pd.DataFrame(swarm_shap, columns=[f"shap:{n}" for n in names]),
        pd.DataFrame(swarm_values, columns=[f"value:{n}" for n in names]),
    ], axis=1)
    writer.put("shap_beeswarm.csv", tables.csv_bytes(swarm_table))
    writer.put("shap_beeswarm.png", figures.shap_beeswarm(swarm_shap, swarm_values, names, request.seed))

    # Local: force plot of the chosen row, stacked force plot of a seeded sample.
    row = request.force_plot_row
    row_shap = shap.contributions(np.array([row]))[0, :-1]
    row_display = _display_matrix(space, rows.features[row: row + 1])[0]
    writer.put("force_row.csv", tables.csv_bytes(pd.DataFrame({
        "feature": names, "value": [str(v) for v in row_display], "shap": row_shap})))
    writer.put("force_row.png", figures.force_png(base_value, row_shap, list(row_display), names))
    writer.put("force_row.html", figures.force_html(base_value, row_shap, row_display, names))
    stacked_rows = _seeded_rows(n_rows, request.stacked_sample_size, request.seed)
    stacked_shap = shap.contributions(stacked_rows)[:, :-1]
    writer.put("force_stacked.csv", tables.csv_bytes(pd.concat([
        pd.DataFrame({"row": stacked_rows, "prediction": shap.predictions[stacked_rows]}),
        pd.DataFrame(stacked_shap, columns=names)], axis=1)))
    writer.put("force_stacked.html", figures.force_html(
        base_value, stacked_shap, _display_matrix(space, rows.features[stacked_rows]), names))

    # Outliers: table (CSV + Parquet) and one force plot per outlier row.
    outliers = shap_outliers(shap, rows.features, space, request.outlier_top_n)
    writer.put("outliers.csv", tables.csv_bytes(outliers))
    writer.put("outliers.parquet", tables.parquet_bytes(outliers))
    outlier_rows = outliers["row"].to_numpy(dtype=np.int64)
    outlier_shap = shap.contributions(outlier_rows)[:, :-1] if len(outlier_rows) else np.empty((0, len(names)))
    for (tail, rank, outlier_row), values in zip(outliers[["tail", "rank", "row"]].itertuples(index=False),
                                                 outlier_shap, strict=True):
        display = _display_matrix(space, rows.features[outlier_row: outlier_row + 1])[0]
        writer.put(f"outlier_{tail}_{rank}.png", figures.force_png(base_value, values, list(display), names))
    summary["outliers"] = [{"row": int(r), "z_score": float(z), "prediction": float(p)}
                           for r, z, p in outliers[["row", "z_score", "prediction"]].itertuples(index=False)]

    # Global: mean |SHAP| over every explained row (waits for the full pass).
    mean_abs = shap.mean_abs_shap()
    summary["mean_abs_shap_method"] = shap.mean_abs_method
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
    return manifest
