"""The UI plugin's FastAPI app through FastAPI's TestClient: routes, what a run may show (its explanations prefix,
from its XComs), content types, bounds, and Airflow's auth (the configured auth manager, real JWTs).

S3 is moto in-process; the run's XComs come from a stand-in of the metadata database (the real reader is run by
the browser test, tests/airflow/ui)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from sm_explain_ops.ui import app as ui_app
from sm_explain_ops.ui.app import RunSource, create_app
from sm_explain_ops.ui.run_outputs import RunOutputs, plain_json

DAG = "adult_income_explainability"
OTHER_DAG = "adult_income_version_comparison"
RUN = "manual__2026-12-01T10:00:00.123456+00:00"
BUCKET = "sm-explain-unit"
PREFIX = "adult-income/v1/job-1/explanations/"
ROOT = f"s3://{BUCKET}/{PREFIX}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
REPORT = b"<!DOCTYPE html><html><body><h1>Training job job-1</h1></body></html>"
OBJECTS = {
    PREFIX + "report.html": REPORT,
    PREFIX + "manifest.json": b"{}",
    PREFIX + "metrics.png": PNG,
    PREFIX + "outliers.csv": b"row,shap_sum\n1,2.5\n",
    PREFIX + "outliers.parquet": b"PAR1....PAR1",
    PREFIX + "force_row.html": b"<html><script>1</script></html>",
    "adult-income/v1/secret.txt": b"not for the UI",
    "adult-income/v1/data/abc/features.json": b"{}",
    "adult-income/v1/data/abc/train/train.csv": b"1,2,3\n",
}
MANIFEST = {
    "artifacts": {
        "manifest.json": ROOT + "manifest.json",
        "metrics.png": ROOT + "metrics.png",
        "outliers.csv": ROOT + "outliers.csv",
        "outliers.parquet": ROOT + "outliers.parquet",
        "force_row.html": ROOT + "force_row.html",
        "missing.png": ROOT + "missing.png",
        # What an edited XCom could name: never served.
        "secret": f"s3://{BUCKET}/adult-income/v1/secret.txt",
        "dotdot": ROOT + "../../secret.txt",
        "elsewhere": f"s3://other-bucket/{PREFIX}metrics.png",
    },
    "summary": {"source": "model"},
}
STAGE = {"dataset_version": "v1", "features_uri": f"s3://{BUCKET}/adult-income/v1/data/abc/features.json",
         "rows": {"train": 1, "validation": 0}, "n_features": 2}
USERS = "admin:admin,viewer:viewer,outsider:viewer"


class FakeSource(RunSource):
    """The metadata database as a dict of runs; S3 through boto3 (moto)."""

    def __init__(self, runs: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.runs = runs

    def team_name(self, dag_id: str) -> str | None:
        return None

    def outputs(self, dag_id: str, run_id: str) -> RunOutputs | None:
        results = self.runs.get((dag_id, run_id))
        return None if results is None else RunOutputs(dag_id, run_id, results, {})

    def s3_client(self, aws_conn_id: str) -> Any:
        assert aws_conn_id == "aws_default"
        return boto3.client("s3", region_name="us-east-1")


@pytest.fixture(scope="module")
def auth_manager(airflow_db, tmp_path_factory) -> Iterator[Any]:
    """The test auth manager (the simple one, refusing the DAG to `outsider`), as the api-server initializes it."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({"admin": "a", "viewer": "v", "outsider": "o"}))
    patch = pytest.MonkeyPatch()
    patch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "ui"))
    patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "refusing_auth_manager.RefusingAuthManager")
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "unit-test-secret-" + "x" * 64)
    patch.setenv("SM_EXPLAIN_TEST_REFUSED", f"outsider:{DAG}")
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app

    purge_cached_app()
    yield init_auth_manager()
    purge_cached_app()
    patch.undo()


def _token(auth_manager: Any, user: str) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    role = dict(item.split(":") for item in USERS.split(","))[user]
    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """The run's objects in moto's S3, once for the module (no test writes)."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for key, body in OBJECTS.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield client


def _client(auth_manager: Any, runs: dict[tuple[str, str], dict[str, Any]] | None = None,
            user: str | None = "viewer") -> TestClient:
    runs = runs if runs is not None else {
        (DAG, RUN): {"report": {"report_uri": ROOT + "report.html"}, "explain": MANIFEST, "stage_dataset": STAGE}}
    client = TestClient(create_app(FakeSource(runs)), follow_redirects=False)
    if user:
        client.cookies.set("_token", _token(auth_manager, user))
    return client


def _run_url(path: str, dag_id: str = DAG, run_id: str = RUN) -> str:
    from urllib.parse import quote

    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/{path}"


ROUTES = ["report", "tasks/explain/report", "artifacts", "files/report.html", "files/metrics.png", "staged"]


@pytest.mark.parametrize("path", ROUTES)
def test_anonymous_requests_get_401(auth_manager, s3, path) -> None:
    response = _client(auth_manager, user=None).get(_run_url(path))
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("path", ROUTES)
def test_a_user_the_auth_manager_refuses_for_the_dag_gets_403(auth_manager, s3, path) -> None:
    response = _client(auth_manager, user="outsider").get(_run_url(path))
    assert response.status_code == 403, response.text
    assert DAG in response.json()["detail"]


def test_the_refused_user_may_read_another_dag_and_an_invalid_token_is_403(auth_manager, s3) -> None:
    # Authorized for the other DAG: the answer is about the run, not the user.
    assert _client(auth_manager, user="outsider").get(_run_url("artifacts", OTHER_DAG)).status_code == 404
    client = _client(auth_manager, user=None)
    client.cookies.set("_token", "not-a-jwt")
    assert client.get(_run_url("report")).status_code == 403


def test_a_bearer_token_works_like_the_cookie(auth_manager, s3) -> None:
    client = _client(auth_manager, user=None)
    headers = {"Authorization": f"Bearer {_token(auth_manager, 'admin')}"}
    assert client.get(_run_url("files/metrics.png"), headers=headers).status_code == 200
    headers = {"Authorization": f"Bearer {_token(auth_manager, 'outsider')}"}
    assert client.get(_run_url("files/metrics.png"), headers=headers).status_code == 403


def test_the_report_page_redirects_to_the_report_which_streams_sandboxed(auth_manager, s3) -> None:
    client = _client(auth_manager)
    response = client.get(_run_url("report"))
    assert response.status_code == 307 and response.headers["location"] == "files/report.html"
    response = client.get(_run_url("tasks/report/report"))
    assert response.status_code == 307 and response.headers["location"] == "../../files/report.html"
    response = client.get(_run_url("files/report.html"))
    assert response.status_code == 200 and response.content == REPORT
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == str(len(REPORT))
    assert response.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert "allow-same-origin" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("name", "content_type", "disposition"), [
    ("metrics.png", "image/png", "inline"),
    ("outliers.csv", "text/csv; charset=utf-8", "inline"),
    ("manifest.json", "application/json", "inline"),
    ("outliers.parquet", "application/vnd.apache.parquet", "attachment"),
    ("force_row.html", "text/html; charset=utf-8", "inline"),
])
def test_every_manifest_artifact_streams_with_its_content_type(auth_manager, s3, name, content_type,
                                                               disposition) -> None:
    response = _client(auth_manager).get(_run_url(f"files/{name}"))
    assert response.status_code == 200, response.text
    assert response.content == OBJECTS[PREFIX + name]
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"].startswith(disposition)
    assert ("content-security-policy" in response.headers) == name.endswith(".html")


@pytest.mark.parametrize("path", [
    "files/secret.txt",                       # named by the manifest, outside the prefix
    "files/../../secret.txt",                 # '..' segments (as a client sends them unnormalized)
    "files/..%2F..%2Fsecret.txt",             # encoded slashes
    "files/%2e%2e/%2e%2e/secret.txt",         # encoded dots
    "files//adult-income/v1/secret.txt",      # an absolute key
    "files/adult-income/v1/secret.txt",
    "files/metrics.png/../../../secret.txt",
    "files/train.csv",                        # in S3, not in the manifest
    "files/METRICS.PNG",
    "files/metrics.png%00",
])
def test_keys_outside_the_runs_explanations_are_404(auth_manager, s3, path) -> None:
    client = _client(auth_manager)
    response = client.get(_run_url("") + path) if "%" in path or ".." in path else client.get(_run_url(path))
    assert response.status_code == 404, (path, response.status_code, response.text)
    assert b"not for the UI" not in response.content


def test_the_raw_path_with_dot_segments_never_reaches_s3(auth_manager, s3) -> None:
    """Sent as raw bytes on the wire (no client normalization), '..' still names nothing of the run."""
    client = _client(auth_manager)
    for raw in ("files/../secret.txt", "files/./../../secret.txt"):
        request = client.build_request("GET", "http://testserver" + _run_url(raw))
        request.url = request.url.copy_with(raw_path=_run_url(raw).encode())
        response = client.send(request)
        assert response.status_code == 404 and b"not for the UI" not in response.content


def test_the_artifact_list_holds_only_what_lies_below_the_prefix(auth_manager, s3) -> None:
    listing = _client(auth_manager).get(_run_url("artifacts")).json()
    assert listing["explanations_uri"] == ROOT
    assert listing["report"] == "files/report.html"
    assert sorted(item["path"] for item in listing["artifacts"]) == sorted(
        ["report.html", "manifest.json", "metrics.png", "outliers.csv", "outliers.parquet", "force_row.html",
         "missing.png"])
    assert {item["name"] for item in listing["artifacts"]} >= {"metrics.png", "report.html"}


def test_an_artifact_missing_from_s3_is_404_and_a_large_one_413(auth_manager, s3, monkeypatch) -> None:
    client = _client(auth_manager)
    assert client.get(_run_url("files/missing.png")).status_code == 404
    monkeypatch.setattr(ui_app, "MAX_OBJECT_BYTES", 10)
    response = client.get(_run_url("files/metrics.png"))
    assert response.status_code == 413 and "more than the 10" in response.json()["detail"]


def test_a_bucket_that_is_gone_is_404(auth_manager, s3) -> None:
    gone = "s3://gone-bucket/" + PREFIX
    client = _client(auth_manager, {(DAG, RUN): {"report": {"report_uri": gone + "report.html"}}})
    response = client.get(_run_url("files/report.html"))
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]


def test_before_the_report_the_page_lists_the_artifacts(auth_manager, s3) -> None:
    client = _client(auth_manager, {(DAG, RUN): {"explain": MANIFEST}})
    response = client.get(_run_url("report"))
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "src='files/metrics.png'" in response.text and "secret" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    response = client.get(_run_url("tasks/explain/report"))
    assert "src='../../files/metrics.png'" in response.text
    assert client.get(_run_url("files/report.html")).status_code == 404


@pytest.mark.parametrize("results", [
    {},                                                                   # nothing ran yet
    {"report": {"report_uri": f"s3://{BUCKET}/report.html"}},             # a prefix widened to the bucket
    {"report": {"report_uri": f"s3://{BUCKET}/adult-income/v1/report.html"}},   # not an explanations prefix
    {"report": {"report_uri": ROOT + "report.html"},                      # the two tasks disagree
     "explain": {"artifacts": {"manifest.json": f"s3://{BUCKET}/other/explanations/manifest.json"}}},
    {"report": {"report_uri": "file:///etc/passwd"}},
    {"report": "s3://x/report.html"},
    {"explain": {"artifacts": {"metrics.png": ROOT + "metrics.png"}}},    # no manifest.json
])
def test_a_run_without_usable_explanations_is_404(auth_manager, s3, results) -> None:
    client = _client(auth_manager, {(DAG, RUN): results})
    response = client.get(_run_url("report"), headers={"Accept": "text/html"})
    assert response.status_code == 404 and "No explanation report" in response.text
    assert client.get(_run_url("files/metrics.png")).status_code == 404
    assert client.get(_run_url("artifacts")).status_code == 404


def test_unknown_runs_and_other_tasks(auth_manager, s3) -> None:
    client = _client(auth_manager)
    response = client.get(_run_url("artifacts", run_id="manual__nope"))
    assert response.status_code == 404 and "has no run" in response.json()["detail"]
    response = client.get(_run_url("tasks/stage_dataset/report"))
    assert response.status_code == 404 and "explain" in response.text and "report" in response.text


def test_the_staged_listing_shows_only_the_staged_prefix(auth_manager, s3) -> None:
    response = _client(auth_manager).get(_run_url("staged"))
    assert response.status_code == 200
    assert "train/train.csv" in response.text and "features.json" in response.text
    assert "secret" not in response.text and "explanations" not in response.text
    assert _client(auth_manager, {(DAG, RUN): {}}).get(_run_url("staged")).status_code == 404


def test_the_default_source_reads_s3_through_the_airflow_connection(s3, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SM_EXPLAIN_UNIT", json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "us-east-1"}}))
    client = RunSource().s3_client("sm_explain_unit")
    assert client.get_object(Bucket=BUCKET, Key=PREFIX + "metrics.png")["Body"].read() == PNG


def test_xcom_values_are_read_as_plain_json_only() -> None:
    assert plain_json({"report_uri": "s3://b/k"}) == {"report_uri": "s3://b/k"}
    assert plain_json('{"a": 1}') == {"a": 1}
    assert plain_json("20261122") == 20261122 or plain_json("20261122") == "20261122"
    assert plain_json({"__classname__": "builtins.tuple", "__data__": [1]}) is None
    assert plain_json({"a": [{"__var": 1}]}) is None
    assert plain_json("x" * 2_000_000) is None
