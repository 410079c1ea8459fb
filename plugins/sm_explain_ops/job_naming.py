"""Deterministic SageMaker training job names for a DAG run and data set version.

The name is a pure function of (dag_id, run_id, dataset_version, attempt_suffix): a retried or
cleared task computes the same name and can re-attach to the job it already started, instead of
launching a duplicate (the provider's ``action_if_job_exists="timestamp"`` cannot do that).
"""

from __future__ import annotations

import hashlib
import re

#: SageMaker's TrainingJobName constraint (botocore model: 1-63 chars, this pattern).
TRAINING_JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_TRAINING_JOB_NAME_LENGTH = 63

_DIGEST_LENGTH = 10  # 40 bits of sha256: collisions between runs are not a practical concern
_MAX_VERSION_FRAGMENT = 16
_FALLBACK_PREFIX = "sm"


def _fragment(text: str) -> str:
    """Keep letters and digits, turn every other run of characters into a single hyphen."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")


def _truncate(fragment: str, limit: int) -> str:
    return fragment[:limit].rstrip("-") if limit > 0 else ""


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{field} must be a string to derive a training job name, got {type(value).__name__}"
        )
    if not value.strip():
        raise ValueError(f"{field} is empty: cannot derive a training job name from it")
    return value


def training_job_name(dag_id: str, run_id: str, dataset_version: str, attempt_suffix: int = 0) -> str:
    """Return ``<dag>-<version>-<sha256[:10]>[-r<n>]``, at most 63 characters.

    The readable fragments help a human find the job in the console; the digest of the full,
    unsanitised triple makes names of different runs differ even when the fragments collide
    (run ids are long timestamps, so they are only hashed). ``attempt_suffix`` > 0 is used after
    a job of the base name ended Failed or Stopped.
    """
    dag_id = _require_text(dag_id, "dag_id")
    run_id = _require_text(run_id, "run_id")
    dataset_version = _require_text(dataset_version, "dataset_version")
    if isinstance(attempt_suffix, bool) or not isinstance(attempt_suffix, int) or attempt_suffix < 0:
        raise ValueError(f"attempt_suffix must be a non-negative integer, got {attempt_suffix!r}")

    digest = hashlib.sha256("\x1f".join((dag_id, run_id, dataset_version)).encode("utf-8")).hexdigest()
    tail = digest[:_DIGEST_LENGTH] + (f"-r{attempt_suffix}" if attempt_suffix else "")
    budget = MAX_TRAINING_JOB_NAME_LENGTH - len(tail) - 1  # one hyphen before the tail

    version = _truncate(_fragment(dataset_version), _MAX_VERSION_FRAGMENT)
    dag_budget = budget - (len(version) + 1 if version else 0)
    dag = _truncate(_fragment(dag_id), dag_budget)
    readable = "-".join(part for part in (dag, version) if part) or _FALLBACK_PREFIX

    name = f"{readable}-{tail}"
    if not TRAINING_JOB_NAME_PATTERN.fullmatch(name) or len(name) > MAX_TRAINING_JOB_NAME_LENGTH:
        # Cannot happen with the construction above; a guard so a future edit cannot ship bad names.
        raise ValueError(f"derived training job name {name!r} violates SageMaker's name constraint")
    return name


def validate_training_job_name(name: str) -> str:
    """Return ``name`` if SageMaker accepts it as a TrainingJobName, else raise a ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("job_name must be a non-empty string")
    if len(name) > MAX_TRAINING_JOB_NAME_LENGTH:
        raise ValueError(
            f"job_name {name!r} is {len(name)} characters; SageMaker allows at most {MAX_TRAINING_JOB_NAME_LENGTH}"
        )
    if not TRAINING_JOB_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"job_name {name!r} is invalid: only letters, digits and hyphens are allowed, and it must "
            "start and end with a letter or digit"
        )
    return name
