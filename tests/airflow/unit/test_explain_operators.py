"""Explanation, report and comparison operators refuse bad input before the runtime process starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from moto import mock_aws

from sm_explain_ops.operators import explain as explain_module
from sm_explain_ops.operators.compare_versions import CompareDatasetVersionsOperator
from sm_explain_ops.operators.explain import BuildReportOperator, ExplainTrainingJobOperator
from sm_explain_ops.report_links import PreviousReport, find_previous_report, version_order

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


# --- the report's links -------------------------------------------------------------------------------------------

REPORTS_BUCKET = "sm-explain-reports"
VERSION_ROOT = f"s3://{REPORTS_BUCKET}/adult/2026-11-22"
JOB_URL = "https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/job"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 as AWS's own: the report task's connection sees an AWS endpoint."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=REPORTS_BUCKET)
        yield client


def _put(client: Any, *keys: str) -> None:
    for key in keys:
        client.put_object(Bucket=REPORTS_BUCKET, Key=f"adult/{key}", Body=b"x")


def _linked_report(**overrides: Any) -> BuildReportOperator:
    kwargs: dict[str, Any] = {
        "task_id": "report", "manifest": {"artifacts": {"metrics.png": f"{VERSION_ROOT}/job/explanations/metrics.png"}},
        "verdict": {"rules": [], "job_url": JOB_URL}, "job_name": "job", "dataset_version": "2026-11-22",
        "output_uri": f"{VERSION_ROOT}/job/explanations/", "data_uri": f"{VERSION_ROOT}/data/abc/",
        "version_root": VERSION_ROOT, "aws_conn_id": None, "region_name": "us-east-1", **overrides,
    }
    return BuildReportOperator(**kwargs)


def test_report_links_the_job_the_data_and_the_latest_earlier_versions_report(runtime_calls, s3) -> None:
    _put(s3, "raw/2026-11-08/adult.data", "2026-11-08/job-a/explanations/report.html",
         "2026-11-15/data/abc/features.json", "2026-11-15/training/job-b/output/model.tar.gz",
         "2026-11-15/job-b/explanations/report.html",
         "2026-11-18/job-c/explanations/manifest.json",  # explained, but its report never got written: skipped
         "2026-11-22/job-0/explanations/report.html",  # this version's own earlier job: not a previous version
         "2026-11-29/job-d/explanations/report.html")  # a later version
    _linked_report().execute({})
    [(module, request)] = runtime_calls
    assert module == "sm_explain.report"
    assert request["links"] == {
        "training_job": JOB_URL,
        "staged_data": f"{VERSION_ROOT}/data/abc/",
        "staged_data_console": f"https://s3.console.aws.amazon.com/s3/buckets/{REPORTS_BUCKET}?region=us-east-1"
                               "&prefix=adult%2F2026-11-22%2Fdata%2Fabc%2F&showversions=false",
        "previous_report": f"s3://{REPORTS_BUCKET}/adult/2026-11-15/job-b/explanations/report.html",
        "previous_report_console": f"https://s3.console.aws.amazon.com/s3/object/{REPORTS_BUCKET}?region=us-east-1"
                                   "&prefix=adult%2F2026-11-15%2Fjob-b%2Fexplanations%2Freport.html",
    }
    assert request["previous_dataset_version"] == "2026-11-15"
    assert len(json.dumps(request)) < 2_000  # what the runtime gets stays small (no XCom grows)


def test_report_without_an_earlier_version_links_none(runtime_calls, s3, capsys: pytest.CaptureFixture) -> None:
    _put(s3, "2026-11-22/job/explanations/manifest.json", "2026-11-29/job-d/explanations/report.html")
    _linked_report().execute({})
    request = runtime_calls[0][1]
    assert "previous_report" not in request["links"] and "previous_dataset_version" not in request
    assert "No earlier data set version under s3://sm-explain-reports/adult/2026-11-22 has a report" in (
        capsys.readouterr().out)  # the task log (Airflow's structured log goes to stdout here)


@pytest.mark.reliability
def test_report_is_written_when_the_previous_report_cannot_be_looked_up(
    runtime_calls, s3, capsys: pytest.CaptureFixture, reliability
) -> None:
    """The link is a convenience: a bucket the task may not list (here: none at all) costs the link, not the report."""
    root = "s3://sm-explain-elsewhere/adult/2026-11-22"
    _linked_report(version_root=root).execute({})
    assert "previous_report" not in runtime_calls[0][1]["links"]
    [warning] = [line for line in capsys.readouterr().out.splitlines() if "Not linking" in line]
    assert f"Not linking the previous data set version's report: looking for it under {root} failed" in warning
    assert "NoSuchBucket" in warning
    _linked_report(version_root="s3://sm-explain-reports/adult/2026-11-15").execute({})  # not this run's version
    assert len(runtime_calls) == 2
    assert "does not end with the run's data set version '2026-11-22'" in capsys.readouterr().out
    reliability.survived("report task", "the previous version's report cannot be looked up (no such bucket)",
                         "the report is written without that link; a warning says why", warning)


def test_report_on_a_local_endpoint_gets_no_console_links(
    runtime_calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:9"}}
    monkeypatch.setenv("AIRFLOW_CONN_SM_EXPLAIN_LOCAL", json.dumps(connection))
    local_job = "http://127.0.0.1:8123/jobs/job/log"
    _linked_report(aws_conn_id="sm_explain_local", version_root=None,
                   verdict={"rules": [], "job_url": local_job}).execute({})
    assert runtime_calls[0][1]["links"] == {"training_job": local_job, "staged_data": f"{VERSION_ROOT}/data/abc/"}


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"verdict": {"rules": [], "job_url": "javascript:alert(document.cookie)"}},
         "links.training_job must be a URL (https:// or http://) of at most 2,048 characters, got "
         "'javascript:alert(document.cookie)', which has the scheme 'javascript'"),
        ({"data_uri": "https://example.org/data/"}, "links.staged_data must be a URL (s3://)"),
        ({"links": {"previous_report": "s3://sm-explain-reports/" + "a" * 2100}}, "which is 2,124 characters long"),
        ({"links": ["https://example.org/"]}, "links must be a mapping of link name to URL"),
    ],
)
def test_report_refuses_a_bad_link_before_any_s3_call(runtime_calls, overrides, message, reliability) -> None:
    operator = _linked_report(**overrides)
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({})
    assert message in str(raised.value)
    assert runtime_calls == [] and "hook" not in operator.__dict__  # no S3 client was even made
    reliability.refused("report task", f"report link {overrides}"[:200],
                        "task fails without retries before any S3 call, naming the link", str(raised.value))


def test_links_given_to_the_report_task_win_and_skip_the_lookup(runtime_calls, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    def no_lookup(*args: Any) -> None:
        raise AssertionError("a previous_report given to the task is not looked up again")

    monkeypatch.setattr(explain_module, "find_previous_report", no_lookup)
    previous = "s3://sm-explain-reports/adult/v1/job/explanations/report.html"
    console = "https://s3.console.aws.amazon.com/s3/object/sm-explain-reports?prefix=adult/v1/job/"
    operator = _linked_report(data_uri=None, links={"previous_report": previous, "previous_report_console": console,
                                                    "training_job": "https://example.org/job"})
    operator.execute({})
    assert runtime_calls[0][1]["links"] == {"training_job": "https://example.org/job", "previous_report": previous,
                                            "previous_report_console": console}


class _Listing:
    """A boto3 S3 client's listing and HEAD over a fixed set of keys, counting the calls."""

    def __init__(self, keys: dict[str, int]) -> None:
        self.keys = keys  # key -> LastModified (seconds)
        self.calls: list[str] = []

    def list_objects_v2(self, Bucket: str, Prefix: str, Delimiter: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.calls.append(f"list {Prefix}")
        below = {key[len(Prefix):].split(Delimiter, 1)[0] for key in self.keys if key.startswith(Prefix)
                 and Delimiter in key[len(Prefix):]}
        return {"CommonPrefixes": [{"Prefix": f"{Prefix}{name}/"} for name in sorted(below)], "IsTruncated": False}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append(f"head {Key}")
        if Key not in self.keys:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {"LastModified": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=self.keys[Key])}


def test_the_previous_report_is_the_newest_of_the_nearest_earlier_version_in_natural_order() -> None:
    report = "explanations/report.html"
    listing = _Listing({f"p/v2/old/{report}": 1, f"p/v2/new/{report}": 5, f"p/v9/job/{report}": 3,
                        "p/v10/data/features.json": 0, "p/v10/job/explanations/manifest.json": 0,
                        f"p/v11/job/{report}": 9, "p/raw/v1/adult.data": 0})
    found = find_previous_report(listing, "s3://b-reports/p/v10", "v10")
    assert found == PreviousReport("v9", f"s3://b-reports/p/v9/job/{report}")  # v9 < v10, though "v9" > "v10"
    assert listing.calls == ["list p/", "list p/v9/", f"head p/v9/job/{report}"]  # cheap: no object listing
    assert find_previous_report(listing, "s3://b-reports/p/v9", "v9") == PreviousReport(
        "v2", f"s3://b-reports/p/v2/new/{report}")  # the newest of that version's reports
    assert find_previous_report(listing, "s3://b-reports/p/v2", "v2") is None
    assert [v for v in sorted(["v10", "2026-11-15", "v2", "2026-11-08", "20261122"], key=version_order)] == [
        "2026-11-08", "2026-11-15", "20261122", "v2", "v10"]


def test_the_report_task_gets_the_staged_data_and_the_version_root() -> None:
    from airflow.sdk import DAG, XComArg

    from sm_explain_ops.pipeline import build_explainability_pipeline

    with DAG("report_links_pipeline", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=UTC)) as dag:
        build_explainability_pipeline()
    report = dag.get_task("report")
    for argument, (task_id, key) in {"data_uri": ("stage_dataset", "data_uri"),
                                     "version_root": ("resolve_run_config", "version_root"),
                                     "verdict": ("wait_for_training_and_rules", "return_value")}.items():
        value = getattr(report, argument)
        assert isinstance(value, XComArg) and (value.operator.task_id, value.key) == (task_id, key), argument
    assert {"data_uri", "version_root", "links"} <= set(report.template_fields)
