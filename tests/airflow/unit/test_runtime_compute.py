"""The processing-job settings of the runtime steps: names, the job's request, the compute choice, trigger events."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_contracts.envelope import BAD_INPUT_MESSAGE_PREFIX, bad_input_from_termination_message
from sm_explain_ops.hooks.processing_jobs import runtime_processing_config
from sm_explain_ops.job_naming import TRAINING_JOB_NAME_PATTERN, processing_job_name, training_job_name
from sm_explain_ops.operators.explain import BuildReportOperator
from sm_explain_ops.triggers.processing_jobs import RuntimeProcessingTrigger


def test_processing_names_are_stable_per_task_and_run_and_fit_sagemakers_pattern() -> None:
    name = processing_job_name("adult_income_explainability", "scheduled__2026-11-22T00:00:00+00:00", "stage_dataset",
                               deployment="deployment:prod")
    assert name == processing_job_name("adult_income_explainability", "scheduled__2026-11-22T00:00:00+00:00",
                                       "stage_dataset", deployment="deployment:prod")
    assert TRAINING_JOB_NAME_PATTERN.fullmatch(name) and len(name) <= 63
    others = {
        processing_job_name("adult_income_explainability", "scheduled__2026-11-22T00:00:00+00:00", "explain",
                            deployment="deployment:prod"),
        processing_job_name("adult_income_explainability", "scheduled__2026-11-29T00:00:00+00:00", "stage_dataset",
                            deployment="deployment:prod"),
        processing_job_name("adult_income_explainability", "scheduled__2026-11-22T00:00:00+00:00", "stage_dataset",
                            deployment="deployment:dev"),
        training_job_name("adult_income_explainability", "scheduled__2026-11-22T00:00:00+00:00", "stage_dataset",
                          deployment="deployment:prod"),
    }
    assert name not in others and len(others) == 4
    long = processing_job_name("d" * 300, "r", "t" * 300, 12, deployment="x")
    assert len(long) <= 63 and long.endswith("-r12") and TRAINING_JOB_NAME_PATTERN.fullmatch(long)


def test_the_job_runs_the_module_on_the_request_input_and_uploads_the_result_dir_at_the_end() -> None:
    config = runtime_processing_config(
        name="job", module="sm_explain.report", image_uri="1.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime:1",
        role_arn="arn:aws:iam::123456789012:role/R", request_uri="s3://b/p/job/request/",
        result_uri="s3://b/p/job/result/", environment={"SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"},
        max_runtime_seconds=3600,
    )
    assert config["AppSpecification"]["ContainerEntrypoint"] == [
        "python", "-m", "sm_explain.report", "--request", "/opt/ml/processing/input/request/request.json",
        "--result", "/opt/ml/processing/output/result/result.json"]
    [request_input] = config["ProcessingInputs"]
    assert request_input["S3Input"]["S3Uri"] == "s3://b/p/job/request/"
    assert request_input["S3Input"]["LocalPath"] == "/opt/ml/processing/input/request"
    [output] = config["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"] == {"S3Uri": "s3://b/p/job/result/", "LocalPath": "/opt/ml/processing/output/result",
                                  "S3UploadMode": "EndOfJob"}
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert config["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert config["Environment"] == {"SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"}


def _report(**overrides: Any) -> BuildReportOperator:
    return BuildReportOperator(task_id="report", manifest={}, verdict={}, job_name="j", dataset_version="v",
                               output_uri="s3://b/p/v/j/explanations/", **overrides)


def test_compute_defaults_to_processing_with_an_image_and_to_the_worker_without(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", raising=False)
    assert _report().compute_mode() == "worker"
    assert _report(runtime_image_uri="x/sm-explain-runtime:1").compute_mode() == "processing"
    assert _report(runtime_image_uri="x/sm-explain-runtime:1", compute="worker").compute_mode() == "worker"
    monkeypatch.setenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", "x/sm-explain-runtime:1")
    assert _report().compute_mode() == "processing"
    assert _report(runtime_image_uri="").compute_mode() == "worker"  # the DAG param's "none"


@pytest.mark.reliability
def test_processing_without_an_image_or_an_unknown_compute_is_refused_without_retries(monkeypatch, reliability) -> None:  # noqa: ANN001
    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", raising=False)
    with pytest.raises(AirflowFailException, match="no runtime image is set") as no_image:
        _report(compute="processing").compute_mode()
    with pytest.raises(AirflowFailException, match="it must be one of processing, worker") as unknown:
        _report(compute="lambda").compute_mode()
    reliability.refused("runtime compute", "compute 'processing' without an image; compute 'lambda'",
                        "refused without retries, naming the setting", f"{no_image.value} | {unknown.value}")


@pytest.mark.reliability
@pytest.mark.parametrize("event", [None, "success", {"status": "weird", "job_name": "a"},
                                   {"status": "success", "job_name": "../x"}, {"status": "success"}])
def test_execute_complete_refuses_an_event_it_cannot_read(event: Any, reliability) -> None:  # noqa: ANN001
    with pytest.raises(Exception, match="event") as raised:
        _report().execute_complete({}, event)
    reliability.refused("runtime compute", f"trigger event {event!r}", "refused before any AWS call", str(raised.value))


def test_the_trigger_keeps_its_job_type_and_cancel_switch_through_serialization() -> None:
    trigger = RuntimeProcessingTrigger(job_name="j", waiter_delay=2, waiter_max_attempts=5, aws_conn_id=None,
                                       cancel_on_kill=False, log_limits={"lines_per_poll": 50})
    classpath, kwargs = trigger.serialize()
    again = RuntimeProcessingTrigger(**kwargs)
    assert classpath == "sm_explain_ops.triggers.processing_jobs.RuntimeProcessingTrigger"
    assert (again.job_name, again.job_type, again.cancel_on_kill) == ("j", "Processing", False)
    assert again.follow_logs is True and again.log_limits["lines_per_poll"] == 50


def test_a_bad_input_termination_message_is_read_back_and_nothing_else_is() -> None:
    assert bad_input_from_termination_message(f"{BAD_INPUT_MESSAGE_PREFIX}label column 'x' is missing") == \
        "label column 'x' is missing"
    assert bad_input_from_termination_message("AlgorithmError: boom (host algo-1, exit code 1)") is None
    assert bad_input_from_termination_message(None) is None


def _explain(**overrides: Any) -> Any:
    from sm_explain_ops.operators.explain import ExplainTrainingJobOperator

    root = "s3://bkt/adult/v1/data/" + "a" * 64
    kwargs: dict[str, Any] = {
        "task_id": "explain", "job_name": "j", "dataset_version": "v1", "features_uri": f"{root}/features.json",
        "train_uri": f"{root}/train_parts.json", "validation_uri": f"{root}/validation/validation.csv",
        "model_artifact_uri": "s3://bkt/adult/v1/training/j/output/model.tar.gz",
        "output_uri": "s3://bkt/adult/v1/j/explanations/", "runtime_image_uri": "x/sm-explain-runtime:1",
        "instance_count": 3, **overrides}
    return ExplainTrainingJobOperator(**kwargs)


def test_a_split_explanation_maps_on_n_instances_with_each_channel_sharded_by_key() -> None:
    operator = _explain()
    assert operator.instances() == 3
    assert _explain(instance_count="4").instances() == 4  # as a template renders it
    step = operator._map_step(operator.build_request(), 3)
    config = runtime_processing_config(
        name="job-map", module=step.module, image_uri="x/sm-explain-runtime:1", role_arn="arn:aws:iam::123456789012:role/R",
        request_uri="s3://bkt/p/job-map/request/", result_uri="s3://bkt/p/job-map/result/", environment={},
        instance_count=step.instance_count, module_args=step.module_args, data_inputs=step.data_inputs,
        output_local_path=step.output_local_path)
    assert config["AppSpecification"]["ContainerEntrypoint"] == [
        "python", "-m", "sm_explain.map_job", "--request", "/opt/ml/processing/input/request/request.json",
        "--input", "/opt/ml/processing/input/data", "--partials", "/opt/ml/processing/output/partials",
        "--resource-config", "/opt/ml/config/resourceconfig.json"]
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    request_input, train, validation = config["ProcessingInputs"]
    assert request_input["S3Input"].get("S3DataDistributionType", "FullyReplicated") == "FullyReplicated"
    root = "s3://bkt/adult/v1/data/" + "a" * 64
    assert train == {"InputName": "train", "S3Input": {
        "S3Uri": f"{root}/train/", "LocalPath": "/opt/ml/processing/input/data/train", "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "ShardedByS3Key"}}
    assert validation["S3Input"]["S3Uri"] == f"{root}/validation/"
    assert config["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] == \
        "/opt/ml/processing/output/partials"
    import botocore.session

    from sm_explain_contracts.botocore_shapes import shape_errors

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateProcessingJob").input_shape
    assert shape_errors(config, shape) == []  # botocore's model accepts it


@pytest.mark.reliability
def test_a_split_explanation_that_cannot_run_is_refused_before_any_job(monkeypatch, reliability) -> None:  # noqa: ANN001
    from sm_explain_ops.operators.explain import ExplanationRequestError

    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_IMAGE_URI", raising=False)
    messages = []
    for overrides, expected in (
        ({"instance_count": 0}, "instance_count must be an integer from 1 to 100, got 0"),
        ({"instance_count": "two"}, "instance_count must be an integer from 1 to 100, got 'two'"),
        ({"instance_count": 101}, "instance_count must be an integer from 1 to 100"),
        ({"runtime_image_uri": ""}, "instance_count 3 splits the explanation across Processing instances, but this "
                                    "task computes on the worker"),
    ):
        with pytest.raises(ExplanationRequestError, match=expected) as raised:
            _explain(**overrides).instances()
        messages.append(str(raised.value))
    with pytest.raises(ExplanationRequestError, match="train_uri 's3://bkt/x/mine.csv' is not a staged train channel"):
        operator = _explain(train_uri="s3://bkt/x/mine.csv")
        operator._map_step(operator.build_request(), 3)
    reliability.refused("explanations", "a split explanation with instance_count 0, 'two', 101, on the worker, or "
                        "over an unstaged train_uri", "refused before any job starts, naming the setting",
                        "; ".join(messages))


def test_a_processing_name_from_an_empty_id_is_refused_as_a_processing_name() -> None:
    with pytest.raises(ValueError, match="run_id is empty: cannot derive a processing job name from it"):
        processing_job_name("dag", " ", "explain", deployment="x")


def test_a_stopped_job_says_whether_it_reached_its_runtime_limit() -> None:
    import datetime as dt

    from sm_explain_ops.runtime import RuntimeTaskError

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    described = {"ProcessingJobStatus": "Stopped", "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                 "ProcessingStartTime": start, "ProcessingEndTime": start + dt.timedelta(seconds=3601)}
    with pytest.raises(RuntimeTaskError, match=r"reached its StoppingCondition.MaxRuntimeInSeconds \(3600 s\)"):
        _report().raise_job_failure("job", described, "sm_explain.report")
    described["ProcessingEndTime"] = start + dt.timedelta(seconds=20)
    with pytest.raises(RuntimeTaskError, match="called StopProcessingJob"):
        _report().raise_job_failure("job", described, "sm_explain.report")


def test_the_blocking_wait_checks_soon_after_the_start_then_every_check_interval(monkeypatch) -> None:  # noqa: ANN001
    """A short job is seen ended about when it ends: the pauses between describes start at a quarter second and
    double until they reach the task's check interval, which they never exceed."""
    from sm_explain_ops.hooks import processing_jobs
    from sm_explain_ops.hooks.processing_jobs import RuntimeProcessingHook

    statuses = iter(["InProgress"] * 7 + ["Completed"])
    monkeypatch.setattr(RuntimeProcessingHook, "describe_processing_job",
                        lambda _hook, name: {"ProcessingJobName": name, "ProcessingJobStatus": next(statuses)})
    pauses: list[float] = []
    monkeypatch.setattr(processing_jobs.time, "sleep", pauses.append)
    described = RuntimeProcessingHook(aws_conn_id=None, region_name="eu-west-1").wait_until_ended("job-1", 3.0)
    assert described["ProcessingJobStatus"] == "Completed"
    assert pauses == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(zip(range(3), processing_jobs.wait_schedule(0.1), strict=False)) == [(0, 0.1), (1, 0.1), (2, 0.1)]
