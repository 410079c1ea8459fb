"""Operators for the explanation step: they validate cheaply here, then run the analysis code in the
runtime environment (smdebug, shap and xgboost cannot live beside Airflow 3) and return its small,
JSON-safe manifest of S3 URIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import BotoCoreError, ClientError

from sm_explain_contracts.explain_request import (
    MAX_PARTIALS,
    parse_explain_request,
    parse_reduce_request,
    parse_report_request,
)
from sm_explain_contracts.request_fields import given, refused_as
from sm_explain_contracts.train_parts import staged_channel_prefixes
from sm_explain_ops.links import ExplanationReportLink, ProcessingJobLink, is_custom_endpoint
from sm_explain_ops.operators.runtime_compute import (
    RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    ProcessingStep,
    RuntimeComputeMixin,
    job_output_uri,
    pop_runtime_compute_settings,
)
from sm_explain_ops.report_links import PreviousReport, find_previous_report, s3_console_url
from sm_explain_ops.runtime import RuntimeTaskError, aws_env_from_connection, run_runtime_module

#: SageMaker Processing's InstanceCount bound.
MAX_INSTANCE_COUNT = 100
# Where a map instance finds its share of the channels and writes its partials (sm_explain.map_job).
MAP_INPUT_ROOT = "/opt/ml/processing/input/data"
MAP_PARTIALS_DIR = "/opt/ml/processing/output/partials"
MAP_ARGS = ("--input", MAP_INPUT_ROOT, "--partials", MAP_PARTIALS_DIR,
            "--resource-config", "/opt/ml/config/resourceconfig.json")
PARTIAL_SUFFIX = ".partial"
#: The XCom key under which a split explanation names its map job (its link names the reduce job).
MAP_JOB_XCOM_KEY = "map_processing_job"


class ExplanationRequestError(AirflowFailException, ValueError):
    """The explanation or report request is refused before the runtime starts; a retry cannot fix it."""


class _RuntimeStep(RuntimeComputeMixin, AwsBaseOperator[S3Hook]):
    """An explanation-step operator whose runtime module writes under ``output_uri``; it runs as a processing job or
    on the worker (:mod:`sm_explain_ops.operators.runtime_compute`)."""

    aws_hook_class = S3Hook
    output_uri: str

    def __init__(self, **kwargs: Any) -> None:
        settings = pop_runtime_compute_settings(kwargs)
        super().__init__(**kwargs)
        self.init_runtime_compute(settings)

    def default_processing_uri(self) -> str:
        return f"{self.output_uri.rstrip('/')}/processing/"

    def run_on_worker(self, request: dict[str, Any]) -> dict[str, Any]:
        return run_runtime_module(self.runtime_module, request, env=aws_env_from_connection(self.hook))


class ExplainTrainingJobOperator(_RuntimeStep):
    """Make every analysis of the notebook for one training job and put it under ``output_uri``.

    ``source`` picks where SHAP values come from: ``model`` (computed from the model artifact and the staged
    rows: fast, and works without Debugger), ``debugger`` (the job's ``full_shap`` tensors, the
    notebook's way) or ``auto`` (Debugger tensors when the job has them). The manifest says which.
    ``objective`` (the job's) lets the ``debugger`` source go on from the tensors alone when the model
    artifact cannot be read.

    ``instance_count`` N > 1 (processing only) splits the full-data work: a map job on N instances, each given a
    share of the staged part files (``ShardedByS3Key``: stage with ``train_parts`` >= N), writes partial results
    (``python -m sm_explain.map_job``); then a reduce job (``python -m sm_explain.reduce``) merges them and draws
    everything. The manifest is the one a single job writes, and its tables are the same bytes.
    """

    runtime_module = "sm_explain"
    operator_extra_links = (ProcessingJobLink(), ExplanationReportLink())
    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_version", "features_uri", "train_uri", "validation_uri",
        "model_artifact_uri", "debug_output_uri", "output_uri", "source", "options", "objective",
        "instance_count", *RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    )

    def __init__(
        self,
        *,
        job_name: str,
        dataset_version: str,
        features_uri: str,
        train_uri: str,
        validation_uri: str,
        model_artifact_uri: str,
        output_uri: str,
        debug_output_uri: str | None = None,
        source: str = "model",
        options: dict[str, Any] | None = None,
        objective: str | None = None,
        instance_count: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.instance_count = instance_count
        self.job_name = job_name
        self.dataset_version = dataset_version
        self.features_uri = features_uri
        self.train_uri = train_uri
        self.validation_uri = validation_uri
        self.model_artifact_uri = model_artifact_uri
        self.output_uri = output_uri
        self.debug_output_uri = debug_output_uri
        self.source = source
        self.options = options or {}
        self.objective = objective

    def build_request(self) -> dict[str, Any]:
        """The runtime request, checked with the runtime's own parse (sm_explain_contracts.explain_request), so a
        bad field or location fails here, in the runtime's words, before the runtime process starts."""
        if not isinstance(self.options, dict):
            raise ExplanationRequestError(f"options must be a mapping, got {type(self.options).__name__}")
        request = {
            **self.options,
            "job_name": self.job_name,
            "dataset_version": self.dataset_version,
            "features_uri": self.features_uri,
            "train_uri": self.train_uri,
            "validation_uri": self.validation_uri,
            "model_artifact_uri": self.model_artifact_uri,
            "output_uri": self.output_uri,
            "debug_output_uri": self.debug_output_uri or None,  # Debugger off: no output path (None or "")
            "source": self.source,
        }
        if self.objective:
            request["objective"] = str(self.objective)
        with refused_as(ExplanationRequestError):
            parse_explain_request(request)
        return request

    def instances(self) -> int:
        """``instance_count`` as an integer (a template renders a string), checked against where it runs."""
        count = self.instance_count
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count.strip())
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_INSTANCE_COUNT:
            raise ExplanationRequestError(
                f"instance_count must be an integer from 1 to {MAX_INSTANCE_COUNT}, got {self.instance_count!r}")
        if count > 1 and self.compute_mode() != "processing":
            raise ExplanationRequestError(
                f"instance_count {count} splits the explanation across Processing instances, but this task computes "
                "on the worker: set a runtime image (runtime_image_uri) or instance_count 1")
        return count

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.build_request()
        count = self.instances()
        if count == 1:
            return self.run_runtime(context, request)
        return self.run_processing_step(context, self._map_step(request, count), "map_complete",
                                        lambda name, described: self._after_map(context, name, described))

    def _map_step(self, request: dict[str, Any], count: int) -> ProcessingStep:
        try:
            prefixes = staged_channel_prefixes(self.train_uri, self.validation_uri)
        except ValueError as error:
            raise ExplanationRequestError(str(error)) from error
        inputs = tuple({"InputName": channel, "S3Uri": prefix, "LocalPath": f"{MAP_INPUT_ROOT}/{channel}",
                        "S3DataDistributionType": "ShardedByS3Key"} for channel, prefix in prefixes.items())
        return ProcessingStep("sm_explain.map_job", request, name_suffix="map", instance_count=count,
                              module_args=MAP_ARGS, data_inputs=inputs, output_local_path=MAP_PARTIALS_DIR)

    def map_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resumed after the deferred wait on the map job: the reduce next."""
        name, described = self.ended_job(event)
        return self._after_map(context, name, described)

    def _after_map(self, context: Context, name: str, described: dict[str, Any]) -> dict[str, Any]:
        """The map job's partials, then the reduce job over them."""
        if described.get("ProcessingJobStatus") != "Completed":
            self.raise_job_failure(name, described, "sm_explain.map_job")
        prefix = job_output_uri(described) + "/"
        bucket, key = S3Hook.parse_s3_url(prefix)
        keys = sorted(k for k in self.hook.list_keys(bucket_name=bucket, prefix=key, max_items=MAX_PARTIALS * 4)
                      if k.endswith(PARTIAL_SUFFIX))
        if not keys or len(keys) > MAX_PARTIALS:
            raise RuntimeTaskError(f"processing job {name} (python -m sm_explain.map_job) is Completed but wrote "
                                   f"{len(keys)} partials under {prefix} (expected 1 to {MAX_PARTIALS})")
        self.log.info("Map job %s wrote %d partials; reducing them", name, len(keys))
        ti = context.get("ti")
        if ti is not None:  # the link names the reduce job; this names the map job beside it
            ti.xcom_push(key=MAP_JOB_XCOM_KEY, value=name)
        request = {**self.build_request(), "partial_uris": [f"s3://{bucket}/{k}" for k in keys]}
        with refused_as(ExplanationRequestError):
            parse_reduce_request(request)
        return self.run_processing_step(context, ProcessingStep("sm_explain.reduce", request, name_suffix="reduce"),
                                        "execute_complete", self._job_outcome)

    def finish_runtime(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "Explanations for %s from the %s source: %d artifacts under %s",
            self.job_name, manifest.get("summary", {}).get("source"), len(manifest.get("artifacts", {})),
            self.output_uri,
        )
        return manifest


class BuildReportOperator(_RuntimeStep):
    """Write the one self-contained ``report.html`` of a run: the verdict first (rules, final metrics, the run's
    facts and links), a table of contents, every figure with a caption, the outliers with their force plots;
    readable with no network.

    The links are what only this side knows, each checked by the request contract (``links``, http(s) or s3 only):
    ``training_job`` is the verdict's ``job_url`` (the wait task made it from its SageMaker endpoint: the console on
    AWS, the local endpoint's log page), ``staged_data`` is ``data_uri``, and with ``version_root``
    (``s3://<bucket>/<prefix>/<version>``) the newest report of the latest earlier data set version is looked up
    (:mod:`sm_explain_ops.report_links`). On AWS (the connection's S3 endpoint is AWS's) each S3 location also gets
    its S3 console page. ``links`` given here win over all of these.
    """

    runtime_module = "sm_explain.report"
    operator_extra_links = (ProcessingJobLink(), ExplanationReportLink())
    template_fields: Sequence[str] = aws_template_fields(
        "manifest", "verdict", "job_name", "dataset_version", "output_uri", "data_uri", "version_root", "links",
        *RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    )

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        verdict: dict[str, Any],
        job_name: str,
        dataset_version: str,
        output_uri: str,
        data_uri: str | None = None,
        version_root: str | None = None,
        links: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = manifest
        self.verdict = verdict
        self.job_name = job_name
        self.dataset_version = dataset_version
        self.output_uri = output_uri
        self.data_uri = data_uri
        self.version_root = version_root
        self.links = links

    def _given_links(self) -> dict[str, Any]:
        if self.links is not None and not isinstance(self.links, dict):
            raise ExplanationRequestError(f"links must be a mapping of link name to URL, got {given(self.links)}")
        job_url = self.verdict.get("job_url") if isinstance(self.verdict, dict) else None
        derived = {"training_job": job_url or None, "staged_data": self.data_uri or None}
        return {name: value for name, value in {**derived, **(self.links or {})}.items() if value is not None}

    def _s3_console(self) -> Any:
        """A function giving an S3 location's console page when this connection's S3 is AWS's, else None."""
        try:
            client = self.hook.conn
        except (BotoCoreError, ValueError) as error:
            self.log.warning("No S3 console links in the report: the connection gives no S3 client: %s", error)
            return None
        if is_custom_endpoint(client.meta.endpoint_url):
            return None
        domain = BaseAwsLink.get_aws_domain(client.meta.partition) or "aws.amazon.com"
        return lambda uri: s3_console_url(uri, client.meta.region_name, domain)

    def _previous_report(self) -> PreviousReport | None:
        """Best effort: the report is worth writing without this link, so a lookup that fails is logged and skipped."""
        try:
            previous = find_previous_report(self.hook.conn, str(self.version_root), self.dataset_version)
        except (ClientError, BotoCoreError, ValueError) as error:
            self.log.warning("Not linking the previous data set version's report: looking for it under %s failed: "
                             "%s", self.version_root, error)
            return None
        if previous is None:
            self.log.info("No earlier data set version under %s has a report to link", self.version_root)
        else:
            self.log.info("Previous data set version %s: its report is %s", previous.dataset_version, previous.uri)
        return previous

    def build_request(self) -> dict[str, Any]:
        """The runtime request, checked with the report runtime's own parse: an artifact outside the run's output or
        a bad link is refused here, before any S3 call and before the runtime process (which would embed what the
        manifest names) starts. Then what needs S3: the previous version's report and the console links."""
        links = self._given_links()
        request: dict[str, Any] = {
            "manifest": self.manifest,
            "verdict": self.verdict,
            "job_name": self.job_name,
            "dataset_version": self.dataset_version,
            "output_uri": self.output_uri,
            "links": links,
        }
        with refused_as(ExplanationRequestError):
            parse_report_request(request)
        if self.version_root and "previous_report" not in links:
            previous = self._previous_report()
            if previous is not None:
                links["previous_report"] = previous.uri
                request["previous_dataset_version"] = previous.dataset_version
        locations = [(name, links[name]) for name in ("staged_data", "previous_report")
                     if name in links and f"{name}_console" not in links]
        console = self._s3_console() if locations else None
        if console is not None:
            links.update({f"{name}_console": console(uri) for name, uri in locations})
        with refused_as(ExplanationRequestError):
            parse_report_request(request)
        return request

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_runtime(context, self.build_request())

    def finish_runtime(self, result: dict[str, Any]) -> dict[str, Any]:
        self.log.info("Report: %s", result.get("report_uri"))
        return result
