"""What a data set version may be.

A version names an S3 prefix (`<prefix>/<version>/`, beside `<prefix>/raw/` and `<prefix>/comparisons/`) and goes
into training job names: letters, digits, '.', '_' and '-', at most 64 characters, starting with a letter or digit,
and not a reserved prefix name. All digits is a version like any other ("20261122"): a version is always a string,
and the pipeline hands it between tasks as an XCom value, never through a template that could turn it into a number.
The DAGs' params, the staging task and the staging runtime all ask here.
"""

from __future__ import annotations

import re

DATASET_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RESERVED_VERSIONS = frozenset({"raw", "comparisons"})


def dataset_version_problem(version: object) -> str | None:
    """None for a valid version, else a sentence that names what is wrong with it."""
    if not isinstance(version, str):
        return (
            f"dataset_version {version!r} is invalid: a version is a string (give {str(version)!r}, not the "
            f"{type(version).__name__}), of 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not re.fullmatch(DATASET_VERSION_PATTERN, version):  # fullmatch: '$' alone would let "v1\n" through
        return (
            f"dataset_version {version!r} is invalid: 1-64 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if version in RESERVED_VERSIONS:
        return f"dataset_version {version!r} is reserved (one of {sorted(RESERVED_VERSIONS)} under the prefix)"
    return None
