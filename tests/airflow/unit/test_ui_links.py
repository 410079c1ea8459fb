"""The extra links (job, logs, staged data, report), the tasks that carry them, how they are registered, and the
plugin's pages and URLs (sm_explain_ops.ui.paths, the AirflowPlugin)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from sm_explain_ops import links
from sm_explain_ops.links import (
    ExplanationReportLink,
    ProcessingJobLink,
    StagedDataLink,
    TrainingJobLink,
    TrainingJobLogsLink,
    WaitedTrainingJobLink,
    WaitedTrainingJobLogsLink,
    training_job_logs_url,
)
from sm_explain_ops.ui import paths
from sm_explain_ops.ui.paths import NoExplanations, S3Prefix, explanations_prefix, served_objects

RUN = "manual__2026-12-01T10:00:00+00:00"
TI = SimpleNamespace(dag_id="adult_income_explainability", run_id=RUN, task_id="t", map_index=-1)
LOCAL = "http://127.0.0.1:9090"


class FakeXCom:
    """XCom.get_value as the Task SDK answers it in a task's end: the values this task pushed."""

    values: dict[str, Any] = {}

    @classmethod
    def get_value(cls, *, key: str, ti_key: Any) -> Any:
        return cls.values.get(key)


@pytest.fixture()
def xcom(monkeypatch) -> type[FakeXCom]:
    FakeXCom.values = {}
    monkeypatch.setattr(links, "XCom", FakeXCom)
    return FakeXCom


def _operator(endpoint_url: str, region: str = "eu-west-1", partition: str = "aws", **attributes: Any) -> Any:
    """An operator whose hook's client has this endpoint (what _hook_location reads; no AWS request)."""
    hook = SimpleNamespace(conn=SimpleNamespace(meta=SimpleNamespace(endpoint_url=endpoint_url)),
                           conn_region_name=region, conn_partition=partition)
    return SimpleNamespace(hook=hook, **attributes)


def test_training_job_logs_url_on_aws_and_locally() -> None:
    url = training_job_logs_url("job-1", "eu-west-1")
    assert url.startswith("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logStream:")
    assert "group=/aws/sagemaker/TrainingJobs;prefix=job-1;" in url
    assert training_job_logs_url("job-1", "us-east-1", endpoint_url=LOCAL) == f"{LOCAL}/jobs/job-1/log"


def test_training_links_use_what_start_training_persisted(xcom) -> None:
    xcom.values["sagemaker_training_job"] = {"job_name": "job-1", "region_name": "eu-west-1",
                                             "aws_domain": "aws.amazon.com", "endpoint_url": None}
    operator = _operator("https://sagemaker.eu-west-1.amazonaws.com")
    assert TrainingJobLink().get_link(operator, ti_key=TI).endswith("#/jobs/job-1")
    assert "cloudwatch" in TrainingJobLogsLink().get_link(operator, ti_key=TI)


def test_the_wait_tasks_links_come_from_its_rendered_job_name(xcom) -> None:
    sensor = _operator(LOCAL, job_name="job-2")
    assert WaitedTrainingJobLink().get_link(sensor, ti_key=TI) == f"{LOCAL}/jobs/job-2/log"
    assert WaitedTrainingJobLogsLink().get_link(sensor, ti_key=TI) == f"{LOCAL}/jobs/job-2/log"
    aws = _operator("https://api.sagemaker.eu-west-1.amazonaws.com", job_name="job-2")
    assert WaitedTrainingJobLink().get_link(aws, ti_key=TI) == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/job-2")
    assert WaitedTrainingJobLink().get_link(_operator(LOCAL, job_name="{{ x }}"), ti_key=TI) == ""
    assert WaitedTrainingJobLink().get_link(_operator(LOCAL), ti_key=TI) == ""
    broken = SimpleNamespace(job_name="job-2")  # no hook: the link is empty, the task's end unharmed
    assert WaitedTrainingJobLogsLink().get_link(broken, ti_key=TI) == ""
    # start_training's links read only what it persisted: none yet, no link (its job_name may be a base name).
    assert TrainingJobLink().get_link(sensor, ti_key=TI) == ""


def test_the_staged_data_link_locally_and_on_aws(xcom, monkeypatch) -> None:
    assert StagedDataLink().get_link(_operator(LOCAL), ti_key=TI) == ""  # staging produced nothing
    xcom.values["return_value"] = {"features_uri": "s3://bkt/adult-income/v1/data/abc/features.json"}
    assert StagedDataLink().get_link(_operator(LOCAL), ti_key=TI) == (
        "/sm-explain/dags/adult_income_explainability/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00/staged")
    url = StagedDataLink().get_link(_operator("https://s3.eu-west-1.amazonaws.com"), ti_key=TI)
    assert url == ("https://console.aws.amazon.com/s3/buckets/bkt?region=eu-west-1"
                   "&prefix=adult-income%2Fv1%2Fdata%2Fabc%2F&showversions=false")


def test_the_report_link_is_the_plugins_page_once_the_task_has_a_result(xcom, monkeypatch) -> None:
    assert ExplanationReportLink().get_link(None, ti_key=TI) == ""
    xcom.values["return_value"] = {"report_uri": "s3://b/x/explanations/report.html"}
    expected = "/sm-explain/dags/adult_income_explainability/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00/report"
    assert ExplanationReportLink().get_link(None, ti_key=TI) == expected
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/airflow/")
    assert ExplanationReportLink().get_link(None, ti_key=TI) == "/airflow" + expected


def test_every_task_of_the_pipeline_carries_its_links_through_serialization() -> None:
    """What the api-server shows: the serialized DAG's links per task (each class its own XCom key)."""
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "adult_income_explainability.py"))
    dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(bag.dags["adult_income_explainability"]))
    shown = {task_id: {link.name: link.xcom_key for link in dag.get_task(task_id).operator_extra_links}
             for task_id in ("stage_dataset", "start_training", "wait_for_training_and_rules", "explain", "report")}
    assert shown == {
        "stage_dataset": {"SageMaker Processing Job": "_link_ProcessingJobLink", "Staged data": "_link_StagedDataLink"},
        "start_training": {"SageMaker Training Job": "_link_TrainingJobLink",
                           "Training job logs (CloudWatch)": "_link_TrainingJobLogsLink"},
        "wait_for_training_and_rules": {"SageMaker Training Job": "_link_WaitedTrainingJobLink",
                                        "Training job logs (CloudWatch)": "_link_WaitedTrainingJobLogsLink"},
        "explain": {"SageMaker Processing Job": "_link_ProcessingJobLink",
                    "Explanation report": "_link_ExplanationReportLink"},
        "report": {"SageMaker Processing Job": "_link_ProcessingJobLink",
                   "Explanation report": "_link_ExplanationReportLink"},
    }


def test_the_provider_info_registers_every_link_class() -> None:
    from importlib import import_module

    from sm_explain_ops.get_provider_info import get_provider_info

    registered = get_provider_info()["extra-links"]
    classes = {getattr(import_module(path.rsplit(".", 1)[0]), path.rsplit(".", 1)[1]) for path in registered}
    assert classes == {TrainingJobLink, TrainingJobLogsLink, WaitedTrainingJobLink, WaitedTrainingJobLogsLink,
                       ProcessingJobLink, StagedDataLink, ExplanationReportLink}
    assert "plugins" not in get_provider_info(), "the airflow.plugins entry point registers the plugin, once"


def test_the_plugin_mounts_its_app_outside_airflows_prefixes_and_adds_two_tabs() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    from sm_explain_ops.ui.plugin import SmExplainOpsPlugin, report_views

    plugin = SmExplainOpsPlugin()
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == "/sm-explain"
    assert not any(app["url_prefix"].startswith(prefix) for prefix in RESERVED_URL_PREFIXES)
    assert {(view["destination"], view["href"]) for view in report_views("/airflow")} == {
        ("dag_run", "/airflow/sm-explain/dags/{DAG_ID}/runs/{RUN_ID}/report"),
        ("task_instance", "/airflow/sm-explain/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}/report"),
    }
    assert len({view["url_route"] for view in plugin.external_views}) == 2


def test_the_explanations_prefix_comes_from_the_two_tasks_results() -> None:
    root = "s3://bkt/adult-income/v1/job-1/explanations/"
    report, manifest = {"report_uri": root + "report.html"}, {"artifacts": {"manifest.json": root + "manifest.json"}}
    expected = S3Prefix("bkt", "adult-income/v1/job-1/explanations/")
    assert explanations_prefix(report, None) == expected
    assert explanations_prefix(None, manifest) == expected
    assert explanations_prefix(report, manifest) == expected
    for bad_report in ({"report_uri": "s3://bkt/report.html"}, {"report_uri": root + "index.html"},
                       {"report_uri": "s3://bkt/a/b/report.html"}, {"report_uri": root + "x/report.html"},
                       {"report_uri": "s3://BKT/a/explanations/report.html"}):
        with pytest.raises(NoExplanations):
            explanations_prefix(bad_report, None)
    with pytest.raises(NoExplanations, match="different prefixes"):
        explanations_prefix(report, {"artifacts": {"manifest.json": "s3://bkt/b/explanations/manifest.json"}})
    with pytest.raises(NoExplanations, match="no explanations yet"):
        explanations_prefix(None, None)


def test_served_objects_are_plain_relative_keys_below_the_prefix() -> None:
    prefix = S3Prefix("bkt", "p/explanations/")
    manifest = {"artifacts": {
        "a": "s3://bkt/p/explanations/figures/a.png", "b": "s3://bkt/p/explanations/../b.png",
        "c": "s3://bkt/p/explanations//c.png", "d": "s3://other/p/explanations/d.png", "e": "s3://bkt/p/e.png",
        "f": "s3://bkt/p/explanations/./f.png", "g": "s3://bkt/p/explanations/g\\h.png", "h": 7,
    }}
    assert served_objects(prefix, {"report_uri": "s3://bkt/p/explanations/report.html"}, manifest) == {
        "figures/a.png": "p/explanations/figures/a.png", "report.html": "p/explanations/report.html"}


def test_content_types_and_headers() -> None:
    assert paths.content_type("a.PNG") == "image/png"
    assert paths.content_type("x.bin") == "application/octet-stream"
    headers = paths.response_headers("drawing.svg")
    assert headers["Content-Security-Policy"] == paths.SANDBOX_POLICY
    assert paths.response_headers("x.bin")["Content-Disposition"].startswith("attachment")
    assert paths.response_headers("a b.csv")["Content-Disposition"] == "inline; filename*=UTF-8''a%20b.csv"
    assert paths.root_path("http://localhost:8080/") == "" and paths.root_path("http://h/airflow/") == "/airflow"
