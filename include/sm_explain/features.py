"""The staged `features.json`: real names for the positional features f0..fN (the Debugger hook and CSV
training only know fN) and the labels behind categorical codes, for readable figures and tables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sm_explain import storage
from sm_explain.errors import BadRequest

_POSITIONAL = re.compile(r"^f(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FeatureSpace:
    names: list[str]
    # feature index -> {numeric code -> label}
    categorical_labels: dict[int, dict[float, str]] = field(default_factory=dict)
    # staged file name (train.csv, validation.csv) -> the sha256 staging recorded; None when the document records
    # no files (it was not written by sm_staging)
    staged_sha256: dict[str, str] | None = None

    def index_of(self, tensor_or_score_name: str) -> int:
        """Column index of `fN` (what tensors and get_score use) or of a real feature name."""
        match = _POSITIONAL.match(tensor_or_score_name)
        if match:
            return int(match.group(1))
        return self.names.index(tensor_or_score_name)

    def display_value(self, feature_index: int, value: float) -> str | float:
        """The category label for a categorical code, else the number itself."""
        labels = self.categorical_labels.get(feature_index)
        if labels is None:
            return float(value)
        return labels.get(float(value), f"{value:g}")

    def display_row(self, values: np.ndarray) -> list[str | float]:
        return [self.display_value(i, v) for i, v in enumerate(values)]


def _labels_by_code(feature: str, mapping: Any) -> dict[float, str]:
    """Accept `[label, ...]` (position = code), `{label: code}` or `{code: label}`."""
    if isinstance(mapping, list):
        return {float(code): str(label) for code, label in enumerate(mapping)}
    if isinstance(mapping, dict):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mapping.values()):
            return {float(code): str(label) for label, code in mapping.items()}
        try:
            return {float(code): str(label) for code, label in mapping.items()}
        except ValueError:
            pass
    raise BadRequest(f"features.json: categorical[{feature!r}] is neither a list of labels nor a code map")


def parse_features(document: Any, source: str) -> FeatureSpace:
    if not isinstance(document, dict):
        raise BadRequest(f"{source} must hold a JSON object")
    names = document.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise BadRequest(f"{source} needs 'feature_names': a non-empty list of strings (f0..fN in order)")
    if len(set(names)) != len(names):
        raise BadRequest(f"{source}: feature_names has duplicates")
    maps = document.get("categorical") or {}  # sm_staging's key: {feature: {code: label}}
    if not isinstance(maps, dict):
        raise BadRequest(f"{source}: 'categorical' must be an object keyed by feature name")
    labels: dict[int, dict[float, str]] = {}
    for feature, mapping in maps.items():
        if feature not in names:
            raise BadRequest(f"{source}: categorical names {feature!r}, which is not in feature_names")
        labels[names.index(feature)] = _labels_by_code(feature, mapping)
    return FeatureSpace(names=list(names), categorical_labels=labels, staged_sha256=_staged_sha256(document, source))


def _staged_sha256(document: dict[str, Any], source: str) -> dict[str, str] | None:
    """sm_staging's record of each file it wrote: {"files": {name: {"sha256": hex, ...}}}."""
    files = document.get("files")
    if files is None:
        return None
    if not isinstance(files, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])
        for entry in files.values()
    ):
        raise BadRequest(f"{source}: 'files' must map each staged file to {{\"sha256\": <64 hex digits>, ...}}")
    return {str(name): entry["sha256"] for name, entry in files.items()}


def load_features(uri: str) -> FeatureSpace:
    try:
        document = json.loads(storage.read_bytes(uri))
    except ValueError as exc:
        raise BadRequest(f"features_uri {uri!r} is not valid JSON: {exc}") from exc
    return parse_features(document, f"features_uri {uri!r}")
