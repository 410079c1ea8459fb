"""The provider's ``SageMakerTrigger`` for a runtime module's processing job, plus a stop on kill and the job's log.

The provider's trigger waits on ``ProcessingJobComplete`` and reports success, failure or stop, which is all
the wait needs; it has no cancellation path, so a deferred task a user marks failed, succeeded or clears would
leave the job running and billing. ``on_kill`` stops it, as the training trigger does.

It also has no log: while its waiter waits, a task beside it (same event loop) logs the job's new CloudWatch lines
(``/aws/sagemaker/ProcessingJobs``, every host's stream; ``sm_explain_ops.hooks.job_logs``) every ``waiter_delay``
seconds, bounded per poll, and once more when the waiter is done, before the event goes out. The waiter itself is
the provider's, unchanged. Where the log stands is checkpointed in an XCom, as the training trigger does, so a
restarted trigger goes on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.triggers.base import TriggerEvent

from sm_explain_ops.hooks.job_control import stop_from_trigger
from sm_explain_ops.hooks.job_logs import (
    JobLogFollower,
    LogLimits,
    final_read_delay,
    limits_as_dict,
    load_checkpoint,
    log_limits_from,
    logs_client_factory,
    processing_log_source,
    save_checkpoint,
)
from sm_explain_ops.hooks.processing_jobs import RuntimeProcessingHook


class RuntimeProcessingTrigger(SageMakerTrigger):
    """Wait for processing job ``job_name``; stop it when the deferred task is killed (``cancel_on_kill``); log its
    CloudWatch lines while waiting (``follow_logs``, bounded by ``log_limits``)."""

    def __init__(self, job_name: str, job_type: str = "Processing", cancel_on_kill: bool = True,
                 follow_logs: bool = True, log_limits: LogLimits | Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(job_name=job_name, job_type=job_type, **kwargs)
        self.cancel_on_kill = cancel_on_kill
        self.follow_logs = follow_logs
        self.log_limits = limits_as_dict(log_limits_from(log_limits))
        self.serialized_fields.update(cancel_on_kill=cancel_on_kill, follow_logs=follow_logs,
                                      log_limits=self.log_limits)

    async def on_kill(self) -> None:
        """Stop the job when a user killed the deferred task (never on triggerer restarts); never raises."""
        hook = RuntimeProcessingHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )
        await stop_from_trigger(hook, self.job_name, self.cancel_on_kill, self.log)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if not self.follow_logs:
            async for event in super().run():
                yield event
            return
        state = await load_checkpoint(self.task_instance, self.log)
        if state is not None and state.get("streams"):
            self.log.info("CloudWatch Logs: going on from the last checkpoint (a restarted trigger)")
        follower = JobLogFollower(
            logs_client_factory(self.aws_conn_id, self.region_name, self.verify, self.botocore_config),
            self.log, limits=log_limits_from(self.log_limits), state=state)
        follower.follow(processing_log_source(self.job_name))
        done = asyncio.Event()
        following = asyncio.create_task(self._follow(follower, done))
        try:
            async for event in super().run():
                done.set()
                await following  # its poll in progress ends first: one poll at a time
                # no describe here: from now
                await asyncio.sleep(final_read_delay(self.waiter_delay, None, settle=follower.limits.settle_seconds))
                await asyncio.to_thread(follower.poll, final=True)
                yield event
        finally:
            done.set()
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following

    async def _follow(self, follower: JobLogFollower, done: asyncio.Event) -> None:
        checkpoints = self.task_instance is not None
        while not done.is_set():
            await asyncio.to_thread(follower.poll)
            state = follower.take_state()
            if checkpoints and state is not None:
                checkpoints = await save_checkpoint(self.task_instance, state, self.log)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=self.waiter_delay)
