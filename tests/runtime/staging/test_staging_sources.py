"""Sources and destinations over the network: a web URL with checksum and cache, and S3 (moto server)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local_stack import free_port
from sm_staging import StagingInputError, stage

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    gets: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).gets.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def web_source(tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """A small Adult sample served over HTTP on loopback; yields (url, sha256, GET log)."""
    served = tmp_path / "web"
    served.mkdir()
    with ADULT.open() as handle:
        sample = "".join(next(handle) for _ in range(300))
    (served / "adult.data").write_text(sample)
    handler = type("Handler", (_CountingHandler,), {"gets": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/adult.data"
        yield url, hashlib.sha256(sample.encode()).hexdigest(), handler.gets
    finally:
        server.shutdown()
        server.server_close()


def test_web_source_is_verified_cached_and_reused(tmp_path: Path, web_source) -> None:  # noqa: ANN001
    url, sha256, gets = web_source
    cache = tmp_path / "cache"
    request = {
        "source": url,
        "source_sha256": sha256,
        "destination": str(tmp_path / "out" / "v1" / "data"),
        "dataset_version": "v1",
        "cache_dir": str(cache),
    }
    first = stage(request)
    assert first["rows"] == {"train": 240, "validation": 60}
    assert first["source_sha256"] == sha256
    assert (cache / "sha256" / sha256).is_file()
    assert len(gets) == 1

    staged = {p.name: p.read_bytes() for p in (tmp_path / "out" / "v1" / "data").iterdir()}
    assert stage(request) == first
    assert len(gets) == 1, "a verified cached copy must be reused"
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "v1" / "data").iterdir()} == staged

    (cache / "sha256" / sha256).write_text("corrupted")
    assert stage(request) == first
    assert len(gets) == 2, "a cached copy that no longer matches its checksum must be downloaded again"


def test_web_source_checksum_mismatch_writes_nothing(tmp_path: Path, web_source) -> None:  # noqa: ANN001
    url, sha256, _ = web_source
    wrong = "f" * 64
    request = {
        "source": url,
        "source_sha256": wrong,
        "destination": str(tmp_path / "out" / "v1" / "data"),
        "dataset_version": "v1",
        "cache_dir": str(tmp_path / "cache"),
    }
    with pytest.raises(
        StagingInputError, match=f"checksum mismatch for {url}: expected sha256 {wrong}, got {sha256}"
    ):
        stage(request)
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []

    with pytest.raises(StagingInputError, match="could not be downloaded: HTTP 404"):
        stage({**request, "source": url.replace("adult.data", "missing.data")})


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """A private moto server for S3 with boto3's standard variables pointing at it."""
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
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        try:
            yield endpoint
        finally:
            process.terminate()
            process.wait(timeout=10)


def _objects(client, bucket: str, prefix: str) -> dict[str, bytes]:  # noqa: ANN001
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_adult_from_s3_to_s3_rerun_identical_and_versions_isolated(tmp_path: Path, moto_s3: str) -> None:
    client = boto3.client("s3")
    client.create_bucket(Bucket="sm-explain-data")
    client.upload_file(str(ADULT), "sm-explain-data", "adult/raw/v2/adult.data")
    client.put_object(Bucket="sm-explain-data", Key="adult/v1/data/train.csv", Body=b"version one\n")
    request = {
        "source": "s3://sm-explain-data/adult/raw/v2/adult.data",
        "source_sha256": ADULT_SHA256,
        "destination": "s3://sm-explain-data/adult/v2/data/",
        "dataset_version": "v2",
        "cache_dir": str(tmp_path / "cache"),
    }
    result = stage(request)
    assert result["train_uri"] == "s3://sm-explain-data/adult/v2/data/train.csv"
    assert result["features_uri"] == "s3://sm-explain-data/adult/v2/data/features.json"
    assert result["rows"] == {"train": 26048, "validation": 6513}
    staged = _objects(client, "sm-explain-data", "adult/v2/")
    assert sorted(staged) == [f"adult/v2/data/{n}" for n in ("features.json", "train.csv", "validation.csv")]

    # Same bytes as staging the local file (S3 changes nothing but the transport).
    local = stage({**request, "source": str(ADULT), "destination": str(tmp_path / "v2" / "data")})
    for name in ("train.csv", "validation.csv"):
        assert staged[f"adult/v2/data/{name}"] == (tmp_path / "v2" / "data" / name).read_bytes()
    assert local["rows"] == result["rows"]

    assert stage(request) == result
    assert _objects(client, "sm-explain-data", "adult/v2/") == staged
    assert _objects(client, "sm-explain-data", "adult/v1/") == {"adult/v1/data/train.csv": b"version one\n"}


def test_s3_problems_are_reported_before_writing(tmp_path: Path, moto_s3: str) -> None:
    client = boto3.client("s3")
    client.create_bucket(Bucket="sm-explain-empty")
    request = {
        "source": "s3://sm-explain-empty/adult/raw/v1/adult.data",
        "destination": "s3://sm-explain-empty/adult/v1/data/",
        "dataset_version": "v1",
        "cache_dir": str(tmp_path / "cache"),
    }
    with pytest.raises(
        StagingInputError, match="source s3://sm-explain-empty/adult/raw/v1/adult.data does not exist"
    ):
        stage(request)
    with pytest.raises(StagingInputError, match="destination bucket 'no-such-bucket' does not exist"):
        stage({**request, "destination": "s3://no-such-bucket/adult/v1/data/"})
    client.put_object(Bucket="sm-explain-empty", Key="adult/raw/v1/adult.data", Body=b"")
    with pytest.raises(StagingInputError, match="is empty"):
        stage(request)
    assert list(_objects(client, "sm-explain-empty", "")) == ["adult/raw/v1/adult.data"]
    assert os.environ["AWS_ENDPOINT_URL"] == moto_s3
