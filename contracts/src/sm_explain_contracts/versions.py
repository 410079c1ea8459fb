"""What a data set version may be.

A version names an S3 prefix (`<prefix>/<version>/`, beside `<prefix>/raw/` and `<prefix>/comparisons/`), goes
into training job names and is a DAG Param that Airflow may render natively (so "20261122" would arrive as a
number): letters, digits, '.', '_' and '-', at most 64 characters, starting with a letter or digit, not all
digits, and not a reserved prefix name. The DAGs' params, the staging task and the staging runtime all ask here.
"""

from __future__ import annotations

import re

DATASET_VERSION_PATTERN = r"^(?=.*[A-Za-z._-])[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RESERVED_VERSIONS = frozenset({"raw", "comparisons"})


def dataset_version_problem(version: object) -> str | None:
    """None for a valid version, else a sentence that names what is wrong with it."""
    if not isinstance(version, str) or not re.match(DATASET_VERSION_PATTERN, version):
        return (
            f"dataset_version {version!r} is invalid: 1-64 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit and not all digits"
        )
    if version in RESERVED_VERSIONS:
        return f"dataset_version {version!r} is reserved (one of {sorted(RESERVED_VERSIONS)} under the prefix)"
    return None
