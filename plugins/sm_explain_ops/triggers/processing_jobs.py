"""The provider's ``SageMakerTrigger`` for a runtime module's processing job, plus a stop on kill.

The provider's trigger waits on ``ProcessingJobComplete`` and reports success, failure or stop, which is all
the wait needs; it has no cancellation path, so a deferred task a user marks failed, succeeded or clears would
leave the job running and billing. ``on_kill`` stops it, as the training trigger does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from sm_explain_ops.hooks.processing_jobs import RuntimeProcessingHook
from sm_explain_ops.triggers.training_rules import STOP_TIMEOUT_SECONDS


class RuntimeProcessingTrigger(SageMakerTrigger):
    """Wait for processing job ``job_name``; stop it when the deferred task is killed (``cancel_on_kill``)."""

    def __init__(self, job_name: str, job_type: str = "Processing", cancel_on_kill: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(job_name=job_name, job_type=job_type, **kwargs)
        self.cancel_on_kill = cancel_on_kill
        self.serialized_fields["cancel_on_kill"] = cancel_on_kill

    async def on_kill(self) -> None:
        """Stop the job when a user killed the deferred task (never on triggerer restarts); never raises."""
        if not self.cancel_on_kill:
            self.log.info("Processing job %s keeps running: cancel_on_kill is off", self.job_name)
            return
        hook = RuntimeProcessingHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )
        try:
            await asyncio.wait_for(asyncio.to_thread(hook.stop_for_kill, self.job_name), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self.log.error(
                "Stopping processing job %s took over %.0f s; it may still be running: stop it with "
                "`aws sagemaker stop-processing-job --processing-job-name %s`",
                self.job_name, STOP_TIMEOUT_SECONDS, self.job_name,
            )
