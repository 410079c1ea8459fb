"""Read and write objects by URI, S3 (`s3://bucket/key`) or local (`/path` or `file:///path`), so every analysis
works the same against AWS, the local moto stack and plain directories. boto3 honours AWS_ENDPOINT_URL."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sm_explain.errors import BadRequest
from sm_explain_contracts import safe_keys
from sm_explain_contracts.envelope import write_bytes_atomic
from sm_explain_contracts.request_fields import location, refused_as
from sm_explain_contracts.s3_uris import is_under as is_under
from sm_explain_contracts.s3_uris import parse_s3_uri


@functools.cache
def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def validate_uri(uri: object, what: str) -> str:
    """The URI when it is a location the requests accept (the contracts' one rule), else BadRequest."""
    with refused_as(BadRequest):
        return location(uri, what)


def _split_s3(uri: str) -> tuple[str, str]:
    location = parse_s3_uri(uri, "S3 URI")
    return location.bucket, location.key


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)


def join(prefix: str, name: str) -> str:
    """`prefix` is a "directory" (with or without a trailing slash)."""
    return prefix.rstrip("/") + "/" + name


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return local_path(uri).exists()
    from botocore.exceptions import ClientError

    bucket, key = _split_s3(uri)
    try:
        _s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}:
            return False
        raise
    return True


def any_object_under(prefix: str, suffix: str = "") -> bool:
    """Whether some object (whose key ends with `suffix`) lies under the directory `prefix`; one list call."""
    if not is_s3(prefix):
        root = local_path(prefix)
        return root.is_dir() and any(p.name.endswith(suffix) for p in root.rglob("*") if p.is_file())
    bucket, key = _split_s3(prefix)
    key = key.rstrip("/") + "/" if key else ""
    paginator = _s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        if any(obj["Key"].endswith(suffix) for obj in page.get("Contents", [])):
            return True
    return False


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        return local_path(uri).read_bytes()
    bucket, key = _split_s3(uri)
    return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def read_bytes_at_most(uri: str, limit: int, what: str) -> bytes:
    """The object's bytes when it holds at most `limit` of them (checked before reading), else BadRequest."""
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        size = int(_s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    else:
        size = local_path(uri).stat().st_size
    if size > limit:
        raise BadRequest(f"{what} {uri!r} holds {size:,} bytes, more than the {limit:,} accepted")
    data = read_bytes(uri)
    if len(data) > limit:  # it grew between the two calls
        raise BadRequest(f"{what} {uri!r} holds more than the {limit:,} bytes accepted")
    return data


def download(uri: str, destination: Path) -> Path:
    """Copy the object to a local file (streamed, so large CSVs never sit in memory twice)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        _s3_client().download_file(bucket, key, str(destination))
    else:
        shutil.copyfile(local_path(uri), destination)
    return destination


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Overwrite exactly this one key (or file); nothing else under the prefix is touched."""
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    write_bytes_atomic(local_path(uri), data)


# What `mirror_prefix` copies at most: the training request caps Debugger output at 2 GiB (an estimate, in
# sm_explain_ops.training_request.debug_output_size), so a trial somewhat above that is still a trial; far
# more means the prefix is not one job's Debugger output.
MIRROR_MAX_BYTES = 5 * 1024**3 // 2  # 2.5 GiB
MIRROR_MAX_OBJECTS = 100_000  # two files per saved step (events + index): 50,000 saved steps


#: Byte ranges of one file, (start, length) each.
Ranges = list[tuple[int, int]]
#: Two wanted ranges of one object closer than this are fetched in one request (the bytes between come along).
RANGE_MERGE_GAP = 64 * 1024


def mirror_prefix(
    prefix: str, workers: int = 8, *, max_objects: int = MIRROR_MAX_OBJECTS, max_bytes: int = MIRROR_MAX_BYTES,
    partial_suffix: str | None = None, ranges_of: Callable[[Path, dict[str, int]], dict[str, Ranges]] | None = None,
) -> str:
    """Copy every object under an s3:// "directory" into a fresh temporary directory (removed at exit)
    and return its path.

    smdebug reads an S3 trial with one request per tensor per step (763 requests for the notebook's
    Adult trial, 26 s against 0.8 s for copying its 24 files in parallel), so readers mirror it first.
    Before anything is downloaded, every key must map to a path inside the directory (safe_keys) and the
    objects must stay within `max_objects` and `max_bytes`; otherwise BadRequest names the key or the sizes.

    With `partial_suffix` and `ranges_of`, the files ending in `partial_suffix` are copied last and only in part:
    once every other file is in place, `ranges_of(root, sizes)` (sizes: relative path -> bytes of those files)
    names the byte ranges the reader will read of each; each such file gets its full size, the ranges hold the
    object's bytes (fetched with ranged GETs, near ones merged) and the rest is a hole that reads as zeros.
    """
    import atexit
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    bucket, key = _split_s3(prefix)
    key = key.rstrip("/") + "/" if key else ""
    client = _s3_client()  # one client for every thread: clients are thread-safe, creating them is not
    objects: dict[str, str] = {}  # key -> relative path
    sizes: dict[str, int] = {}  # key -> bytes
    total_bytes = 0  # checked while listing, so an enormous prefix is not listed to its end
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):  # a "folder" marker: nothing to copy
                continue
            try:
                objects[obj["Key"]] = safe_keys.relative_key_path(obj["Key"], key)
            except safe_keys.UnsafeKeyError as exc:
                raise BadRequest(f"the Debugger output under {prefix!r} cannot be read: {exc}") from exc
            sizes[obj["Key"]] = int(obj.get("Size") or 0)
            total_bytes += sizes[obj["Key"]]
            if len(objects) > max_objects or total_bytes > max_bytes:
                over = (
                    f"more than {max_objects:,} objects"
                    if len(objects) > max_objects
                    else f"more than {max_bytes:,} bytes ({max_bytes / 1024**3:.2f} GiB)"
                )
                raise BadRequest(
                    f"the Debugger output under {prefix!r} holds {over}, the most that is copied for reading; "
                    "one job's Debugger output is at most 2 GiB (the training request builder enforces it): "
                    "point debug_output_uri at one job's <job>/debug-output/"
                )
    partial = {k: rel for k, rel in objects.items()
               if ranges_of is not None and partial_suffix and rel.endswith(partial_suffix)}
    target = Path(tempfile.mkdtemp(prefix="sm-explain-trial-"))
    atexit.register(shutil.rmtree, target, True)

    def fetch(object_key: str) -> None:
        destination = target / objects[object_key]
        destination.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, object_key, str(destination))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, [k for k in objects if k not in partial]))
        if not partial:
            return str(target)
        by_path = {rel: k for k, rel in partial.items()}
        assert ranges_of is not None  # partial is empty without it
        # ranges_of checks its ranges against these sizes (it knows where each came from, to name it).
        wanted = ranges_of(target, {rel: sizes[k] for k, rel in partial.items()})
        requests: list[tuple[str, int, int]] = []  # (relative path, start, length)
        for rel, object_key in by_path.items():
            destination = target / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as handle:
                handle.truncate(sizes[object_key])  # a hole: what no range covers reads as zeros
            requests += [(rel, start, length) for start, length in merge_ranges(wanted.get(rel, []))]

        def fetch_range(request: tuple[str, int, int]) -> None:
            rel, start, length = request
            body = client.get_object(Bucket=bucket, Key=by_path[rel], Range=f"bytes={start}-{start + length - 1}")
            data = body["Body"].read()
            if len(data) != length:  # the object changed since it was listed
                raise BadRequest(f"{prefix.rstrip('/')}/{rel} changed while it was read: {len(data):,} bytes "
                                 f"at {start:,}, {length:,} expected")
            with (target / rel).open("r+b") as handle:
                handle.seek(start)
                handle.write(data)

        list(pool.map(fetch_range, requests))
    return str(target)


def merge_ranges(ranges: Ranges, gap: int | None = None) -> Ranges:
    """The (start, length) ranges sorted, overlapping or near ones (at most `gap` bytes apart, by default
    RANGE_MERGE_GAP) merged."""
    gap = RANGE_MERGE_GAP if gap is None else gap
    merged: Ranges = []
    for start, length in sorted(r for r in ranges if r[1] > 0):
        if merged and start <= merged[-1][0] + merged[-1][1] + gap:
            first, first_length = merged[-1]
            merged[-1] = (first, max(first_length, start + length - first))
        else:
            merged.append((start, length))
    return merged
