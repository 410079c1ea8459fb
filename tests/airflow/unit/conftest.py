"""Unit tests never reach CloudWatch: every ``AwsLogsHook`` client is one in-memory fake per test (no streams
until a test puts some), so the waits' log following runs everywhere without a network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

from tests.airflow.unit.cloudwatch_fake import FakeCloudWatchLogs


@pytest.fixture(autouse=True)
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudWatchLogs]:
    fake = FakeCloudWatchLogs()
    monkeypatch.setattr(AwsLogsHook, "conn", property(lambda _hook: fake))
    yield fake
