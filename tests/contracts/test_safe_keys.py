"""`safe_keys.relative_key_path`: the one mapping from an S3 key below a prefix to a local relative path."""

from __future__ import annotations

import pytest

from sm_explain_contracts.safe_keys import UnsafeKeyError, relative_key_path


@pytest.mark.parametrize("key, relative", [
    ("p/a.json", "a.json"),
    ("p/index/000000000000_worker_0.json", "index/000000000000_worker_0.json"),
    ("p/..hidden/x..y/.z", "..hidden/x..y/.z"),  # dots inside names are names
    ("p/" + "é" * 127, "é" * 127),  # 254 bytes
])
def test_keys_below_the_prefix_keep_their_sub_path(key: str, relative: str) -> None:
    assert relative_key_path(key, "p/") == relative


@pytest.mark.parametrize("key, reason", [
    ("p/", "nothing is left"),
    ("q/a", "does not lie under the prefix"),
    ("p//etc/passwd", "absolute path"),
    ("p/a/../../x", "'..' path segment"),
    ("p/a/./x", "'.' path segment"),
    ("p/a//x", "empty path segment"),
    ("p/a/", "empty path segment"),
    ("p/a\x00b", "NUL"),
    ("p/a\\..\\x", "backslash"),
    ("p/" + "é" * 128, "longer than 255 bytes"),
    ("p/" + "/".join(["d" * 200] * 21), "longer than 4096 bytes"),
])
def test_keys_that_would_leave_the_directory_are_refused_naming_the_key(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError) as raised:
        relative_key_path(key, "p/")
    assert reason in str(raised.value) and repr(key)[:60] in str(raised.value)
