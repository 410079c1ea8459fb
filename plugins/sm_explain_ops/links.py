"""The extra links of the pipeline's tasks: where a human looks at a job, its logs, the staged data and the report.

- the training job and its CloudWatch logs (start_training, wait_for_training_and_rules): the SageMaker and
  CloudWatch consoles on AWS; for the local endpoint, its log page ``/jobs/<job>/log`` (the endpoint has no other
  page of a job: both links open it);
- a runtime step's processing job (stage_dataset, explain, report), the same way;
- the staged data (stage_dataset): the S3 console on AWS; on a custom S3 endpoint the plugin's listing of the
  staged objects (the endpoint's own answer is a ListObjects XML document, and it is often reachable only from the
  Airflow host, where the plugin runs behind Airflow's login);
- the explanation report (explain, report): the plugin's report page (:mod:`sm_explain_ops.ui`).

The provider has no training-job link (only ``SageMakerTransformJobLink``), so this reuses its ``BaseAwsLink``
machinery (XCom persistence keyed by ``key``). Airflow 3 computes each link on the worker when the task ends and
keeps its URL in the XCom ``_link_<class name>``, which the api-server shows: so a link here may read the task's
XComs and the rendered operator (the sensor has no persisted job, but its ``job_name``), and every link class has
a name of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink
from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from sm_explain_ops.ui.paths import NoExplanations, report_path, root_path, staged_path, staged_prefix

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


def training_job_logs_url(
    job_name: str, region: str, endpoint_url: str | None = None, aws_domain: str = "aws.amazon.com"
) -> str:
    """URL of a training job's log: the local endpoint's ``/jobs/<job>/log`` for a custom endpoint, else the
    CloudWatch console on the job's streams (``/aws/sagemaker/TrainingJobs``, prefix the job name)."""
    if is_custom_endpoint(endpoint_url):
        return training_job_url(job_name, region, endpoint_url=endpoint_url, aws_domain=aws_domain)
    return (f"https://{region}.console.{aws_domain}/cloudwatch/home?region={region}#logStream:"
            f"group=/aws/sagemaker/TrainingJobs;prefix={quote(job_name, safe='')};streamFilter=typeLogStreamPrefix")


def staged_data_console_url(bucket: str, prefix: str, region: str, aws_domain: str = "aws.amazon.com") -> str:
    """The S3 console on a prefix of a bucket."""
    return (f"https://console.{aws_domain}/s3/buckets/{quote(bucket, safe='')}?region={quote(region, safe='')}"
            f"&prefix={quote(prefix, safe='')}&showversions=false")


def _airflow_root() -> str:
    """The api-server's path (``[api] base_url``), so the plugin's links work under a path too."""
    from airflow.providers.common.compat.sdk import conf

    return root_path(conf.get("api", "base_url", fallback=""))


def _hook_location(operator: Any) -> dict[str, Any]:
    """Region, partition domain and custom endpoint of the operator's AWS client (client metadata: no request)."""
    hook = operator.hook
    endpoint_url = hook.conn.meta.endpoint_url
    return {
        "region_name": hook.conn_region_name,
        "aws_domain": BaseAwsLink.get_aws_domain(hook.conn_partition) or "aws.amazon.com",
        "endpoint_url": endpoint_url if is_custom_endpoint(endpoint_url) else None,
    }


def _has_result(ti_key: Any) -> bool:
    return XCom.get_value(key="return_value", ti_key=ti_key) is not None


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


class _TrainingJobLink(_JobLink):
    """A link to the task's training job: the one start_training persisted (``persisted``), else the rendered
    operator's ``job_name`` (the wait task) with its client's region and endpoint."""

    key: ClassVar[str] = "sagemaker_training_job"
    #: Read the job start_training persisted; the wait task's links go to its operator (no XCom to miss: the Task
    #: SDK logs a missing one as an error).
    persisted: ClassVar[bool] = True

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            if self.persisted:
                persisted = XCom.get_value(key=self.key, ti_key=ti_key)
                return self.format_link(**persisted) if persisted else ""
            job_name = getattr(operator, "job_name", None)
            if not isinstance(job_name, str) or not job_name or "{{" in job_name:
                return ""
            return self.format_link(job_name=job_name, **_hook_location(operator))
        except Exception:  # a link never fails the task's end
            return ""


class TrainingJobLink(_TrainingJobLink):
    """Operator extra link to the training job started by the task."""

    name: ClassVar[str] = "SageMaker Training Job"
    url = staticmethod(training_job_url)


class TrainingJobLogsLink(_TrainingJobLink):
    """Operator extra link to the training job's CloudWatch logs (locally the endpoint's log page)."""

    name: ClassVar[str] = "Training job logs (CloudWatch)"
    url = staticmethod(training_job_logs_url)


class WaitedTrainingJobLink(TrainingJobLink):
    """The training job link of the task that waits on it (its ``job_name``)."""

    persisted: ClassVar[bool] = False


class WaitedTrainingJobLogsLink(TrainingJobLogsLink):
    """The training job logs link of the task that waits on it (its ``job_name``)."""

    persisted: ClassVar[bool] = False


class ProcessingJobLink(_JobLink):
    """Operator extra link to the processing job a runtime step ran as (none when it ran on the worker)."""

    name: ClassVar[str] = "SageMaker Processing Job"
    key: ClassVar[str] = "sagemaker_processing_job"
    url = staticmethod(processing_job_url)


class StagedDataLink(BaseOperatorLink):
    """Operator extra link to what stage_dataset wrote (``<version>/data/<source sha256>/``): the S3 console on
    AWS, the plugin's listing for a custom S3 endpoint."""

    name: ClassVar[str] = "Staged data"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            prefix = staged_prefix(XCom.get_value(key="return_value", ti_key=ti_key))
            location = _hook_location(operator)
            if location["endpoint_url"] or not location["region_name"]:
                return staged_path(ti_key.dag_id, ti_key.run_id, root=_airflow_root())
            return staged_data_console_url(prefix.bucket, prefix.key, location["region_name"],
                                           location["aws_domain"])
        except NoExplanations:
            return ""
        except Exception:
            return ""


class ExplanationReportLink(BaseOperatorLink):
    """Operator extra link to the run's explanation report in the plugin (once the task has a result)."""

    name: ClassVar[str] = "Explanation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            if not _has_result(ti_key):
                return ""
            return report_path(ti_key.dag_id, ti_key.run_id, root=_airflow_root())
        except Exception:
            return ""
