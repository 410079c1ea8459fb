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

from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV, local_paths_allowed
from sm_explain_contracts.s3_uris import is_under
from sm_explain_ops.runtime import aws_env_from_connection, run_runtime_module
from sm_explain_ops.training_request import validate_s3_uri

EXPLANATION_SOURCES = ("model", "debugger", "auto")


def require_s3_uri(name: str, value: Any, *, allow_local: bool | None = None) -> str:
    """Refuse a malformed location before the runtime process (and any download) starts: S3 URIs get
    the training request's check (`training_request.fields`); a local absolute path only where the
    deployment allows local paths (`local_paths.local_paths_allowed`, the default) or the caller says so."""
    local_ok = local_paths_allowed() if allow_local is None else allow_local
    if isinstance(value, str) and value.startswith("/"):
        if local_ok:
            return value
        raise ValueError(
            f"{name} {value!r} is a local path, and local paths are off in this deployment: use an s3:// URI "
            f"(local runs and tests opt in with {ALLOW_LOCAL_SOURCES_ENV}=1)"
        )
    return validate_s3_uri(value, name)


class ExplainTrainingJobOperator(AwsBaseOperator[S3Hook]):
    """Make every analysis of the notebook for one training job and put it under ``output_uri``.

    ``source`` picks where SHAP values come from: ``model`` (computed from the model artifact and the staged
    rows: fast, and works without Debugger), ``debugger`` (the job's ``full_shap`` tensors, the
    notebook's way) or ``auto`` (Debugger tensors when the job has them). The manifest says which.
    ``objective`` (the job's) lets the ``debugger`` source go on from the tensors alone when the model
    artifact cannot be read.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "job_name", "dataset_version", "features_uri", "train_uri", "validation_uri",
        "model_artifact_uri", "debug_output_uri", "output_uri", "source", "options", "objective",
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
        if self.source not in EXPLANATION_SOURCES:
            raise ValueError(f"source must be one of {', '.join(EXPLANATION_SOURCES)}, got {self.source!r}")
        if self.source == "debugger" and not self.debug_output_uri:
            raise ValueError("source 'debugger' needs debug_output_uri (the job's Debugger output path)")
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a mapping, got {type(self.options).__name__}")
        request = {
            "job_name": self.job_name,
            "dataset_version": self.dataset_version,
            "features_uri": require_s3_uri("features_uri", self.features_uri),
            "train_uri": require_s3_uri("train_uri", self.train_uri),
            "validation_uri": require_s3_uri("validation_uri", self.validation_uri),
            "model_artifact_uri": require_s3_uri("model_artifact_uri", self.model_artifact_uri),
            "output_uri": require_s3_uri("output_uri", self.output_uri),
            "debug_output_uri": (
                require_s3_uri("debug_output_uri", self.debug_output_uri) if self.debug_output_uri else None
            ),
            "source": self.source,
        }
        if self.objective:
            request["objective"] = str(self.objective)
        return {**self.options, **request}

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.build_request()
        manifest = run_runtime_module("sm_explain", request, env=aws_env_from_connection(self.hook))
        self.log.info(
            "Explanations for %s from the %s source: %d artifacts under %s",
            self.job_name, manifest.get("summary", {}).get("source"), len(manifest.get("artifacts", {})),
            self.output_uri,
        )
        return manifest


class BuildReportOperator(AwsBaseOperator[S3Hook]):
    """Write the one self-contained ``report.html`` of a run: rule verdicts, metrics, every figure and
    the outlier table, readable with no network."""

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "manifest", "verdict", "job_name", "dataset_version", "output_uri",
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
        for name in ("manifest", "verdict"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be the upstream task's mapping, got {getattr(self, name)!r}")
        output_uri = require_s3_uri("output_uri", self.output_uri)
        artifacts = self.manifest.get("artifacts")
        if not isinstance(artifacts, dict):
            raise ValueError("manifest must hold an 'artifacts' mapping (the explain task's result)")
        for name, uri in artifacts.items():
            if not is_under(uri, output_uri):
                raise ValueError(
                    f"manifest artifact {name!r} {uri!r} is not under the run's output location {output_uri!r}: "
                    "the report reads only the run's own artifacts"
                )
        request = {
            "manifest": self.manifest,
            "verdict": self.verdict,
            "job_name": self.job_name,
            "dataset_version": self.dataset_version,
            "output_uri": output_uri,
        }
        result = run_runtime_module("sm_explain.report", request, env=aws_env_from_connection(self.hook))
        self.log.info("Report: %s", result.get("report_uri"))
        return result
