"""Deterministic training job names: same run -> same name, different runs -> different names,
always a name SageMaker accepts."""

from __future__ import annotations

import re

import pytest

from sm_explain_ops.job_naming import training_job_name, validate_training_job_name

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_same_inputs_give_the_same_readable_name() -> None:
    first = training_job_name("adult_explain", "manual__2026-01-02T03:04:05+00:00", "v1.2")
    again = training_job_name("adult_explain", "manual__2026-01-02T03:04:05+00:00", "v1.2")
    assert first == again
    assert first.startswith("adult-explain-v1-2-")
    assert SAGEMAKER_NAME.fullmatch(first)


def test_runs_and_versions_never_share_a_name() -> None:
    names = {
        training_job_name("adult_explain", run_id, version)
        for run_id in ("scheduled__2026-01-01T00:00:00+00:00", "scheduled__2026-01-02T00:00:00+00:00")
        for version in ("v1", "v2", "v-1")
    }
    assert len(names) == 6


def test_fragments_that_sanitise_alike_still_differ() -> None:
    # "a.b" and "a_b" both sanitise to "a-b": only the digest keeps them apart.
    assert training_job_name("dag", "run", "a.b") != training_job_name("dag", "run", "a_b")


@pytest.mark.parametrize("suffix", [0, 1, 12, 999])
def test_very_long_inputs_stay_within_63_characters(suffix: int) -> None:
    name = training_job_name("d" * 250, "r" * 250, "v" * 250, attempt_suffix=suffix)
    assert len(name) <= 63
    assert SAGEMAKER_NAME.fullmatch(name)
    if suffix:
        assert name.endswith(f"-r{suffix}")


def test_replacement_names_are_deterministic_and_distinct() -> None:
    names = [training_job_name("adult", "run-1", "v1", attempt_suffix=n) for n in range(4)]
    assert len(set(names)) == 4
    assert names == [training_job_name("adult", "run-1", "v1", attempt_suffix=n) for n in range(4)]


def test_inputs_without_letters_or_digits_fall_back_to_a_valid_name() -> None:
    name = training_job_name("___", "run", "...")
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
        training_job_name(dag_id, run_id, version)


def test_negative_attempt_suffix_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt_suffix"):
        training_job_name("dag", "run", "v1", attempt_suffix=-1)


def test_explicit_names_are_checked_against_sagemakers_constraint() -> None:
    assert validate_training_job_name("my-job-1") == "my-job-1"
    with pytest.raises(ValueError, match="64 characters"):
        validate_training_job_name("a" * 64)
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        validate_training_job_name("my_job")
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        validate_training_job_name("-job")
