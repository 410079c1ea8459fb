"""`python -m sm_staging`, `python -m sm_explain` and `python -m sm_explain.report` refuse each bad request of
tests/request_drift_cases.py with exit 2 and exactly the message the Airflow task gives for it before the runtime
starts (tests/airflow/unit/test_request_drift.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.request_drift_cases import (
    EXPLAIN_BASE,
    EXPLAIN_CASES,
    REPORT_BASE,
    REPORT_CASES,
    STAGING_BASE,
    STAGING_CASES,
    Case,
)

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = [
    *(pytest.param("sm_staging", STAGING_BASE, case, "StagingInputError", id=f"staging: {case.name}")
      for case in STAGING_CASES),
    *(pytest.param("sm_explain", EXPLAIN_BASE, case, "BadRequest", id=f"explain: {case.name}")
      for case in EXPLAIN_CASES),
    *(pytest.param("sm_explain.report", REPORT_BASE, case, "BadRequest", id=f"report: {case.name}")
      for case in REPORT_CASES),
]


@pytest.mark.reliability
@pytest.mark.parametrize(("module", "base", "case", "error_type"), RUNTIMES)
def test_the_runtime_refuses_as_the_airflow_task_does(
    module: str, base: dict[str, Any], case: Case, error_type: str, tmp_path: Path, reliability
) -> None:
    request_file, result_file = tmp_path / "request.json", tmp_path / "result.json"
    request_file.write_text(json.dumps({**base, **case.change}))
    # As a deployment runs it: no local-paths opt-in, the installed runtime distribution.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_DEFAULT_REGION": "us-east-1"}
    completed = subprocess.run(
        [sys.executable, "-m", module, "--request", str(request_file), "--result", str(result_file)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    error = json.loads(result_file.read_text())["error"]
    assert error == {"type": error_type, "message": case.message}
    reliability.refused(module, f"{case.name}: {case.change}", "exit 2 before anything is read, in the task's words",
                        error["message"])
