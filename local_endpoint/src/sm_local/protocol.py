"""SageMaker's awsJson1_1 wire protocol, checked against botocore's own service model.

Validating both directions against the model that real clients use is what lets an unmodified boto3,
aiobotocore or AWS CLI talk to the local endpoint: a request SageMaker would refuse is refused here
with the field named, and a response that botocore could not parse never leaves the server.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.utils import parse_to_aware_datetime

from sm_explain_contracts.botocore_shapes import shape_errors as shape_errors

TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"


class SageMakerError(Exception):
    """An error answered the way SageMaker answers it: HTTP status + `{"__type", "message"}`."""

    def __init__(self, error_type: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.http_status = http_status

    def body(self) -> dict[str, str]:
        return {"__type": self.error_type, "message": self.message}


def validation_error(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


@functools.cache
def service_model() -> ServiceModel:
    """The SageMaker model botocore ships (loading it takes ~0.5 s, so once per process)."""
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_name_from_target(target: str | None) -> str:
    """`SageMaker.DescribeTrainingJob` -> `DescribeTrainingJob`."""
    if not target or not target.startswith(TARGET_PREFIX):
        raise SageMakerError(
            "UnknownOperationException",
            f"Missing or malformed X-Amz-Target header {target!r}: expected 'SageMaker.<Operation>'.",
        )
    return target[len(TARGET_PREFIX) :]


def decode_body(raw: bytes) -> dict[str, Any]:
    """Parse the JSON request body; an empty body is an empty request, as botocore sends for `{}`."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SageMakerError("SerializationException", f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SageMakerError("SerializationException", "Request body must be a JSON object.")
    return body


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Validation: botocore's ParamValidator checks required members, types and minimums; it skips
# maximums, patterns and enums (the server's job), which `_constraint_errors` adds from the model.
# ---------------------------------------------------------------------------------------------


def validate_request(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """Refuse a request SageMaker would refuse; timestamps become epoch floats for the handlers."""
    errors = shape_errors(params, operation.input_shape)
    if errors:
        count = len(errors)
        raise validation_error(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(errors)
        )
    return _timestamps_to_epoch(params, operation.input_shape)


def _timestamps_to_epoch(value: Any, shape: Shape) -> Any:
    if shape.type_name == "timestamp":
        if isinstance(value, int | float):  # epoch seconds, as botocore sends them: keep every digit
            return float(value)
        return parse_to_aware_datetime(value).timestamp()
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            key: _timestamps_to_epoch(item, shape.members[key]) if key in shape.members else item
            for key, item in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_timestamps_to_epoch(item, shape.member) for item in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: _timestamps_to_epoch(item, shape.value) for key, item in value.items()}
    return value


def prepare_response(operation: OperationModel, payload: dict[str, Any]) -> dict[str, Any]:
    """Drop nulls and keys the model does not know, then check the result parses for botocore.

    A response that breaks the model is a bug in this server: it is answered as a 500
    `InternalFailure` naming the field rather than handed to a client that would choke on it.
    """
    shape = operation.output_shape
    if shape is None:
        return {}
    cleaned = _prune(payload, shape)
    errors = shape_errors(cleaned, shape)
    if errors:
        raise SageMakerError(
            "InternalFailure",
            f"The local endpoint built an invalid {operation.name} response: " + "; ".join(errors),
            http_status=500,
        )
    return cleaned


def _prune(value: Any, shape: Shape) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            key: _prune(item, shape.members[key])
            for key, item in value.items()
            if key in shape.members and item is not None
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_prune(item, shape.member) for item in value if item is not None]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: _prune(item, shape.value) for key, item in value.items() if item is not None}
    if shape.type_name == "timestamp" and isinstance(value, dt.datetime):
        return value.timestamp()
    return value
