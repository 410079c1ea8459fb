"""Where a runtime step computes: a SageMaker Processing job on the runtime image, or the Airflow worker.

``StageDatasetOperator``, ``ExplainTrainingJobOperator`` and ``BuildReportOperator`` each hand one JSON request
to one runtime module. With a runtime image (``runtime_image_uri``, default ``$SM_EXPLAIN_RUNTIME_IMAGE_URI``)
the module runs as a processing job (``compute="processing"``, the default then): the request goes to S3 under
the run's ``processing_uri``, the job runs ``python -m <module> --request R --result S`` in the image, and its
``result.json`` becomes the task's XCom, the same small JSON the worker path returns. ``compute="worker"`` (the
default without an image) runs the module in the worker's runtime venv (``sm_explain_ops.runtime``).

Job names derive from the deployment, DAG, run and task (``job_naming.processing_job_name``): a retried task
re-attaches to its InProgress job, reads a Completed job's result, and starts ``-r1``... after Failed or
Stopped. A refused request (the runtime's exit 2) reaches the task through the container's termination
message and fails it without retries, with the runtime's own words. While the task waits on a job (blocking or
deferred), its log shows the job's new CloudWatch lines, every host's stream (``sm_explain_ops.hooks.job_logs``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import Context, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sm_explain_contracts.envelope import bad_input_from_termination_message
from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV
from sm_explain_ops.hooks.job_logs import (
    JobLogFollower,
    limits_as_dict,
    log_limits_from,
    logs_client_factory,
    push_initial_checkpoint,
)
from sm_explain_ops.hooks.processing_jobs import (
    CONTAINER_RESULT,
    CONTAINER_RESULT_DIR,
    ForeignProcessingJobError,
    RuntimeProcessingHook,
    runtime_processing_config,
)
from sm_explain_ops.job_naming import TRAINING_JOB_NAME_PATTERN, deployment_identity, processing_job_name
from sm_explain_ops.links import ProcessingJobLink, is_custom_endpoint
from sm_explain_ops.runtime import RuntimeInputError, RuntimeTaskError
from sm_explain_ops.training_request import validate_s3_uri

RUNTIME_IMAGE_ENV = "SM_EXPLAIN_RUNTIME_IMAGE_URI"
ROLE_ARN_ENV = "SM_EXPLAIN_ROLE_ARN"
COMPUTE_CHOICES = ("processing", "worker")
#: The templated settings every runtime operator adds to its own template_fields.
RUNTIME_COMPUTE_TEMPLATE_FIELDS = ("runtime_image_uri", "compute", "role_arn", "processing_uri")
_EVENT_STATUSES = frozenset({"success", "failed", "stopped", "timeout", "error"})
_RESULT_NAME = CONTAINER_RESULT.rsplit("/", 1)[1]


#: Every runtime operator's compute settings and their defaults: ``runtime_image_uri`` (templated; None =
#: ``$SM_EXPLAIN_RUNTIME_IMAGE_URI``, "" = none), ``compute`` (templated; "processing", "worker" or None for the
#: default), ``role_arn`` (templated; None = ``$SM_EXPLAIN_ROLE_ARN``), ``processing_uri`` (templated; where the
#: jobs' requests and results go, None = the operator's own output), the job's instance type, ``deferrable``
#: (None = ``[operators] default_deferrable``), the seconds between two describes and ``log_limits`` (what
#: following the job's CloudWatch log may cost and how long its last read waits; ``LogLimits`` or its fields).
RUNTIME_COMPUTE_DEFAULTS: dict[str, Any] = {
    "runtime_image_uri": None,
    "compute": None,
    "role_arn": None,
    "processing_uri": None,
    "instance_type": "ml.m5.xlarge",
    "deferrable": None,
    "check_interval": 5.0,
    "log_limits": None,
}


def pop_runtime_compute_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the compute settings from an operator's kwargs (BaseOperator refuses unknown ones)."""
    return {key: kwargs.pop(key, default) for key, default in RUNTIME_COMPUTE_DEFAULTS.items()}


@dataclass(frozen=True)
class ProcessingStep:
    """One processing job of a task: the module it runs on which request, on how many instances.

    ``name_suffix`` tells apart the jobs of a task that runs several (the sharded explanation's ``map`` and
    ``reduce``); ``module_args``, ``data_inputs`` and ``output_local_path`` as in ``runtime_processing_config``."""

    module: str
    request: dict[str, Any]
    name_suffix: str = ""
    instance_count: int = 1
    module_args: tuple[str, ...] | None = None
    data_inputs: tuple[dict[str, Any], ...] = ()
    output_local_path: str = CONTAINER_RESULT_DIR


def job_output_uri(described: Mapping[str, Any]) -> str:
    """Where a described job's one output went (no trailing slash)."""
    return str(described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]).rstrip("/")


class RuntimeComputeMixin:
    """Run ``self.runtime_module`` on the request, as a processing job or on the worker.

    The operator sets ``runtime_module``, hands ``__init__``'s kwargs through :func:`pop_runtime_compute_settings`
    to :meth:`init_runtime_compute`, adds ``RUNTIME_COMPUTE_TEMPLATE_FIELDS`` to its template fields, gives
    :meth:`run_on_worker` (the worker path, ``sm_explain_ops.runtime.run_runtime_module``),
    :meth:`default_processing_uri` and :meth:`finish_runtime` (its log line and XCom from the module's result), and
    from ``execute`` returns :meth:`run_runtime`; ``execute_complete`` and ``on_kill`` come from here."""

    runtime_module: str
    #: How long the job may run (StoppingCondition.MaxRuntimeInSeconds); None = SageMaker's default, a day.
    max_runtime_seconds: float | None = None
    operator_extra_links = (ProcessingJobLink(),)
    hook: S3Hook
    task_id: str
    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None

    def init_runtime_compute(self, settings: Mapping[str, Any]) -> None:
        """Take the settings :func:`pop_runtime_compute_settings` removed from the operator's kwargs."""
        for key, value in settings.items():
            setattr(self, key, value)
        self.log_limits = limits_as_dict(log_limits_from(self.log_limits))  # checked now, not after the job
        if self.deferrable is None:
            self.deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self._processing_job_name: str | None = None
        self._processing_hook: RuntimeProcessingHook | None = None

    # -- what the operator provides ------------------------------------------------------------------------------
    def default_processing_uri(self) -> str:
        raise NotImplementedError

    def finish_runtime(self, result: dict[str, Any]) -> dict[str, Any]:
        return result

    def run_on_worker(self, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # -- the setting -----------------------------------------------------------------------------------------------
    def image_uri(self) -> str:
        """The runtime image: the argument (an empty string is "none"), else ``$SM_EXPLAIN_RUNTIME_IMAGE_URI``."""
        image = self.runtime_image_uri if self.runtime_image_uri is not None else os.environ.get(RUNTIME_IMAGE_ENV)
        return str(image or "").strip()

    def compute_mode(self) -> str:
        """``processing`` or ``worker``: the argument, else processing when a runtime image is set."""
        image = self.image_uri()
        compute = str(self.compute or "").strip() or ("processing" if image else "worker")
        if compute not in COMPUTE_CHOICES:
            raise AirflowFailException(
                f"compute is {self.compute!r}; it must be one of {', '.join(COMPUTE_CHOICES)} (or empty for the "
                "default: processing when a runtime image is set, else worker)"
            )
        if compute == "processing" and not image:
            raise AirflowFailException(
                f"compute is 'processing' but no runtime image is set: give runtime_image_uri (or {RUNTIME_IMAGE_ENV}) "
                "the sm-explain-runtime image's URI (docker/runtime.Dockerfile), or compute='worker'"
            )
        return compute

    def run_runtime(self, context: Context, request: dict[str, Any]) -> dict[str, Any]:
        if self.compute_mode() == "worker":
            return self.finish_runtime(self.run_on_worker(request))
        return self._run_as_processing_job(context, request)

    # -- processing mode -----------------------------------------------------------------------------------------
    def processing_hook(self) -> RuntimeProcessingHook:
        """One hook (one SageMaker client) per task run: building one costs a client and its model each time."""
        if self._processing_hook is None:
            self._processing_hook = RuntimeProcessingHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                                          verify=self.verify, config=self.botocore_config)
        return self._processing_hook

    def _run_as_processing_job(self, context: Context, request: dict[str, Any]) -> dict[str, Any]:
        return self.run_processing_step(
            context, ProcessingStep(self.runtime_module, request), "execute_complete", self._job_outcome)

    def run_processing_step(self, context: Context, step: ProcessingStep, method_name: str,
                            on_ended: Callable[[str, Mapping[str, Any]], Any]) -> Any:
        """Start (or attach to) the step's job; when it has ended, ``on_ended(name, describe)``. Deferrable, the
        task defers to ``method_name`` (which takes the trigger's event, see :meth:`ended_job`) instead."""
        root = self.processing_root()
        hook = self.processing_hook()
        config_for, name_for = self._job_spec(context, step, root)

        def write_request(name: str) -> None:  # before the create: the job reads it at its start
            self._processing_job_name = name  # from here on, a kill stops what this task may have created
            bucket, key = S3Hook.parse_s3_url(f"{root}/{name}/request/request.json")
            self.hook.load_string(json.dumps(step.request, indent=2), key=key, bucket_name=bucket, replace=True)

        try:
            name, described = hook.start_or_attach(config_for, name_for, before_create=write_request)
        except ForeignProcessingJobError as error:
            self._processing_job_name = None  # never stop someone else's job
            raise AirflowFailException(str(error)) from error
        self._processing_job_name = name
        endpoint_url = hook.conn.meta.endpoint_url
        ProcessingJobLink.persist(
            context=context, operator=self, region_name=hook.conn_region_name, aws_partition=hook.conn_partition,
            job_name=name, endpoint_url=endpoint_url if is_custom_endpoint(endpoint_url) else None,
        )
        self.log.info("python -m %s runs as processing job %s on %d instance(s) (%s)",  # type: ignore[attr-defined]
                      step.module, name, step.instance_count, described.get("ProcessingJobStatus"))
        if described.get("ProcessingJobStatus") == "InProgress":
            if self.deferrable:
                from sm_explain_ops.triggers.processing_jobs import RuntimeProcessingTrigger

                push_initial_checkpoint(context, log_limits_from(self.log_limits), self.log)  # type: ignore[attr-defined]
                self.defer(  # type: ignore[attr-defined]
                    trigger=RuntimeProcessingTrigger(
                        job_name=name, waiter_delay=max(1, int(self.check_interval)),
                        waiter_max_attempts=_attempts(self.max_runtime_seconds, self.check_interval),
                        aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                        botocore_config=self.botocore_config, log_limits=self.log_limits,
                    ),
                    method_name=method_name,
                )
            follower = JobLogFollower(
                logs_client_factory(self.aws_conn_id, self.region_name, self.verify, self.botocore_config),
                self.log, limits=log_limits_from(self.log_limits))  # type: ignore[attr-defined]
            described = hook.wait_until_ended(name, self.check_interval, follower)
        return on_ended(name, described)

    def processing_root(self) -> str:
        """Where this task's jobs keep their requests and results: ``processing_uri``, else the operator's default."""
        root = str(self.processing_uri or self.default_processing_uri()).rstrip("/")
        try:
            validate_s3_uri(root + "/", "processing_uri")
        except ValueError as error:  # the same URI on every retry: retrying cannot help
            raise AirflowFailException(str(error)) from error
        return root

    def _role_arn(self) -> str:
        role_arn = str(self.role_arn or os.environ.get(ROLE_ARN_ENV) or "")
        if not role_arn:
            raise AirflowFailException(
                f"a processing job needs an execution role: give role_arn (or {ROLE_ARN_ENV}), or compute='worker'"
            )
        return role_arn

    def _job_spec(self, context: Context, step: ProcessingStep, root: str) -> tuple[Any, Any]:
        """The config of a job of a given name, and the deterministic names of this step's jobs."""
        role_arn = self._role_arn()
        deployment = deployment_identity(None, aws_conn_id=self.aws_conn_id, output_s3_uri=root)
        dag_id = context["dag"].dag_id
        run_id = context["dag_run"].run_id if context.get("dag_run") is not None else context["run_id"]
        ti = context.get("ti")
        map_index = getattr(ti, "map_index", -1) if ti is not None else -1
        task = self.task_id if map_index is None or map_index < 0 else f"{self.task_id}.{map_index}"
        if step.name_suffix:
            task = f"{task}.{step.name_suffix}"
        environment = {"AWS_DEFAULT_REGION": self.processing_hook().conn_region_name or ""}
        environment = {key: value for key, value in environment.items() if value}
        if os.environ.get(ALLOW_LOCAL_SOURCES_ENV, "").strip() == "1":  # only where the deployment allows them
            environment[ALLOW_LOCAL_SOURCES_ENV] = "1"
        max_runtime = int(self.max_runtime_seconds or 86400)

        def config_for(name: str) -> dict[str, Any]:
            return runtime_processing_config(
                name=name, module=step.module, image_uri=self.image_uri(), role_arn=role_arn,
                request_uri=f"{root}/{name}/request/", result_uri=f"{root}/{name}/result/",
                environment=environment, instance_type=self.instance_type, instance_count=step.instance_count,
                max_runtime_seconds=max_runtime, module_args=step.module_args, data_inputs=step.data_inputs,
                output_local_path=step.output_local_path,
            )

        def name_for(attempt: int) -> str:
            return processing_job_name(dag_id, run_id, task, attempt, deployment=deployment)

        return config_for, name_for

    def raise_job_failure(self, name: str, described: Mapping[str, Any], module: str) -> None:
        """A job that did not complete, as the worker path raises it: bad input (the runtime's exit 2, its
        message through the termination message) without retries, anything else retryable, naming the job."""
        status = described.get("ProcessingJobStatus")
        reason = described.get("FailureReason") or "(no FailureReason)"
        refused = bad_input_from_termination_message(described.get("ExitMessage")) or \
            bad_input_from_termination_message(described.get("FailureReason"))
        if status == "Failed" and refused:
            raise RuntimeInputError(refused)
        if status == "Stopped" and not described.get("FailureReason"):
            reason = _stopped_reason(described)
        raise RuntimeTaskError(f"processing job {name} (python -m {module}) ended {status}: {reason}")

    def _job_outcome(self, name: str, described: Mapping[str, Any]) -> dict[str, Any]:
        """The task's XCom from a Completed job's result.json, else the failure (:meth:`raise_job_failure`)."""
        if described.get("ProcessingJobStatus") != "Completed":
            self.raise_job_failure(name, described, self.runtime_module)
        result_uri = f"{job_output_uri(described)}/{_RESULT_NAME}"
        bucket, key = S3Hook.parse_s3_url(result_uri)
        try:
            result = json.loads(read_result_object(self.hook.conn, bucket, key))
        except Exception as error:
            raise RuntimeTaskError(
                f"processing job {name} (python -m {self.runtime_module}) is Completed but its result "
                f"{result_uri} could not be read: {error}"
            ) from error
        if not isinstance(result, dict):
            raise RuntimeTaskError(f"processing job {name} wrote no JSON object to {result_uri}")
        return self.finish_runtime(result)

    def ended_job(self, event: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """The trigger's event, checked, and the job's own describe (its ExitMessage says bad input)."""
        if not isinstance(event, dict) or event.get("status") not in _EVENT_STATUSES:
            raise AirflowException(f"the processing trigger sent an event this task cannot read: {event!r}")
        name = event.get("job_name")
        if not isinstance(name, str) or not TRAINING_JOB_NAME_PATTERN.fullmatch(name):
            raise AirflowException(f"the processing trigger's event names no valid job: {event!r}")
        self._processing_job_name = name
        described = self.processing_hook().describe_processing_job(name)
        if described.get("ProcessingJobStatus") not in ("Completed", "Failed", "Stopped"):
            raise RuntimeTaskError(
                f"processing job {name} is still {described.get('ProcessingJobStatus')} after the wait ended "
                f"({event.get('status')}: {event.get('message')})"
            )
        return name, described

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resumed after the deferred wait on the task's (last) job: its outcome."""
        return self._job_outcome(*self.ended_job(event))

    def on_kill(self) -> None:
        """Stop the processing job this task started or attached to (the worker path stops its own process)."""
        if self._processing_job_name:
            self.processing_hook().stop_for_kill(self._processing_job_name)


def _stopped_reason(described: Mapping[str, Any]) -> str:
    """Why a job with no FailureReason stopped: SageMaker stops a job at its StoppingCondition, else on a
    StopProcessingJob (a killed task's, or anyone's)."""
    limit = (described.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    started, ended = described.get("ProcessingStartTime"), described.get("ProcessingEndTime")
    if limit and started is not None and ended is not None and hasattr(ended, "__sub__"):
        ran = (ended - started).total_seconds()
        if ran >= float(limit):
            return (f"it ran {ran:.0f} s and reached its StoppingCondition.MaxRuntimeInSeconds ({limit} s): give the "
                    "step a longer runtime limit or less data")
    return "someone or something called StopProcessingJob (a killed task stops its job)"


#: result.json becomes the task's XCom, which is small JSON: a larger object is not a runtime module's result.
MAX_RESULT_BYTES = 1024 * 1024


def read_result_object(client: Any, bucket: str, key: str) -> bytes:
    """The bytes of a job's result.json, through the task's own S3 client (no second client and model to load,
    as the S3Hook's ``read_key`` builds a resource for each task), at most ``MAX_RESULT_BYTES`` of them."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        data = body.read(MAX_RESULT_BYTES + 1)
    finally:
        body.close()
    if len(data) > MAX_RESULT_BYTES:
        raise ValueError(f"it is larger than {MAX_RESULT_BYTES:,} bytes; a result is a small JSON object")
    return data


def _attempts(max_runtime_seconds: float | None, check_interval: float) -> int:
    """Enough waiter attempts to outlast the job's own MaxRuntime (SageMaker ends the job then)."""
    return int((max_runtime_seconds or 86400) / max(1.0, check_interval)) + 10

