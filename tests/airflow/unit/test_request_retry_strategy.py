"""RetryStrategy in the training request: SageMaker restarts a job that fails with InternalServerError itself,
as many times as the spec's ``retry_attempts`` says (botocore's model: MaximumRetryAttempts 1-30)."""

from __future__ import annotations

from typing import Any

import pytest

from sm_explain_ops.training_request import TrainingSpec, build_training_request


def spec_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "train_uri": "s3://ml-bucket/adult/v1/data/train.csv",
        "output_s3_uri": "s3://ml-bucket/adult/v1/training",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "hyperparameters": {"objective": "binary:logistic", "num_round": 10},
        "region": "us-east-1",
        "debugger": "off",
    }
    return {**base, **overrides}


def test_by_default_sagemaker_retries_an_internal_error_twice() -> None:
    request = build_training_request(spec_dict(), "job-retry-default")
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}


@pytest.mark.parametrize("attempts", [1, 30, "5"])
def test_retry_attempts_reach_the_request(attempts: int | str) -> None:
    request = build_training_request(spec_dict(retry_attempts=attempts), "job-retry")
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": int(attempts)}
    assert TrainingSpec.from_dict(spec_dict(retry_attempts=attempts)).to_dict()["retry_attempts"] == int(attempts)


def test_zero_retry_attempts_sends_no_retry_strategy() -> None:
    # botocore's model has no "zero retries": MaximumRetryAttempts is at least 1, so 0 means leave it out.
    assert "RetryStrategy" not in build_training_request(spec_dict(retry_attempts=0), "job-no-retry")


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("attempts", "message"),
    [
        (31, "retry_attempts must be between 0 and 30 (SageMaker's MaximumRetryAttempts is at most 30), got 31"),
        (-1, "retry_attempts must be >= 0, got -1"),
        (True, "retry_attempts must be an integer, got True"),
        ("two", "retry_attempts must be an integer, got 'two'"),
        (2.5, "retry_attempts must be an integer, got 2.5"),
    ],
)
def test_retry_attempts_out_of_sagemakers_range_are_refused(attempts: Any, message: str, reliability) -> None:
    with pytest.raises(ValueError) as refused:
        TrainingSpec.from_dict(spec_dict(retry_attempts=attempts))
    assert message in str(refused.value)
    reliability.refused("training request", f"retry_attempts {attempts!r}",
                        "refused naming the field and the accepted range, before any AWS call", str(refused.value))
