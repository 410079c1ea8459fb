"""From a small typed training spec to a validated ``CreateTrainingJob`` request.

Two stages, so DAG parsing stays cheap and bad input fails before anything is submitted:

* :meth:`TrainingSpec.from_dict` (``specs``, pure Python, milliseconds): types and S3 URIs (``fields``), XGBoost
  hyperparameters (``hyperparameters``), and the Debugger combinations that would silently produce nothing or
  write far too much (``debug_output_size``).
* :func:`build_training_request` (``build``, imports sagemaker-core, ~5 s the first time): image URIs for the
  region, built-in rule configurations, and validation of the whole request against botocore's SageMaker model
  (``botocore_validation``).

Modules import one way only, each only those before it in: fields, hyperparameters, debug_output_size, specs,
botocore_validation, build.
"""

from __future__ import annotations

from sm_explain_ops.training_request.botocore_validation import validate_request
from sm_explain_ops.training_request.build import (
    algorithm_image_uri,
    build_training_request,
    rule_configuration,
)
from sm_explain_ops.training_request.debug_output_size import (
    DEFAULT_MAX_DEBUG_OUTPUT_BYTES,
    SavedSteps,
    estimate_debug_output_bytes,
    saved_steps,
)
from sm_explain_ops.training_request.fields import validate_s3_uri
from sm_explain_ops.training_request.hyperparameters import MAX_NUM_ROUND, validate_hyperparameters
from sm_explain_ops.training_request.specs import (
    DEBUGGER_OFF,
    DEFAULT_ALGORITHM_VERSION,
    DEFAULT_RETRY_ATTEMPTS,
    MAX_RETRY_ATTEMPTS,
    CollectionSpec,
    DataShape,
    DebuggerSpec,
    RuleSpec,
    TrainingSpec,
    VpcSpec,
)

__all__ = [
    "DEBUGGER_OFF",
    "DEFAULT_ALGORITHM_VERSION",
    "DEFAULT_MAX_DEBUG_OUTPUT_BYTES",
    "DEFAULT_RETRY_ATTEMPTS",
    "MAX_NUM_ROUND",
    "MAX_RETRY_ATTEMPTS",
    "CollectionSpec",
    "DataShape",
    "DebuggerSpec",
    "RuleSpec",
    "SavedSteps",
    "TrainingSpec",
    "VpcSpec",
    "algorithm_image_uri",
    "build_training_request",
    "estimate_debug_output_bytes",
    "rule_configuration",
    "saved_steps",
    "validate_hyperparameters",
    "validate_request",
    "validate_s3_uri",
]
