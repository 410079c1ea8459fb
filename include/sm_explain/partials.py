"""The partial results of one map over some part files of a channel, exactly what the reduce needs to draw every
analysis as one run over all rows would; and their file format, read back without trusting it.

A partial holds (for its parts, by global row number):
- the exact sums over its rows (`exact_sums` integers, written as hexadecimal strings): |SHAP| per feature, the
  SHAP sums and their squares (the outliers' z-scores), the per-step metric terms; exact, so merging any split
  of the rows gives the same integers, and every mean is rounded once;
- the outlier candidates: its rows with the `per_tail` largest and smallest SHAP sums (ties: lowest row first),
  a superset of its share of the global outliers;
- the sampled rows that fall in its parts (`sampling.SamplePlan`): feature values, predictions, SHAP sums, and
  the full SHAP vectors of those that are drawn (and of the candidates).

File: an uncompressed `.npz` (`numpy.savez`, read with `allow_pickle=False`: no object is ever unpickled) holding
`header` (UTF-8 JSON as uint8) and the arrays of `ARRAYS`. Reading checks the size, that every member is stored
uncompressed (a member cannot expand beyond the file) with exactly the expected names, the header's fields and
bounds, and every array's dtype and shape against the header.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sm_explain import storage
from sm_explain.errors import BadRequest
from sm_explain_contracts.explain_request import MAX_PARTIALS

FORMAT = "sm-explain-partial/1"
MAX_PARTIAL_BYTES = 2 << 30  # the largest sample (100,000 step rows) of 5,000 features is 2 GB
MAX_INTEGER_DIGITS = 700  # an exact sum of 2**40 rows of doubles has at most ~600 hexadecimal digits
# name -> (dtype, columns: None for 1-D, "F" features, "F+1" features and the bias)
ARRAYS: dict[str, tuple[str, str | None]] = {
    "rows": ("int64", None),
    "features": ("float32", "F"),
    "predictions": ("float64", None),
    "shap_sums": ("float64", None),
    "contribution_rows": ("int64", None),
    "contributions": ("float32", "F+1"),
    "candidate_rows": ("int64", None),
}


@dataclass
class Partial:
    channel: str
    fingerprint: dict[str, Any]  # what makes two maps parts of one run (model, features, settings)
    parts: list[dict[str, Any]]  # {path, first_row, rows, sha256} of each part read, in row order
    n_total: int  # rows of the whole channel
    n_features: int
    explained: bool  # the SHAP analyses' channel (else only its metric sums)
    metric_sums: dict[str, list[int]] | None = None  # "<metric>" -> exact sum of its terms per curve step
    base_value: float | None = None
    shap_step: int | None = None
    shap_total: int | None = None
    shap_square_total: int | None = None
    method: str | None = None
    abs_sums: list[int] | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    # The mean |SHAP| pass still running (one process's run): called once, it gives (abs_sums, method).
    pending: Callable[[], tuple[list[int], str]] | None = None

    @property
    def n_rows(self) -> int:
        return sum(int(part["rows"]) for part in self.parts)

    @property
    def name(self) -> str:
        first, last = self.parts[0]["path"], self.parts[-1]["path"]
        return first if first == last else f"{first} .. {last}"

    def resolve(self) -> None:
        """Wait for the mean |SHAP| pass, if one runs."""
        if self.pending is not None:
            self.abs_sums, self.method = self.pending()
            self.pending = None


def _hex(value: int | None) -> str | None:
    return None if value is None else hex(value)


def _header(partial: Partial) -> dict[str, Any]:
    return {
        "format": FORMAT, "channel": partial.channel, "fingerprint": partial.fingerprint, "parts": partial.parts,
        "n_total": partial.n_total, "n_features": partial.n_features, "explained": partial.explained,
        "metric_sums": None if partial.metric_sums is None else {
            name: [hex(v) for v in values] for name, values in partial.metric_sums.items()},
        "base_value": partial.base_value, "shap_step": partial.shap_step,
        "shap_total": _hex(partial.shap_total), "shap_square_total": _hex(partial.shap_square_total),
        "method": partial.method, "abs_sums": None if partial.abs_sums is None else [hex(v) for v in partial.abs_sums],
    }


def partial_bytes(partial: Partial) -> bytes:
    partial.resolve()
    header = np.frombuffer(json.dumps(_header(partial), sort_keys=True).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, header=header, **{name: partial.arrays[name] for name in ARRAYS})
    return buffer.getvalue()


def write_partial(uri: str, partial: Partial) -> None:
    storage.write_bytes(uri, partial_bytes(partial))


def read_partial(uri: str, what: str) -> Partial:
    """A partial file, refused (naming `what` and the problem) unless it is exactly the format above."""
    data = storage.read_bytes_at_most(uri, MAX_PARTIAL_BYTES, what)
    named = f"{what} {uri!r}"
    try:
        return _parse(data, named)
    except BadRequest:
        raise
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise BadRequest(f"{named} is not a partial written by sm_explain.map: {exc}") from exc


def _parse(data: bytes, what: str) -> Partial:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        names = sorted(member.filename for member in members)
        expected = sorted(f"{name}.npy" for name in ("header", *ARRAYS))
        if names != expected:
            raise BadRequest(f"{what} holds {names}, not the members of a partial ({expected})")
        if any(member.compress_type != zipfile.ZIP_STORED for member in members):
            raise BadRequest(f"{what} has compressed members; partials are written uncompressed")
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        header = json.loads(loaded["header"].tobytes().decode("utf-8"))
        arrays = {name: loaded[name] for name in ARRAYS}
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadRequest(f"{what} is not a partial of format {FORMAT!r}")
    partial = Partial(
        channel=_choice(header, "channel", ("train", "validation"), what),
        fingerprint=_typed(header, "fingerprint", dict, what),
        parts=_parts(header.get("parts"), what),
        n_total=_count(header.get("n_total"), f"{what} n_total", 1),
        n_features=_count(header.get("n_features"), f"{what} n_features", 1),
        explained=_typed(header, "explained", bool, what),
        metric_sums=_metric_sums(header.get("metric_sums"), what),
        base_value=_optional(header, "base_value", float, what),
        shap_step=_optional(header, "shap_step", int, what),
        shap_total=_integer(header.get("shap_total"), f"{what} shap_total"),
        shap_square_total=_integer(header.get("shap_square_total"), f"{what} shap_square_total"),
        method=_optional(header, "method", str, what),
        abs_sums=_integers(header.get("abs_sums"), f"{what} abs_sums"),
        arrays=arrays,
    )
    _check_arrays(partial, what)
    return partial


def _typed(header: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadRequest(f"{what}: {key} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(header: dict[str, Any], key: str, kind: type, what: str) -> Any:
    if header.get(key) is None:
        return None
    if kind is float and isinstance(header[key], int) and not isinstance(header[key], bool):
        return float(header[key])
    return _typed(header, key, kind, what)


def _choice(header: dict[str, Any], key: str, choices: tuple[str, ...], what: str) -> str:
    if header.get(key) not in choices:
        raise BadRequest(f"{what}: {key} must be one of {', '.join(choices)}, got {header.get(key)!r}")
    return header[key]


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2**40:
        raise BadRequest(f"{what} must be an integer from {minimum} to {2**40}, got {value!r}")
    return value


def _integer(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_INTEGER_DIGITS:
        raise BadRequest(f"{what} must be a hexadecimal integer of at most {MAX_INTEGER_DIGITS} digits")
    try:
        return int(value, 16)
    except ValueError:
        raise BadRequest(f"{what} {value[:40]!r} is not a hexadecimal integer") from None


def _integers(values: object, what: str, limit: int = 100_000) -> list[int] | None:
    if values is None:
        return None
    if not isinstance(values, list) or len(values) > limit:
        raise BadRequest(f"{what} must be a list of at most {limit} hexadecimal integers")
    return [_integer(v, f"{what}[{i}]") for i, v in enumerate(values)]  # type: ignore[misc]


def _metric_sums(value: object, what: str) -> dict[str, list[int]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 8:
        raise BadRequest(f"{what}: metric_sums must map at most 8 metrics to their sums per step")
    return {str(name): _integers(sums, f"{what} metric_sums[{name!r}]") or [] for name, sums in value.items()}


def _parts(value: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PARTIALS:
        raise BadRequest(f"{what}: parts must list 1 to {MAX_PARTIALS} parts")
    parts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("path"), str):
            raise BadRequest(f"{what}: part {i} must be an object with a path")
        sha256 = part.get("sha256")
        if sha256 is not None and not isinstance(sha256, str):
            raise BadRequest(f"{what}: part {part['path']!r} sha256 must be a string or null")
        parts.append({"path": part["path"], "first_row": _count(part.get("first_row"), f"{what} first_row", 0),
                      "rows": _count(part.get("rows"), f"{what} rows", 1), "sha256": sha256})
    return parts


def _check_arrays(partial: Partial, what: str) -> None:
    columns = {"F": partial.n_features, "F+1": partial.n_features + 1}
    lengths = {"rows": "rows", "features": "rows", "predictions": "rows", "shap_sums": "rows",
               "contribution_rows": "contribution_rows", "contributions": "contribution_rows",
               "candidate_rows": "candidate_rows"}
    for name, (dtype, width) in ARRAYS.items():
        array = partial.arrays[name]
        length = partial.arrays[lengths[name]].shape[0] if partial.arrays[lengths[name]].ndim else -1
        shape = (length,) if width is None else (length, columns[width])
        if array.dtype != np.dtype(dtype) or array.shape != shape:
            raise BadRequest(f"{what}: array {name} is {array.dtype} {array.shape}, expected {dtype} {shape} "
                             f"(n_features {partial.n_features})")
    rows = partial.arrays["rows"]
    if rows.size and (np.any(np.diff(rows) <= 0) or not _within(rows, partial.parts)):
        raise BadRequest(f"{what}: rows must be increasing row numbers inside its parts")
    for name in ("contribution_rows", "candidate_rows"):
        if not np.isin(partial.arrays[name], rows).all() or np.any(np.diff(partial.arrays[name]) <= 0):
            raise BadRequest(f"{what}: {name} must be increasing row numbers among its rows")
    if not np.isin(partial.arrays["candidate_rows"], partial.arrays["contribution_rows"]).all():
        raise BadRequest(f"{what}: every outlier candidate needs its SHAP values")


def _within(rows: np.ndarray, parts: list[dict[str, Any]]) -> bool:
    inside = np.zeros(rows.shape, dtype=bool)
    for part in parts:
        inside |= (rows >= part["first_row"]) & (rows < part["first_row"] + part["rows"])
    return bool(inside.all())
