"""The two ways a training run fails, as the built-in algorithm distinguishes them.

A `UserError` is the customer's fault (bad hyperparameter, bad data): its message is the one sentence
SageMaker shows as `FailureReason`. An `AlgorithmError` is a failure inside training itself.
"""

from __future__ import annotations


class ContainerError(Exception):
    """Base class: the message is written verbatim to `/opt/ml/output/failure`."""


class UserError(ContainerError):
    """Bad input from the job's request or data; nothing expensive has run yet."""


class AlgorithmError(ContainerError):
    """XGBoost itself failed while training."""
