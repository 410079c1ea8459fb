"""Which data set versions asset events announce (what a version may be is `sm_explain_contracts.versions`).

An announcement is an asset event that names a version, natively as its partition key (what
adult_income_register_version emits) or as `dataset_version` in its extra (both: they must agree), and where it
landed in its extra (`bucket`, `prefix`, `source_uri`). Several events may reach one run (Airflow merges the events
that arrive between two runs of an asset-scheduled DAG, and those of one partition of a partition-aware one):
:func:`announcements` returns every distinct one, checked, in arrival order; :func:`run_announcements` those a run
is for, given its own partition key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sm_explain_contracts.versions import DATASET_VERSION_PATTERN, RESERVED_VERSIONS, dataset_version_problem

__all__ = [
    "DATASET_VERSION_PATTERN", "RESERVED_VERSIONS", "Announcement", "announcements", "dataset_version_problem",
    "run_announcements",
]

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
    # fullmatch: with re.match, the patterns' '$' would let a trailing newline into a bucket or prefix.
    if not isinstance(value, str) or (pattern is not None and not re.fullmatch(pattern, value)):
        raise ValueError(f"the asset event {event} has an invalid {key} {value!r} in its extra")
    return value.strip("/") if key == "prefix" else value


def _announcement(event: Any) -> Announcement:
    extra = getattr(event, "extra", None) or {}
    partition_key = getattr(event, "partition_key", None)
    where = f"from {getattr(event, 'source_dag_id', None) or 'outside Airflow'} at {getattr(event, 'timestamp', '?')}"
    if not isinstance(extra, Mapping) or (partition_key is None and "dataset_version" not in extra):
        raise ValueError(
            f"the asset event {where} announces no data set version (no partition key, and its extra is {extra!r}); "
            "an event on this asset must name the version that landed as its partition key, as "
            "adult_income_register_version does"
        )
    named = extra.get("dataset_version", partition_key)
    if partition_key is not None and named != partition_key:
        raise ValueError(
            f"the asset event {where} has the partition key {partition_key!r} but announces dataset_version "
            f"{named!r} in its extra: an event names one version"
        )
    problem = dataset_version_problem(named)
    if problem:
        raise ValueError(f"the asset event {where}: {problem}")
    return Announcement(
        dataset_version=named,
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


def run_announcements(
    partition_key: str | None, triggering_asset_events: Mapping[Any, Iterable[Any]] | None
) -> list[Announcement]:
    """The announcements a run is for. A run with a partition key is for that one version: its events' announcements
    of it (they say where it landed), else the bare version; an event announcing another version is refused by name,
    never dropped. A run without one is for every version its events announce."""
    found = announcements(triggering_asset_events)
    if partition_key is None:
        return found
    problem = dataset_version_problem(partition_key)
    if problem:
        raise ValueError(f"this run's partition key names no valid data set version: {problem}")
    others = [a for a in found if a.dataset_version != partition_key]
    if others:
        raise ValueError(
            f"this run's partition key names data set version {partition_key!r}, but its asset events also announce "
            f"{', '.join(a.describe() for a in others)}: a run is for its partition's version only"
        )
    return found or [Announcement(partition_key)]
