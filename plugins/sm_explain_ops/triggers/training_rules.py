"""Trigger that waits, in the triggerer, until a training job AND all its Debugger rules have ended.

Why not the provider's ``SageMakerTrigger``: it watches ``TrainingJobStatus`` only, gives up after
``waiter_max_attempts``, and its waiter fails on the first throttling burst. This trigger polls
``DescribeTrainingJob`` once per interval with no attempt cap (the sensor's deferral timeout is the
only limit), backs off on throttling and transient errors, and sends a compact verdict back. When a
user marks the deferred task failed or succeeded, or clears it, the triggerer calls ``on_kill``: it stops the
job (and with it its rule evaluations), so nothing runs on and bills for a wait nobody watches.

After each describe it logs the new CloudWatch lines of the training job and of every rule's evaluation job
(``sm_explain_ops.hooks.job_logs``, in a thread: boto3 is synchronous), from the triggerer, into the task's log;
no event is yielded for them. Where the log stands is checkpointed in an XCom after each poll that moved it (the
sensor writes the first one before it defers), so a trigger the triggerer restarts goes on from there: it repeats
at most the lines of the poll it was in when it died. Without a readable checkpoint it starts ``catch_up_seconds``
(10 minutes) before its own start: bounded, though it may repeat lines of those minutes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.awsrequest import AWSResponse
from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import (
    OrRetryChecker,
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from sm_explain_ops.hooks.job_control import stop_from_trigger
from sm_explain_ops.hooks.job_logs import (
    JobLogFollower,
    LogLimits,
    final_read_delay,
    limits_as_dict,
    load_checkpoint,
    log_limits_from,
    logs_client_factory,
    poll_training_job,
    save_checkpoint,
    training_end_time,
)
from sm_explain_ops.hooks.training_jobs import DebuggedTrainingHook
from sm_explain_ops.verdict import compact_verdict, is_terminal

#: Longest wait between two describes while the API keeps throttling or failing transiently.
MAX_BACKOFF_SECONDS = 300.0

# botocore's own standard-mode classification of throttling and transient failures.
_RETRYABLE = OrRetryChecker([ThrottledRetryableChecker(), TransientRetryableChecker()])


def is_retryable_error(error: BaseException) -> bool:
    """True for throttling and transient errors (botocore standard retry mode's rules)."""
    if isinstance(error, ClientError):
        status_code = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        http_response = (
            AWSResponse(url="", status_code=status_code, headers={}, raw=None) if status_code else None
        )
        context = RetryContext(attempt_number=1, parsed_response=error.response, http_response=http_response)
    else:
        context = RetryContext(attempt_number=1, caught_exception=error)
    return _RETRYABLE.is_retryable(context)


def client_config(botocore_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The botocore config to describe with: one HTTP request per describe unless told otherwise.

    The poll loop itself is the retry (with backoff); botocore's default would add up to four hidden
    requests per poll. A ``retries`` entry in ``botocore_config`` wins.
    """
    config = dict(botocore_config or {})
    config.setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
    return config


#: Doublings past this add nothing (2**64 times any interval is past the cap); the count of errors in a row
#: keeps growing while an endpoint is down for days, and 2.0**1024 would overflow a float.
_MAX_BACKOFF_DOUBLINGS = 64


def backoff_delay(poke_interval: float, consecutive_failures: int) -> float:
    """Exponential backoff with jitter, never shorter than the poke interval nor longer than the cap."""
    ceiling = max(poke_interval, MAX_BACKOFF_SECONDS)
    growth = 2.0 ** min(max(consecutive_failures, 0), _MAX_BACKOFF_DOUBLINGS)
    delay = min(ceiling, poke_interval * growth) * random.uniform(0.5, 1.0)
    return max(poke_interval, delay)


def describe_error_message(job_name: str, error: BaseException) -> str:
    """A message naming the job and the API's own explanation."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return (
            f"DescribeTrainingJob for {job_name!r} failed: {err.get('Code', 'error')}: "
            f"{err.get('Message', str(error))}"
        )
    return f"DescribeTrainingJob for {job_name!r} failed: {error}"


class TrainingAndRulesTrigger(BaseTrigger):
    """Poll DescribeTrainingJob until training and every Debugger rule are terminal.

    :param job_name: the training job.
    :param poke_interval: seconds between two describes.
    :param aws_conn_id, region_name, verify, botocore_config: passed to ``SageMakerHook`` as given,
        so the triggerer talks to the same region/endpoint with the same client settings as the task.
    :param cancel_on_kill: stop the training job when a user kills the deferred task (the provider's
        name for this switch, as on its EMR and Redshift triggers).
    :param follow_logs: log the jobs' new CloudWatch lines after each describe; ``log_limits`` (the fields of
        :class:`~sm_explain_ops.hooks.job_logs.LogLimits`) bounds one poll.
    """

    def __init__(
        self,
        *,
        job_name: str,
        poke_interval: float = 60,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        cancel_on_kill: bool = True,
        follow_logs: bool = True,
        log_limits: LogLimits | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not job_name:
            raise ValueError("TrainingAndRulesTrigger needs a job_name")
        if poke_interval <= 0:
            raise ValueError(f"poke_interval must be positive, got {poke_interval!r}")
        self.job_name = job_name
        self.poke_interval = poke_interval
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.cancel_on_kill = cancel_on_kill
        self.follow_logs = follow_logs
        self.log_limits = limits_as_dict(log_limits_from(log_limits))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "poke_interval": self.poke_interval,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "cancel_on_kill": self.cancel_on_kill,
                "follow_logs": self.follow_logs,
                "log_limits": self.log_limits,
            },
        )

    def hook(self) -> SageMakerHook:
        return SageMakerHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=client_config(self.botocore_config),
        )

    async def on_kill(self) -> None:
        """Stop the job when a user killed the deferred task (never on triggerer restarts or timeouts). The stop
        uses the task's botocore settings as given (with botocore's retries: one stop request matters more than
        one describe)."""
        hook = DebuggedTrainingHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )
        await stop_from_trigger(hook, self.job_name, self.cancel_on_kill, self.log)

    async def _log_follower(self) -> JobLogFollower | None:
        if not self.follow_logs:
            return None
        state = await load_checkpoint(self.task_instance, self.log)
        if state is not None and state.get("streams"):
            self.log.info("CloudWatch Logs: going on from the last checkpoint (a restarted trigger)")
        factory = logs_client_factory(self.aws_conn_id, self.region_name, self.verify, self.botocore_config)
        return JobLogFollower(factory, self.log, limits=log_limits_from(self.log_limits), state=state)

    async def _poll_logs(self, follower: JobLogFollower | None, describe: dict[str, Any], final: bool) -> None:
        """One bounded poll of the logs (in a thread), then the checkpoint when the position moved."""
        if follower is None:
            return
        if final:  # CloudWatch may show a job's last lines a moment after it ended
            await asyncio.sleep(final_read_delay(self.poke_interval, training_end_time(describe),
                                                 settle=follower.limits.settle_seconds))
        await asyncio.to_thread(poll_training_job, follower, describe, final=final)
        state = follower.take_state()
        if state is not None and self._checkpoints and not final:
            self._checkpoints = await save_checkpoint(self.task_instance, state, self.log)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        consecutive_failures = 0
        self._checkpoints = self.task_instance is not None  # stops at the first failure: one warning, not one a poll
        follower = await self._log_follower()
        async with await self.hook().get_async_conn() as client:
            endpoint_url = client.meta.endpoint_url
            while True:
                try:
                    describe = await client.describe_training_job(TrainingJobName=self.job_name)
                except (ClientError, BotoCoreError) as error:
                    if not is_retryable_error(error):
                        yield TriggerEvent(
                            {
                                "status": "error",
                                "job_name": self.job_name,
                                "message": describe_error_message(self.job_name, error),
                            }
                        )
                        return
                    consecutive_failures += 1
                    delay = backoff_delay(self.poke_interval, consecutive_failures)
                    self.log.warning(
                        "%s; retrying in %.1f s (%d in a row)",
                        describe_error_message(self.job_name, error),
                        delay,
                        consecutive_failures,
                    )
                    await asyncio.sleep(delay)
                    continue
                consecutive_failures = 0
                if is_terminal(describe):
                    await self._poll_logs(follower, describe, final=True)
                    yield TriggerEvent(
                        {"status": "success", "verdict": compact_verdict(describe, endpoint_url=endpoint_url)}
                    )
                    return
                self.log.info(
                    "Training job %s: %s/%s; rules: %s",
                    self.job_name,
                    describe.get("TrainingJobStatus"),
                    describe.get("SecondaryStatus"),
                    {
                        s.get("RuleConfigurationName"): s.get("RuleEvaluationStatus")
                        for s in describe.get("DebugRuleEvaluationStatuses") or []
                    },
                )
                await self._poll_logs(follower, describe, final=False)
                await asyncio.sleep(self.poke_interval)
