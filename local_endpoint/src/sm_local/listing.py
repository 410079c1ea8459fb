"""ListTrainingJobs and ListProcessingJobs: SageMaker's filters, sort orders and pagination tokens, written once."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sm_local.protocol import validation_error

DEFAULT_MAX_RESULTS = 10


def list_response(
    summaries: list[dict[str, Any]], request: dict[str, Any], *, result_key: str, name_key: str, status_key: str
) -> dict[str, Any]:
    """`{result_key: <the page the List request asks for>, "NextToken": ...}` (no NextToken on the last page)."""
    selected, token = page(summaries, request, name_key=name_key, status_key=status_key)
    response: dict[str, Any] = {result_key: selected}
    if token is not None:
        response["NextToken"] = token
    return response


def page(
    summaries: list[dict[str, Any]], request: dict[str, Any], *, name_key: str, status_key: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The page of `summaries` the List request asks for, and the NextToken of the next page (None at the end)."""
    selected = [summary for summary in summaries if _matches(summary, request, name_key, status_key)]
    sort_field = {"CreationTime": "CreationTime", "Name": name_key, "Status": status_key}[
        request.get("SortBy", "CreationTime")
    ]
    selected.sort(
        key=lambda summary: (summary[sort_field], summary[name_key]),
        reverse=request.get("SortOrder", "Ascending") == "Descending",
    )
    offset = _decode_token(request.get("NextToken"))
    limit = request.get("MaxResults", DEFAULT_MAX_RESULTS)
    token = _encode_token(offset + limit) if offset + limit < len(selected) else None
    return selected[offset : offset + limit], token


def _matches(summary: dict[str, Any], request: dict[str, Any], name_key: str, status_key: str) -> bool:
    """The List filters; times are exclusive bounds, as SageMaker applies them."""
    contains = request.get("NameContains")
    if contains and contains.lower() not in summary[name_key].lower():
        return False
    if request.get("StatusEquals") and summary[status_key] != request["StatusEquals"]:
        return False
    bounds = (
        ("CreationTimeAfter", "CreationTime", lambda value, bound: value > bound),
        ("CreationTimeBefore", "CreationTime", lambda value, bound: value < bound),
        ("LastModifiedTimeAfter", "LastModifiedTime", lambda value, bound: value > bound),
        ("LastModifiedTimeBefore", "LastModifiedTime", lambda value, bound: value < bound),
    )
    return all(
        request.get(key) is None or compare(summary[field], request[key]) for key, field, compare in bounds
    )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise validation_error(
            f"Invalid pagination token {token!r}: pass the NextToken of a previous response."
        ) from exc
    if not isinstance(offset, int) or offset < 0:
        raise validation_error(
            f"Invalid pagination token {token!r}: pass the NextToken of a previous response."
        )
    return offset
