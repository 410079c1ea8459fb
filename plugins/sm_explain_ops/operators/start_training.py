"""Start (or re-attach to) one Debugger-configured XGBoost training job per DAG run and data set version.

Unlike the provider's ``SageMakerTrainingOperator`` this never launches a duplicate on retry,
checks the whole request before calling AWS, and pushes a small XCom (names and paths, not the
describe response). Waiting for training and rules is the TrainingAndRules sensor's job.

Job names include a deployment identity (``deployment`` / ``SM_EXPLAIN_DEPLOYMENT``, see
:mod:`sm_explain_ops.job_naming`), so two Airflow deployments in one account never share a job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_ops.hooks.training_jobs import (
    DebuggedTrainingHook,
    ForeignTrainingJobError,
    job_locations,
    suffixed_job_name,
)
from sm_explain_ops.job_naming import (
    DEPLOYMENT_ENV,
    deployment_identity,
    training_job_name,
    validate_training_job_name,
)
from sm_explain_ops.links import TrainingJobLink, TrainingJobLogsLink, is_custom_endpoint
from sm_explain_ops.templating import resolved_at_run_time
from sm_explain_ops.training_request import TrainingSpec, build_training_request, validate_s3_uri


class StartDebuggedTrainingOperator(AwsBaseOperator[DebuggedTrainingHook]):
    """Start a debugged training job named after the DAG, the run and the data set version.

    :param spec: a :class:`TrainingSpec` or the plain mapping :meth:`TrainingSpec.from_dict` takes
        (templated).
    :param dataset_version: the staged data set version (templated); part of the job name.
    :param job_name: an explicit job name instead of the derived one (templated).
    :param deployment: this Airflow deployment's name, part of the derived job name (templated);
        default ``$SM_EXPLAIN_DEPLOYMENT``, else the connection id and the spec's output path.
    :param max_replacements: how many follow-up names (``-r1``...) to try when jobs of the name
        ended Failed or Stopped.
    :param explanations_root: where the explanations of this run's jobs go (templated): the result then
        holds ``explanations_uri``, ``<explanations_root>/<job>/explanations/``. Only this task knows the job
        name, and a replacement job (``-r1``) must not write into the explanations of the one it replaces.

    Returns ``{"job_name", "training_job_arn", "debug_output_path", "model_artifact_path"}`` (plus
    ``explanations_uri``), the paths as the job itself has them (an attached job keeps the settings it was
    started with). Each key is also its own XCom (``multiple_outputs``), so a downstream task takes
    ``start.output["job_name"]``.
    """

    aws_hook_class = DebuggedTrainingHook
    template_fields: Sequence[str] = aws_template_fields(
        "spec", "dataset_version", "job_name", "deployment", "explanations_root"
    )
    template_fields_renderers = {"spec": "json"}
    operator_extra_links = (TrainingJobLink(), TrainingJobLogsLink())
    ui_color = "#a0d9c4"

    def __init__(
        self,
        *,
        spec: TrainingSpec | Mapping[str, Any],
        dataset_version: str,
        job_name: str | None = None,
        deployment: str | None = None,
        max_replacements: int = 20,
        explanations_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        # Held as plain values so the spec can be templated and serialized with the DAG.
        self.spec = spec.to_dict() if isinstance(spec, TrainingSpec) else spec
        self.dataset_version = dataset_version
        self.job_name = job_name
        self.deployment = deployment
        self.max_replacements = max_replacements
        self.explanations_root = explanations_root
        self._job_name_in_use: str | None = None
        # Fail at DAG parse time when the input is already concrete (pure Python, no AWS call).
        if not resolved_at_run_time(self.spec):
            TrainingSpec.from_dict(self.spec)
        if explanations_root is not None and not resolved_at_run_time(explanations_root):
            validate_s3_uri(explanations_root, "explanations_root")
        if job_name is not None and not resolved_at_run_time(job_name):
            validate_training_job_name(job_name)
        if deployment is not None and not resolved_at_run_time(deployment):
            # Only the explicit name is checked here; the output path matters only when there is none.
            deployment_identity(deployment, aws_conn_id=self.aws_conn_id, output_s3_uri="s3://unused")

    def _names(self, context: Context, spec: TrainingSpec) -> tuple[str, Callable[[int], str]]:
        """The first job name and the rule for follow-up names after Failed/Stopped jobs."""
        if self.job_name:
            base = validate_training_job_name(self.job_name)
            return base, lambda n: suffixed_job_name(base, n)
        deployment = deployment_identity(
            self.deployment, aws_conn_id=self.aws_conn_id, output_s3_uri=spec.output_s3_uri
        )
        self.log.info("Training job names derive from deployment identity %s", deployment)
        dag_id = context["dag"].dag_id
        run_id = context["dag_run"].run_id if context.get("dag_run") is not None else context["run_id"]
        version = self.dataset_version

        def name_for(attempt: int) -> str:
            return training_job_name(dag_id, run_id, version, attempt, deployment=deployment)

        return name_for(0), name_for

    def execute(self, context: Context) -> dict[str, Any]:
        spec = TrainingSpec.from_dict(self.spec)
        if not isinstance(self.dataset_version, str) or not self.dataset_version.strip():
            raise ValueError(f"dataset_version must be a non-empty string, got {self.dataset_version!r}")
        if self.explanations_root is not None:
            validate_s3_uri(self.explanations_root, "explanations_root")
        name, name_for = self._names(context, spec)

        connection_region = self.hook.conn_region_name  # client metadata only: no AWS request
        if spec.region and connection_region and spec.region != connection_region:
            raise ValueError(
                f"spec region {spec.region!r} differs from the connection's region {connection_region!r}: "
                "image URIs would not match where the job runs"
            )
        region = spec.region or connection_region
        request = build_training_request(spec, name, region=region)  # validated before any AWS call

        def claim(claimed: str) -> None:  # on_kill during the start stops what we may have created
            self._job_name_in_use = claimed

        try:
            name, described = self.hook.start_or_attach(
                request, name_for, max_replacements=self.max_replacements, on_claim=claim
            )
        except ForeignTrainingJobError as error:
            self._job_name_in_use = None  # never stop someone else's job
            hint = (
                "Pass another job_name."
                if self.job_name
                else f"Give each Airflow deployment its own name: set {DEPLOYMENT_ENV} (or the operator's "
                "deployment argument), e.g. 'dev' and 'prod'."
            )
            # The same name and the same job on every retry: retrying cannot help.
            raise AirflowFailException(f"{error} {hint}") from error

        endpoint_url = self.hook.conn.meta.endpoint_url
        TrainingJobLink.persist(
            context=context,
            operator=self,
            region_name=region,
            aws_partition=self.hook.conn_partition,
            job_name=name,
            endpoint_url=endpoint_url if is_custom_endpoint(endpoint_url) else None,
        )
        result = {"job_name": name, "training_job_arn": described.get("TrainingJobArn"), **job_locations(described)}
        if self.explanations_root is not None:
            result["explanations_uri"] = f"{self.explanations_root.rstrip('/')}/{name}/explanations/"
        return result

    def on_kill(self) -> None:
        """Stop the job this task started or attached to, so a killed task leaves nothing running."""
        if self._job_name_in_use:
            self.hook.stop_for_kill(self._job_name_in_use)
