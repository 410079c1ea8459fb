"""What an S3 URI may be, checked the same way by the Airflow side (training request, staging and
explanation tasks) and the runtime (staging, explanations, the local endpoint's channels), before anything is
read.

`s3://<bucket>/<key>`: a bucket name S3 accepts (3-63 lowercase letters, digits, dots and hyphens, starting and
ending with a letter or digit, no '..', not `xn--`), no whitespace, no empty path segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]*)(?:/(?P<key>.*))?$", re.DOTALL)
_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3UriError(ValueError):
    """The value is not a usable S3 URI; the message names the field, the value and what is wrong."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def segments(self) -> list[str]:
        """The key's path segments, a trailing slash ignored."""
        return [segment for segment in self.key.strip("/").split("/") if segment]


def parse_s3_uri(value: object, what: str, *, require_key: bool = False) -> S3Location:
    """The bucket and key of `value`, or S3UriError naming `what` (the field) and the problem."""
    if not isinstance(value, str) or not value:
        raise S3UriError(f"{what} must be an s3:// URI, got {value!r}")
    match = _S3_URI.match(value)
    if not match:
        raise S3UriError(f"{what} {value!r} is not an s3:// URI (expected s3://<bucket>/<prefix>)")
    bucket, key = match["bucket"], match["key"] or ""
    if not _BUCKET.match(bucket):
        raise S3UriError(
            f"{what} {value!r} has an invalid bucket name {bucket!r} (3-63 lowercase letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit)"
        )
    if any(character.isspace() for character in value):
        raise S3UriError(f"{what} {value!r} contains whitespace")
    if require_key and not key.strip("/"):
        raise S3UriError(f"{what} {value!r} names no key or prefix after the bucket")
    if "//" in key:
        raise S3UriError(f"{what} {value!r} contains an empty path segment ('//')")
    return S3Location(bucket, key)


def join_s3_uri(base: str, *parts: str) -> str:
    """`base` + parts with exactly one '/' between them."""
    pieces = [base.rstrip("/")] + [part.strip("/") for part in parts if part.strip("/")]
    return "/".join(pieces)


def is_under(uri: object, prefix: str) -> bool:
    """Whether `uri` names something strictly inside the "directory" `prefix`, both S3 URIs or both local paths.

    S3: the same bucket and a key below the prefix's key, with no empty, '.' or '..' segment (a URI that is no
    valid S3 URI is inside nothing). Local: inside once every symlink is resolved. The report and the comparison
    read only what is under their run's output; the Airflow side checks the same before the runtime starts.
    """
    if not isinstance(uri, str) or uri.startswith("s3://") != prefix.startswith("s3://"):
        return False
    if uri.startswith("s3://"):
        try:
            location, root = parse_s3_uri(uri, "uri"), parse_s3_uri(prefix, "prefix")
        except S3UriError:
            return False
        base = root.key.strip("/")
        if location.bucket != root.bucket or not location.key.startswith(base + "/" if base else ""):
            return False
        return all(segment not in ("", ".", "..") for segment in location.key[len(base) + 1 if base else 0:].split("/"))
    import os.path

    path, root_path = os.path.realpath(uri.removeprefix("file://")), os.path.realpath(prefix.removeprefix("file://"))
    return path != root_path and os.path.commonpath([path, root_path]) == root_path
