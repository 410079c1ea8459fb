"""Deterministic training job names: same deployment and run -> same name, different deployments or runs ->
different names, always a name SageMaker accepts."""

from __future__ import annotations

import re

import pytest

from sm_explain_ops.job_naming import (
    DEPLOYMENT_ENV,
    deployment_identity,
    training_job_name,
    validate_training_job_name,
)

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DEPLOYMENT = "deployment:test"
SCHEDULED = "scheduled__2026-11-08T00:00:00+00:00"


def test_same_inputs_give_the_same_readable_name() -> None:
    run = "manual__2026-01-02T03:04:05+00:00"
    first = training_job_name("adult_explain", run, "v1.2", deployment=DEPLOYMENT)
    again = training_job_name("adult_explain", run, "v1.2", deployment=DEPLOYMENT)
    assert first == again
    assert first.startswith("adult-explain-v1-2-")
    assert SAGEMAKER_NAME.fullmatch(first)


def test_a_digit_only_version_and_a_partitioned_run_id_give_a_valid_readable_name() -> None:
    """A weekly partition's run id (tick, key and a random tail) and a version "20261122" name a job as any other."""
    run = "scheduled__2026-11-22T00:00:00+00:00__2026-11-22__x7Qb2LmP"
    name = training_job_name("adult_income_explainability", run, "20261122", deployment=DEPLOYMENT)
    assert name.startswith("adult-income-explainability-20261122-") and SAGEMAKER_NAME.fullmatch(name)
    assert name == training_job_name("adult_income_explainability", run, "20261122", deployment=DEPLOYMENT)


def test_runs_and_versions_never_share_a_name() -> None:
    names = {
        training_job_name("adult_explain", run_id, version, deployment=DEPLOYMENT)
        for run_id in ("scheduled__2026-01-01T00:00:00+00:00", "scheduled__2026-01-02T00:00:00+00:00")
        for version in ("v1", "v2", "v-1")
    }
    assert len(names) == 6


def test_fragments_that_sanitise_alike_still_differ() -> None:
    # "a.b" and "a_b" both sanitise to "a-b": only the digest keeps them apart.
    assert training_job_name("dag", "run", "a.b", deployment=DEPLOYMENT) != training_job_name(
        "dag", "run", "a_b", deployment=DEPLOYMENT
    )


@pytest.mark.parametrize("suffix", [0, 1, 12, 999])
def test_very_long_inputs_stay_within_63_characters(suffix: int) -> None:
    name = training_job_name("d" * 250, "r" * 250, "v" * 250, attempt_suffix=suffix, deployment=DEPLOYMENT)
    assert len(name) <= 63
    assert SAGEMAKER_NAME.fullmatch(name)
    if suffix:
        assert name.endswith(f"-r{suffix}")


def test_replacement_names_are_deterministic_and_distinct() -> None:
    def names() -> list[str]:
        return [training_job_name("adult", "run-1", "v1", attempt_suffix=n, deployment=DEPLOYMENT) for n in range(4)]

    assert len(set(names())) == 4
    assert names() == names()


def test_inputs_without_letters_or_digits_fall_back_to_a_valid_name() -> None:
    name = training_job_name("___", "run", "...", deployment=DEPLOYMENT)
    assert SAGEMAKER_NAME.fullmatch(name)
    assert name.startswith("sm-")


@pytest.mark.parametrize(
    ("dag_id", "run_id", "version", "problem"),
    [
        ("", "run", "v1", "dag_id"),
        ("dag", "   ", "v1", "run_id"),
        ("dag", "run", None, "dataset_version"),
    ],
)
def test_unusable_input_is_refused_by_name(dag_id: str, run_id: str, version: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        training_job_name(dag_id, run_id, version, deployment=DEPLOYMENT)


def test_negative_attempt_suffix_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt_suffix"):
        training_job_name("dag", "run", "v1", attempt_suffix=-1, deployment=DEPLOYMENT)


def test_explicit_names_are_checked_against_sagemakers_constraint() -> None:
    assert validate_training_job_name("my-job-1") == "my-job-1"
    with pytest.raises(ValueError, match="64 characters"):
        validate_training_job_name("a" * 64)
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        validate_training_job_name("my_job")
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        validate_training_job_name("-job")


@pytest.fixture
def no_deployment_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(DEPLOYMENT_ENV, raising=False)
    return monkeypatch


def _name(deployment: str | None, conn: str | None = "aws_default",
          output: str = "s3://ml-bucket/adult/2026-11-08/training") -> str:
    identity = deployment_identity(deployment, aws_conn_id=conn, output_s3_uri=output)
    return training_job_name("adult_income_explainability", SCHEDULED, "2026-11-08", deployment=identity)


def test_dev_and_prod_in_one_account_derive_different_names(no_deployment_env: pytest.MonkeyPatch) -> None:
    # The same DAG, the same scheduled run id, the same version: only the deployment differs.
    assert _name("dev") != _name("prod")
    no_deployment_env.setenv(DEPLOYMENT_ENV, "dev")
    from_env = _name(None)
    assert from_env == _name("dev")
    no_deployment_env.setenv(DEPLOYMENT_ENV, "prod")
    assert _name(None) != from_env


def test_without_configuration_the_connection_and_output_path_tell_deployments_apart(
    no_deployment_env: pytest.MonkeyPatch,
) -> None:
    default = _name(None)
    assert default == _name(None), "every worker and retry of one deployment derives the same name"
    assert _name(None, output="s3://ml-bucket-prod/adult/2026-11-08/training") != default
    assert _name(None, output="s3://ml-bucket/adult-prod/2026-11-08/training") != default
    assert _name(None, conn="aws_prod") != default
    assert _name(None, output="s3://ml-bucket/adult/2026-11-08/training/") == default  # same path
    no_deployment_env.setenv(DEPLOYMENT_ENV, "")  # an empty variable (compose's ${X:-}) means unset
    assert _name(None) == default


@pytest.mark.reliability
@pytest.mark.parametrize("deployment", ["", " prod", "prod\n", "-dev", "a" * 129, "dev prod"])
def test_a_deployment_name_that_is_no_name_is_refused(
    deployment: str, no_deployment_env: pytest.MonkeyPatch, reliability
) -> None:
    with pytest.raises(ValueError) as refused:
        _name(deployment)
    assert f"the operator's deployment argument is {deployment!r}" in str(refused.value)
    assert "1-128 letters, digits" in str(refused.value)
    reliability.refused("job naming", f"deployment {deployment[:20]!r}", "refused naming the setting and what is "
                        "accepted, before any AWS call", str(refused.value))


@pytest.mark.reliability
def test_a_bad_deployment_variable_is_refused_naming_the_variable(
    no_deployment_env: pytest.MonkeyPatch, reliability
) -> None:
    no_deployment_env.setenv(DEPLOYMENT_ENV, "prod;rm -rf")
    with pytest.raises(ValueError) as refused:
        _name(None)
    assert f"the environment variable {DEPLOYMENT_ENV} is 'prod;rm -rf'" in str(refused.value)
    reliability.refused("job naming", f"{DEPLOYMENT_ENV}='prod;rm -rf'", "refused naming the variable",
                        str(refused.value))
