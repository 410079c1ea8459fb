"""Shared fixtures for both environments' tests: standard library and pytest only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack import StackInfo, start_stack, stop_stack
from tests.reliability import Recorder

REPO = Path(__file__).resolve().parent.parent
# The tests stage local files (the shared Adult data, small edited copies), which a deployment must opt into;
# on for the session (the runtime processes inherit it), and unset by the tests of its refusal.
os.environ.setdefault("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", "1")
# The built-in images `make setup` pulled, also when pytest runs without make.
os.environ.setdefault("SM_LOCAL_IMAGE_CACHE", str(REPO / ".venv-images"))
ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"


@pytest.fixture(scope="session")
def adult_data_path() -> Path:
    """The real Adult data, shared beside the repository (never copied into it)."""
    if not ADULT_DATA.exists():
        pytest.fail(f"the Adult data is missing at {ADULT_DATA} (see ../shared/data/README.md)")
    return ADULT_DATA


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A private local stack (moto + local SageMaker endpoint) on free loopback ports, with boto3's
    standard variables pointing at it for the whole session."""
    state_dir = tmp_path_factory.mktemp("local-stack")
    info = start_stack(state_dir)
    saved = {key: os.environ.get(key) for key in info.env}
    os.environ.update(info.env)
    try:
        yield info
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_stack(state_dir)


@pytest.fixture()
def reliability(request: pytest.FixtureRequest) -> Recorder:
    """Records this test's row of docs/reliability.md (tests/reliability.py); a no-op unless the log is set."""
    return Recorder(request.node.nodeid)
