"""The whole DAG on the local stack with the real Adult data, as a user runs it with `make demo`:
every task succeeds, the manifest's URIs exist and hold real PNG/HTML/CSV, the report shows the rule
verdict; and a rising-loss run fires the SNS alert and continues as its policy says."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from airflow_local_env import aws_connection_uri_json
from sm_explain_ops.pipeline import NOTEBOOK_HYPERPARAMETERS

pytestmark = [pytest.mark.stack, pytest.mark.slow]

BUCKET = "sm-explain-e2e"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".html": b"<", ".csv": None, ".parquet": b"PAR1", ".json": b"{"}
# Strong overfitting: validation logloss rises, so LossNotDecreasing (on `metrics`) finds an issue.
RISING_LOSS_HYPERPARAMETERS = {
    "max_depth": 16, "eta": 1, "gamma": 0, "min_child_weight": 0, "lambda": 0, "subsample": 1,
    "objective": "binary:logistic", "num_round": 40,
}


@pytest.fixture(scope="module")
def dag(local_stack, airflow_db) -> Iterator[Any]:
    """The production DAG file, parsed with the AWS connection pointing at the local stack."""
    from airflow.dag_processing.dagbag import DagBag

    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(local_stack))
    patch.setenv("SM_EXPLAIN_POKE_INTERVAL", "1")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "adult_income_explainability.py"))
    assert bag.import_errors == {}
    yield bag.dags["adult_income_explainability"]
    patch.undo()


def _run(dag: Any, day: int, conf: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    from airflow.utils.session import create_session

    dag_run = dag.test(logical_date=dt.datetime(2026, 11, day, tzinfo=dt.UTC), run_conf=conf)
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
    return dag_run, states


def _xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from run_dag_locally import task_xcom

    return task_xcom(dag_run, task_id, key)


def _read(uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _model_file(dag_run: Any) -> bytes:
    """The `xgboost-model` member of the job's model.tar.gz, as the explanations read it."""
    import io
    import tarfile

    archive = _read(_xcom(dag_run, "start_training")["model_artifact_path"])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        return member.read()


def _base_conf(adult_data_path, version: str) -> dict[str, Any]:
    """The params every test relies on, given explicitly: `dag.test` keeps the previous run's conf in the DAG's
    params, so a test that left one out would inherit another test's (say debugger 'off')."""
    return {
        "dataset_version": version,
        "source_uri": str(adult_data_path),
        "source_sha256": ADULT_SHA256,
        "bucket": BUCKET,
        "algorithm_version": "1.7-1",
        "debugger": "notebook",
        "explanation_source": "auto",
        "rule_policies": {"*": {"issues_found": "fail", "error": "fail"}},
        "sns_topic_arn": "",
        "hyperparameters": NOTEBOOK_HYPERPARAMETERS,
        "explanation_options": {"explain_rows": "train", "outlier_top_n": 5, "seed": 7},
        "train_parts": 1,
        "explanation_instances": 1,
    }


def test_notebook_run_end_to_end(dag, adult_data_path) -> None:
    dag_run, states = _run(dag, 15, _base_conf(adult_data_path, "e2e-notebook"))
    assert set(states.values()) == {"success"}, states

    manifest = _xcom(dag_run, "explain")
    assert len(json.dumps(manifest)) < 16_000, "the XCom manifest must stay small"
    assert manifest["summary"]["source"] == "debugger", "the notebook configuration writes full_shap tensors"
    expected = {"metrics.png", "shap_bar.png", "shap_beeswarm.png", "average_shap.png", "force_row.png",
                "force_row.html", "force_stacked.html", "outliers.csv", "outliers.parquet"}
    expected |= {f"importance_{kind}.png" for kind in ("weight", "gain", "cover", "total_gain", "total_cover")}
    assert expected <= set(manifest["artifacts"])
    for name, uri in manifest["artifacts"].items():
        assert uri.startswith(f"s3://{BUCKET}/adult-income/e2e-notebook/"), uri
        assert "/explanations/" in uri
        body = _read(uri)
        magic = MAGIC.get(os.path.splitext(name)[1])
        assert body and (magic is None or body.startswith(magic)), f"{name} is not a valid file"
    outliers = _read(manifest["artifacts"]["outliers.csv"]).decode().strip().splitlines()
    assert len(outliers) == 1 + 2 * 5, "the outlier table has N rows on each tail"

    verdict = _xcom(dag_run, "wait_for_training_and_rules")
    assert verdict["training_status"] == "Completed"
    assert [(r["name"], r["status"]) for r in verdict["rules"]] == [("LossNotDecreasing", "NoIssuesFound")]

    report = _read(_xcom(dag_run, "report")["report_uri"]).decode()
    assert "LossNotDecreasing" in report and "NoIssuesFound" in report
    assert "e2e-notebook" in report and verdict["job_name"] in report
    # The report's links, from what only the DAG knows: the job's log page on the local endpoint, the staged data.
    assert f"href='{html.escape(verdict['job_url'], quote=True)}'" in report
    assert _xcom(dag_run, "stage_dataset", "data_uri") in report and "<nav id='contents'" in report
    # Image 1.7-1 (the default) saves with xgboost 1.7.4's save_model: the legacy binary format.
    assert _model_file(dag_run).startswith(b"binf")

    # The local stack sets a runtime image: staging, explanations and the report each ran as a processing job on
    # it (the job each task's extra link names), not on the worker; `make demo` lists the same jobs.
    from run_dag_locally import ran_jobs

    jobs = {task_id: (kind, status) for task_id, kind, _name, status in ran_jobs(dag_run)}
    assert jobs == {"start_training": ("training", "Completed"), "stage_dataset": ("processing", "Completed"),
                    "explain": ("processing", "Completed"), "report": ("processing", "Completed")}


def test_xgboost_3_without_debugger_end_to_end_split_across_instances(dag, adult_data_path) -> None:
    """An account without Debugger: image 3.0-5, debugger 'off'; the explanations come from the UBJSON model.
    The training rows are staged as 3 parts, which the training channel reads as one, and the explanation is a
    map job on 2 instances (each given a ShardedByS3Key share) and a reduce: what one job over the same parts
    writes, table for table and figure for figure."""
    conf = {**_base_conf(adult_data_path, "e2e-no-debugger"), "algorithm_version": "3.0-5", "debugger": "off",
            "train_parts": 3, "explanation_instances": 2}
    dag_run, states = _run(dag, 17, conf)
    assert set(states.values()) == {"success"}, states
    staged = _xcom(dag_run, "stage_dataset")
    assert staged["train_parts"] == 3 and staged["train_uri"].endswith("/train_parts.json")
    started = _xcom(dag_run, "start_training")
    assert started["debug_output_path"] is None
    verdict = _xcom(dag_run, "wait_for_training_and_rules")
    assert verdict["training_status"] == "Completed" and verdict["rules"] == []
    manifest = _xcom(dag_run, "explain")
    assert manifest["summary"]["source"] == "model"
    assert manifest["summary"]["n_rows"] == 26048
    assert set(manifest["summary"]["curve_sources"].values()) == {"model"}
    assert _model_file(dag_run)[:2] == b"{L", "xgboost 3.0.5 saves UBJSON"
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="adult-income/e2e-no-debugger/training/")
    assert not [o["Key"] for o in listed.get("Contents", []) if "/debug-output/" in o["Key"]]

    from run_dag_locally import ran_jobs

    jobs = [(task_id, kind, status) for task_id, kind, _name, status in ran_jobs(dag_run)]
    assert ("explain", "processing (map, 2 instances)", "Completed") in jobs
    assert ("explain", "processing", "Completed") in jobs  # the reduce
    sagemaker = boto3.client("sagemaker")
    map_job = sagemaker.describe_processing_job(ProcessingJobName=_xcom(dag_run, "explain", "map_processing_job"))
    sharded = {i["InputName"]: i["S3Input"]["S3DataDistributionType"] for i in map_job["ProcessingInputs"]}
    assert sharded == {"request": "FullyReplicated", "train": "ShardedByS3Key", "validation": "ShardedByS3Key"}
    output = map_job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    written = sorted(o["Key"].rsplit("/", 1)[1] for o in
                     boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    # Each instance mapped its share: the 3 parts go round the 2 instances, the one validation file to the first.
    assert [name for name in written if name.endswith(".partial")] == [
        "algo-1-train.partial", "algo-1-validation.partial", "algo-2-train.partial"]

    # One job over the same staged parts, the same model and settings (instance_count 1), elsewhere.
    from sm_explain_ops.operators.explain import ExplainTrainingJobOperator
    from tests.airflow.stack.tiny_training import minimal_context

    single_uri = started["explanations_uri"].rstrip("/") + "-single/"
    single = ExplainTrainingJobOperator(
        task_id="explain", job_name=started["job_name"], dataset_version="e2e-no-debugger",
        features_uri=staged["features_uri"], train_uri=staged["train_uri"], validation_uri=staged["validation_uri"],
        model_artifact_uri=started["model_artifact_path"], output_uri=single_uri, source="auto",
        options=conf["explanation_options"], objective="binary:logistic", instance_count=1,
        role_arn="arn:aws:iam::123456789012:role/SageMakerExecutionRole", check_interval=1, aws_conn_id=None,
    ).execute(minimal_context("split-check", "manual__single"))
    assert single["summary"] == manifest["summary"]
    assert set(single["artifacts"]) == set(manifest["artifacts"])
    differing = [name for name in manifest["artifacts"] if not name.endswith((".html", "manifest.json"))
                 and _read(manifest["artifacts"][name]) != _read(single["artifacts"][name])]
    assert differing == []


def test_pickle_era_image_end_to_end(dag, adult_data_path) -> None:
    """Image 1.2-2 (xgboost 1.2.0, smdebug 1.0.10, function-style callbacks) pickles its Booster; the notebook's
    Debugger configuration still writes every tensor, and both sources explain it."""
    conf = {**_base_conf(adult_data_path, "e2e-image-1-2-2"), "algorithm_version": "1.2-2",
            "rule_policies": {"*": {"issues_found": "continue", "error": "fail"}}}
    dag_run, states = _run(dag, 18, conf)
    assert set(states.values()) == {"success"}, states
    assert _model_file(dag_run).startswith(b"\x80\x04"), "image 1.2-2 pickles with protocol 4"
    manifest = _xcom(dag_run, "explain")
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="adult-income/e2e-image-1-2-2/training/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert manifest["summary"]["source"] == "debugger", (manifest["summary"], keys)
    assert set(manifest["summary"]["curve_sources"].values()) == {"debugger"}
    verdict = _xcom(dag_run, "wait_for_training_and_rules")
    assert [r["name"] for r in verdict["rules"]] == ["LossNotDecreasing"]
    assert all(r["status"] in ("NoIssuesFound", "IssuesFound") for r in verdict["rules"]), verdict


def test_rising_loss_run_alerts_and_follows_the_continue_policy(dag, adult_data_path) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="rule-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rule-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    conf = {
        **_base_conf(adult_data_path, "e2e-rising-loss"),
        "hyperparameters": RISING_LOSS_HYPERPARAMETERS,
        "debugger": "default",
        "explanation_source": "model",
        # Depth-12 trees make TreeSHAP slow: explain the validation rows only, smaller samples.
        "explanation_options": {"explain_rows": "validation", "beeswarm_sample_size": 500,
                                "stacked_sample_size": 50, "step_sample_size": 500, "outlier_top_n": 3},
        "sns_topic_arn": topic,
        "rule_policies": {"*": {"issues_found": "continue", "error": "fail"}},
    }
    dag_run, states = _run(dag, 16, conf)
    assert set(states.values()) == {"success"}, f"policy 'continue' carries on to the report: {states}"

    verdict = _xcom(dag_run, "wait_for_training_and_rules")
    assert verdict["issues_found"] == ["LossNotDecreasing"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert any("LossNotDecreasing" in b["Message"] and verdict["job_name"] in b["Message"] for b in bodies), bodies

    report = _read(_xcom(dag_run, "report")["report_uri"]).decode()
    assert "IssuesFound" in report


# --- a digit-only version, and what the tasks' templated fields rendered to -----------------------------------------

DIGIT_VERSION = "20261122"


@pytest.fixture(scope="module")
def digit_only_run(dag, adult_data_path) -> tuple[Any, dict[str, str]]:
    """One run of the version "20261122", with cheap explanation settings (the point is the version's type)."""
    conf = {
        **_base_conf(adult_data_path, DIGIT_VERSION),
        "debugger": "default",
        "explanation_source": "model",
        "explanation_options": {"explain_rows": "validation", "beeswarm_sample_size": 500,
                                "stacked_sample_size": 50, "step_sample_size": 500, "outlier_top_n": 3},
    }
    with pytest.MonkeyPatch.context() as patch:
        # Keep the rendered manifest and verdict whole (Airflow truncates rendered fields past 4096 characters).
        patch.setenv("AIRFLOW__CORE__MAX_TEMPLATED_FIELD_LENGTH", "1000000")
        return _run(dag, 22, conf)


def _xcom_rows(dag_run: Any) -> dict[tuple[str, str], Any]:
    """Every XCom of the run as the tasks receive it, {(task_id, key): value}."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id)).all()
        keys = [(row.task_id, row.key) for row in rows]
    return {(task_id, key): _xcom(dag_run, task_id, key) for task_id, key in keys}


def _versions_in(value: Any) -> list[Any]:
    """Every value held under a 'dataset_version' key, at any depth."""
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in ([item] if key == "dataset_version" else []) + _versions_in(item)]
    if isinstance(value, list):
        return [found for item in value for found in _versions_in(item)]
    return []


def test_a_digit_only_version_runs_end_to_end_as_a_string(digit_only_run) -> None:
    dag_run, states = digit_only_run
    assert set(states.values()) == {"success"}, states

    xcoms = _xcom_rows(dag_run)
    assert xcoms[("resolve_run_config", "dataset_version")] == DIGIT_VERSION
    held = [found for value in xcoms.values() for found in _versions_in(value)]
    held += [value for (_, key), value in xcoms.items() if key == "dataset_version"]
    assert len(held) >= 3 and all(type(found) is str and found == DIGIT_VERSION for found in held), held

    job_name = xcoms[("start_training", "job_name")]
    assert f"-{DIGIT_VERSION}-" in job_name
    listed = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="adult-income/")
    keys = [obj["Key"] for page in listed for obj in page.get("Contents", [])]
    written = [key for key in keys if key.split("/")[1] == DIGIT_VERSION]
    assert any("/data/" in key for key in written) and any(key.endswith("/model.tar.gz") for key in written)
    assert f"adult-income/{DIGIT_VERSION}/{job_name}/explanations/report.html" in written
    features = json.loads(_read(xcoms[("stage_dataset", "features_uri")]))
    assert features["dataset_version"] == DIGIT_VERSION
    report = _read(xcoms[("report", "return_value")]["report_uri"]).decode()
    assert DIGIT_VERSION in report


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def test_rendered_fields_hold_the_handed_off_values_not_xcom_pull_templates(digit_only_run) -> None:
    """What a user sees as the tasks' rendered templates: the values themselves, typed as they were handed on."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    dag_run, _ = digit_only_run
    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        rendered = {row.task_id: row.rendered_fields for row in rows}
    assert {"stage_dataset", "start_training", "wait_for_training_and_rules", "explain", "report"} <= set(rendered)
    templates = {task: text for task, fields in rendered.items() for text in _texts(fields)
                 if "xcom_pull" in text or "{{" in text}
    assert templates == {}

    spec = rendered["start_training"]["spec"]
    assert spec["hyperparameters"] == NOTEBOOK_HYPERPARAMETERS and type(spec["hyperparameters"]["num_round"]) is int
    assert type(spec["retry_attempts"]) is int and spec["retry_attempts"] == 2
    assert spec["data_shape"] == {"rows": 26048, "features": 12, "validation_rows": 6513}
    assert spec["train_uri"].startswith(f"s3://{BUCKET}/adult-income/{DIGIT_VERSION}/data/")
    assert rendered["start_training"]["dataset_version"] == DIGIT_VERSION
    assert rendered["stage_dataset"]["dataset_version"] == DIGIT_VERSION
    assert rendered["wait_for_training_and_rules"]["rule_policies"] == {"*": {"issues_found": "fail", "error": "fail"}}
    assert rendered["explain"]["options"]["outlier_top_n"] == 3 and rendered["explain"]["objective"] == "binary:logistic"
    assert rendered["report"]["manifest"]["artifacts"]["manifest.json"].startswith(f"s3://{BUCKET}/adult-income/{DIGIT_VERSION}/")
    assert rendered["report"]["verdict"]["training_status"] == "Completed"
