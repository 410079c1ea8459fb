"""What the report links to that only the Airflow side can know: S3 console pages (only on AWS: the connection
says which endpoint S3 is) and the report of the previous data set version.

The previous version's report is looked up here, by the report task, and not by the report runtime: the runtime
reads nothing but the run's own artifacts (under its output_uri, `check_manifest`), and looking through other
versions' keys would widen that; the task already holds the connection that may list the bucket (the comparison
task lists it the same way), and the URI it finds shows up in the task's log and in the request the contract
checks. The lookup is cheap and bounded: one delimited listing of the version "directories", then for the nearest
earlier versions one delimited listing of their job "directories" and a HEAD per job, never a listing of a version's
objects (its Debugger output alone can be 100,000 keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sm_explain_contracts.s3_uris import parse_s3_uri
from sm_explain_contracts.versions import dataset_version_problem

REPORT_KEY_SUFFIX = "explanations/report.html"
# The "directories" of a version root that hold no job's explanations (docs/architecture.md, S3 layout).
NOT_JOBS = frozenset({"data", "training", "processing"})
MAX_VERSION_PAGES = 5  # 1,000 versions a page
MAX_EARLIER_VERSIONS = 5  # earlier versions tried, nearest first, before giving up
MAX_JOBS_PER_VERSION = 50  # job directories of one version whose report is looked for


@dataclass(frozen=True)
class PreviousReport:
    dataset_version: str
    uri: str


def version_order(version: str) -> tuple[Any, ...]:
    """Versions in their natural order: runs of digits compare as numbers, so 2026-11-08 < 2026-11-15, v2 < v10
    and 9 < 20261122; the text itself breaks ties."""
    pieces = re.split(r"(\d+)", version)  # text, digits, text, ...: alternating, so the tuples always compare
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(pieces)), version


def s3_console_url(uri: str, region: str | None, aws_domain: str = "aws.amazon.com") -> str:
    """The S3 console page of an object, or of a prefix when `uri` ends with '/'."""
    location = parse_s3_uri(uri, "uri")
    query: dict[str, str] = {"region": region} if region else {}
    bucket = quote(location.bucket, safe="")
    if uri.endswith("/") or not location.key:
        query.update(prefix=location.key, showversions="false")
        return f"https://s3.console.{aws_domain}/s3/buckets/{bucket}?{urlencode(query)}"
    query["prefix"] = location.key
    return f"https://s3.console.{aws_domain}/s3/object/{bucket}?{urlencode(query)}"


def _common_prefixes(client: Any, bucket: str, prefix: str, pages: int) -> list[str]:
    """The "directory" names right below `prefix`, from at most `pages` pages of a delimited listing."""
    names: list[str] = []
    token: str | None = None
    for _ in range(pages):
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if token:
            kwargs["ContinuationToken"] = token
        page = client.list_objects_v2(**kwargs)
        names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes") or []]
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            break
    return names


def versions_root(version_root: str, dataset_version: str) -> tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) holding every version, from this run's `<root>/<version>`;
    ValueError when `version_root` does not end with the run's version."""
    location = parse_s3_uri(version_root, "version_root")
    segments = location.segments
    if not segments or segments[-1] != dataset_version:
        raise ValueError(f"version_root {version_root!r} does not end with the run's data set version "
                         f"{dataset_version!r} (expected s3://<bucket>/<prefix>/<version>)")
    parent = "/".join(segments[:-1])
    return location.bucket, f"{parent}/" if parent else ""


def find_previous_report(client: Any, version_root: str, dataset_version: str) -> PreviousReport | None:
    """The newest report of the latest data set version before this one (natural order) that has one, among
    MAX_EARLIER_VERSIONS earlier versions; None when there is none. `client` is a boto3 S3 client; its errors
    propagate (the caller decides that a missing link is no reason to fail)."""
    bucket, root = versions_root(version_root, dataset_version)
    here = version_order(dataset_version)
    earlier = sorted((name for name in _common_prefixes(client, bucket, root, MAX_VERSION_PAGES)
                      if dataset_version_problem(name) is None and version_order(name) < here),
                     key=version_order, reverse=True)
    for version in earlier[:MAX_EARLIER_VERSIONS]:
        jobs = [job for job in _common_prefixes(client, bucket, f"{root}{version}/", 1) if job not in NOT_JOBS]
        found: list[tuple[Any, str]] = []
        for job in jobs[:MAX_JOBS_PER_VERSION]:
            key = f"{root}{version}/{job}/{REPORT_KEY_SUFFIX}"
            head = _head(client, bucket, key)
            if head is not None:
                found.append((head.get("LastModified"), key))
        if found:
            _, key = max(found, key=lambda item: (item[0] is not None, item[0] or 0, item[1]))
            return PreviousReport(version, f"s3://{bucket}/{key}")
    return None


def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
