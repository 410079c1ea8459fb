"""Parse `RuleParameters` (a string map on the wire) into typed, validated rule settings.

Kept free of smdebug so a bad configuration is rejected in milliseconds, before the evaluator
imports smdebug (seconds) or waits for training data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEBUGGER_MODES = ("EVAL", "TRAIN", "GLOBAL")


class RuleConfigurationError(ValueError):
    """The rule configuration cannot be evaluated (unknown rule, bad or unknown parameter)."""


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise RuleConfigurationError(f"parameter {name}={raw!r} is not a boolean (use True or False)")


def parse_int(name: str, raw: str, *, minimum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise RuleConfigurationError(f"parameter {name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise RuleConfigurationError(f"parameter {name}={value} must be >= {minimum}")
    return value


def parse_float(
    name: str,
    raw: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    maximum_exclusive: bool = False,
) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise RuleConfigurationError(f"parameter {name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise RuleConfigurationError(f"parameter {name}={raw!r} must be a finite number")
    if minimum is not None and value < minimum:
        raise RuleConfigurationError(f"parameter {name}={value:g} must be >= {minimum:g}")
    if maximum is not None and (value >= maximum if maximum_exclusive else value > maximum):
        bound = "<" if maximum_exclusive else "<="
        raise RuleConfigurationError(f"parameter {name}={value:g} must be {bound} {maximum:g}")
    return value


def parse_name_list(name: str, raw: str) -> tuple[str, ...]:
    """The docs allow 'a list of strings or a comma-separated string': accept a JSON list too."""
    text = raw.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise RuleConfigurationError(f"parameter {name}={raw!r} is not a valid JSON list") from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise RuleConfigurationError(f"parameter {name}={raw!r} must be a list of strings")
    else:
        items = text.split(",")
    return tuple(item.strip() for item in items if item.strip())


def parse_regex_list(name: str, raw: str) -> tuple[str, ...]:
    patterns = parse_name_list(name, raw)
    for pattern in patterns:
        _compile(name, pattern)
    return patterns


def parse_regex(name: str, raw: str) -> str:
    pattern = raw.strip()
    if not pattern:
        raise RuleConfigurationError(f"parameter {name} must not be empty")
    _compile(name, pattern)
    return pattern


def parse_mode(name: str, raw: str) -> str | None:
    value = raw.strip().upper()
    if value in ("", "NONE"):
        return None
    if value not in DEBUGGER_MODES:
        raise RuleConfigurationError(
            f"parameter {name}={raw!r} is not a Debugger mode (one of {', '.join(DEBUGGER_MODES)})"
        )
    return value


def _compile(name: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise RuleConfigurationError(f"parameter {name}: {pattern!r} is not a valid regex ({exc})") from None


@dataclass(frozen=True)
class ParameterSpec:
    """One documented parameter: its parser and the documented default (already typed)."""

    name: str
    parse: Callable[[str, str], Any]
    default: Any


def parse_parameters(
    rule_name: str, specs: tuple[ParameterSpec, ...], raw: Mapping[str, Any]
) -> dict[str, Any]:
    """Typed values for every spec (defaults filled in); unknown keys are an error naming the valid ones."""
    known = {spec.name for spec in specs}
    unknown = sorted(key for key in raw if key != "rule_to_invoke" and key not in known)
    if unknown:
        raise RuleConfigurationError(
            f"unknown parameter(s) {', '.join(unknown)} for rule {rule_name}; "
            f"its parameters are: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in raw and raw[spec.name] is not None:
            text = raw[spec.name]
            if not isinstance(text, str):
                # RuleParameters is a string map on the wire; tolerate JSON scalars from Python callers.
                text = str(text)
            values[spec.name] = spec.parse(spec.name, text)
        else:
            values[spec.name] = spec.default
    return values
