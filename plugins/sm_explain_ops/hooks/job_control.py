"""What every SageMaker job this package starts shares: how SageMaker says "no such job", and how a job is
stopped when its task is killed. The training and processing hooks mix it in, so both answer alike."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_not_found(error: ClientError) -> bool:
    """SageMaker answers Describe*Job of an unknown name with ValidationException ("Requested resource not
    found", "Could not find ..."); some emulators say ResourceNotFound."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code in ("ResourceNotFound", "ResourceNotFoundException") or (
        code == "ValidationException" and ("not found" in message or "could not find" in message)
    )


class JobControlMixin:
    """Describe-or-none and stop-on-kill for one kind of job; the hook names its kind and says how to describe
    and stop one."""

    job_kind: ClassVar[str]  # "training" or "processing": the words of the log lines and of the CLI hint
    status_key: ClassVar[str]  # "TrainingJobStatus", "ProcessingJobStatus"
    log: Any

    def _describe(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def describe_or_none(self, name: str) -> dict[str, Any] | None:
        """Describe*Job, or None when no job has this name."""
        try:
            return self._describe(name)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    def _request_stop(self, name: str) -> None:
        raise NotImplementedError

    def stop_if_running(self, name: str) -> bool:
        """Stop the job if it is InProgress; True when a stop was requested."""
        described = self.describe_or_none(name)
        if described is None or described.get(self.status_key) != "InProgress":
            return False
        try:
            self._request_stop(name)
        except ClientError as error:
            if error_code(error) != "ValidationException":  # it just ended: nothing to stop
                raise
            self.log.info("%s job %s ended before it could be stopped: %s", self.job_kind.capitalize(), name, error)
            return False
        self.log.info("Requested stop of %s job %s", self.job_kind, name)
        return True

    def stop_command(self, name: str) -> str:
        """The AWS CLI command that stops the job by hand."""
        return f"aws sagemaker stop-{self.job_kind}-job --{self.job_kind}-job-name {name}"

    def stop_for_kill(self, name: str) -> bool:
        """:meth:`stop_if_running` for a task being killed: it never raises (the kill goes on whatever
        happens here), and says how to stop the job by hand when it could not."""
        try:
            return self.stop_if_running(name)
        except Exception:
            self.log.exception(
                "Could not stop %s job %s; it may still be running and billing: stop it with `%s`",
                self.job_kind, name, self.stop_command(name),
            )
            return False


#: How long a trigger's on_kill may take to describe and stop the job: the triggerer's own bound
#: ([triggerer] on_kill_timeout, 30 s by default) must not cut it off without a word in the log.
STOP_TIMEOUT_SECONDS = 25.0


async def stop_from_trigger(hook: JobControlMixin, name: str, cancel_on_kill: bool, log: Any) -> None:
    """A trigger's ``on_kill``: stop the job when a user killed the deferred task (never on triggerer restarts).

    A job already ended or being stopped is left alone; a failure is logged, never raised. The stop runs in a
    thread (boto3 is synchronous), as the provider's EMR trigger does, and at most STOP_TIMEOUT_SECONDS."""
    if not cancel_on_kill:
        log.info("%s job %s keeps running: cancel_on_kill is off", hook.job_kind.capitalize(), name)
        return
    try:
        await asyncio.wait_for(asyncio.to_thread(hook.stop_for_kill, name), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("Stopping %s job %s took over %.0f s; it may still be running: stop it with `%s`",
                  hook.job_kind, name, STOP_TIMEOUT_SECONDS, hook.stop_command(name))
