"""Sources and destinations over the network: a web URL with checksum and cache, and S3 (moto server)."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import ssl
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


def _serve(directory: Path, handler: type, context: ssl.SSLContext | None) -> tuple[http.server.HTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(directory)))
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if context is not None else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}/adult.data"


@pytest.fixture()
def served_sample(tmp_path: Path) -> tuple[Path, str]:
    """A small Adult sample in a directory to serve; (directory, sha256)."""
    served = tmp_path / "web"
    served.mkdir()
    with ADULT.open() as handle:
        sample = "".join(next(handle) for _ in range(300))
    (served / "adult.data").write_text(sample)
    return served, hashlib.sha256(sample.encode()).hexdigest()


@pytest.fixture()
def web_source(
    tmp_path: Path, served_sample: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, list[str]]]:
    """The sample served over HTTPS on loopback with a throwaway self-signed certificate, which this test's
    clients trust (SSL_CERT_FILE); yields (url, sha256, GET log)."""
    served, sha256 = served_sample
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test server's certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    handler = type("Handler", (_CountingHandler,), {"gets": []})
    server, url = _serve(served, handler, context)
    try:
        yield url, sha256, handler.gets
    finally:
        server.shutdown()
        server.server_close()


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


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

    staged = _files(tmp_path / "out" / "v1" / "data")
    assert sorted(staged) == [f"{sha256}/{n}" for n in ("features.json", "train/train.csv", "validation/validation.csv")]
    assert stage(request) == first
    assert len(gets) == 1, "a verified cached copy must be reused"
    assert _files(tmp_path / "out" / "v1" / "data") == staged

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


@pytest.mark.reliability
def test_plain_http_is_refused_before_anything_is_downloaded(
    tmp_path: Path, served_sample: tuple[Path, str], reliability
) -> None:
    served, sha256 = served_sample
    handler = type("Handler", (_CountingHandler,), {"gets": []})
    server, url = _serve(served, handler, None)
    try:
        request = {"source": url, "source_sha256": sha256, "destination": str(tmp_path / "out" / "v1" / "data"),
                   "dataset_version": "v1", "cache_dir": str(tmp_path / "cache")}
        with pytest.raises(StagingInputError) as raised:
            stage(request)
    finally:
        server.shutdown()
        server.server_close()
    assert f"source {url!r} uses plain http://, which is refused" in str(raised.value)
    assert handler.gets == [], "nothing may be requested from a plain http source"
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    reliability.refused("staging", "source_uri http://... (with a matching source_sha256)",
                        "refused before any request is sent; nothing written",
                        f"{raised.value}; GET requests made: {len(handler.gets)}")


@pytest.mark.reliability
@pytest.mark.parametrize("source", [str(ADULT), "/proc/self/environ", "file:///etc/passwd"])
def test_a_local_path_is_refused_unless_the_deployment_opts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, reliability
) -> None:
    monkeypatch.delenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", raising=False)
    request = {"source": source, "destination": str(tmp_path / "out" / "v1" / "data"), "dataset_version": "v1",
               "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    expected = "unsupported scheme" if source.startswith("file:") else "is a local path, and local sources are off"
    assert expected in str(raised.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    reliability.refused("staging", f"source_uri {source} without SM_EXPLAIN_ALLOW_LOCAL_SOURCES",
                        "refused before the file is read; nothing written", str(raised.value))

    monkeypatch.setenv("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", "1")
    if source == str(ADULT):  # the opt-in is what lets the same request through
        assert stage(request)["rows"] == {"train": 26048, "validation": 6513}


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
    root = f"adult/v2/data/{ADULT_SHA256}"
    assert result["train_uri"] == f"s3://sm-explain-data/{root}/train/train.csv"
    assert result["train_channel_uri"] == f"s3://sm-explain-data/{root}/train/"
    assert result["features_uri"] == f"s3://sm-explain-data/{root}/features.json"
    assert result["rows"] == {"train": 26048, "validation": 6513}
    staged = _objects(client, "sm-explain-data", "adult/v2/")
    assert sorted(staged) == [f"{root}/{n}" for n in ("features.json", "train/train.csv", "validation/validation.csv")]

    # Same bytes as staging the local file (S3 changes nothing but the transport).
    local = stage({**request, "source": str(ADULT), "destination": str(tmp_path / "v2" / "data")})
    for name in ("train/train.csv", "validation/validation.csv"):
        assert staged[f"{root}/{name}"] == (tmp_path / "v2" / "data" / ADULT_SHA256 / name).read_bytes()
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
