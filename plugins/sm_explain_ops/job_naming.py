"""Deterministic SageMaker job names: training jobs per deployment, DAG run and data set version; processing
jobs per deployment, DAG run and task.

The name is a pure function of (deployment, dag_id, run_id, dataset_version, attempt_suffix): a retried
or cleared task computes the same name and can re-attach to the job it already started, instead of
launching a duplicate (the provider's ``action_if_job_exists="timestamp"`` cannot do that).

Why a deployment identity: names are unique per AWS account and region, not per Airflow. A dev and a
prod Airflow in one account run the same DAG ids and the same ``scheduled__<date>`` run ids, so without
it they derive the same name and each re-attaches to the other's job. The identity is, in order:

1. the operator's ``deployment`` argument, else the environment variable ``SM_EXPLAIN_DEPLOYMENT`` (set
   it once per deployment, e.g. ``dev``/``prod``, in the workers' environment);
2. otherwise the AWS connection id and the job's output path (bucket and prefix). That needs no
   configuration and differs wherever it matters: two deployments writing to the same output path
   would overwrite each other's models anyway, so they are one deployment as far as jobs go. Nothing
   host- or process-specific is used (hostnames, worker ids): every worker and every retry of one
   deployment must derive the same name. The metadata database URL would do, but Airflow 3 workers
   do not have it.

Changing the identity (setting the variable, moving the output path) changes the names: a run started
before re-attaches no more, its next try starts a new job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

#: SageMaker's TrainingJobName constraint (botocore model: 1-63 chars, this pattern).
TRAINING_JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_TRAINING_JOB_NAME_LENGTH = 63

_DIGEST_LENGTH = 10  # 40 bits of sha256: collisions between runs are not a practical concern
_MAX_VERSION_FRAGMENT = 16
_FALLBACK_PREFIX = "sm"

#: The environment variable naming this Airflow deployment (see the module docstring).
DEPLOYMENT_ENV = "SM_EXPLAIN_DEPLOYMENT"
_DEPLOYMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@=+-]{0,127}$")


def _fragment(text: str) -> str:
    """Keep letters and digits, turn every other run of characters into a single hyphen."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")


def _truncate(fragment: str, limit: int) -> str:
    return fragment[:limit].rstrip("-") if limit > 0 else ""


def _require_text(value: object, field: str, kind: str = "training") -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{field} must be a string to derive a {kind} job name, got {type(value).__name__}"
        )
    if not value.strip():
        raise ValueError(f"{field} is empty: cannot derive a {kind} job name from it")
    return value


def deployment_identity(deployment: str | None, *, aws_conn_id: str | None, output_s3_uri: str) -> str:
    """The deployment part of job names: ``deployment``, else ``$SM_EXPLAIN_DEPLOYMENT``, else the
    connection id and output path (see the module docstring for why)."""
    source = "the operator's deployment argument"
    if deployment is None:
        deployment = os.environ.get(DEPLOYMENT_ENV) or None  # empty = unset, as compose files pass it
        source = f"the environment variable {DEPLOYMENT_ENV}"
    if deployment is None:
        output = _require_text(output_s3_uri, "output_s3_uri").rstrip("/")
        return "connection+output:" + json.dumps([aws_conn_id or "", output])
    if not isinstance(deployment, str) or not _DEPLOYMENT_PATTERN.fullmatch(deployment):
        raise ValueError(
            f"{source} is {deployment!r}: a deployment name is 1-128 letters, digits and . _ : / @ = + -, "
            "starting with a letter or digit (for example 'prod' or 'team-a/dev')"
        )
    return f"deployment:{deployment}"


def training_job_name(
    dag_id: str, run_id: str, dataset_version: str, attempt_suffix: int = 0, *, deployment: str
) -> str:
    """Return ``<dag>-<version>-<sha256[:10]>[-r<n>]``, at most 63 characters.

    The readable fragments help a human find the job in the console; the digest of the full,
    unsanitised deployment identity (:func:`deployment_identity`), dag id, run id and version makes
    names of different deployments and runs differ even when the fragments collide (run ids are long
    timestamps, so they are only hashed). ``attempt_suffix`` > 0 is used after a job of the base name
    ended Failed or Stopped.
    """
    deployment = _require_text(deployment, "deployment")
    dag_id = _require_text(dag_id, "dag_id")
    run_id = _require_text(run_id, "run_id")
    dataset_version = _require_text(dataset_version, "dataset_version")
    _check_attempt(attempt_suffix)

    return _derived_name([deployment, dag_id, run_id, dataset_version], dag_id, dataset_version, attempt_suffix)


def processing_job_name(
    dag_id: str, run_id: str, task_id: str, attempt_suffix: int = 0, *, deployment: str
) -> str:
    """Return ``<dag>-<task>-<sha256[:10]>[-r<n>]``, at most 63 characters: the processing job a task of one
    run stands for, by the training names' rules (:func:`training_job_name`). The task id takes the version's
    place; the digest also covers the word ``processing``, so no processing name equals a training name."""
    deployment = _require_text(deployment, "deployment", "processing")
    dag_id = _require_text(dag_id, "dag_id", "processing")
    run_id = _require_text(run_id, "run_id", "processing")
    task_id = _require_text(task_id, "task_id", "processing")
    _check_attempt(attempt_suffix)
    return _derived_name([deployment, dag_id, run_id, task_id, "processing"], dag_id, task_id, attempt_suffix)


def _check_attempt(attempt_suffix: object) -> None:
    if isinstance(attempt_suffix, bool) or not isinstance(attempt_suffix, int) or attempt_suffix < 0:
        raise ValueError(f"attempt_suffix must be a non-negative integer, got {attempt_suffix!r}")


def _derived_name(identity_parts: list[str], dag_id: str, detail: str, attempt_suffix: int) -> str:
    """``<dag fragment>-<detail fragment>-<digest of identity_parts>[-r<n>]`` within SageMaker's name rules."""
    identity = json.dumps(identity_parts)  # unambiguous, whatever the ids hold
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    tail = digest[:_DIGEST_LENGTH] + (f"-r{attempt_suffix}" if attempt_suffix else "")
    budget = MAX_TRAINING_JOB_NAME_LENGTH - len(tail) - 1  # one hyphen before the tail

    detail_fragment = _truncate(_fragment(detail), _MAX_VERSION_FRAGMENT)
    dag_budget = budget - (len(detail_fragment) + 1 if detail_fragment else 0)
    dag = _truncate(_fragment(dag_id), dag_budget)
    readable = "-".join(part for part in (dag, detail_fragment) if part) or _FALLBACK_PREFIX

    name = f"{readable}-{tail}"
    if not TRAINING_JOB_NAME_PATTERN.fullmatch(name) or len(name) > MAX_TRAINING_JOB_NAME_LENGTH:
        # Cannot happen with the construction above; a guard so a future edit cannot ship bad names.
        raise ValueError(f"derived job name {name!r} violates SageMaker's name constraint")
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
