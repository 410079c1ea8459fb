"""The `python -m sm_explain` request as the runtime reads it: the fields and rules are the contract's
(`sm_explain_contracts.explain_request`, which the explanation task checks too), refused as BadRequest; the runtime
adds what needs the objects: that every input exists (cheap HEAD calls), before any data is read."""

from __future__ import annotations

from typing import Any

from sm_explain import storage
from sm_explain.errors import BadRequest
from sm_explain_contracts.explain_request import (
    INPUT_URIS,
    ExplainRequest,
    MapRequest,
    ReduceRequest,
    parse_explain_request,
)
from sm_explain_contracts.explain_request import parse_map_request as _parse_map_fields
from sm_explain_contracts.explain_request import parse_reduce_request as _parse_reduce_fields
from sm_explain_contracts.request_fields import refused_as

__all__ = ["ExplainRequest", "MapRequest", "ReduceRequest", "parse_map_request", "parse_reduce_request",
           "parse_request"]


def parse_request(raw: dict[str, Any], check_inputs_exist: bool = True) -> ExplainRequest:
    """Validate `raw`; with `check_inputs_exist` also make sure every input object is there."""
    with refused_as(BadRequest):
        request = parse_explain_request(raw)
    if check_inputs_exist:
        _check_inputs_exist(request)
    return request


def _check_inputs_exist(request: ExplainRequest) -> None:
    for key in INPUT_URIS:
        uri = getattr(request, key)
        if not storage.exists(uri):
            raise BadRequest(f"{key} {uri!r} does not exist")


def parse_map_request(raw: dict[str, Any]) -> MapRequest:
    """`python -m sm_explain.map`'s request: the explanation's fields and inputs, plus the map's own."""
    with refused_as(BadRequest):
        request = _parse_map_fields(raw)
    _check_inputs_exist(request.explain)
    return request


def parse_reduce_request(raw: dict[str, Any]) -> ReduceRequest:
    """`python -m sm_explain.reduce`'s request: the explanation's fields and inputs, plus the partials."""
    with refused_as(BadRequest):
        request = _parse_reduce_fields(raw)
    _check_inputs_exist(request.explain)
    for i, uri in enumerate(request.partial_uris):
        if not storage.exists(uri):
            raise BadRequest(f"partial_uris[{i}] {uri!r} does not exist")
    return request
