"""Getting the raw source onto local disk, verified: S3 objects, https URLs and (opted in) local paths.

Downloads land in a content-addressed cache (``<cache_dir>/sha256/<hex>``) and a cached file is
reused only after its checksum is recomputed and matches, so a corrupted cache never feeds training.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV, local_paths_allowed
from sm_staging.errors import StagingInputError
from sm_staging.schema import S3Location, parse_s3_uri

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sm-explain"
_CHUNK = 1 << 20
_HTTP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class LocalSource:
    path: Path
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def s3_client():  # noqa: ANN201 - boto3 clients are generated types
    """An S3 client from the standard environment (AWS_ENDPOINT_URL[_S3] points it at a local S3)."""
    return boto3.client("s3")


def error_code(error: ClientError) -> str:
    """The S3 error code of a failed call (S3 answers some errors with the HTTP status as the code)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def _check_expected(source: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise StagingInputError(f"checksum mismatch for {source}: expected sha256 {expected}, got {actual}")


def _cache_path(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / "sha256" / sha256


def _cached(cache_dir: Path, expected: str | None) -> Path | None:
    """The cached copy for a known checksum, only if it still hashes to that checksum."""
    if expected is None:
        return None
    path = _cache_path(cache_dir, expected)
    if not path.is_file():
        return None
    if sha256_of(path) == expected:
        return path
    path.unlink(missing_ok=True)  # corrupted: download again
    return None


def _admit_to_cache(cache_dir: Path, downloaded: Path, source: str, expected: str | None) -> LocalSource:
    """Verify a fresh download and move it under its checksum (atomic rename in the same dir)."""
    actual = sha256_of(downloaded)
    if expected is not None and actual != expected:
        downloaded.unlink(missing_ok=True)
        _check_expected(source, actual, expected)
    target = _cache_path(cache_dir, actual)
    os.replace(downloaded, target)
    return LocalSource(target, actual)


def _new_download_file(cache_dir: Path) -> Path:
    (cache_dir / "sha256").mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=cache_dir / "sha256", prefix=".download-")
    os.close(handle)
    return Path(name)


def _fetch_http(url: str, cache_dir: Path, expected: str | None) -> LocalSource:
    cached = _cached(cache_dir, expected)
    if cached is not None:
        return LocalSource(cached, expected or "")
    target = _new_download_file(cache_dir)
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_SECONDS) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except urllib.error.HTTPError as error:
        target.unlink(missing_ok=True)
        raise StagingInputError(
            f"source {url} could not be downloaded: HTTP {error.code} {error.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        target.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise StagingInputError(f"source {url} could not be downloaded: {reason}") from None
    return _admit_to_cache(cache_dir, target, url, expected)


def _fetch_s3(location: S3Location, cache_dir: Path, expected: str | None) -> LocalSource:
    client = s3_client()
    try:
        client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as error:
        code = error_code(error)
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise StagingInputError(f"source {location.uri} does not exist") from None
        if code in {"403", "AccessDenied", "Forbidden"}:
            raise StagingInputError(f"source {location.uri} is not readable (access denied)") from None
        if code == "NoSuchBucket":
            raise StagingInputError(f"source bucket {location.bucket!r} does not exist") from None
        raise
    cached = _cached(cache_dir, expected)
    if cached is not None:
        return LocalSource(cached, expected or "")
    target = _new_download_file(cache_dir)
    try:
        client.download_file(location.bucket, location.key, str(target))
    except (ClientError, BotoCoreError):
        target.unlink(missing_ok=True)
        raise
    return _admit_to_cache(cache_dir, target, location.uri, expected)


def _local(source: str, expected: str | None) -> LocalSource:
    path = Path(source).expanduser()
    if not path.exists():
        raise StagingInputError(f"source {source} does not exist")
    if not path.is_file():
        raise StagingInputError(f"source {source} is not a file")
    try:
        actual = sha256_of(path)
    except OSError as error:
        raise StagingInputError(f"source {source} is not readable: {error.strerror}") from None
    _check_expected(source, actual, expected)
    return LocalSource(path.resolve(), actual)


def fetch_source(source: str, expected_sha256: str | None, cache_dir: str | None) -> LocalSource:
    """Return a verified local copy of ``source`` and its sha256."""
    cache = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
    if source.startswith("s3://"):
        fetched = _fetch_s3(parse_s3_uri(source, what="source"), cache, expected_sha256)
    elif source.startswith("https://"):
        fetched = _fetch_http(source, cache, expected_sha256)
    elif "://" not in source and local_paths_allowed():
        fetched = _local(source, expected_sha256)
    else:  # parse_request refuses these first; this keeps the rule for any other caller
        raise StagingInputError(
            f"source {source!r} is not read: only s3://, https:// and (with {ALLOW_LOCAL_SOURCES_ENV}=1) local paths"
        )
    if fetched.path.stat().st_size == 0:
        raise StagingInputError(f"source {source} is empty")
    return fetched
