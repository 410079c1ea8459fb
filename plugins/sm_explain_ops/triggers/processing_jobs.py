"""The provider's ``SageMakerTrigger`` for a runtime module's processing job, plus a stop on kill.

The provider's trigger waits on ``ProcessingJobComplete`` and reports success, failure or stop, which is all
the wait needs; it has no cancellation path, so a deferred task a user marks failed, succeeded or clears would
leave the job running and billing. ``on_kill`` stops it, as the training trigger does.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from sm_explain_ops.hooks.job_control import stop_from_trigger
from sm_explain_ops.hooks.processing_jobs import RuntimeProcessingHook


class RuntimeProcessingTrigger(SageMakerTrigger):
    """Wait for processing job ``job_name``; stop it when the deferred task is killed (``cancel_on_kill``)."""

    def __init__(self, job_name: str, job_type: str = "Processing", cancel_on_kill: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(job_name=job_name, job_type=job_type, **kwargs)
        self.cancel_on_kill = cancel_on_kill
        self.serialized_fields["cancel_on_kill"] = cancel_on_kill

    async def on_kill(self) -> None:
        """Stop the job when a user killed the deferred task (never on triggerer restarts); never raises."""
        hook = RuntimeProcessingHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )
        await stop_from_trigger(hook, self.job_name, self.cancel_on_kill, self.log)
