"""Explanation, report and comparison operators refuse bad input before the runtime process starts."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_ops.operators import explain as explain_module
from sm_explain_ops.operators.compare_versions import CompareDatasetVersionsOperator
from sm_explain_ops.operators.explain import BuildReportOperator, ExplainTrainingJobOperator

ROOT = "s3://bucket/adult/2026-11-22"


@pytest.fixture(autouse=True)
def _worker_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests cover the worker path: no runtime image, whatever a local stack of the session set."""
    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", raising=False)


@pytest.fixture
def runtime_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Record what would be sent to the runtime environment (and fail if anything is sent)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(module: str, request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        calls.append((module, request))
        return {"artifacts": {}, "summary": {"source": "model"}, "report_uri": f"{ROOT}/job/explanations/report.html"}

    monkeypatch.setattr(explain_module, "run_runtime_module", record)
    monkeypatch.setattr(explain_module, "aws_env_from_connection", lambda hook: {})
    return calls


def _explain(**overrides: Any) -> ExplainTrainingJobOperator:
    kwargs: dict[str, Any] = {
        "task_id": "explain",
        "job_name": "job",
        "dataset_version": "2026-11-22",
        "features_uri": f"{ROOT}/data/features.json",
        "train_uri": f"{ROOT}/data/train.csv",
        "validation_uri": f"{ROOT}/data/validation.csv",
        "model_artifact_uri": f"{ROOT}/training/job/output/model.tar.gz",
        "debug_output_uri": f"{ROOT}/training/job/debug-output",
        "output_uri": f"{ROOT}/job/explanations/",
        "options": {"seed": 7},
        **overrides,
    }
    return ExplainTrainingJobOperator(**kwargs)


def test_explain_sends_the_request_with_options(runtime_calls) -> None:
    _explain(source="auto").execute({})
    module, request = runtime_calls[0]
    assert module == "sm_explain"
    assert request["source"] == "auto" and request["seed"] == 7
    assert request["model_artifact_uri"].endswith("model.tar.gz")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "shap"}, "source must be one of"),
        ({"source": "debugger", "debug_output_uri": None}, "needs debug_output_uri"),
        ({"train_uri": "s3://Bad_Bucket/x"}, "train_uri 's3://Bad_Bucket/x' has an invalid bucket name"),
        ({"output_uri": "ftp://host/x"}, "output_uri 'ftp://host/x' is not an s3:// URI"),
        ({"model_artifact_uri": ""}, "model_artifact_uri must be an s3:// URI"),
        ({"options": ["seed"]}, "options must be a mapping"),
        ({"dataset_version": "raw"}, "dataset_version 'raw' is reserved"),
    ],
)
def test_explain_refuses_bad_input_before_the_runtime_starts(runtime_calls, overrides, message) -> None:
    # AirflowFailException: the task fails at once, without spending its retries on input that cannot change.
    with pytest.raises(AirflowFailException, match=message):
        _explain(**overrides).execute({})
    assert runtime_calls == []


def test_report_needs_the_upstream_mappings(runtime_calls) -> None:
    report = BuildReportOperator(task_id="report", manifest=None, verdict={}, job_name="job",
                                 dataset_version="v", output_uri=f"{ROOT}/job/explanations/")
    with pytest.raises(AirflowFailException, match=r"manifest must be a mapping \(the result of the explanation step"):
        report.execute({})
    assert runtime_calls == []


def test_comparison_needs_two_distinct_versions(runtime_calls) -> None:
    compare = CompareDatasetVersionsOperator(task_id="compare", bucket="bucket", prefix="adult",
                                             versions=["v1", "v1"], output_uri="s3://bucket/adult/comparisons/x/")
    with pytest.raises(ValueError, match="at least two distinct"):
        compare.execute({})


def _report(manifest: dict[str, Any]) -> BuildReportOperator:
    return BuildReportOperator(task_id="report", manifest=manifest, verdict={}, job_name="job",
                               dataset_version="2026-11-22", output_uri=f"{ROOT}/job/explanations/")


@pytest.mark.reliability
@pytest.mark.parametrize(
    "planted",
    ["/proc/self/environ", "s3://other-bucket/adult/2026-11-22/job/explanations/shap_bar.png",
     f"{ROOT}/job/explanations-old/shap_bar.png", f"{ROOT}/job/explanations/../../data/train.csv"],
)
def test_report_refuses_an_artifact_outside_the_output_before_the_runtime_starts(
    runtime_calls, planted: str, reliability
) -> None:
    manifest = {"artifacts": {"metrics.png": f"{ROOT}/job/explanations/metrics.png", "shap_bar.png": planted}}
    with pytest.raises(ValueError) as raised:
        _report(manifest).execute({})
    assert f"manifest artifact 'shap_bar.png' {planted!r} is not under the run's output location" in str(raised.value)
    assert runtime_calls == []
    reliability.refused("report task", f"manifest artifact {planted}",
                        "task fails naming the artifact before the runtime starts", str(raised.value))


def test_report_with_the_runs_own_artifacts_reaches_the_runtime(runtime_calls) -> None:
    manifest = {"artifacts": {"metrics.png": f"{ROOT}/job/explanations/metrics.png"}}
    assert _report(manifest).execute({})["report_uri"].endswith("report.html")
    assert runtime_calls[0][0] == "sm_explain.report"


@pytest.mark.reliability
def test_local_input_paths_are_refused_unless_the_deployment_allows_them(
    runtime_calls, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    """An edited upstream XCom must not make the explanation read a file of the worker."""
    monkeypatch.delenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", raising=False)
    with pytest.raises(ValueError, match=r"model_artifact_uri '/proc/self/environ' is a local path, and local paths "
                                         r"are off in this deployment") as refused:
        _explain(model_artifact_uri="/proc/self/environ").execute({})
    assert runtime_calls == []
    monkeypatch.setenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", "1")  # the local stack and the tests opt in
    _explain(model_artifact_uri="/tmp/job/model.tar.gz").execute({})
    assert runtime_calls[0][1]["model_artifact_uri"] == "/tmp/job/model.tar.gz"
    reliability.refused("explanations", "a local path (/proc/self/environ) as the model artifact in the XCom",
                        "refused before the runtime starts, unless the deployment allows local paths",
                        str(refused.value))
