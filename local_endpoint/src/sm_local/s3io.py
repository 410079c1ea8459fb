"""S3 transfers of a training job: channel downloads, single uploads, and incremental directory sync.

Clients come from the environment (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 point them at the local
stack) with botocore's standard retry mode. boto3 is imported lazily so the supervisor can install
its SIGTERM handler before the slow import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from stat import S_ISREG
from typing import Any

from sm_explain_contracts import safe_keys
from sm_explain_contracts.botocore_models import share_models
from sm_explain_contracts.s3_uris import S3UriError as S3UriError
from sm_explain_contracts.s3_uris import join_s3_uri as join_s3_uri
from sm_explain_contracts.s3_uris import parse_s3_uri as contract_parse_s3_uri

TRANSFER_THREADS = 8
# Up to this size a file goes up in one PutObject, above it in s3transfer's multipart upload_file. One PUT costs the
# local S3 (moto) a third less CPU than the 8 MiB parts it must reassemble, and that CPU is taken from the training
# job while its Debugger tensors (~15 MiB a step for the notebook's Adult job) stream out; S3 takes 5 GiB in one PUT.
SINGLE_PUT_MAX_BYTES = 64 * 1024 * 1024


class NoObjectsFoundError(RuntimeError):
    """An S3 prefix with no object under it (or no such bucket)."""


def aws_client(service: str, region: str | None = None) -> Any:
    """A boto3 client configured from the environment, retrying like botocore's standard mode."""
    import boto3
    from botocore.config import Config

    return share_models(boto3.session.Session()).client(
        service,
        region_name=region
        or os.environ.get("AWS_DEFAULT_REGION")
        or os.environ.get("AWS_REGION")
        or "us-east-1",
        config=Config(retries={"mode": "standard"}),
    )


def preload_models(*services: str) -> None:
    """Parse botocore's models of these services now (clients made later in this process then parse nothing)."""
    for service in services:
        aws_client(service)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/prefix` -> (bucket, key prefix), or S3UriError (sm_explain_contracts.s3_uris)."""
    location = contract_parse_s3_uri(uri, "S3 URI")
    return location.bucket, location.key


def _channel_base(key: str, prefix: str) -> str:
    """The "directory" below which `key` keeps its sub-path in the channel, as SageMaker lays out S3Prefix
    channels: keys below a 'directory' prefix keep their sub-path; a prefix that ends mid-name (or is a whole
    key) keeps the key's name relative to the prefix's parent 'directory'."""
    if not prefix or prefix.endswith("/"):
        return prefix
    if key[len(prefix) :].startswith("/"):
        return prefix + "/"
    return prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""


class VolumeTooSmallError(Exception):
    """The objects under a prefix do not fit in the bytes left on the job's training volume."""


def list_objects(client: Any, uri: str) -> tuple[str, str, dict[str, int]]:
    """(bucket, key prefix, {key: size}) of every object under the S3 prefix `uri` ("folder" markers ending in
    '/' left out); NoObjectsFoundError when the bucket is missing or the prefix holds no object."""
    from botocore.exceptions import ClientError

    bucket, prefix = parse_s3_uri(uri)
    sizes: dict[str, int] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    sizes[item["Key"]] = int(item.get("Size") or 0)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404", "AccessDenied"):
            raise NoObjectsFoundError(f"{error.response['Error'].get('Message', error)}") from error
        raise
    if not sizes:
        raise NoObjectsFoundError("the prefix holds no object")
    return bucket, prefix, sizes


def local_targets(keys: list[str], prefix: str, destination: Path) -> dict[str, Path]:
    """Where each key under `prefix` goes below `destination`, as SageMaker lays out an S3Prefix channel or
    input; safe_keys.UnsafeKeyError for a key that has no path below `destination` (nothing written yet)."""
    return {key: safe_keys.local_path_for_key(destination, key, _channel_base(key, prefix)) for key in keys}


def download_objects(
    client: Any, bucket: str, targets: dict[str, Path], check_stop: Callable[[], None] | None = None
) -> None:
    """Download each key of `bucket` to its path; `check_stop` is called between objects so a stop request
    interrupts a long download."""

    def fetch(key: str) -> None:
        if check_stop is not None:
            check_stop()
        target = targets[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))

    if not targets:
        return
    with ThreadPoolExecutor(max_workers=min(TRANSFER_THREADS, len(targets))) as pool:
        for _ in pool.map(fetch, sorted(targets)):
            pass


def download_prefix(
    client: Any, uri: str, destination: Path, check_stop: Callable[[], None] | None = None,
    max_bytes: int | None = None,
) -> tuple[int, int]:
    """Download every object under the S3 prefix `uri` into `destination`; returns how many, and their bytes.

    Raises NoObjectsFoundError when the bucket is missing or the prefix holds no object,
    safe_keys.UnsafeKeyError when a key has no path below `destination`, and VolumeTooSmallError when the
    objects add up to more than `max_bytes` (File mode copies them to the job's volume): both before anything
    is written. `check_stop` is called between objects so a stop request interrupts a long download.
    """
    bucket, prefix, sizes = list_objects(client, uri)
    total = sum(sizes.values())
    if max_bytes is not None and total > max_bytes:
        raise VolumeTooSmallError(f"its {len(sizes)} objects hold {total} bytes, more than the {max_bytes} bytes left "
                                  "on the training volume")
    targets = local_targets(list(sizes), prefix, destination)
    destination.mkdir(parents=True, exist_ok=True)
    download_objects(client, bucket, targets, check_stop)
    return len(sizes), total


def upload_file(client: Any, path: Path, uri: str) -> None:
    """Upload one local file to the object `uri`."""
    bucket, key = parse_s3_uri(uri)
    if path.stat().st_size <= SINGLE_PUT_MAX_BYTES:
        with path.open("rb") as body:
            client.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        client.upload_file(str(path), bucket, key)


class DirectorySync:
    """Mirror a growing local directory to an S3 prefix, uploading only new or changed files.

    A file counts as changed when its (size, mtime) differs from what was last uploaded; the stat is
    taken before the upload, so a file still being written is uploaded again on the next pass.
    """

    def __init__(
        self, client: Any, local_dir: Path, s3_uri: str, skip_suffixes: tuple[str, ...] = (".tmp",)
    ) -> None:
        self.client = client
        self.local_dir = local_dir
        self.uri = s3_uri.rstrip("/") + "/"
        self.bucket, self.prefix = parse_s3_uri(self.uri)
        # smdebug writes index files as `<name>.tmp` and renames them when complete: a half-written file
        # uploaded now would stay in S3 and break every trial reader. Other directories pass ().
        self.skip_suffixes = skip_suffixes
        self._uploaded: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def changed_files(self) -> dict[str, tuple[int, int]]:
        """Relative path -> (size, mtime_ns) of files not uploaded in their current state."""
        changed: dict[str, tuple[int, int]] = {}
        if not self.local_dir.is_dir():
            return changed
        for root, _dirs, files in os.walk(self.local_dir):
            for name in files:
                if self.skip_suffixes and name.endswith(self.skip_suffixes):
                    continue
                path = Path(root) / name
                try:
                    stat = path.lstat()
                except FileNotFoundError:  # removed while we walked (smdebug renames temp files)
                    continue
                if not S_ISREG(stat.st_mode):
                    # A symbolic link (or a pipe) is never followed: it could name a file outside the directory.
                    continue
                relative = path.relative_to(self.local_dir).as_posix()
                state = (stat.st_size, stat.st_mtime_ns)
                if self._uploaded.get(relative) != state:
                    changed[relative] = state
        return changed

    def sync(self) -> list[str]:
        """Upload what changed since the last pass; returns the relative paths uploaded."""
        with self._lock:
            changed = self.changed_files()
            if not changed:
                return []

            def put(relative: str) -> str:
                upload_file(
                    self.client, self.local_dir / relative, f"s3://{self.bucket}/{self.prefix}{relative}"
                )
                return relative

            with ThreadPoolExecutor(max_workers=min(TRANSFER_THREADS, len(changed))) as pool:
                done = list(pool.map(put, sorted(changed)))
            for relative in done:
                self._uploaded[relative] = changed[relative]
            return done


class PeriodicSync:
    """Run `DirectorySync.sync` every `interval` seconds in a background thread until `stop()`.

    Errors of a periodic pass are reported to `on_error` and retried on the next pass; the final,
    complete pass is the caller's (`stop()` then `sync.sync()`), so its errors are not swallowed.
    """

    def __init__(
        self, sync: DirectorySync, interval: float, on_error: Callable[[BaseException], None],
        name: str = "tensor-sync",
    ) -> None:
        self.sync = sync
        self.interval = interval
        self.on_error = on_error
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.sync.sync()
            except Exception as error:  # noqa: BLE001 - retried next pass, reported
                self.on_error(error)
