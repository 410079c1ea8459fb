"""Follow the CloudWatch log streams of SageMaker jobs into an Airflow task's log, a bounded piece per poll.

SageMaker ships every line a job's containers write to CloudWatch Logs: training jobs to the group
``/aws/sagemaker/TrainingJobs``, processing jobs (a Debugger rule's evaluation job is one) to
``/aws/sagemaker/ProcessingJobs``, one stream per host and container start, ``<job>/algo-<n>-<epoch seconds>``.
:class:`JobLogFollower` finds a job's streams by the ``<job>/`` prefix and, at each poll, logs the lines that
arrived since the last one, in time order, each prefixed with its job and host (``[training algo-1] ...``).

What each poll may cost is capped (:class:`LogLimits`): lines, bytes, API requests, pages per stream, streams per
job, bytes per line. A job that writes faster than the cap is followed with a lag, never skipped; the poll that
hits the cap says so. Where the follower stands (per stream the ``nextForwardToken`` and how many events of its
page were already logged) is plain JSON (:attr:`JobLogFollower.state`), so a caller that outlives this object (a
rescheduled sensor, a restarted trigger) hands it to the next one and nothing is logged twice. A follower without
state (a new try, a restart that found no checkpoint) starts at most ``catch_up_seconds`` before its creation, so
it never re-reads a long job's whole log. Failures of CloudWatch are logged as warnings, never raised: the logs are
a view, the wait goes on without them.

What is taken from the Amazon provider, and what not:
- ``AwsLogsHook``: its client (the connection's credentials, region, endpoint, botocore config), and the provider's
  way to find a job's streams (``SageMakerHook.describe_training_job_with_log``: DescribeLogStreams by the
  ``<job>/`` prefix ordered by name, a missing log group meaning "no logs yet").
- Not ``AwsLogsHook.get_log_events`` / ``SageMakerHook.multi_stream_iter``: they read everything available (no cap
  per call), and their positions are (timestamp, skip) from 0, so a wait attached to a day-old job would log the
  whole day in one poke; the continuation token they keep moves only after a whole page, so a cap in the middle of
  a page could not be resumed.
- Not ``AwsLogsHook.get_log_events_async`` (what ``describe_training_job_with_log_async`` uses): it sleeps a second
  per event and never returns, so a trigger could not go back to describing the job.
- Not ``print_log`` / ``check_training_status_with_log``: they block until the job ends and know training jobs only.
CloudWatch's own rule is kept: a call with ``nextToken`` sets ``startFromHead`` true (GetLogEvents' reference).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
STATE_VERSION = 1
#: One request per API call, short timeouts: a slow CloudWatch must not hold the wait (the next poll retries).
LOGS_CLIENT_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 1},
    "connect_timeout": 5,
    "read_timeout": 15,
}
_MAX_EVENTS_PER_CALL = 10_000  # GetLogEvents' own limit
_MAX_STREAMS_PER_CALL = 50  # DescribeLogStreams' own limit
_HOST = re.compile(r"(.+?)-\d+$")


@dataclass(frozen=True)
class LogLimits:
    """What one poll may cost. ``lines_per_poll`` and ``bytes_per_poll`` bound what is logged (over every stream),
    ``requests_per_poll`` the API calls, ``pages_per_stream`` the GetLogEvents calls on one stream, ``line_bytes``
    one line (longer ones are cut, saying how much), ``streams_per_job`` the streams followed per job (a job has one
    per host and container start), ``max_jobs`` the jobs followed. A follower without state starts
    ``catch_up_seconds`` before its creation; a job's streams are listed again every ``discover_seconds``.
    ``settle_seconds`` is how long after a job's end its last read waits for CloudWatch to show the last lines
    (``final_read_delay``): None, the default, waits the wait's own interval, at most ``FINAL_READ_DELAY_SECONDS``;
    0 suits a service that has every line before it ends the job, as the local endpoint does
    (``$SM_EXPLAIN_LOG_SETTLE_SECONDS``, which the local stack sets)."""

    lines_per_poll: int = 500
    bytes_per_poll: int = 256 * 1024
    line_bytes: int = 4096
    requests_per_poll: int = 24
    pages_per_stream: int = 3
    streams_per_job: int = _MAX_STREAMS_PER_CALL
    max_jobs: int = 32
    catch_up_seconds: float = 600.0
    discover_seconds: float = 60.0
    settle_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("lines_per_poll", "bytes_per_poll", "line_bytes", "requests_per_poll", "pages_per_stream",
                     "streams_per_job", "max_jobs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LogLimits.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.line_bytes > self.bytes_per_poll:
            raise ValueError("LogLimits.line_bytes may not exceed bytes_per_poll (a line must fit in a poll)")
        if self.streams_per_job > _MAX_STREAMS_PER_CALL:
            raise ValueError(f"LogLimits.streams_per_job is at most {_MAX_STREAMS_PER_CALL} (one DescribeLogStreams)")
        if self.settle_seconds is not None:
            settle_seconds(self.settle_seconds, "LogLimits.settle_seconds")


@dataclass(frozen=True)
class LogSource:
    """One job's streams: ``<job_name>/...`` in ``group``, shown as ``[<label> <host>]``."""

    group: str
    job_name: str
    label: str


def training_log_source(job_name: str) -> LogSource:
    return LogSource(TRAINING_LOG_GROUP, job_name, "training")


def processing_log_source(job_name: str, label: str = "processing") -> LogSource:
    return LogSource(PROCESSING_LOG_GROUP, job_name, label)


def rule_job_name(training_job_name: str, rule_name: str, rule_job_arn: str) -> str:
    """The processing job that evaluates a Debugger rule, as its log streams are named.

    The ARN lowercases the name (as every SageMaker ARN does) but CloudWatch stream names keep its case. SageMaker
    names a rule job ``<training job[:26]>-<RuleConfigurationName[:26]>-<the ARN's last 8 characters>`` (AWS's
    Debugger example notebooks build the rule job's CloudWatch link this way); when that name is not the ARN's, the
    ARN's own (lowercase) name is used."""
    resource = rule_job_arn.rsplit("/", 1)[-1]
    derived = f"{training_job_name[:26]}-{rule_name[:26]}-{rule_job_arn[-8:]}"
    return derived if derived.lower() == resource.lower() else resource


def rule_log_sources(describe: Mapping[str, Any]) -> list[LogSource]:
    """Every Debugger rule's evaluation job (a processing job) of a DescribeTrainingJob answer that has one."""
    job = str(describe.get("TrainingJobName") or "")
    sources = []
    for status in describe.get("DebugRuleEvaluationStatuses") or []:
        arn = status.get("RuleEvaluationJobArn")
        name = status.get("RuleConfigurationName")
        if job and arn and name and ":processing-job/" in arn:
            sources.append(processing_log_source(rule_job_name(job, str(name), str(arn)), f"rule {name}"))
    return sources


def logs_client_factory(aws_conn_id: str | None, region_name: str | None, verify: bool | str | None,
                        botocore_config: Mapping[str, Any] | None) -> Callable[[], Any]:
    """A factory of CloudWatch Logs clients through the task's AWS connection (``AwsLogsHook``), one attempt
    per request unless ``botocore_config`` says otherwise."""

    def factory() -> Any:
        from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

        config = {**LOGS_CLIENT_CONFIG, **dict(botocore_config or {})}
        return AwsLogsHook(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=config).conn

    return factory


@dataclass
class _Position:
    token: str | None = None  # the token the next page is read with (None: from `since_ms`, the stream's head)
    skip: int = 0  # events of that page already logged (a poll that hit its cap in the middle of the page)


@dataclass
class _Budget:
    lines: int
    bytes: int
    requests: int
    capped: bool = False

    def spend_request(self) -> bool:
        if self.requests <= 0:
            self.capped = True
            return False
        self.requests -= 1
        return True


@dataclass
class _Stream:
    source: LogSource
    name: str
    created_ms: int | None

    @property
    def key(self) -> str:
        return f"{self.source.group}|{self.name}"

    @property
    def host(self) -> str:
        tail = self.name[len(self.source.job_name) + 1:]
        match = _HOST.fullmatch(tail)
        return match.group(1) if match else tail


class JobLogFollower:
    """Logs the new CloudWatch lines of the jobs it follows, at most :class:`LogLimits` per :meth:`poll`.

    :param client_factory: makes the CloudWatch Logs client (once, on the first poll), e.g.
        :func:`logs_client_factory`.
    :param log: where the lines go (the task's or the trigger's logger).
    :param state: :attr:`state` of an earlier follower of the same jobs: go on where it stood.
    :param clock: seconds since the epoch (tests give their own).
    """

    def __init__(self, client_factory: Callable[[], Any], log: Any, *, limits: LogLimits | None = None,
                 state: Mapping[str, Any] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or LogLimits()
        self.log = log
        self._client_factory = client_factory
        self._client: Any = None
        self._clock = clock
        self._sources: dict[tuple[str, str], LogSource] = {}
        self._streams: dict[str, _Stream] = {}
        self._discovered_at: dict[tuple[str, str], float] = {}
        self._polls = 0
        self.changed = False  # positions moved since the last `take_state`
        self._positions: dict[str, _Position] = {}
        restored = _parse_state(state)
        if restored is None:
            self.since_ms = int((clock() - self.limits.catch_up_seconds) * 1000)
        else:
            self.since_ms, self._positions = restored

    # -- what to follow ------------------------------------------------------------------------------------------
    def follow(self, *sources: LogSource) -> None:
        """Follow these jobs too (again: nothing changes); at most ``max_jobs``, the others are ignored."""
        for source in sources:
            key = (source.group, source.job_name)
            if key not in self._sources and len(self._sources) < self.limits.max_jobs:
                self._sources[key] = source

    @property
    def state(self) -> dict[str, Any]:
        """Where the follower stands, as JSON: ``{"v", "since_ms", "streams": {"<group>|<stream>": [token, skip]}}``."""
        return {"v": STATE_VERSION, "since_ms": self.since_ms,
                "streams": {key: [position.token, position.skip] for key, position in sorted(self._positions.items())}}

    def take_state(self) -> dict[str, Any] | None:
        """:attr:`state` when it changed since the last call (what a checkpoint saves), else None."""
        if not self.changed:
            return None
        self.changed = False
        return self.state

    # -- one poll ------------------------------------------------------------------------------------------------
    def poll(self, *, final: bool = False) -> int:
        """Log what arrived since the last poll, within the limits; returns the number of lines logged.

        ``final``: the jobs have ended: list every job's streams again first (a last host may have started late),
        and say where the rest is when the cap leaves lines unread."""
        self._polls += 1
        budget = _Budget(self.limits.lines_per_poll, self.limits.bytes_per_poll, self.limits.requests_per_poll)
        events: list[tuple[int, int, str, str]] = []
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._discover(budget, force=final)
            streams = sorted(self._streams.values(), key=lambda stream: stream.key)
            if streams:  # rotate the start so a chatty stream cannot keep the others waiting poll after poll
                offset = (self._polls - 1) % len(streams)
                streams = streams[offset:] + streams[:offset]
            for order, stream in enumerate(streams):
                if budget.lines <= 0 or budget.bytes <= 0:
                    budget.capped = True
                    break
                for timestamp, text in self._read(stream, budget):
                    events.append((timestamp, order, f"[{stream.source.label} {stream.host}]", text))
        except (ClientError, BotoCoreError) as error:
            self.log.warning("CloudWatch Logs: %s; the job's lines follow at the next poll", _describe_error(error))
        except Exception as error:  # a view of the logs never fails the wait
            self.log.warning("CloudWatch Logs: cannot read the job's lines (%s: %s)", type(error).__name__, error)
        events.sort(key=lambda event: (event[0], event[1]))
        for _timestamp, _order, prefix, text in events:
            self.log.info("%s %s", prefix, text)
        if budget.capped:
            if final:
                self.log.info(
                    "CloudWatch Logs: %d lines logged, the most one poll logs; the rest of the jobs' lines are in "
                    "CloudWatch (%s)", len(events), self._where())
            else:
                self.log.info("CloudWatch Logs: %d lines logged, the most one poll logs; the rest follows",
                              len(events))
        return len(events)

    def _where(self) -> str:
        return "; ".join(f"{source.group}, streams {source.job_name}/*" for source in self._sources.values())

    def _discover(self, budget: _Budget, *, force: bool) -> None:
        now = self._clock()
        for key, source in self._sources.items():
            known = any(stream.source is source for stream in self._streams.values())
            last = self._discovered_at.get(key)
            if known and not force and last is not None and now - last < self.limits.discover_seconds:
                continue
            if not budget.spend_request():
                return
            self._discovered_at[key] = now
            try:
                answer = self._client.describe_log_streams(
                    logGroupName=source.group, logStreamNamePrefix=f"{source.job_name}/",
                    orderBy="LogStreamName", limit=self.limits.streams_per_job)
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":  # no log group until a first container logs
                    continue
                raise
            for entry in answer.get("logStreams") or []:
                stream = _Stream(source, str(entry["logStreamName"]), entry.get("creationTime"))
                if stream.key not in self._streams:
                    self._streams[stream.key] = stream

    def _read(self, stream: _Stream, budget: _Budget) -> Iterable[tuple[int, str]]:
        """The stream's next events within the budget; moves its position past what it yields."""
        position = self._positions.get(stream.key)
        if position is None:
            position = self._positions[stream.key] = _Position()
            self.changed = True
            if stream.created_ms is not None and stream.created_ms < self.since_ms:
                self.log.info("CloudWatch Logs: %s/%s: lines before %s UTC are not repeated here",
                              stream.source.group, stream.name,
                              datetime.fromtimestamp(self.since_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"))
        for _page in range(self.limits.pages_per_stream):
            if budget.lines <= 0 or budget.bytes <= 0:
                budget.capped = True
                return
            if not budget.spend_request():
                return
            request: dict[str, Any] = {
                "logGroupName": stream.source.group, "logStreamName": stream.name, "startFromHead": True,
                "limit": min(_MAX_EVENTS_PER_CALL, position.skip + budget.lines)}
            if position.token is not None:
                request["nextToken"] = position.token
            else:
                request["startTime"] = max(0, self.since_ms)
            try:
                answer = self._client.get_log_events(**request)
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":  # the stream went away (retention): forget it
                    self._streams.pop(stream.key, None)
                    return
                raise
            page = list(answer.get("events") or [])
            taken = 0
            for event in page[position.skip:]:
                text = self._fit(str(event.get("message", "")).rstrip("\r\n"))
                size = len(text.encode("utf-8"))
                if budget.lines <= 0 or size > budget.bytes:
                    budget.capped = True
                    break
                budget.lines -= 1
                budget.bytes -= size
                taken += 1
                yield int(event.get("timestamp") or 0), text
            if taken:
                self.changed = True
            if position.skip + taken < len(page):  # stopped inside the page: read it again, skipping what was logged
                position.skip += taken
                return
            token = answer.get("nextForwardToken")
            if token is None or token == position.token:  # the end for now: this page again next time
                position.skip = len(page)
                return
            self._positions[stream.key] = position = _Position(token, 0)
            self.changed = True
            if not page:  # an empty page: CloudWatch may have more, the next poll goes on from its token
                return

    def _fit(self, text: str) -> str:
        encoded = text.encode("utf-8")
        if len(encoded) <= self.limits.line_bytes:
            return text
        marker = f" ... [{len(encoded)} bytes, cut]"
        keep = max(0, self.limits.line_bytes - len(marker.encode("utf-8")))
        return encoded[:keep].decode("utf-8", errors="ignore") + marker


def _parse_state(state: Mapping[str, Any] | None) -> tuple[int, dict[str, _Position]] | None:
    """An earlier follower's state, or None when there is none or it is not one this version reads."""
    if not isinstance(state, Mapping) or state.get("v") != STATE_VERSION:
        return None
    since = state.get("since_ms")
    streams = state.get("streams")
    if not isinstance(since, int) or isinstance(since, bool) or not isinstance(streams, Mapping):
        return None
    positions: dict[str, _Position] = {}
    for key, value in streams.items():
        if (isinstance(key, str) and isinstance(value, list | tuple) and len(value) == 2
                and (value[0] is None or isinstance(value[0], str)) and isinstance(value[1], int) and value[1] >= 0):
            positions[key] = _Position(value[0], value[1])
    return since, positions


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe_error(error: BaseException) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', error)}"
    return f"{type(error).__name__}: {error}"


#: The XCom a deferred wait keeps its follower's :attr:`JobLogFollower.state` in, so that a trigger restarted by the
#: triggerer goes on where the last one stood (a trigger cannot rewrite its own kwargs). XComs survive a deferral and
#: are cleared when a new try starts, which then begins afresh. The task writes a first one before it defers
#: (:func:`push_initial_checkpoint`), so the trigger always finds one and every restart starts from the same point.
CHECKPOINT_XCOM_KEY = "cloudwatch_log_positions"
#: Before the last read of a job that ended: CloudWatch may take a moment to show its last lines.
FINAL_READ_DELAY_SECONDS = 5.0


def _as_utc(moment: datetime) -> datetime:
    """A describe's time as an aware datetime (a naive one is UTC, as the service writes it)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def training_end_time(describe: Mapping[str, Any]) -> datetime | None:
    """When a training job and its rules last changed (their latest ``LastModifiedTime``): the end of what the
    last log read of the job and its rules must wait for."""
    times = [describe.get("LastModifiedTime"),
             *(status.get("LastModifiedTime") for status in describe.get("DebugRuleEvaluationStatuses") or []
               if isinstance(status, Mapping))]
    return max((_as_utc(t) for t in times if isinstance(t, datetime)), default=None)


#: The deployment's ``LogLimits.settle_seconds`` (read when the DAG file is parsed); unset = the default.
LOG_SETTLE_ENV = "SM_EXPLAIN_LOG_SETTLE_SECONDS"


def settle_seconds(value: Any, name: str = LOG_SETTLE_ENV) -> float:
    """A settle time checked: a number of seconds from 0 to ``FINAL_READ_DELAY_SECONDS``, or ValueError naming
    ``name`` (a longer one would only delay every task's end)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0.0 <= seconds <= FINAL_READ_DELAY_SECONDS:  # also refuses NaN
        raise ValueError(f"{name} is {value!r}; it must be a number of seconds from 0 to "
                         f"{FINAL_READ_DELAY_SECONDS:g}")
    return seconds


def log_limits_from_env(environ: Mapping[str, str] = os.environ) -> LogLimits:
    """The default limits, with ``settle_seconds`` from ``$SM_EXPLAIN_LOG_SETTLE_SECONDS`` when it is set."""
    raw = str(environ.get(LOG_SETTLE_ENV, "")).strip()
    return LogLimits(settle_seconds=settle_seconds(raw) if raw else None)


def final_read_delay(interval: float, ended_at: datetime | None, clock: Callable[[], float] = time.time,
                     settle: float | None = None) -> float:
    """How long to wait before the last log read of a job that ended: until ``settle`` seconds (None:
    ``min(interval, FINAL_READ_DELAY_SECONDS)``) after ``ended_at`` (the job's end time from its describe), since
    that is the moment CloudWatch's lag counts from, not the moment a poll noticed the end; that long from now
    without an end time, and never longer (a clock ahead of the service's is no reason to wait more)."""
    delay = max(0.0, min(interval if settle is None else settle, FINAL_READ_DELAY_SECONDS))
    if not isinstance(ended_at, datetime):
        return delay
    return min(delay, max(0.0, _as_utc(ended_at).timestamp() + delay - clock()))


def initial_state(limits: LogLimits | None = None, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The state of a follower that has read nothing yet: from ``catch_up_seconds`` before now."""
    limits = limits or LogLimits()
    return {"v": STATE_VERSION, "since_ms": int((clock() - limits.catch_up_seconds) * 1000), "streams": {}}


def push_initial_checkpoint(context: Mapping[str, Any], limits: LogLimits, log: Any) -> None:
    """Before a task defers: its trigger's first checkpoint (nothing read yet, from now on), pushed by the task."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    if ti is None:
        return
    try:
        ti.xcom_push(key=CHECKPOINT_XCOM_KEY, value=initial_state(limits))
    except Exception as error:  # the trigger then starts without one
        log.warning("CloudWatch Logs: cannot write the first checkpoint (%s)", error)


def _xcom_address(task_instance: Any) -> dict[str, Any] | None:
    if task_instance is None:
        return None
    try:
        return {"dag_id": task_instance.dag_id, "task_id": task_instance.task_id, "run_id": task_instance.run_id,
                "map_index": getattr(task_instance, "map_index", -1)}
    except AttributeError:
        return None


async def load_checkpoint(task_instance: Any, log: Any) -> dict[str, Any] | None:
    """A trigger's last checkpoint of its task instance (None without one, or outside a triggerer)."""
    address = _xcom_address(task_instance)
    if address is None:
        return None
    try:
        from airflow.sdk.execution_time.xcom import XCom

        value = await XCom.aget_one(key=CHECKPOINT_XCOM_KEY, **address)
    except Exception as error:  # no comms (a trigger run outside the triggerer), an old server: start afresh
        log.info("CloudWatch Logs: no checkpoint to go on from (%s); following from the recent lines", error)
        return None
    return value if isinstance(value, dict) else None


async def save_checkpoint(task_instance: Any, state: Mapping[str, Any], log: Any) -> bool:
    """Write the follower's state to the task instance's checkpoint XCom; False (logged) when it cannot."""
    address = _xcom_address(task_instance)
    if address is None:
        return False
    try:
        from airflow.sdk.execution_time.xcom import XCom

        await XCom.aset(CHECKPOINT_XCOM_KEY, dict(state), **address)
    except Exception as error:
        log.warning("CloudWatch Logs: cannot save where the log stands (%s); a restart may repeat some lines", error)
        return False
    return True


def log_limits_from(value: LogLimits | Mapping[str, Any] | None) -> LogLimits:
    """A :class:`LogLimits` from itself, its fields as a mapping (a trigger's kwargs), or None (the defaults)."""
    if value is None or isinstance(value, LogLimits):
        return value or LogLimits()
    return LogLimits(**dict(value))


def limits_as_dict(limits: LogLimits) -> dict[str, Any]:
    """The fields of ``limits`` (what a trigger serializes)."""
    return {name: getattr(limits, name) for name in LogLimits.__dataclass_fields__}


def poll_training_job(follower: JobLogFollower, describe: Mapping[str, Any], *, final: bool = False) -> int:
    """One poll of a training job's log and of every Debugger rule job it names so far."""
    follower.follow(training_log_source(str(describe["TrainingJobName"])), *rule_log_sources(describe))
    return follower.poll(final=final)
