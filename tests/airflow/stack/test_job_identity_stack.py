"""Against the real local stack: two Airflow deployments in one account never share a training job, a job of the
derived name that is not this task's is refused (never attached), and an attached job's XCom paths are the job's
own (its DescribeTrainingJob), not the new request's."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_ops.job_naming import DEPLOYMENT_ENV, deployment_identity, training_job_name
from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator
from sm_explain_ops.training_request import build_training_request
from tests.airflow.stack import tiny_training

pytestmark = pytest.mark.stack

BUCKET = "job-identity"
DAG_ID = "adult_income_explainability"
RUN_ID = "scheduled__2026-11-08T00:00:00+00:00"  # what every deployment's scheduler names this run


def _spec(prefix: str, **overrides: Any) -> dict[str, Any]:
    return tiny_training.tiny_spec(BUCKET, prefix, **overrides)


def _stage(prefix: str) -> None:
    tiny_training.stage(BUCKET, prefix)


def _start(spec: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    operator = StartDebuggedTrainingOperator(
        task_id="start_training", spec=spec, dataset_version="2026-11-08", aws_conn_id=None, **kwargs
    )
    return operator.execute(tiny_training.minimal_context(DAG_ID, RUN_ID))


def _jobs_named(fragment: str) -> list[str]:
    summaries = boto3.client("sagemaker").list_training_jobs(NameContains=fragment, MaxResults=100)
    return sorted(summary["TrainingJobName"] for summary in summaries["TrainingJobSummaries"])


def test_dev_and_prod_in_one_account_each_get_and_keep_their_own_job(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stage("shared")  # both deployments even read and write the same prefix: only their name differs
    jobs: dict[str, dict[str, Any]] = {}
    for deployment in ("dev", "prod"):
        monkeypatch.setenv(DEPLOYMENT_ENV, deployment)
        jobs[deployment] = _start(_spec("shared"))
    assert jobs["dev"]["job_name"] != jobs["prod"]["job_name"]

    # Each deployment's retry re-attaches to its own job, never to the other's.
    for deployment in ("dev", "prod"):
        monkeypatch.setenv(DEPLOYMENT_ENV, deployment)
        assert _start(_spec("shared")) == jobs[deployment]
    # No further job of either name (a re-attach that failed would start `<name>-r1`); other tests of the session
    # may have jobs of the same DAG and version, under other digests.
    ours = sorted(job["job_name"] for job in jobs.values())
    readable = jobs["dev"]["job_name"].rsplit("-", 1)[0]
    assert [name for name in _jobs_named(readable) if name.startswith(tuple(ours))] == ours


@pytest.mark.reliability
def test_a_foreign_job_of_the_derived_name_is_refused_not_attached(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    monkeypatch.setenv(DEPLOYMENT_ENV, "team-a")
    _stage("ours")
    _stage("theirs")
    ours = _spec("ours")
    name = training_job_name(
        DAG_ID, RUN_ID, "2026-11-08",
        deployment=deployment_identity(None, aws_conn_id=None, output_s3_uri=ours["output_s3_uri"]),
    )
    # Another deployment configured with the same name ("team-a") started its job first, on its own data.
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(**build_training_request(_spec("theirs"), name, region=local_stack.region))
    before = sagemaker.describe_training_job(TrainingJobName=name)

    with pytest.raises(AirflowFailException) as refused:
        _start(ours)
    message = str(refused.value)
    assert f"training job {name!r} already exists" in message and "is not this task's job" in message
    assert f"s3://{BUCKET}/theirs/training" in message and f"s3://{BUCKET}/ours/training" in message
    assert "Refusing to attach to it or replace it" in message and DEPLOYMENT_ENV in message

    # Nothing of ours was started, and their job goes on untouched.
    assert _jobs_named(name) == [name]
    after = sagemaker.describe_training_job(TrainingJobName=name)
    assert after["OutputDataConfig"] == before["OutputDataConfig"]
    assert after["TrainingJobStatus"] != "Stopping" and after["TrainingJobStatus"] != "Stopped"
    reliability.refused("start training", "a job of the derived name exists, started by another deployment",
                        "refused naming both output paths and the setting to fix; nothing attached, started or "
                        "stopped", message)


def test_an_attached_job_reports_its_own_paths_not_the_new_requests(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEPLOYMENT_ENV, "paths")
    _stage("edited")
    # First try: Debugger tensors to their own prefix. Then the DAG is edited (the default: next to the model)
    # and the task retried: it attaches to the job started first, which keeps writing where it was told.
    first = _start(_spec("edited", debugger={"s3_output_path": f"s3://{BUCKET}/edited/tensors-elsewhere"}))
    retry = _start(_spec("edited"))
    assert retry["job_name"] == first["job_name"]
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName=first["job_name"])
    assert retry["debug_output_path"] == f"{described['DebugHookConfig']['S3OutputPath']}/{first['job_name']}/debug-output"
    assert retry["debug_output_path"].startswith(f"s3://{BUCKET}/edited/tensors-elsewhere/")
    assert retry["model_artifact_path"] == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert retry == first
