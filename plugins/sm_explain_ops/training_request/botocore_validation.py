"""Whether a CreateTrainingJob request is one SageMaker accepts, by botocore's own model of the API.

The spec checks cover what the project knows about; botocore's model covers the rest (types, required members,
lengths, patterns, enums). Checking the whole request here, with the walker the local endpoint uses too
(``sm_explain_contracts.botocore_shapes``), refuses a bad request in SageMaker's words before it is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sm_explain_contracts.botocore_shapes import shape_errors


@functools.cache
def _create_training_job_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateTrainingJob").input_shape


def validate_request(request: Mapping[str, Any]) -> None:
    """Check a CreateTrainingJob request against botocore's SageMaker model (types, required
    members, lengths, patterns); raise ValueError naming every offending field."""
    problems = shape_errors(dict(request), _create_training_job_shape())
    if problems:
        raise ValueError("invalid CreateTrainingJob request: " + "; ".join(problems))
