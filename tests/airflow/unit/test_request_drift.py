"""The staging, explanation and report tasks refuse each bad request of tests/request_drift_cases.py before the
runtime starts, with exactly the message the runtime CLI gives for it (tests/runtime/test_request_drift.py)."""

from __future__ import annotations

from typing import Any

import pytest

import sm_explain_ops.operators.explain as explain_module
import sm_explain_ops.operators.stage_dataset as stage_dataset_module
from sm_explain_ops.operators.explain import BuildReportOperator, ExplainTrainingJobOperator
from sm_explain_ops.operators.stage_dataset import DatasetRequestError, StageDatasetOperator
from tests.request_drift_cases import (
    EXPLAIN_BASE,
    EXPLAIN_CASES,
    REPORT_BASE,
    REPORT_CASES,
    STAGING_BASE,
    STAGING_CASES,
    Case,
)

# The explanation operator's own arguments; every other request field is one of its `options`.
_EXPLAIN_ARGUMENTS = {"job_name", "dataset_version", "features_uri", "train_uri", "validation_uri",
                      "model_artifact_uri", "output_uri", "debug_output_uri", "source", "objective"}


@pytest.fixture(autouse=True)
def no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each case must fail in the task, before the runtime process starts; as deployed, without local paths."""
    def must_not_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the runtime must not start for a refused request")

    for module in (stage_dataset_module, explain_module):
        monkeypatch.setattr(module, "run_runtime_module", must_not_run)
    monkeypatch.delenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", raising=False)


def _ids(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


@pytest.mark.reliability
@pytest.mark.parametrize("case", _ids(STAGING_CASES))
def test_the_staging_task_refuses_as_the_staging_runtime_does(case: Case, reliability) -> None:
    operator = StageDatasetOperator(task_id="stage_dataset", aws_conn_id="none", **{**STAGING_BASE, **case.change})
    with pytest.raises(DatasetRequestError) as raised:
        operator.execute({})
    assert str(raised.value) == case.message
    reliability.refused("staging task", f"{case.name}: {case.change}",
                        "task fails without retries before the runtime starts, in the runtime's words",
                        str(raised.value))


@pytest.mark.reliability
@pytest.mark.parametrize("case", _ids(EXPLAIN_CASES))
def test_the_explanation_task_refuses_as_the_explanation_runtime_does(case: Case, reliability) -> None:
    request = {**EXPLAIN_BASE, **case.change}
    arguments = {key: value for key, value in request.items() if key in _EXPLAIN_ARGUMENTS}
    options = {key: value for key, value in request.items() if key not in _EXPLAIN_ARGUMENTS}
    operator = ExplainTrainingJobOperator(task_id="explain", aws_conn_id="none", options=options, **arguments)
    with pytest.raises(ValueError) as raised:
        operator.execute({})
    assert str(raised.value) == case.message
    reliability.refused("explanation task", f"{case.name}: {case.change}",
                        "task fails before the runtime starts, in the runtime's words", str(raised.value))


@pytest.mark.reliability
@pytest.mark.parametrize("case", _ids(REPORT_CASES))
def test_the_report_task_refuses_as_the_report_runtime_does(case: Case, reliability) -> None:
    operator = BuildReportOperator(task_id="report", aws_conn_id="none", **{**REPORT_BASE, **case.change})
    with pytest.raises(ValueError) as raised:
        operator.execute({})
    assert str(raised.value) == case.message
    reliability.refused("report task", f"{case.name}: {case.change}",
                        "task fails before the runtime starts, in the runtime's words", str(raised.value))
