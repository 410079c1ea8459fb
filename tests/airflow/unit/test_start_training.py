"""StartDebuggedTrainingOperator and DebuggedTrainingHook against botocore's Stubber: one job per
name, attach on retry, deterministic follow-up names, races, stop on kill, small XCom."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from sm_explain_ops.hooks.training_jobs import DebuggedTrainingHook, suffixed_job_name
from sm_explain_ops.job_naming import DEPLOYMENT_ENV, deployment_identity, training_job_name
from sm_explain_ops.links import TrainingJobLink, training_job_url
from sm_explain_ops.operators.start_training import StartDebuggedTrainingOperator
from sm_explain_ops.training_request import TrainingSpec, build_training_request

REGION = "us-east-1"
DAG_ID = "adult_explain"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
VERSION = "v1"
OUTPUT = "s3://ml-bucket/adult/v1/training"


def spec_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "train_uri": "s3://ml-bucket/adult/v1/data/train.csv",
        "validation_uri": "s3://ml-bucket/adult/v1/data/validation.csv",
        "output_s3_uri": OUTPUT,
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "hyperparameters": {"objective": "binary:logistic", "num_round": 51, "max_depth": 5, "eta": 0.2},
    }
    base.update(overrides)
    return base


class RecordingTaskInstance:
    """Just enough of a TaskInstance for execute(): records XCom pushes (the extra link's)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def minimal_context(dag_id: str = DAG_ID, run_id: str = RUN_ID) -> dict[str, Any]:
    """The context keys the operator reads, to call ``op.execute(context)`` outside a DAG run."""
    return {
        "dag": SimpleNamespace(dag_id=dag_id),
        "dag_run": SimpleNamespace(run_id=run_id),
        "run_id": run_id,
        "ti": RecordingTaskInstance(),
    }


def describe(name: str, status: str, **extra: Any) -> dict[str, Any]:
    """A DescribeTrainingJob response with the members botocore's Stubber requires, for a job started from
    this module's request (same channels, output and Debugger paths)."""
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    request = _built_request()
    return {
        "InputDataConfig": request["InputDataConfig"],
        "OutputDataConfig": request["OutputDataConfig"],
        "DebugHookConfig": request["DebugHookConfig"],
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"{OUTPUT}/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now,
        **extra,
    }


def not_found(stubber: Stubber, name: str) -> None:
    stubber.add_client_error(
        "describe_training_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
        http_status_code=400,
        expected_params={"TrainingJobName": name},
    )


def described(stubber: Stubber, name: str, status: str) -> None:
    stubber.add_response("describe_training_job", describe(name, status), {"TrainingJobName": name})


def created(stubber: Stubber, name: str) -> None:
    stubber.add_response(
        "create_training_job",
        {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}"},
        {**_any_request(), "TrainingJobName": name},
    )


def _any_request() -> dict[str, Any]:
    keys = (
        "AlgorithmSpecification RoleArn HyperParameters InputDataConfig OutputDataConfig ResourceConfig "
        "StoppingCondition EnableNetworkIsolation DebugHookConfig DebugRuleConfigurations RetryStrategy"
    ).split()
    return dict.fromkeys(keys, ANY)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, the AWS endpoint (not a local one) and no connection lookups."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE", DEPLOYMENT_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def derived_name(attempt: int = 0) -> str:
    """The name the operator derives for this module's run without a configured deployment."""
    deployment = deployment_identity(None, aws_conn_id=None, output_s3_uri=OUTPUT)
    return training_job_name(DAG_ID, RUN_ID, VERSION, attempt, deployment=deployment)


@pytest.fixture
def hook() -> DebuggedTrainingHook:
    return DebuggedTrainingHook(aws_conn_id=None, region_name=REGION)


@pytest.fixture
def stub(hook: DebuggedTrainingHook) -> Iterator[Stubber]:
    with Stubber(hook.conn) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@functools.cache
def _built_request() -> dict[str, Any]:
    return build_training_request(TrainingSpec.from_dict(spec_dict(region=REGION)), "job-a")


def request_named(name: str) -> dict[str, Any]:
    """A real, valid request (botocore's client validates what the Stubber receives)."""
    return {**_built_request(), "TrainingJobName": name}


# ----------------------------------------------------------------------------- hook


def test_existing_in_progress_job_is_attached_not_created(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    described(stub, "job-a", "InProgress")  # no create_training_job stubbed: a create would fail the test
    name, response = hook.start_or_attach(request_named("job-a"))
    assert name == "job-a"
    assert response["TrainingJobStatus"] == "InProgress"


def test_completed_job_is_attached(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    described(stub, "job-a", "Completed")
    assert hook.start_or_attach(request_named("job-a"))[0] == "job-a"


def test_failed_and_stopped_jobs_move_to_the_next_deterministic_names(
    hook: DebuggedTrainingHook, stub: Stubber
) -> None:
    described(stub, "job-a", "Failed")
    described(stub, "job-a-r1", "Stopped")
    not_found(stub, "job-a-r2")
    created(stub, "job-a-r2")
    described(stub, "job-a-r2", "InProgress")
    name, response = hook.start_or_attach(request_named("job-a"))
    assert name == "job-a-r2"
    assert response["TrainingJobName"] == "job-a-r2"


def test_a_job_being_stopped_is_replaced_not_attached(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    # A killed wait stopped it; the next try must train, not wait on a job that will end Stopped.
    described(stub, "job-a", "Stopping")
    not_found(stub, "job-a-r1")
    created(stub, "job-a-r1")
    described(stub, "job-a-r1", "InProgress")
    name, response = hook.start_or_attach(request_named("job-a"))
    assert (name, response["TrainingJobStatus"]) == ("job-a-r1", "InProgress")


def test_resource_in_use_race_re_describes_and_attaches(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    not_found(stub, "job-a")
    stub.add_client_error(
        "create_training_job",
        service_error_code="ResourceInUse",
        service_message="Training job names must be unique within an AWS account and region",
        http_status_code=400,
    )
    described(stub, "job-a", "InProgress")
    name, response = hook.start_or_attach(request_named("job-a"))
    assert (name, response["TrainingJobStatus"]) == ("job-a", "InProgress")


def test_other_describe_errors_are_not_mistaken_for_a_missing_job(
    hook: DebuggedTrainingHook, stub: Stubber
) -> None:
    stub.add_client_error(
        "describe_training_job", service_error_code="AccessDeniedException", http_status_code=403
    )
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="AccessDenied"):
        hook.start_or_attach(request_named("job-a"))


def test_gives_up_with_every_tried_name_in_the_message(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    described(stub, "job-a", "Failed")
    described(stub, "job-a-r1", "Failed")
    with pytest.raises(RuntimeError, match=r"job-a \(Failed\), job-a-r1 \(Failed\)"):
        hook.start_or_attach(request_named("job-a"), max_replacements=1)


def test_stop_if_running_stops_only_in_progress_jobs(hook: DebuggedTrainingHook, stub: Stubber) -> None:
    described(stub, "job-a", "InProgress")
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "job-a"})
    assert hook.stop_if_running("job-a") is True
    described(stub, "job-b", "Completed")
    assert hook.stop_if_running("job-b") is False
    not_found(stub, "job-c")
    assert hook.stop_if_running("job-c") is False


def test_suffixed_names_stay_valid() -> None:
    assert suffixed_job_name("job", 0) == "job"
    assert suffixed_job_name("job", 3) == "job-r3"
    long = suffixed_job_name("a" * 63, 12)
    assert len(long) == 63 and long.endswith("-r12")


# ----------------------------------------------------------------------------- operator


def make_operator(**kwargs: Any) -> StartDebuggedTrainingOperator:
    options: dict[str, Any] = {
        "task_id": "start_training",
        "spec": spec_dict(),
        "dataset_version": VERSION,
        "aws_conn_id": None,
        "region_name": REGION,
    }
    options.update(kwargs)
    return StartDebuggedTrainingOperator(**options)


def test_first_run_creates_the_job_and_returns_a_small_xcom() -> None:
    operator = make_operator()
    expected_name = derived_name()
    context = minimal_context()
    with Stubber(operator.hook.conn) as stub:
        not_found(stub, expected_name)
        created(stub, expected_name)
        described(stub, expected_name, "InProgress")
        result = operator.execute(context)
        stub.assert_no_pending_responses()

    assert result == {
        "job_name": expected_name,
        "training_job_arn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{expected_name}",
        "debug_output_path": f"{OUTPUT}/{expected_name}/debug-output",
        "model_artifact_path": f"{OUTPUT}/{expected_name}/output/model.tar.gz",
    }
    link = context["ti"].pushed[TrainingJobLink.key]
    assert TrainingJobLink().format_link(**link) == (
        f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{expected_name}"
    )


def test_retry_of_the_same_run_attaches_instead_of_creating_a_second_job() -> None:
    expected_name = derived_name()
    first, retry = make_operator(), make_operator()
    with Stubber(first.hook.conn) as stub:
        not_found(stub, expected_name)
        created(stub, expected_name)
        described(stub, expected_name, "InProgress")
        first_result = first.execute(minimal_context())
    with Stubber(retry.hook.conn) as stub:
        described(stub, expected_name, "InProgress")  # no create stubbed: a second job would fail here
        retry_result = retry.execute(minimal_context())
        stub.assert_no_pending_responses()
    assert retry_result == first_result


def test_a_failed_job_of_this_run_is_replaced_by_the_next_deterministic_name() -> None:
    operator = make_operator()
    base = derived_name()
    replacement = derived_name(1)
    with Stubber(operator.hook.conn) as stub:
        described(stub, base, "Failed")
        not_found(stub, replacement)
        created(stub, replacement)
        described(stub, replacement, "InProgress")
        result = operator.execute(minimal_context())
    assert result["job_name"] == replacement


def test_on_kill_stops_the_job_the_task_started() -> None:
    operator = make_operator(job_name="explicit-job")
    with Stubber(operator.hook.conn) as stub:
        described(stub, "explicit-job", "InProgress")
        operator.execute(minimal_context())
        described(stub, "explicit-job", "InProgress")
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "explicit-job"})
        operator.on_kill()
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spec": spec_dict(train_uri="s3:/ml-bucket/train.csv")}, "train_uri .* is not an s3:// URI"),
        (
            {"spec": spec_dict(hyperparameters={"num_round": 10, "etta": 0.1})},
            "Extraneous hyperparameter found: etta",
        ),
        ({"job_name": "x" * 64}, "job_name .* is 64 characters"),
        ({"job_name": "bad_name"}, "job_name 'bad_name' is invalid"),
        ({"deployment": "prod east"}, "the operator's deployment argument is 'prod east'"),
    ],
)
def test_bad_input_fails_when_the_dag_is_parsed(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_operator(**overrides)


def test_templated_input_is_checked_in_execute_before_any_aws_call() -> None:
    operator = make_operator(spec=spec_dict(train_uri="{{ params.train_uri }}"))  # not checkable yet
    operator.spec = spec_dict(train_uri="ftp://ml-bucket/train.csv")  # what rendering produced
    with Stubber(operator.hook.conn) as stub:  # no responses: any AWS call would raise
        with pytest.raises(ValueError, match="train_uri 'ftp://ml-bucket/train.csv' is not an s3:// URI"):
            operator.execute(minimal_context())
        stub.assert_no_pending_responses()


def test_references_resolved_at_render_time_are_checked_in_execute_not_at_parse_time() -> None:
    """An XComArg or a dag.param in the spec is its value only once rendered: parsing the DAG must not check it."""
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    with DAG(dag_id="references", schedule=None) as dag:
        upstream = BaseOperator(task_id="stage_dataset")
        operator = make_operator(
            spec=spec_dict(train_uri=upstream.output["train_channel_uri"], hyperparameters=dag.param("hp")),
            explanations_root=upstream.output["version_root"],
        )
    assert operator.multiple_outputs, "each key of the result is its own XCom, for start.output['job_name']"
    assert {t.task_id for t in operator.upstream_list} == {"stage_dataset"}


def test_the_explanations_of_the_job_go_under_the_root_named_after_the_job() -> None:
    operator = make_operator(explanations_root="s3://ml-bucket/adult/20261122/")
    expected_name = derived_name()
    with Stubber(operator.hook.conn) as stub:
        not_found(stub, expected_name)
        created(stub, expected_name)
        described(stub, expected_name, "InProgress")
        result = operator.execute(minimal_context())
    assert result["explanations_uri"] == f"s3://ml-bucket/adult/20261122/{expected_name}/explanations/"


def test_a_bad_explanations_root_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="explanations_root 'adult/v1' is not an s3:// URI"):
        make_operator(explanations_root="adult/v1")


def test_region_mismatch_between_spec_and_connection_is_refused() -> None:
    operator = make_operator(spec=spec_dict(region="eu-west-1"))
    with pytest.raises(
        ValueError, match="spec region 'eu-west-1' differs from the connection's region 'us-east-1'"
    ):
        operator.execute(minimal_context())


def test_spec_dataset_version_and_job_name_are_templated() -> None:
    fields = set(StartDebuggedTrainingOperator.template_fields)
    assert {"spec", "dataset_version", "job_name", "deployment", "aws_conn_id", "region_name"} <= fields


def test_local_endpoint_link_points_at_the_job_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:9999")
    operator = make_operator(job_name="local-job")
    context = minimal_context()
    with Stubber(operator.hook.conn) as stub:
        described(stub, "local-job", "Completed")
        operator.execute(context)
    link = context["ti"].pushed[TrainingJobLink.key]
    assert TrainingJobLink().format_link(**link) == "http://127.0.0.1:9999/jobs/local-job/log"


def test_training_job_url_for_aws_and_local_endpoints() -> None:
    assert training_job_url("job-1", "eu-west-1") == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/job-1"
    )
    assert training_job_url("job-1", "eu-west-1", "https://api.sagemaker.eu-west-1.amazonaws.com") == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/job-1"
    )
    assert (
        training_job_url("job-1", "us-east-1", "http://127.0.0.1:8123/")
        == "http://127.0.0.1:8123/jobs/job-1/log"
    )
