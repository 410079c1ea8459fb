"""The `python -m sm_explain` request: parsed and checked completely (keys, types, URIs, that the inputs exist)
before any data is read, so a bad request fails in seconds with a message naming the problem."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sm_explain import storage
from sm_explain.errors import BadRequest

SOURCES = ("auto", "model", "debugger")
# Models with one output per row, whose margin the explanations can turn into the prediction.
SUPPORTED_OBJECTIVES = ("binary:logistic", "reg:squarederror", "reg:linear", "reg:logistic")
EXPLAIN_ROWS = ("train", "validation")
_REQUIRED_URIS = ("features_uri", "train_uri", "validation_uri", "model_artifact_uri", "output_uri")
_INPUT_URIS = ("features_uri", "train_uri", "validation_uri", "model_artifact_uri")
# The largest sample each analysis accepts: each is drawn or computed row by row (an outlier is two force plots,
# the stacked plot embeds every row in its HTML, the step curves predict the sample once per boosting round), so
# these keep a run in minutes and its report readable; far above the defaults.
MAX_STACKED_SAMPLE_SIZE = 1_000
MAX_BEESWARM_SAMPLE_SIZE = 20_000
MAX_STEP_SAMPLE_SIZE = 100_000
MAX_OUTLIER_TOP_N = 50
MAX_SEED = 2**32 - 1
MAX_TRIAL_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class ExplainRequest:
    job_name: str
    dataset_version: str
    features_uri: str
    train_uri: str
    validation_uri: str
    model_artifact_uri: str
    debug_output_uri: str | None
    output_uri: str
    source: str = "model"
    explain_rows: str = "validation"
    force_plot_row: int = 0
    stacked_sample_size: int = 100
    beeswarm_sample_size: int = 2000
    step_sample_size: int = 2000
    outlier_top_n: int = 5
    seed: int = 7
    trial_timeout_seconds: float = 60.0
    # The training job's objective: needed only when the source is debugger and the model cannot be read.
    objective: str | None = None


def _non_empty_string(raw: dict[str, Any], key: str) -> str:
    if key not in raw:
        raise BadRequest(f"the request is missing the key {key!r}")
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{key} must be a non-empty string, got {value!r}")
    return value


def _int(raw: dict[str, Any], key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        accepted = f"from {minimum} to {maximum:,}" if maximum is not None else f">= {minimum}"
        raise BadRequest(f"{key} must be an integer {accepted}, got {value!r}")
    return value


def _choice(raw: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise BadRequest(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _objective(raw: dict[str, Any]) -> str | None:
    value = raw.get("objective") or None
    if value is not None and value not in SUPPORTED_OBJECTIVES:
        raise BadRequest(f"objective must be one of {', '.join(SUPPORTED_OBJECTIVES)}, got {value!r}")
    return value


def parse_request(raw: dict[str, Any], check_inputs_exist: bool = True) -> ExplainRequest:
    """Validate `raw`; with `check_inputs_exist` also make sure every input object is there (cheap HEAD calls)."""
    uris = {key: storage.validate_uri(_non_empty_string(raw, key), key) for key in _REQUIRED_URIS}
    debug_output_uri = raw.get("debug_output_uri")
    if debug_output_uri is not None:
        debug_output_uri = storage.validate_uri(debug_output_uri, "debug_output_uri")
    timeout = raw.get("trial_timeout_seconds", 60)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TRIAL_TIMEOUT_SECONDS
    ):
        raise BadRequest(
            f"trial_timeout_seconds must be a number of seconds above 0 and at most {MAX_TRIAL_TIMEOUT_SECONDS:g}, "
            f"got {timeout!r}"
        )
    request = ExplainRequest(
        job_name=_non_empty_string(raw, "job_name"),
        dataset_version=_non_empty_string(raw, "dataset_version"),
        debug_output_uri=debug_output_uri,
        source=_choice(raw, "source", "model", SOURCES),
        explain_rows=_choice(raw, "explain_rows", "validation", EXPLAIN_ROWS),
        force_plot_row=_int(raw, "force_plot_row", 0, 0),
        stacked_sample_size=_int(raw, "stacked_sample_size", 100, 2, MAX_STACKED_SAMPLE_SIZE),
        beeswarm_sample_size=_int(raw, "beeswarm_sample_size", 2000, 1, MAX_BEESWARM_SAMPLE_SIZE),
        step_sample_size=_int(raw, "step_sample_size", 2000, 1, MAX_STEP_SAMPLE_SIZE),
        outlier_top_n=_int(raw, "outlier_top_n", 5, 1, MAX_OUTLIER_TOP_N),
        seed=_int(raw, "seed", 7, 0, MAX_SEED),
        trial_timeout_seconds=float(timeout),
        objective=_objective(raw),
        **uris,
    )
    if request.source == "debugger" and request.debug_output_uri is None:
        raise BadRequest("source 'debugger' needs debug_output_uri (the job's Debugger output location)")
    if check_inputs_exist:
        for key in _INPUT_URIS:
            uri = getattr(request, key)
            if not storage.exists(uri):
                raise BadRequest(f"{key} {uri!r} does not exist")
    return request
