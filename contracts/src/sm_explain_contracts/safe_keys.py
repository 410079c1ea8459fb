"""S3 object keys as local paths that cannot leave their directory.

S3 keys are arbitrary strings: `a//b`, `a/../../b`, `/etc/x` after a prefix, NUL or backslashes are all valid
keys, and `directory / key` turns them into paths outside `directory`. Whoever copies objects to disk (the
local endpoint's channel downloads, the explanations' Debugger trial mirror) maps each key through
`relative_key_path` first, and refuses the whole copy before writing anything when one key does not map.
Standard library only: both the runtime side and the local endpoint import it.
"""

from __future__ import annotations

from pathlib import Path

MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux file systems
MAX_PATH_BYTES = 4096  # PATH_MAX


class UnsafeKeyError(ValueError):
    """An S3 key that has no safe local path below its prefix; the message names the key and why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"S3 key {key!r} cannot be copied to a local file: {reason}")
        self.key = key
        self.reason = reason


def _unsafe_reason(relative: str) -> str | None:
    """Why `relative` is not a plain relative path of named segments, or None when it is one."""
    if not relative:
        return "nothing is left of it after the prefix"
    if "\x00" in relative:
        return "it contains a NUL character"
    if "\\" in relative:
        return "it contains a backslash"
    if relative.startswith("/"):
        return "the part after the prefix is an absolute path"
    if len(relative.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"the part after the prefix is longer than {MAX_PATH_BYTES} bytes"
    for segment in relative.split("/"):
        if segment == "":
            return "it has an empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} path segment"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"the path segment {segment[:40]!r}... is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def relative_key_path(key: str, prefix: str) -> str:
    """The part of `key` after `prefix`, as a relative path that stays below any directory it is joined to.

    `prefix` is the "directory" the key lies under ('' or ending with '/'). Raises UnsafeKeyError for a key
    outside the prefix, and for what would be an absolute path, a '.', '..' or empty segment, a NUL or a
    backslash, a segment over 255 bytes or a path over 4096 bytes.
    """
    if not key.startswith(prefix):
        raise UnsafeKeyError(key, f"it does not lie under the prefix {prefix!r}")
    relative = key[len(prefix) :]
    reason = _unsafe_reason(relative)
    if reason is not None:
        raise UnsafeKeyError(key, f"{reason} (below the prefix {prefix!r})")
    return relative


def local_path_for_key(root: Path, key: str, prefix: str) -> Path:
    """`root / relative_key_path(key, prefix)`, checked once more to lie inside `root`."""
    path = root / relative_key_path(key, prefix)
    if not path.resolve().is_relative_to(root.resolve()):  # a symlink already inside `root`
        raise UnsafeKeyError(key, f"its path {path} resolves outside {root}")
    return path
