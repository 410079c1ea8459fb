"""Where a human looks at a training or processing job: the SageMaker console on AWS, the job log locally.

The provider has no training-job link (only ``SageMakerTransformJobLink``), so this reuses its
``BaseAwsLink`` machinery (XCom persistence keyed by ``key``) and overrides the URL format to
also cover the local SageMaker endpoint, which serves a job's log at ``/jobs/<job>/log``.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _job_url(local_path: str, console_path: str, job_name: str, region: str, endpoint_url: str | None,
             aws_domain: str) -> str:
    job = quote(job_name, safe="")
    if is_custom_endpoint(endpoint_url):
        return f"{endpoint_url.rstrip('/')}/{local_path}/{job}/log"  # type: ignore[union-attr]
    return f"https://{region}.console.{aws_domain}/sagemaker/home?region={region}#/{console_path}/{job}"


def training_job_url(
    job_name: str, region: str, endpoint_url: str | None = None, aws_domain: str = "aws.amazon.com"
) -> str:
    """URL of a training job: ``<endpoint_url>/jobs/<job>/log`` for a custom (local) endpoint,
    else the SageMaker console page for ``region``."""
    return _job_url("jobs", "jobs", job_name, region, endpoint_url, aws_domain)


def processing_job_url(
    job_name: str, region: str, endpoint_url: str | None = None, aws_domain: str = "aws.amazon.com"
) -> str:
    """URL of a processing job: ``<endpoint_url>/processing-jobs/<job>/log`` for a custom (local) endpoint,
    else the SageMaker console page for ``region``."""
    return _job_url("processing-jobs", "processing-jobs", job_name, region, endpoint_url, aws_domain)


class _JobLink(BaseAwsLink):
    """An extra link to the job a task persisted (``job_name``, region, local endpoint)."""

    format_str: ClassVar[str] = ""  # unused: format_link builds the URL
    url: ClassVar[Callable[..., str]]

    def format_link(self, **kwargs: Any) -> str:
        job_name = kwargs.get("job_name")
        region = kwargs.get("region_name")
        if not job_name or not (region or kwargs.get("endpoint_url")):
            return ""
        return type(self).url(job_name, region or "", endpoint_url=kwargs.get("endpoint_url"),
                              aws_domain=kwargs.get("aws_domain") or "aws.amazon.com")


class TrainingJobLink(_JobLink):
    """Operator extra link to the training job started by the task."""

    name: ClassVar[str] = "SageMaker Training Job"
    key: ClassVar[str] = "sagemaker_training_job"
    url = staticmethod(training_job_url)


class ProcessingJobLink(_JobLink):
    """Operator extra link to the processing job a runtime step ran as (none when it ran on the worker)."""

    name: ClassVar[str] = "SageMaker Processing Job"
    key: ClassVar[str] = "sagemaker_processing_job"
    url = staticmethod(processing_job_url)
