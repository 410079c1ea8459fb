"""Which operator arguments are known only when the task runs, so they can be checked only then.

Such an argument is a Jinja template string, or a reference Airflow resolves while it renders the task's
templated fields into the real value (not a string): an XComArg (``task.output["key"]``, the hand-offs between
the pipeline's tasks) or a ``dag.param(name)`` (the run's param, a mapping or an int as given). Anything else
is concrete at DAG parse time and is checked there, so a typo fails before any run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import XComArg
from airflow.sdk.definitions.param import DagParam


def resolved_at_run_time(value: Any) -> bool:
    """True when ``value`` (or anything inside it) is a template or a reference resolved at render time."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, XComArg | DagParam):
        return True
    if isinstance(value, Mapping):
        return any(resolved_at_run_time(key) or resolved_at_run_time(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(resolved_at_run_time(item) for item in value)
    return False
