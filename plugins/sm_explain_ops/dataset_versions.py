"""Which data set versions asset events announce (what a version may be is `sm_explain_contracts.versions`).

An announcement is an asset event whose extra names a version (`dataset_version`) and where it landed (`bucket`,
`prefix`, `source_uri`). Airflow merges the events that arrive between two runs of an asset-scheduled DAG into one
run, so a run may carry several: :func:`announcements` returns every distinct one, checked, in arrival order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sm_explain_contracts.versions import DATASET_VERSION_PATTERN, RESERVED_VERSIONS, dataset_version_problem

__all__ = ["DATASET_VERSION_PATTERN", "RESERVED_VERSIONS", "Announcement", "announcements", "dataset_version_problem"]

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PREFIX_PATTERN = r"^[A-Za-z0-9._/-]+$"


@dataclass(frozen=True)
class Announcement:
    """One version an asset event announced, and where its raw data landed (None: the run's own params)."""

    dataset_version: str
    bucket: str | None = None
    prefix: str | None = None
    source_uri: str | None = None

    def describe(self) -> str:
        located = [f"{key} {value!r}" for key, value in (("bucket", self.bucket), ("prefix", self.prefix)) if value]
        return repr(self.dataset_version) + (f" ({', '.join(located)})" if located else "")


def _optional_text(extra: Mapping[str, Any], key: str, pattern: str | None, event: str) -> str | None:
    value = extra.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or (pattern is not None and not re.match(pattern, value)):
        raise ValueError(f"the asset event {event} has an invalid {key} {value!r} in its extra")
    return value.strip("/") if key == "prefix" else value


def _announcement(event: Any) -> Announcement:
    extra = getattr(event, "extra", None) or {}
    where = f"from {getattr(event, 'source_dag_id', None) or 'outside Airflow'} at {getattr(event, 'timestamp', '?')}"
    if not isinstance(extra, Mapping) or "dataset_version" not in extra:
        raise ValueError(
            f"the asset event {where} announces no dataset_version (its extra is {extra!r}); an event on this asset "
            "must name the version that landed, as adult_income_register_version does"
        )
    problem = dataset_version_problem(extra["dataset_version"])
    if problem:
        raise ValueError(f"the asset event {where}: {problem}")
    return Announcement(
        dataset_version=extra["dataset_version"],
        bucket=_optional_text(extra, "bucket", BUCKET_PATTERN, where),
        prefix=_optional_text(extra, "prefix", PREFIX_PATTERN, where),
        source_uri=_optional_text(extra, "source_uri", None, where),
    )


def announcements(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> list[Announcement]:
    """Every distinct announcement among a run's triggering asset events, oldest first; ValueError naming an
    event whose extra is not a valid announcement."""
    events = [event for events in (triggering_asset_events or {}).values() for event in events]
    events.sort(key=lambda event: event.timestamp.timestamp() if getattr(event, "timestamp", None) else 0.0)
    found: list[Announcement] = []
    for event in events:
        announcement = _announcement(event)
        if announcement not in found:
            found.append(announcement)
    return found
