"""How one field of a training spec is read: S3 URIs, integers with a lower bound, string maps.

Every value here comes from a DAG Param or a user's mapping, so each check refuses with a sentence naming the
field and what was given, before any request exists. SageMaker wants hyperparameters, rule parameters and tags
as strings: :func:`string_map` turns values into the strings the algorithm and the rules read.
"""

from __future__ import annotations

from collections.abc import Mapping

from sm_explain_contracts.s3_uris import parse_s3_uri


def validate_s3_uri(value: object, field_name: str) -> str:
    """Return an ``s3://bucket/prefix`` URI unchanged, or raise ValueError naming the field."""
    parse_s3_uri(value, field_name)
    return str(value)


def positive_int(value: object, field_name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum``; booleans, fractions and text that is no integer are refused by name."""
    if isinstance(value, bool):
        raise ValueError(f"{field_name} must be an integer, got {value!r}")
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{field_name} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ValueError(f"{field_name} must be an integer, got {value!r}")
    if number < minimum:
        raise ValueError(f"{field_name} must be >= {minimum}, got {number}")
    return number


def optional_int(value: object, field_name: str, minimum: int = 0) -> int | None:
    """None, or an integer as :func:`positive_int` reads it."""
    return None if value is None else positive_int(value, field_name, minimum)


def string_map(value: object, field_name: str) -> dict[str, str]:
    """A mapping with every key and value as SageMaker's string (None is an empty mapping)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field_name} must be a mapping, got {type(value).__name__}")
    return {str(key): to_parameter_string(item) for key, item in value.items()}


def to_parameter_string(value: object) -> str:
    """SageMaker wants every hyperparameter / rule parameter as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(to_parameter_string(item) for item in value)
    return str(value)
