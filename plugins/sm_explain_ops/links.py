"""Where a human looks at a training or processing job: the SageMaker console on AWS, the job log locally.

The provider has no training-job link (only ``SageMakerTransformJobLink``), so this reuses its
``BaseAwsLink`` machinery (XCom persistence keyed by ``key``) and overrides the URL format to
also cover the local SageMaker endpoint, which serves a job's log at ``/jobs/<job>/log``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink

_AWS_SERVICE_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def is_custom_endpoint(endpoint_url: str | None) -> bool:
    """True for an endpoint that is not an AWS service host (a local or private emulator)."""
    if not endpoint_url:
        return False
    host = urlsplit(endpoint_url).hostname or ""
    return not host.endswith(_AWS_SERVICE_HOST_SUFFIXES)


def training_job_url(
    job_name: str, region: str, endpoint_url: str | None = None, aws_domain: str = "aws.amazon.com"
) -> str:
    """URL of a training job: ``<endpoint_url>/jobs/<job>/log`` for a custom (local) endpoint,
    else the SageMaker console page for ``region``."""
    job = quote(job_name, safe="")
    if is_custom_endpoint(endpoint_url):
        return f"{endpoint_url.rstrip('/')}/jobs/{job}/log"  # type: ignore[union-attr]
    return f"https://{region}.console.{aws_domain}/sagemaker/home?region={region}#/jobs/{job}"


class TrainingJobLink(BaseAwsLink):
    """Operator extra link to the training job started by the task."""

    name: ClassVar[str] = "SageMaker Training Job"
    key: ClassVar[str] = "sagemaker_training_job"
    format_str: ClassVar[str] = ""  # unused: format_link builds the URL

    def format_link(self, **kwargs: Any) -> str:
        job_name = kwargs.get("job_name")
        region = kwargs.get("region_name")
        if not job_name or not (region or kwargs.get("endpoint_url")):
            return ""
        return training_job_url(
            job_name,
            region or "",
            endpoint_url=kwargs.get("endpoint_url"),
            aws_domain=kwargs.get("aws_domain") or "aws.amazon.com",
        )


def processing_job_url(
    job_name: str, region: str, endpoint_url: str | None = None, aws_domain: str = "aws.amazon.com"
) -> str:
    """URL of a processing job: ``<endpoint_url>/processing-jobs/<job>/log`` for a custom (local) endpoint,
    else the SageMaker console page for ``region``."""
    job = quote(job_name, safe="")
    if is_custom_endpoint(endpoint_url):
        return f"{endpoint_url.rstrip('/')}/processing-jobs/{job}/log"  # type: ignore[union-attr]
    return f"https://{region}.console.{aws_domain}/sagemaker/home?region={region}#/processing-jobs/{job}"


class ProcessingJobLink(BaseAwsLink):
    """Operator extra link to the processing job a runtime step ran as (empty when it ran on the worker)."""

    name: ClassVar[str] = "SageMaker Processing Job"
    key: ClassVar[str] = "sagemaker_processing_job"
    format_str: ClassVar[str] = ""  # unused: format_link builds the URL

    def format_link(self, **kwargs: Any) -> str:
        job_name = kwargs.get("job_name")
        region = kwargs.get("region_name")
        if not job_name or not (region or kwargs.get("endpoint_url")):
            return ""
        return processing_job_url(job_name, region or "", endpoint_url=kwargs.get("endpoint_url"),
                                  aws_domain=kwargs.get("aws_domain") or "aws.amazon.com")
