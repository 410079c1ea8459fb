"""An in-memory CloudWatch Logs client with GetLogEvents' paging rules, for the log-following tests.

As CloudWatch documents it: ``startFromHead`` true reads forward from ``startTime`` (or the head), ``limit`` events
at most and at most 1 MB per response; ``nextForwardToken`` reads on from where the page ended, and at the end of
the stream it is the token that was passed in. A missing group or stream is ``ResourceNotFoundException``. Every
call is counted, so tests can bound a poll's requests.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

MAX_RESPONSE_BYTES = 1_048_576


def _not_found(operation: str, what: str) -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": f"{what} does not exist."}},
                       operation)


class FakeCloudWatchLogs:
    def __init__(self) -> None:
        self.groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.created: dict[tuple[str, str], int] = {}
        self.calls: Counter[str] = Counter()
        self.fail_with: BaseException | None = None

    # -- what a job writes -----------------------------------------------------------------------------------------
    def put(self, group: str, stream: str, messages: list[str], *, timestamp: int, created: int | None = None) -> None:
        """Append events (all at ``timestamp`` ms, in order), creating the group and stream if need be."""
        events = self.groups.setdefault(group, {}).setdefault(stream, [])
        self.created.setdefault((group, stream), timestamp if created is None else created)
        events += [{"timestamp": timestamp, "message": message, "ingestionTime": timestamp} for message in messages]

    # -- the client ------------------------------------------------------------------------------------------------
    def describe_log_streams(self, *, logGroupName: str, logStreamNamePrefix: str = "", orderBy: str = "LogStreamName",
                             limit: int = 50) -> dict[str, Any]:
        self.calls["describe_log_streams"] += 1
        if self.fail_with is not None:
            raise self.fail_with
        if logGroupName not in self.groups:
            raise _not_found("DescribeLogStreams", "The specified log group")
        names = sorted(name for name in self.groups[logGroupName] if name.startswith(logStreamNamePrefix))[:limit]
        return {"logStreams": [{"logStreamName": name, "creationTime": self.created[(logGroupName, name)]}
                               for name in names]}

    def get_log_events(self, *, logGroupName: str, logStreamName: str, startFromHead: bool = False,
                       nextToken: str | None = None, startTime: int | None = None, limit: int = 10_000) -> dict[str, Any]:
        self.calls["get_log_events"] += 1
        if self.fail_with is not None:
            raise self.fail_with
        assert startFromHead, "reading forward with nextToken needs startFromHead=True (GetLogEvents reference)"
        assert 1 <= limit <= 10_000
        try:
            events = self.groups[logGroupName][logStreamName]
        except KeyError:
            raise _not_found("GetLogEvents", "The specified log stream") from None
        if nextToken is not None:
            start = int(nextToken.split("/", 1)[1])
        else:
            start = next((i for i, event in enumerate(events) if event["timestamp"] >= (startTime or 0)), len(events))
        page, size = [], 0
        for event in events[start: start + limit]:
            size += len(event["message"].encode("utf-8")) + 26
            if page and size > MAX_RESPONSE_BYTES:
                break
            page.append(dict(event))
        end = start + len(page)
        token = nextToken if not page and nextToken is not None else f"f/{end:056d}"
        return {"events": page, "nextForwardToken": token, "nextBackwardToken": f"b/{start:056d}"}
