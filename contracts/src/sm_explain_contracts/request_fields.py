"""Readers for the fields of a runtime request (`python -m sm_staging`, `sm_explain`, `sm_explain.report`).

The Airflow task checks its request with the same reader the runtime parses it with, so a bad field is refused
before the runtime process starts, in the words the runtime would use. Every refusal is one `RequestError` whose
message names the field, what was given and what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV, local_paths_allowed
from sm_explain_contracts.s3_uris import S3UriError, parse_s3_uri

_GIVEN_CHARACTERS = 200  # a request field can be any size: a message quotes at most this much of it


class RequestError(ValueError):
    """A request field is missing, unknown, of the wrong type or out of bounds."""


@contextmanager
def refused_as(error: type[Exception]) -> Iterator[None]:
    """Re-raise a RequestError as `error` (the caller's bad-input exception), with the same message."""
    try:
        yield
    except RequestError as problem:
        raise error(str(problem)) from None


def given(value: object) -> str:
    """`repr(value)`, shortened: the message says what was given without echoing an unbounded value."""
    text = repr(value)
    return text if len(text) <= _GIVEN_CHARACTERS else text[:_GIVEN_CHARACTERS] + "...(shortened)"


def request_object(raw: object, known: Iterable[str]) -> Mapping[str, Any]:
    """`raw` itself when it is a mapping whose keys are all in `known`."""
    known = sorted(known)
    if not isinstance(raw, Mapping):
        raise RequestError(f"the request must be a JSON object with the keys {known}, got {type(raw).__name__}")
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise RequestError(f"unknown request keys {unknown}; known keys: {known}")
    return raw


def string(raw: Mapping[str, Any], key: str, *, required: bool = False, required_why: str = "") -> str | None:
    """A non-empty string, or None when absent (or null) and not required."""
    value = raw.get(key)
    if value is None:
        if required:
            raise RequestError(f"the request has no {key!r}, which is required{required_why}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{key} must be a non-empty string, got {given(value)}")
    return value


def required_string(raw: Mapping[str, Any], key: str, required_why: str = "") -> str:
    value = string(raw, key, required=True, required_why=required_why)
    assert value is not None  # string() raises for a missing required key
    return value


def integer(raw: Mapping[str, Any], key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer (never a bool or a float) in [minimum, maximum]; `default` when absent."""
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        accepted = f"from {minimum} to {maximum:,}" if maximum is not None else f">= {minimum}"
        raise RequestError(f"{key} must be an integer {accepted}, got {given(value)}")
    return value


def number(
    raw: Mapping[str, Any], key: str, default: float, *, above: float, below: float | None = None,
    at_most: float | None = None, accepted: str,
) -> float:
    """A finite number (never a bool) greater than `above` and below `below` or at most `at_most`; `accepted`
    says that range in words for the message."""
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not value > above
        or (below is not None and not value < below)
        or (at_most is not None and not value <= at_most)
    ):
        raise RequestError(f"{key} must be {accepted}, got {given(value)}")
    return float(value)


def choice(raw: Mapping[str, Any], key: str, default: str, choices: Iterable[str]) -> str:
    value = raw.get(key, default)
    choices = tuple(choices)
    if value not in choices:
        raise RequestError(f"{key} must be one of {', '.join(choices)}, got {given(value)}")
    return value


def names(raw: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of distinct non-empty strings (column names); `default` when absent."""
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RequestError(f"{key} must be a list of column names, got {given(value)}")
    if len(set(value)) != len(value):
        duplicates = sorted({v for v in value if value.count(v) > 1})
        raise RequestError(f"{key} names a column more than once: {duplicates}")
    return tuple(value)


def location(value: object, what: str, *, allow_local: bool | None = None) -> str:
    """`value` when it is an s3:// URI S3 accepts, or an absolute local path where local paths are allowed.

    A local path is read or written with the worker's rights, so it needs the deployment's opt-in
    (`local_paths.local_paths_allowed`, the default) or the caller's `allow_local=True`."""
    local_ok = local_paths_allowed() if allow_local is None else allow_local
    if isinstance(value, str) and value.startswith("/"):
        if local_ok:
            return value
        raise RequestError(
            f"{what} {given(value)} is a local path, and local paths are off in this deployment: use an s3:// URI "
            f"(local runs and tests opt in with {ALLOW_LOCAL_SOURCES_ENV}=1)"
        )
    try:
        parse_s3_uri(value, what)
    except S3UriError as error:
        raise RequestError(str(error)) from None
    assert isinstance(value, str)  # parse_s3_uri refuses anything else
    return value


def required_location(raw: Mapping[str, Any], key: str) -> str:
    if raw.get(key) is None:
        raise RequestError(f"the request has no {key!r}, which is required")
    return location(raw[key], key)


def optional_location(raw: Mapping[str, Any], key: str) -> str | None:
    return None if raw.get(key) is None else location(raw[key], key)


def mapping(raw: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    """A JSON object; `what` says what it should hold, for the message."""
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise RequestError(f"{key} must be a mapping ({what}), got {given(value)}")
    return dict(value)
