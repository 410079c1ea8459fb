"""Operators for the explanation step: they validate cheaply here, then run the analysis code in the
runtime environment (smdebug, shap and xgboost cannot live beside Airflow 3) and return its small,
JSON-safe manifest of S3 URIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_contracts.explain_request import parse_explain_request, parse_report_request
from sm_explain_contracts.request_fields import refused_as
from sm_explain_ops.operators.runtime_compute import (
    RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    RuntimeComputeMixin,
    pop_runtime_compute_settings,
)
from sm_explain_ops.runtime import aws_env_from_connection, run_runtime_module


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
    """

    runtime_module = "sm_explain"
    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_version", "features_uri", "train_uri", "validation_uri",
        "model_artifact_uri", "debug_output_uri", "output_uri", "source", "options", "objective",
        *RUNTIME_COMPUTE_TEMPLATE_FIELDS,
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_runtime(context, self.build_request())

    def finish_runtime(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "Explanations for %s from the %s source: %d artifacts under %s",
            self.job_name, manifest.get("summary", {}).get("source"), len(manifest.get("artifacts", {})),
            self.output_uri,
        )
        return manifest


class BuildReportOperator(_RuntimeStep):
    """Write the one self-contained ``report.html`` of a run: rule verdicts, metrics, every figure and
    the outlier table, readable with no network."""

    runtime_module = "sm_explain.report"
    template_fields: Sequence[str] = aws_template_fields(
        "manifest", "verdict", "job_name", "dataset_version", "output_uri", *RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    )

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        verdict: dict[str, Any],
        job_name: str,
        dataset_version: str,
        output_uri: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = manifest
        self.verdict = verdict
        self.job_name = job_name
        self.dataset_version = dataset_version
        self.output_uri = output_uri

    def execute(self, context: Context) -> dict[str, Any]:
        request = {
            "manifest": self.manifest,
            "verdict": self.verdict,
            "job_name": self.job_name,
            "dataset_version": self.dataset_version,
            "output_uri": self.output_uri,
        }
        # The report runtime's own parse: an artifact outside the run's output is refused here, before the runtime
        # process (which would embed it) starts.
        with refused_as(ExplanationRequestError):
            parse_report_request(request)
        return self.run_runtime(context, request)

    def finish_runtime(self, result: dict[str, Any]) -> dict[str, Any]:
        self.log.info("Report: %s", result.get("report_uri"))
        return result
