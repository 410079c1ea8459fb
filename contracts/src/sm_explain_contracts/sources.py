"""Where a data set version's raw data may come from, checked alike by the staging task (before the runtime starts)
and by the staging runtime (before anything is read): S3, https with the sha256 to verify what arrives, a local
path only where the deployment opts in (`local_paths`); plain http never (anyone on the way can change what
arrives), other schemes never.
"""

from __future__ import annotations

from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV, local_paths_allowed
from sm_explain_contracts.s3_uris import S3UriError, parse_s3_uri


def source_problem(source: object, sha256: str | None) -> str | None:
    """None for a source this deployment reads, else a sentence naming what is wrong and what to use."""
    if not isinstance(source, str) or not source:
        return f"source must be an s3:// URI or an https:// URL, got {source!r}"
    if source.startswith("s3://"):
        try:
            parse_s3_uri(source, "source", require_key=True)
        except S3UriError as error:
            return str(error)
        return None
    if source.startswith("https://"):
        if sha256 is None:
            return f"source {source!r} is a web URL: source_sha256 is required to verify what is downloaded"
        return None
    if source.lower().startswith("http://"):
        return (
            f"source {source!r} uses plain http://, which is refused (anyone on the way can change what arrives): "
            "use https:// with source_sha256, or s3://"
        )
    if "://" in source:
        return f"source {source!r} has an unsupported scheme (use s3:// or https://)"
    if not local_paths_allowed():
        return (
            f"source {source!r} is a local path, and local sources are off in this deployment: use s3:// or "
            f"https:// with source_sha256 (local runs and tests opt in with {ALLOW_LOCAL_SOURCES_ENV}=1)"
        )
    return None
