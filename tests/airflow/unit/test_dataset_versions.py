"""Which data set version a run processes, and what a version may be (one rule for the DAGs and the operators)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from sm_explain_ops.dataset_versions import DATASET_VERSION_PATTERN, dataset_version_problem
from sm_explain_ops.pipeline import resolve_dataset_version

SUNDAY = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize("version", ["2026-11-22", "v1", "adult.v2_rc-1", "a" * 64])
def test_valid_versions(version: str) -> None:
    assert dataset_version_problem(version) is None
    assert re.match(DATASET_VERSION_PATTERN, version)


@pytest.mark.parametrize(
    ("version", "named"),
    [
        ("20261122", "not all digits"),
        (20261122, "not all digits"),
        ("a" * 65, "1-64 characters"),
        ("-v1", "starting with a letter or digit"),
        ("v1/../v2", "is invalid"),
        ("raw", "'raw' is reserved"),
        ("comparisons", "'comparisons' is reserved"),
    ],
)
def test_invalid_versions_are_named(version: object, named: str) -> None:
    problem = dataset_version_problem(version)
    assert problem is not None and named in problem and repr(version) in problem


def test_explicit_param_wins_over_events_and_date() -> None:
    event = SimpleNamespace(extra={"dataset_version": "from-event"})
    context = {"logical_date": SUNDAY, "triggering_asset_events": {"asset": [event]}}
    assert resolve_dataset_version({"dataset_version": "v7"}, context) == "v7"


def test_asset_event_then_logical_date() -> None:
    event = SimpleNamespace(extra={"dataset_version": "from-event"})
    assert resolve_dataset_version({}, {"logical_date": SUNDAY, "triggering_asset_events": {"a": [event]}}) == (
        "from-event"
    )
    assert resolve_dataset_version({"dataset_version": ""}, {"logical_date": SUNDAY}) == "2026-11-22"


def test_a_bad_version_fails_with_the_reason() -> None:
    with pytest.raises(ValueError, match="'comparisons' is reserved"):
        resolve_dataset_version({"dataset_version": "comparisons"}, {"logical_date": SUNDAY})
    with pytest.raises(ValueError, match="no dataset_version param"):
        resolve_dataset_version({}, {})
