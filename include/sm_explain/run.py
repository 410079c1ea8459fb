"""What one explanation run is, before any row is read: the feature space, the model, the Debugger trial, which
source and channel the SHAP analyses use, the curve steps, each channel's parts, and the fingerprint that every
map's partial must carry for the reduce to merge it. The single run, each map and the reduce all start here, so
they decide alike."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sm_explain import model_source
from sm_explain.debugger_trial import DebuggerTrial, trial_present
from sm_explain.errors import BadRequest
from sm_explain.features import FeatureSpace, load_features
from sm_explain.model import ModelUnreadable, load_model_artifact, objective_of
from sm_explain.parts import Part, channel_parts
from sm_explain.request import ExplainRequest
from sm_explain_contracts.lean_xgboost import import_xgboost

xgb = import_xgboost()  # the lean import: see sm_explain_contracts.lean_xgboost


@dataclass
class Run:
    request: ExplainRequest
    space: FeatureSpace
    booster: xgb.Booster | None
    objective: str
    model_file: str
    trial: DebuggerTrial | None
    use_debugger: bool  # SHAP values from the trial's full_shap tensor (else from the model)
    explained_channel: str
    metric_sums_needed: bool  # no Debugger metrics: the curves are recomputed from the model on both channels
    steps: list[int]
    parts: dict[str, list[Part]]  # of each channel the run reads
    fingerprint: dict[str, Any]

    @property
    def n_features(self) -> int:
        return len(self.space.names)

    @property
    def channels(self) -> list[str]:
        """The channels whose rows the run reads: the explained one, and the other one for the metric curves."""
        other = "validation" if self.explained_channel == "train" else "train"
        return [self.explained_channel] + ([other] if self.metric_sums_needed else [])


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


# The request fields that change what a map computes; the others (names, output location) do not.
_FINGERPRINT_FIELDS = ("dataset_version", "source", "explain_rows", "force_plot_row", "stacked_sample_size",
                       "beeswarm_sample_size", "step_sample_size", "outlier_top_n", "seed")


def open_run(request: ExplainRequest) -> Run:
    space = load_features(request.features_uri)
    booster, objective, model_file = _load_model(request, space)
    trial = _open_trial(request)
    use_debugger = trial is not None and (
        request.source == "debugger" or (request.source == "auto" and trial.has_full_shap())
    )
    explained = "train" if use_debugger else request.explain_rows  # the hook computes full_shap on the train rows
    has_metrics = trial is not None and trial.has_metrics()
    run = Run(request, space, booster, objective, model_file, trial, use_debugger, explained,
              metric_sums_needed=not has_metrics and booster is not None,
              steps=model_source.curve_steps(booster) if booster is not None else [], parts={}, fingerprint={})
    run.parts = {channel: channel_parts(request, space, channel) for channel in run.channels}
    run.fingerprint = {
        "model_sha256": None if booster is None else hashlib.sha256(booster.save_raw("ubj")).hexdigest(),
        "feature_names": space.names, "objective": objective, "use_debugger": use_debugger,
        "explained_channel": explained, "metric_sums": run.metric_sums_needed, "steps": run.steps,
        **{name: getattr(request, name) for name in _FINGERPRINT_FIELDS},
    }
    return run
