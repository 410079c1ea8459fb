"""Ship a job's log lines to CloudWatch Logs the way SageMaker names them.

Group `/aws/sagemaker/TrainingJobs` (or `/aws/sagemaker/ProcessingJobs`), stream `<job>/<host>-<epoch seconds>`
(one per host, `algo-1`, `algo-2`, ...): the provider's `describe_training_job_with_log` finds streams by the
`<job>/` prefix. Shipping is best effort in a background thread, batched about once a second: a logs outage must
never fail or slow the job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
# PutLogEvents limits: 10,000 events and 1,048,576 bytes (message bytes + 26 each) per batch,
# 256 KiB per event.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES

logger = logging.getLogger(__name__)


def log_stream_name(job_name: str, started_at: float, host: str = "algo-1") -> str:
    """`<job>/<host>-<epoch seconds>`, SageMaker's stream name for one host of a training or processing job."""
    return f"{job_name}/{host}-{int(started_at)}"


def _fit_event(message: str) -> str:
    encoded = message.encode("utf-8")
    if len(encoded) <= MAX_EVENT_BYTES:
        return message
    return encoded[:MAX_EVENT_BYTES].decode("utf-8", errors="ignore")


def batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split time-ordered events into PutLogEvents-sized batches."""
    result: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if current and (len(current) >= MAX_BATCH_EVENTS or size + event_size > MAX_BATCH_BYTES):
            result.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        result.append(current)
    return result


class LogShipper:
    """Queue lines with `put`; a thread creates the group/stream and sends batches every
    `flush_interval` seconds; `flush` sends what is queued at once, `close` sends the rest. Failures are logged,
    never raised."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        stream_name: str,
        group_name: str = TRAINING_LOG_GROUP,
        flush_interval: float = 1.0,
    ) -> None:
        self.client_factory = client_factory
        self.group_name = group_name
        self.stream_name = stream_name
        self.flush_interval = flush_interval
        self.sent_events = 0
        self.failed = False
        self._queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._wake = threading.Event()  # a flush or close asked for: send now, not at the next interval
        self._sent = threading.Condition()
        self._flushes_asked = 0
        self._flushes_done = 0
        self._thread = threading.Thread(target=self._run, name="cloudwatch-logs", daemon=True)
        self._client: Any = None

    def start(self) -> None:
        self._thread.start()

    def put(self, message: str, timestamp: float | None = None) -> None:
        when = time.time() if timestamp is None else timestamp
        self._queue.put({"timestamp": int(when * 1000), "message": _fit_event(message) or " "})

    def flush(self, timeout: float = 10.0) -> bool:
        """Send every line put so far and wait until it is sent (at most `timeout` seconds), so that whoever reads
        the stream after this returns finds them; False when it gave up waiting."""
        with self._sent:
            if not self._thread.is_alive():
                return False
            self._flushes_asked += 1
            asked = self._flushes_asked
            self._wake.set()
            done = self._sent.wait_for(lambda: self._flushes_done >= asked or not self._thread.is_alive(), timeout)
        if not done:
            logger.warning("CloudWatch Logs: gave up flushing %s after %.0f s", self.stream_name, timeout)
        return bool(done)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the thread (waiting at most `timeout` seconds)."""
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("CloudWatch Logs: gave up flushing %s after %.0f s", self.stream_name, timeout)

    def _run(self) -> None:
        try:
            self._client = self.client_factory()
            self._ensure_stream()
        except Exception:
            self.failed = True
            logger.exception(
                "CloudWatch Logs: cannot create %s %s; job log not shipped", self.group_name, self.stream_name
            )
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._sent:
                asked = self._flushes_asked  # every line of these flushes is queued by now
            self._flush()
            with self._sent:
                self._flushes_done = asked
                self._sent.notify_all()
            if self._closing.is_set():
                return

    def _ensure_stream(self) -> None:
        client = self._client
        for create, kwargs in (
            (client.create_log_group, {"logGroupName": self.group_name}),
            (client.create_log_stream, {"logGroupName": self.group_name, "logStreamName": self.stream_name}),
        ):
            try:
                create(**kwargs)
            except client.exceptions.ResourceAlreadyExistsException:
                pass

    def _drain(self) -> list[dict[str, Any]]:
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events

    def _flush(self) -> None:
        events = self._drain()
        if not events or self._client is None or self.failed:
            return
        events.sort(key=lambda event: event["timestamp"])  # stable: keeps line order within a millisecond
        for batch in batches(events):
            try:
                self._client.put_log_events(
                    logGroupName=self.group_name, logStreamName=self.stream_name, logEvents=batch
                )
                self.sent_events += len(batch)
            except Exception:
                logger.exception(
                    "CloudWatch Logs: put_log_events to %s failed; %d lines lost",
                    self.stream_name,
                    len(batch),
                )
