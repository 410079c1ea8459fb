"""Fixtures of the local endpoint's tests (runtime environment)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.local_endpoint.endpoint_harness import EndpointProcess


@pytest.fixture
def servers() -> Iterator[list[EndpointProcess]]:
    """Endpoints a test starts (and restarts); each is stopped and its jobs' processes killed afterwards."""
    started: list[EndpointProcess] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()
            server.kill_jobs()
