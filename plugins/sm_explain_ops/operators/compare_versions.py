"""Compare explanations across data set versions: find each version's latest manifest in S3, then
draw how every feature's mean |SHAP| and rank move (``python -m sm_explain.compare``: a processing job on the
runtime image, or the worker's runtime env, as every runtime step: ``operators.runtime_compute``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context

from sm_explain_contracts.request_fields import location
from sm_explain_ops.operators.runtime_compute import (
    RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    RuntimeComputeMixin,
    pop_runtime_compute_settings,
)
from sm_explain_ops.runtime import aws_env_from_connection, run_runtime_module

MANIFEST_SUFFIX = "/explanations/manifest.json"


class CompareDatasetVersionsOperator(RuntimeComputeMixin, AwsBaseOperator[S3Hook]):
    """For each version, the newest ``<prefix>/<version>/<job>/explanations/manifest.json`` is compared.

    Returns ``{"artifacts": {name: s3 uri}, "summary": {...}}``: a PNG and two CSVs (mean |SHAP| and
    rank per feature and version).
    """

    runtime_module = "sm_explain.compare"
    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields("bucket", "prefix", "versions", "output_uri",
                                                         *RUNTIME_COMPUTE_TEMPLATE_FIELDS)

    def __init__(
        self, *, bucket: str, prefix: str, versions: list[str], output_uri: str, **kwargs: Any
    ) -> None:
        settings = pop_runtime_compute_settings(kwargs)
        super().__init__(**kwargs)
        self.init_runtime_compute(settings)
        self.bucket = bucket
        self.prefix = prefix
        self.versions = versions
        self.output_uri = output_uri

    def latest_manifest_uri(self, version: str) -> str:
        version_prefix = f"{self.prefix.strip('/')}/{version}/"
        objects = self.hook.get_file_metadata(prefix=version_prefix, bucket_name=self.bucket)
        manifests = [o for o in objects if o["Key"].endswith(MANIFEST_SUFFIX)]
        if not manifests:
            raise ValueError(
                f"data set version {version!r} has no explanations yet: no *{MANIFEST_SUFFIX} under "
                f"s3://{self.bucket}/{version_prefix}"
            )
        newest = max(manifests, key=lambda o: (o["LastModified"], o["Key"]))
        return f"s3://{self.bucket}/{newest['Key']}"

    def execute(self, context: Context) -> dict[str, Any]:
        versions = [str(v) for v in (self.versions or [])]
        if len(set(versions)) < 2:
            raise ValueError(f"versions must name at least two distinct data set versions, got {self.versions!r}")
        location(self.output_uri, "output_uri", allow_local=False)
        manifests = {version: self.latest_manifest_uri(version) for version in versions}
        self.log.info("Comparing manifests: %s", manifests)
        return self.run_runtime(context, {"manifests": manifests, "output_uri": self.output_uri})

    def default_processing_uri(self) -> str:
        return f"{self.output_uri.rstrip('/')}/processing/"

    def run_on_worker(self, request: dict[str, Any]) -> dict[str, Any]:
        return run_runtime_module(self.runtime_module, request, env=aws_env_from_connection(self.hook))
