"""The `python -m sm_explain` and `python -m sm_explain.report` requests: their fields, defaults and bounds, in
one place.

The explanation and report tasks check their request with these functions before the runtime starts, and the
runtime parses it with the same ones before anything is read, so both refuse alike, in the same words. What
needs the objects themselves (that the inputs exist, the manifest behind a `manifest_uri`) only the runtime checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from sm_explain_contracts.request_fields import (
    RequestError,
    choice,
    given,
    integer,
    location,
    mapping,
    number,
    optional_location,
    request_object,
    required_location,
    required_string,
)
from sm_explain_contracts.s3_uris import is_under
from sm_explain_contracts.staging_request import MAX_TRAIN_PARTS
from sm_explain_contracts.versions import dataset_version_problem

SOURCES = ("auto", "model", "debugger")
# Models with one output per row, whose margin the explanations can turn into the prediction.
SUPPORTED_OBJECTIVES = ("binary:logistic", "reg:squarederror", "reg:linear", "reg:logistic")
EXPLAIN_ROWS = ("train", "validation")
INPUT_URIS = ("features_uri", "train_uri", "validation_uri", "model_artifact_uri")
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


EXPLAIN_REQUEST_KEYS = frozenset(f.name for f in fields(ExplainRequest))
_DEFAULTS = {f.name: f.default for f in fields(ExplainRequest)}
# (minimum, maximum) of each integer field; None: no maximum.
_INTEGER_BOUNDS: dict[str, tuple[int, int | None]] = {
    "force_plot_row": (0, None),
    "stacked_sample_size": (2, MAX_STACKED_SAMPLE_SIZE),
    "beeswarm_sample_size": (1, MAX_BEESWARM_SAMPLE_SIZE),
    "step_sample_size": (1, MAX_STEP_SAMPLE_SIZE),
    "outlier_top_n": (1, MAX_OUTLIER_TOP_N),
    "seed": (0, MAX_SEED),
}


def _dataset_version(request: Any) -> str:
    """The version names the report and the S3 layout, so it follows the one version rule."""
    version = required_string(request, "dataset_version")
    problem = dataset_version_problem(version)
    if problem:
        raise RequestError(problem)
    return version


def parse_explain_request(raw: object) -> ExplainRequest:
    """Check every field of an explanation request and fill in the defaults; RequestError names the first problem."""
    request = request_object(raw, EXPLAIN_REQUEST_KEYS)
    objective = request.get("objective") or None  # the DAG renders an unset objective as ""
    parsed = ExplainRequest(
        job_name=required_string(request, "job_name"),
        dataset_version=_dataset_version(request),
        **{key: required_location(request, key) for key in (*INPUT_URIS, "output_uri")},
        debug_output_uri=optional_location(request, "debug_output_uri"),
        source=choice(request, "source", _DEFAULTS["source"], SOURCES),
        explain_rows=choice(request, "explain_rows", _DEFAULTS["explain_rows"], EXPLAIN_ROWS),
        **{key: integer(request, key, _DEFAULTS[key], *bounds) for key, bounds in _INTEGER_BOUNDS.items()},
        trial_timeout_seconds=number(
            request, "trial_timeout_seconds", _DEFAULTS["trial_timeout_seconds"], above=0,
            at_most=MAX_TRIAL_TIMEOUT_SECONDS,
            accepted=f"a number of seconds above 0 and at most {MAX_TRIAL_TIMEOUT_SECONDS:g}",
        ),
        objective=None if objective is None else choice({"objective": objective}, "objective", "",
                                                        SUPPORTED_OBJECTIVES),
    )
    if parsed.source == "debugger" and parsed.debug_output_uri is None:
        raise RequestError("source 'debugger' needs debug_output_uri (the job's Debugger output location), got None")
    return parsed


# The explanation as a map over part files and a reduce (`python -m sm_explain.map` / `sm_explain.reduce`): each
# takes every explanation field above (the same run) plus its own.
CHANNELS = ("train", "validation")
# Partials one reduce merges at most: one per training part and one for the validation file.
MAX_PARTIALS = MAX_TRAIN_PARTS + 1


@dataclass(frozen=True)
class MapRequest:
    explain: ExplainRequest
    channel: str  # which channel's parts this map reads
    parts: tuple[str, ...] | None  # their paths under the staged root (train/part-00003.csv); None: see local_root
    local_root: str | None  # a local copy of the staged root's layout (a Processing instance's input directory)
    partial_uri: str  # where the partial results go


@dataclass(frozen=True)
class ReduceRequest:
    explain: ExplainRequest
    partial_uris: tuple[str, ...]


MAP_KEYS = frozenset({"channel", "parts", "local_root", "partial_uri"})
REDUCE_KEYS = frozenset({"partial_uris"})


def _split(raw: object, own: frozenset[str]) -> tuple[ExplainRequest, dict[str, Any]]:
    request = request_object(raw, EXPLAIN_REQUEST_KEYS | own)
    explain = parse_explain_request({k: v for k, v in request.items() if k not in own})
    return explain, {k: v for k, v in request.items() if k in own}


def parse_map_request(raw: object) -> MapRequest:
    """An explanation request plus `channel`, `parts` (a list of part paths, at most one per part the staging
    can write), `local_root` (an absolute local directory: where the instance's share of the files lies, by their
    staged paths; always allowed, since only the part paths of the run are ever joined to it) and `partial_uri`."""
    explain, own = _split(raw, MAP_KEYS)
    channel = choice(own, "channel", "train", CHANNELS)
    parts = own.get("parts")
    if parts is not None:
        if (not isinstance(parts, list) or not 1 <= len(parts) <= MAX_TRAIN_PARTS
                or not all(isinstance(p, str) and p for p in parts)):
            raise RequestError(
                f"parts must be a list of 1 to {MAX_TRAIN_PARTS} part paths (train/part-00000.csv ...), got "
                f"{given(parts)}"
            )
        if len(set(parts)) != len(parts):
            raise RequestError(f"parts names a part more than once: {sorted({p for p in parts if parts.count(p) > 1})}")
        parts = tuple(parts)
    local_root = None if own.get("local_root") is None else location(own["local_root"], "local_root",
                                                                       allow_local=True)
    if local_root is not None and local_root.startswith("s3://"):
        raise RequestError(f"local_root {given(local_root)} must be a local directory (the instance's input)")
    return MapRequest(explain, channel, parts, local_root, required_location(own, "partial_uri"))


def parse_reduce_request(raw: object) -> ReduceRequest:
    """An explanation request plus `partial_uris`: the partial results of every map (1 to MAX_PARTIALS)."""
    explain, own = _split(raw, REDUCE_KEYS)
    uris = own.get("partial_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= MAX_PARTIALS:
        raise RequestError(f"partial_uris must be a list of 1 to {MAX_PARTIALS} locations, got {given(uris)}")
    checked = tuple(location(uri, f"partial_uris[{i}]") for i, uri in enumerate(uris))
    if len(set(checked)) != len(checked):
        raise RequestError(f"partial_uris names a partial more than once: "
                           f"{sorted({u for u in checked if checked.count(u) > 1})}")
    return ReduceRequest(explain, checked)


@dataclass(frozen=True)
class ReportRequest:
    job_name: str
    dataset_version: str
    output_uri: str
    verdict: dict[str, Any]
    # Exactly one of the two: the explanation's manifest itself, or where it lies (under output_uri).
    manifest: dict[str, Any] | None
    manifest_uri: str | None
    # What only the Airflow side knows, shown as links at the top of the report (REPORT_LINK_SCHEMES); the report
    # renders them and never reads what they point at.
    links: dict[str, str] = field(default_factory=dict)
    # The data set version whose report links.previous_report is.
    previous_dataset_version: str | None = None


REPORT_REQUEST_KEYS = frozenset(f.name for f in fields(ReportRequest))
# Each link the report shows, and the schemes it may have: a web page (the SageMaker console, or the local
# endpoint's job log page), or a location in S3 (shown as text, beside its S3 console page on AWS). Nothing else:
# a `javascript:` or `data:` link in a report would run in the reader's browser.
REPORT_LINK_SCHEMES: dict[str, tuple[str, ...]] = {
    "training_job": ("https", "http"),
    "staged_data": ("s3",),
    "staged_data_console": ("https",),
    "previous_report": ("s3",),
    "previous_report_console": ("https",),
}
MAX_LINK_CHARACTERS = 2048


def check_manifest(manifest: object, output_uri: str) -> dict[str, Any]:
    """The manifest of `python -m sm_explain`, when every artifact it names lies under the run's `output_uri`.

    The report embeds what it reads, so only the run's own artifacts: never another object or a file of the worker
    (an edited manifest, which travels through XCom, could name /proc/self/environ)."""
    manifest = mapping({"manifest": manifest}, "manifest", "the result of the explanation step, python -m sm_explain")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, dict):
        raise RequestError(f"manifest must hold an 'artifacts' mapping (name -> URI), got {given(artifacts)}")
    for name, uri in artifacts.items():
        _require_under(uri, f"manifest artifact {name!r}", output_uri)
    return manifest


def _require_under(uri: object, what: str, output_uri: str) -> None:
    if not is_under(uri, output_uri):
        raise RequestError(
            f"{what} {given(uri)} is not under the run's output location {output_uri!r}: the report reads only the "
            "run's own artifacts"
        )


def _check_verdict(verdict: dict[str, Any]) -> None:
    rules = verdict.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise RequestError(f"verdict.rules must be a list of {{name, status, details}}, got {given(rules)}")
    metrics = verdict.get("final_metrics") or {}
    if not isinstance(metrics, dict | list):
        raise RequestError(
            f"verdict.final_metrics must be an object or a list of {{MetricName, Value}}, got {given(metrics)}"
        )


def parse_report_request(raw: object) -> ReportRequest:
    """Check a report request; a `manifest_uri` is checked for where it points, its content by the runtime
    (`check_manifest`) once read."""
    request = request_object(raw, REPORT_REQUEST_KEYS)
    job_name = required_string(request, "job_name")
    dataset_version = _dataset_version(request)
    output_uri = required_location(request, "output_uri")
    verdict = mapping(request, "verdict", "training status, final metrics, rules") if "verdict" in request else {}
    _check_verdict(verdict)
    manifest, manifest_uri = None, None
    if request.get("manifest") is None and "manifest_uri" in request:
        manifest_uri = location(request["manifest_uri"], "manifest_uri")
        _require_under(manifest_uri, "manifest_uri", output_uri)
    else:
        manifest = check_manifest(request.get("manifest"), output_uri)
    links = _report_links(request.get("links"))
    previous_version = _previous_dataset_version(request, dataset_version, links)
    return ReportRequest(job_name, dataset_version, output_uri, verdict, manifest, manifest_uri, links,
                         previous_version)


def _link_problem(value: object, schemes: tuple[str, ...]) -> str | None:
    """None for a link the report may show, else what is wrong with it."""
    if not isinstance(value, str) or not value:
        return "is not a non-empty string"
    if len(value) > MAX_LINK_CHARACTERS:
        return f"is {len(value):,} characters long"
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in value):
        return "contains whitespace or a control character"
    scheme = value.split(":", 1)[0].lower() if ":" in value else ""
    if scheme not in schemes:
        return f"has the scheme {scheme!r}" if scheme else "has no scheme"
    if scheme == "s3":
        try:
            location(value, "link", allow_local=False)
        except RequestError as error:
            return str(error).removeprefix(f"link {given(value)} ")
        return None
    try:
        host = urlsplit(value).hostname
    except ValueError:
        host = None
    return None if host else "names no host"


def _report_links(raw: object) -> dict[str, str]:
    """`links`: {name: URL} with names from REPORT_LINK_SCHEMES, each of its schemes, at most MAX_LINK_CHARACTERS;
    absent or null: no links."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RequestError(f"links must be a mapping of link name to URL, got {given(raw)}")
    unknown = sorted(str(name) for name in raw if name not in REPORT_LINK_SCHEMES)
    if unknown:
        raise RequestError(f"links has unknown names {unknown}; known names: {sorted(REPORT_LINK_SCHEMES)}")
    links: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue
        schemes = REPORT_LINK_SCHEMES[name]
        problem = _link_problem(value, schemes)
        if problem:
            accepted = " or ".join(f"{scheme}://" for scheme in schemes)
            raise RequestError(
                f"links.{name} must be a URL ({accepted}) of at most {MAX_LINK_CHARACTERS:,} characters, got "
                f"{given(value)}, which {problem}"
            )
        links[name] = value
    return links


def _previous_dataset_version(request: Any, dataset_version: str, links: dict[str, str]) -> str | None:
    """The version links.previous_report belongs to: a valid version other than this run's, only with that link."""
    version = request.get("previous_dataset_version")
    if version is None:
        return None
    problem = dataset_version_problem(version)
    if problem:
        raise RequestError(f"previous_dataset_version: {problem}")
    if version == dataset_version:
        raise RequestError(f"previous_dataset_version {version!r} is this run's own version")
    if "previous_report" not in links:
        raise RequestError(f"previous_dataset_version {version!r} is given without links.previous_report (its report)")
    return version
