"""SageMaker API calls for starting a debugged training job exactly once per name.

The provider's ``SageMakerHook.create_training_job`` either fails on an existing name or (through
the operator) starts a second job with a timestamp suffix; neither lets a retried task re-attach
to the job it already started. ``start_or_attach`` does, with deterministic follow-up names
(``-r1``, ``-r2`` ...) when the previous job of a name ended Failed or Stopped (or is being stopped).

A job of the name is attached only when it is this request's job: it reads the same input channels and
writes to the same output path (DescribeTrainingJob shows both; tags would need ListTags, another
permission). Anything else of that name is someone else's job and a clear error, never an attach.
Hyperparameters may differ (an edited DAG, retried): that job keeps its settings, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from botocore.exceptions import ClientError

from sm_explain_ops.hooks.job_control import JobControlMixin, error_code
from sm_explain_ops.job_naming import MAX_TRAINING_JOB_NAME_LENGTH

#: A job in one of these states is the job this name stands for: attach to it.
ATTACHABLE_STATES = frozenset({"InProgress", "Completed"})
#: A job that ended like this, or is being stopped (someone killed the task or stopped it by hand), cannot be
#: resumed: the next deterministic name is tried, so the next try trains instead of waiting on a stopped job.
REPLACEABLE_STATES = frozenset({"Failed", "Stopped", "Stopping"})
DEFAULT_MAX_REPLACEMENTS = 20


class ForeignTrainingJobError(RuntimeError):
    """A training job of the derived name exists but is not the job this request stands for."""


def _channel_uris(config: Mapping[str, Any]) -> dict[str, str | None]:
    return {
        str(channel.get("ChannelName")): ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
        for channel in config.get("InputDataConfig") or []
    }


def _output_path(config: Mapping[str, Any]) -> str:
    return str((config.get("OutputDataConfig") or {}).get("S3OutputPath") or "").rstrip("/")


def foreign_job_differences(request: Mapping[str, Any], described: Mapping[str, Any]) -> list[str]:
    """How the described job differs from the request where it matters for ownership: what it reads and
    where it writes. Empty when the job is the request's own."""
    differences = []
    if _output_path(described) != _output_path(request):
        differences.append(
            f"it writes to {_output_path(described)!r}, this task to {_output_path(request)!r} (OutputDataConfig)"
        )
    if _channel_uris(described) != _channel_uris(request):
        differences.append(
            f"it reads {_channel_uris(described)}, this task {_channel_uris(request)} (InputDataConfig)"
        )
    return differences


def job_locations(described: Mapping[str, Any]) -> dict[str, str | None]:
    """Where the described job writes its model and its Debugger tensors: the job's own settings, which
    for an attached job may differ from the request of the task that attaches to it."""
    name = described["TrainingJobName"]
    hook_config = described.get("DebugHookConfig")
    return {
        "model_artifact_path": f"{_output_path(described)}/{name}/output/model.tar.gz",
        "debug_output_path": f"{str(hook_config['S3OutputPath']).rstrip('/')}/{name}/debug-output"
        if hook_config and hook_config.get("S3OutputPath")
        else None,
    }


def suffixed_job_name(base_name: str, replacement: int) -> str:
    """``base_name`` itself for 0, else ``<base>-r<n>`` with the base shortened to stay <= 63 chars."""
    if replacement == 0:
        return base_name
    suffix = f"-r{replacement}"
    return base_name[: MAX_TRAINING_JOB_NAME_LENGTH - len(suffix)].rstrip("-") + suffix


class DebuggedTrainingHook(JobControlMixin, SageMakerHook):
    """``SageMakerHook`` plus idempotent start, attach and stop for training jobs."""

    job_kind = "training"
    status_key = "TrainingJobStatus"

    def _request_stop(self, name: str) -> None:
        self.conn.stop_training_job(TrainingJobName=name)

    def _describe(self, name: str) -> dict[str, Any]:
        return self.conn.describe_training_job(TrainingJobName=name)

    def start_or_attach(
        self,
        request: Mapping[str, Any],
        name_for: Callable[[int], str] | None = None,
        max_replacements: int = DEFAULT_MAX_REPLACEMENTS,
        on_claim: Callable[[str], None] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Start the job described by ``request`` unless a job of that name already runs or ran.

        ``name_for(n)`` gives the n-th deterministic name (0 = the request's own name); the
        default appends ``-r<n>``. ``on_claim(name)`` is called just before a create and on an attach:
        from then on the job is this caller's to stop. Returns the name used and its DescribeTrainingJob
        response. Raises :class:`ForeignTrainingJobError` when a job of a name is not the request's.
        """
        base_name = request["TrainingJobName"]
        name_for = name_for or (lambda n: suffixed_job_name(base_name, n))
        claim = on_claim or (lambda _name: None)
        ended: list[str] = []
        for replacement in range(max_replacements + 1):
            name = base_name if replacement == 0 else name_for(replacement)
            described = self.describe_or_none(name)
            if described is None:
                claim(name)
                described = self._create(request, name)
                if described is None:  # created by us: describe it once for the ARN and status
                    self.log.info("Started training job %s", name)
                    return name, self.conn.describe_training_job(TrainingJobName=name)
            differences = foreign_job_differences(request, described)
            if differences:
                raise ForeignTrainingJobError(
                    f"training job {name!r} already exists ({described.get('TrainingJobStatus')}) but is not this "
                    f"task's job: {'; '.join(differences)}. Refusing to attach to it or replace it."
                )
            status = described.get("TrainingJobStatus")
            if status in ATTACHABLE_STATES:
                claim(name)
                self.log.info("Training job %s already exists with status %s: attaching to it", name, status)
                self._warn_if_different(request, described)
                return name, described
            if status not in REPLACEABLE_STATES:
                raise RuntimeError(f"training job {name} has unexpected status {status!r}")
            self.log.info("Training job %s ended %s: trying the next deterministic name", name, status)
            ended.append(f"{name} ({status})")
        raise RuntimeError(
            f"gave up after {max_replacements + 1} training job names that all ended Failed or Stopped: "
            + ", ".join(ended)
        )

    def _create(self, request: Mapping[str, Any], name: str) -> dict[str, Any] | None:
        """Create the job; None when we created it, or the describe of the job that won a race."""
        try:
            self.conn.create_training_job(**{**request, "TrainingJobName": name})
            return None
        except ClientError as error:
            if error_code(error) not in ("ResourceInUse", "ResourceInUseException"):
                raise
        # Another attempt of this task (or a second scheduler) created it between our describe and create.
        self.log.info("Training job %s was created concurrently: re-describing it", name)
        described = self.describe_or_none(name)
        if described is None:
            raise RuntimeError(
                f"CreateTrainingJob said {name} is in use, but DescribeTrainingJob does not find it"
            )
        return described

    def _warn_if_different(self, request: Mapping[str, Any], described: Mapping[str, Any]) -> None:
        """Same name, other settings (e.g. an edited DAG): the attached job keeps its own settings."""
        if "HyperParameters" in described and request.get("HyperParameters") != described["HyperParameters"]:
            self.log.warning(
                "Attached job %s was started with other hyperparameters than this task's request; "
                "use a new dataset version or job name to train with the new settings",
                described.get("TrainingJobName"),
            )

