"""The limits of botocore's SageMaker model that botocore's own ParamValidator leaves to the server (lengths,
patterns, enums, maxima), checked the same way by the Airflow side (`sm_explain_ops.training_request`)
before it sends CreateTrainingJob and by the local endpoint when it receives one, with the messages SageMaker
itself answers.

The walker reads botocore Shape objects but imports nothing: the module stays standard library only. `shape_errors`
imports botocore when called (both environments have it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any


@functools.cache
def _compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The model's patterns are Java regexes matched in full; the few Python cannot compile
    (`\\p{Alnum}` classes, only on fields this project does not use) are not checked."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def constraint_errors(value: Any, shape: Any, path: str = "") -> Iterator[str]:
    """SageMaker's own words for every limit `value` breaks in `shape` (a botocore Shape)."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for key, member_value in value.items():
            if key in shape.members and member_value is not None:
                yield from constraint_errors(member_value, shape.members[key], f"{path}.{key}".lstrip("."))
        return
    if kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"
        for index, item in enumerate(value):
            yield from constraint_errors(item, shape.member, f"{path}[{index}]")
        return
    if kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            yield f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"
        for key, item in value.items():
            yield from constraint_errors(key, shape.key, f"{path} key {key!r}")
            yield from constraint_errors(item, shape.value, f"{path}.{key}")
        return
    if kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            yield f"Value '{value[:80]}' at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"
        if shape.enum and value not in shape.enum:
            yield f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(shape.enum)}]"
        pattern = meta.get("pattern")
        compiled = _compiled_pattern(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            yield f"Value '{value[:80]}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
        return
    if kind in ("integer", "long", "float", "double") and isinstance(value, int | float) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            yield f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}"


def shape_errors(params: Any, shape: Any) -> list[str]:
    """Every way `params` breaks `shape`: botocore's own checks (types, required members) first, then the limits."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, shape)
    errors = report.generate_report().splitlines() if report.has_errors() else []
    errors.extend(constraint_errors(params, shape))
    return errors
