"""StageDatasetOperator: cheap checks before any work, and end to end on moto S3 with the real runtime."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import sm_explain_ops.operators.stage_dataset as stage_dataset_module
from local_stack import free_port
from sm_explain_ops.operators.stage_dataset import DatasetRequestError, StageDatasetOperator
from sm_explain_ops.runtime import RuntimeInputError

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
BUCKET = "sm-explain-stage"


@pytest.fixture(autouse=True)
def _worker_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests cover the worker path: no runtime image, whatever a local stack of the session set."""
    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", raising=False)



def _operator(**overrides: Any) -> StageDatasetOperator:
    arguments: dict[str, Any] = {
        "task_id": "stage_dataset",
        "source": f"s3://{BUCKET}/adult/raw/v1/adult.data",
        "destination": f"s3://{BUCKET}/adult/v1/data/",
        "dataset_version": "v1",
        "aws_conn_id": "sm_explain_moto",
        **overrides,
    }
    return StageDatasetOperator(**arguments)


def test_construction_makes_no_aws_call_and_templates_the_locations() -> None:
    operator = _operator(aws_conn_id="a_connection_that_does_not_exist")
    assert {"source", "destination", "dataset_version", "source_sha256", "aws_conn_id"} <= set(
        operator.template_fields
    )
    assert "hook" not in operator.__dict__  # the hook (and its connection lookup) is built lazily


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset_version": "raw", "destination": f"s3://{BUCKET}/adult/raw/data/"}, "'raw' is reserved"),
        ({"dataset_version": "-v1"}, "dataset_version '-v1' is invalid"),
        ({"dataset_version": "v" * 65}, "is invalid: 1-64 characters"),
        ({"dataset_version": "comparisons", "destination": f"s3://{BUCKET}/adult/comparisons/data/"},
         "'comparisons' is reserved"),
        ({"source": "s3://Adult_Bucket/raw/v1/adult.data"}, "invalid bucket name 'Adult_Bucket'"),
        ({"source": f"s3://{BUCKET}"}, "names no key or prefix"),
        ({"source": "https://example.org/adult.data"}, "source_sha256 is required"),
        ({"source": "ftp://example.org/adult.data"}, "unsupported scheme"),
        ({"source_sha256": "abc"}, "is not 64 hexadecimal digits"),
        ({"destination": f"s3://{BUCKET}/adult/data/"}, "does not contain the dataset version 'v1'"),
        ({"destination": "s3://a/adult/v1/data/"}, "invalid bucket name 'a'"),
    ],
)
def test_bad_request_fails_before_the_runtime_starts(
    overrides: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the runtime must not start for a malformed request")

    monkeypatch.setattr(stage_dataset_module, "run_runtime_module", must_not_run)
    with pytest.raises(DatasetRequestError, match=message) as raised:
        _operator(**overrides).execute({})
    assert isinstance(raised.value, ValueError)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://example.org/adult.data", "uses plain http://, which is refused"),
        ("/proc/self/environ", "is a local path, and local sources are off in this deployment"),
        (str(ADULT), "is a local path, and local sources are off in this deployment"),
    ],
)
def test_plain_http_and_local_sources_are_refused_before_the_runtime_starts(
    source: str, message: str, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    def must_not_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the runtime must not start for a refused source")

    monkeypatch.setattr(stage_dataset_module, "run_runtime_module", must_not_run)
    monkeypatch.delenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", raising=False)
    with pytest.raises(DatasetRequestError) as raised:
        _operator(source=source, source_sha256=ADULT_SHA256).execute({})
    assert message in str(raised.value) and source in str(raised.value)
    reliability.refused("staging task", f"source_uri {source} (no local-sources opt-in)",
                        "task fails without retries, before the runtime starts", str(raised.value))


@pytest.fixture(scope="module")
def moto_connection() -> Iterator[str]:
    """moto S3 reachable ONLY through the Airflow connection (service_config endpoint), so the test
    proves the connection's credentials and endpoint reach the runtime process."""
    port = free_port()
    process = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "service_config": {"s3": {"endpoint_url": endpoint}}},
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.delenv(name, raising=False)
        patch.setenv("AIRFLOW_CONN_SM_EXPLAIN_MOTO", json.dumps(connection))
        try:
            yield endpoint
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(moto_connection: str):  # noqa: ANN201 - boto3 client type
    client = boto3.client(
        "s3",
        endpoint_url=moto_connection,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(ADULT), BUCKET, "adult/raw/v1/adult.data")
    client.put_object(Bucket=BUCKET, Key="adult/v0/data/train.csv", Body=b"another version\n")
    return client


def _objects(client, prefix: str) -> dict[str, bytes]:  # noqa: ANN001
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing}


def test_stages_adult_on_s3_through_the_connection(s3, tmp_path: Path) -> None:  # noqa: ANN001
    operator = _operator(source_sha256=ADULT_SHA256, cache_dir=str(tmp_path / "cache"))
    result = operator.execute({})
    root = f"adult/v1/data/{ADULT_SHA256}"
    assert result == {
        "dataset_version": "v1",
        "data_uri": f"s3://{BUCKET}/{root}/",
        "train_uri": f"s3://{BUCKET}/{root}/train/train.csv",
        "validation_uri": f"s3://{BUCKET}/{root}/validation/validation.csv",
        "train_channel_uri": f"s3://{BUCKET}/{root}/train/",
        "validation_channel_uri": f"s3://{BUCKET}/{root}/validation/",
        "features_uri": f"s3://{BUCKET}/{root}/features.json",
        "rows": {"train": 26048, "validation": 6513},
        "n_features": 12,
        "source_sha256": ADULT_SHA256,
        "data_shape": {"rows": 26048, "features": 12, "validation_rows": 6513},
        "train_parts": 1,
    }
    staged = _objects(s3, "adult/v1/")
    features = json.loads(staged[f"{root}/features.json"])
    for name, key in (("train.csv", "train/train.csv"), ("validation.csv", "validation/validation.csv")):
        body = staged[f"{root}/{key}"]
        assert features["files"][name]["sha256"] == hashlib.sha256(body).hexdigest()
    train_lines = staged[f"{root}/train/train.csv"].decode().splitlines()
    assert len(train_lines) == 26048
    assert all(line.count(",") == 12 and line[0] in "01" for line in train_lines[:100])
    assert features["feature_names"][:3] == ["Age", "Workclass", "Education-Num"]

    # A retried task finds the same files in place and leaves other versions alone.
    assert _operator(source_sha256=ADULT_SHA256, cache_dir=str(tmp_path / "cache")).execute({}) == result
    assert _objects(s3, "adult/v1/") == staged
    assert _objects(s3, "adult/v0/") == {"adult/v0/data/train.csv": b"another version\n"}


def test_bad_data_fails_in_the_runtime_with_its_message_and_writes_nothing(s3, tmp_path: Path) -> None:  # noqa: ANN001
    s3.put_object(
        Bucket=BUCKET, Key="adult/raw/v9/adult.data", Body=b"39, Private, <=50K\n50, Private, <=50K\n"
    )
    operator = _operator(
        source=f"s3://{BUCKET}/adult/raw/v9/adult.data",
        destination=f"s3://{BUCKET}/adult/v9/data/",
        dataset_version="v9",
        columns=["Age", "Workclass", "Income"],
        label_column="Income",
        categorical_columns=["Workclass"],
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(RuntimeInputError, match=r"label column 'Income' has only one class \('<=50K'\)"):
        operator.execute({})
    assert _objects(s3, "adult/v9/") == {}
