"""On-disk state of the local endpoint: one directory per job, JSON files written atomically.

Everything lives on disk so records survive a server restart, and the supervisor (a separate
process) can publish status without talking to the server. The server owns `job.json`, the
supervisor owns `status.json` (the server writes it only once the supervisor is gone).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session

from sm_explain_contracts.envelope import write_json_atomic

ACCOUNT_ID = "123456789012"
JOB_FILE = "job.json"
STATUS_FILE = "status.json"
SUPERVISOR_LOG = "supervisor.log"
# SageMaker's TrainingJobName and ProcessingJobName (one pattern): the request is checked against it before a
# name reaches the store, which checks again, because the name is a directory.
JOB_NAME = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}")
TRAINING_JOB_NAME = JOB_NAME
# One directory of job directories per kind: SageMaker keeps the names of each kind apart, so a training job and
# a processing job may share a name.
TRAINING_JOBS_DIR = "jobs"
PROCESSING_JOBS_DIR = "processing-jobs"
JOB_KIND_DIRS = (TRAINING_JOBS_DIR, PROCESSING_JOBS_DIR)


@functools.cache
def arn_partition(region: str) -> str:
    """`aws`, `aws-cn`, `aws-us-gov`, ... as botocore's partition data says for `region`."""
    try:
        return botocore.session.get_session().get_partition_for_region(region)
    except Exception:  # an unknown region still gets a well-formed ARN
        return "aws"


def training_job_arn(region: str, job_name: str) -> str:
    """SageMaker lowercases the name in ARNs."""
    return f"arn:{arn_partition(region)}:sagemaker:{region}:{ACCOUNT_ID}:training-job/{job_name.lower()}"


def processing_job_arn(region: str, job_name: str) -> str:
    """As for training jobs, the name lowercased."""
    return f"arn:{arn_partition(region)}:sagemaker:{region}:{ACCOUNT_ID}:processing-job/{job_name.lower()}"


def _name_fragment(name: str, length: int, keep: str) -> str:
    """The first characters of `name` with every run of characters outside `keep` replaced by one '-'."""
    return re.sub(f"[^{keep}]+", "-", name)[:length]


def rule_evaluation_job_name(job_name: str, rule_name: str) -> str:
    """The name of the processing job that evaluates one Debugger rule of a training job, as SageMaker names it:
    `<job[:26]>-<RuleConfigurationName[:26]>-<8 hex>`, case kept (AWS's Debugger example notebooks rebuild it so
    from DescribeTrainingJob to open the rule job's CloudWatch streams, `<name>/algo-1-<epoch>` in
    `/aws/sagemaker/ProcessingJobs`). The rule's fragment is reduced to the letters, digits and hyphens a
    processing-job name may hold (a RuleConfigurationName is any 1-256 characters); the 8 hex (sha1 of
    `<job>/<rule>`: SageMaker's are random) keep it unique when truncated names collide, and the same on every
    call, so server and supervisor agree."""
    digest = hashlib.sha1(f"{job_name}/{rule_name}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{job_name[:26]}-{_name_fragment(rule_name, 26, 'A-Za-z0-9-')}-{digest}"


def rule_evaluation_job_arn(region: str, job_name: str, rule_name: str) -> str:
    """The ARN `DebugRuleEvaluationStatuses[].RuleEvaluationJobArn` shows: the rule job's processing-job ARN (its
    name lowercased, as in every SageMaker ARN). Server and supervisor both call this so the ARN never changes
    between "InProgress" and the final status."""
    return processing_job_arn(region, rule_evaluation_job_name(job_name, rule_name))


def rule_dir_name(rule_name: str) -> str:
    """The directory of a rule's files below `<job>/rules/`: never the RuleConfigurationName itself (any 1-256
    characters, '../x' included) but a fragment of it in letters, digits, '_' and '-' plus a hash of the
    whole name, so every name gets its own directory and none leaves `rules/`. The real name stays in the
    rule's config.json and in the job's status."""
    digest = hashlib.sha256(rule_name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_name_fragment(rule_name, 40, 'A-Za-z0-9_-').strip('-') or 'rule'}-{digest}"


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it does not exist (yet)."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


class JobStore:
    """`<state>/<kind dir>/<job name>/{job.json,status.json,supervisor.log,...}`: training jobs in `jobs/`
    (the default), processing jobs in `processing-jobs/`."""

    def __init__(self, state_dir: Path, kind_dir: str = TRAINING_JOBS_DIR) -> None:
        if kind_dir not in JOB_KIND_DIRS:
            raise ValueError(f"{kind_dir!r} is not one of the job directories {JOB_KIND_DIRS}")
        self.jobs_dir = Path(state_dir).resolve() / kind_dir
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        # Removed jobs are renamed here first (atomic: a job is either listed or gone), then deleted.
        self.removed_dir = Path(state_dir).resolve() / "removed" / kind_dir
        shutil.rmtree(self.removed_dir, ignore_errors=True)  # what a removal interrupted left behind

    def job_dir(self, name: str) -> Path:
        if not JOB_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a job name: it cannot name a job directory")
        return self.jobs_dir / name

    def names(self) -> Iterator[str]:
        """Names of jobs whose record was fully written (a dir without job.json is a failed create)."""
        for entry in self.jobs_dir.iterdir():
            if JOB_NAME.fullmatch(entry.name) and (entry / JOB_FILE).is_file():
                yield entry.name

    def remove_job(self, name: str) -> None:
        """Delete the job's directory; the caller knows nothing runs in it any more."""
        self.removed_dir.mkdir(parents=True, exist_ok=True)
        graveyard = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.removed_dir))
        os.replace(self.job_dir(name), graveyard / name)
        shutil.rmtree(graveyard, ignore_errors=True)

    def remove_abandoned(self, older_than: float) -> None:
        """Delete directories of creates that never wrote job.json (the server died) not changed since
        `older_than` (epoch seconds)."""
        for entry in self.jobs_dir.iterdir():
            try:
                if entry.is_dir() and not (entry / JOB_FILE).exists() and entry.stat().st_mtime < older_than:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue

    def read_job(self, name: str) -> dict[str, Any] | None:
        return read_json(self.job_dir(name) / JOB_FILE)

    def write_job(self, name: str, record: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir(name) / JOB_FILE, record)

    def read_status(self, name: str) -> dict[str, Any] | None:
        return read_json(self.job_dir(name) / STATUS_FILE)

    def write_status(self, name: str, status: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir(name) / STATUS_FILE, status)
