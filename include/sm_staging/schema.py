"""The staging request as the runtime reads it: the fields and rules are the contract's
(`sm_explain_contracts.staging_request`, which the staging task checks too), refused as StagingInputError."""

from __future__ import annotations

from typing import Any

from sm_explain_contracts.request_fields import refused_as
from sm_explain_contracts.s3_uris import S3Location, S3UriError
from sm_explain_contracts.s3_uris import parse_s3_uri as contract_parse_s3_uri
from sm_explain_contracts.staging_request import StagingRequest, parse_staging_request
from sm_staging.errors import StagingInputError

__all__ = ["S3Location", "StagingRequest", "parse_request", "parse_s3_uri"]


def parse_s3_uri(uri: str, *, what: str, require_key: bool = True) -> S3Location:
    """Split ``s3://bucket/key`` and refuse shapes S3 would reject (or that would hit the wrong place)."""
    try:
        return contract_parse_s3_uri(uri, what, require_key=require_key)
    except S3UriError as error:
        raise StagingInputError(str(error)) from None


def parse_request(request: Any) -> StagingRequest:
    """Validate a JSON request and fill in the Adult defaults, before any data is read or written."""
    with refused_as(StagingInputError):
        return parse_staging_request(request)
