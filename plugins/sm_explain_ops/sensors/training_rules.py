"""Sensor that waits for a training job AND its Debugger rules, then applies a per-rule policy.

The provider's ``SageMakerTrainingSensor`` succeeds as soon as training completes, whatever the
rules say. This sensor waits until every rule has ended too, alerts on ``IssuesFound``, fails or
continues per rule policy, and pushes a compact verdict (not the whole describe) to XCom.
Deferrable by default; ``deferrable=False`` runs it in ``mode="poke"`` or ``mode="reschedule"``.
Killing the wait (mark failed or succeeded, clear) stops the job: ``on_kill`` while the task pokes, the
trigger's ``on_kill`` while it is deferred. In reschedule mode nothing runs between two pokes to be killed.

While it waits, the task log shows the new CloudWatch lines of the training job and of every rule's evaluation
job (``sm_explain_ops.hooks.job_logs``), a bounded piece per poke: poke mode keeps the follower between pokes,
reschedule mode keeps its position in the task instance's ``task_state_store``, the trigger in an XCom.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.exceptions import BotoCoreError, ClientError

from sm_explain_ops.hooks.job_logs import (
    CHECKPOINT_XCOM_KEY,
    JobLogFollower,
    LogLimits,
    final_read_delay,
    limits_as_dict,
    log_limits_from,
    logs_client_factory,
    poll_training_job,
    push_initial_checkpoint,
    training_end_time,
)
from sm_explain_ops.hooks.training_jobs import DebuggedTrainingHook
from sm_explain_ops.links import WaitedTrainingJobLink, WaitedTrainingJobLogsLink
from sm_explain_ops.notifiers.rule_alert import Notifier, fire_rule_alerts, normalize_notifiers
from sm_explain_ops.templating import resolved_at_run_time
from sm_explain_ops.triggers.training_rules import (
    TrainingAndRulesTrigger,
    client_config,
    describe_error_message,
    is_retryable_error,
)
from sm_explain_ops.verdict import (
    RulePolicy,
    compact_verdict,
    decide,
    is_terminal,
    parse_rule_policies,
)

#: Debugger rules on AWS can finish long after training; a week is the only cap unless you set one.
DEFAULT_TIMEOUT = timedelta(days=7)


class TrainingAndRulesSensor(AwsBaseSensor[SageMakerHook]):
    """Wait until a training job and all its Debugger rules are terminal; decide by rule policy.

    :param job_name: the training job (templated).
    :param rule_policies: ``{rule name: RulePolicy | {"issues_found": ..., "error": ...}}``; the key
        ``"*"`` sets the default for rules not named. Default policy: fail on IssuesFound and on Error.
    :param notifiers: Airflow notifiers or callables fired for every rule that ends IssuesFound,
        with ``context["rule_alert"]`` set (see :mod:`sm_explain_ops.notifiers.rule_alert`).
    :param deferrable: wait in the triggerer (default). ``False`` uses ``mode`` (poke/reschedule).
    :param poke_interval: seconds between two DescribeTrainingJob calls, in every mode.
    :param timeout: how long to wait in total (default 7 days); there is no other cap.
    :param cancel_on_kill: stop the training job when the task is killed (default), in every mode.
    :param follow_logs: log the new CloudWatch lines of the training job and of its rule jobs at each poll
        (default), in every mode; ``log_limits`` (:class:`~sm_explain_ops.hooks.job_logs.LogLimits` or its fields)
        bounds what one poll reads.
    :return: the compact verdict (see :func:`sm_explain_ops.verdict.compact_verdict`).
    :raises AirflowFailException: when the policy fails the task (retrying cannot change a final status).
    :raises AirflowException: when the job cannot be described or the trigger sends a bad event.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("job_name", "rule_policies")
    template_fields_renderers = {"rule_policies": "json"}
    operator_extra_links = (WaitedTrainingJobLink(), WaitedTrainingJobLogsLink())
    ui_color = "#66c3ff"

    def __init__(
        self,
        *,
        job_name: str,
        rule_policies: Mapping[str, RulePolicy | Mapping[str, Any]] | None = None,
        notifiers: Notifier | Sequence[Notifier] | None = None,
        deferrable: bool = True,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        follow_logs: bool = True,
        log_limits: LogLimits | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        if deferrable and self.mode == "reschedule":
            raise ValueError(
                f"{self.task_id}: mode='reschedule' has no effect on a deferrable sensor; "
                "pass deferrable=False to poke in reschedule mode"
            )
        if deferrable and self.poke_interval <= 0:
            raise ValueError(f"{self.task_id}: poke_interval must be positive when deferrable")
        self.job_name = job_name
        if not resolved_at_run_time(rule_policies):  # a template or a reference is checked after rendering
            parse_rule_policies(rule_policies)
        self.rule_policies = rule_policies
        self.notifiers = normalize_notifiers(notifiers)
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.follow_logs = follow_logs
        self.log_limits = limits_as_dict(log_limits_from(log_limits))
        self._log_follower: JobLogFollower | None = None

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        # Same client settings as the trigger: one HTTP request per describe, the poke loop retries.
        return {**super()._hook_parameters, "config": client_config(self.botocore_config)}

    def execute(self, context: Any) -> Any:
        if not self.job_name:
            raise ValueError(f"{self.task_id}: job_name is empty")
        parse_rule_policies(self.rule_policies)  # rendered now: fail before waiting days
        if not self.deferrable:
            verdict = super().execute(context)
            return self._conclude(context, verdict)
        if self.follow_logs:
            push_initial_checkpoint(context, log_limits_from(self.log_limits), self.log)
        self.defer(
            trigger=TrainingAndRulesTrigger(
                job_name=self.job_name,
                poke_interval=self.poke_interval,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                cancel_on_kill=self.cancel_on_kill,
                follow_logs=self.follow_logs,
                log_limits=self.log_limits,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        """One DescribeTrainingJob per poke; throttling and transient errors just mean "not yet"."""
        client = self.hook.conn
        try:
            describe = client.describe_training_job(TrainingJobName=self.job_name)
        except (ClientError, BotoCoreError) as error:
            if is_retryable_error(error):
                self.log.warning("%s; trying again at the next poke", describe_error_message(self.job_name, error))
                return False
            raise AirflowException(describe_error_message(self.job_name, error)) from error
        terminal = is_terminal(describe)
        if not terminal:
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
        self._follow_logs(context, describe, final=terminal)
        if not terminal:
            return False
        endpoint_url = client.meta.endpoint_url
        return PokeReturnValue(is_done=True, xcom_value=compact_verdict(describe, endpoint_url=endpoint_url))

    def _follow_logs(self, context: Any, describe: dict[str, Any], *, final: bool) -> None:
        """Log the jobs' new CloudWatch lines. Poke mode keeps the follower in this process between pokes; each
        reschedule poke is a new process, so its position goes to the task instance's ``task_state_store``."""
        if not self.follow_logs:
            return
        store = context.get("task_state_store") if self.mode == "reschedule" else None
        if self._log_follower is None:
            state = None
            if store is not None:
                try:
                    state = store.get(CHECKPOINT_XCOM_KEY)
                except Exception as error:  # an older server without the store: follow from the recent lines
                    self.log.info("CloudWatch Logs: no stored position (%s)", error)
            self._log_follower = JobLogFollower(
                logs_client_factory(self.aws_conn_id, self.region_name, self.verify, self.botocore_config),
                self.log, limits=log_limits_from(self.log_limits),
                state=state if isinstance(state, dict) else None)
        if final:  # CloudWatch may show a job's last lines a moment after it ended
            time.sleep(final_read_delay(self.poke_interval, training_end_time(describe),
                                        settle=self._log_follower.limits.settle_seconds))
        poll_training_job(self._log_follower, describe, final=final)
        checkpoint = self._log_follower.take_state()
        if store is not None and checkpoint is not None:
            try:
                store.set(CHECKPOINT_XCOM_KEY, checkpoint)
            except Exception as error:
                self.log.warning("CloudWatch Logs: cannot store the position (%s); the next poke may repeat lines",
                                 error)

    def on_kill(self) -> None:
        """Stop the job this task waits for: the task was killed (SIGTERM from the task runner). A job already
        ended or being stopped is left alone; a failure is logged, never raised."""
        if not self.cancel_on_kill or not self.job_name:
            return
        # Not self.hook: its client makes one attempt per request (the poke loop retries describes).
        DebuggedTrainingHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        ).stop_for_kill(self.job_name)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: check the event, then conclude exactly as poke mode does."""
        event = validate_execute_complete_event(event)
        status = event.get("status")
        if status == "error":
            raise AirflowException(event.get("message") or f"waiting for training job {self.job_name!r} failed")
        verdict = event.get("verdict")
        if status != "success" or not isinstance(verdict, dict):
            raise AirflowException(
                f"Trigger sent an unexpected event for training job {self.job_name!r}: {event!r}"
            )
        if verdict.get("job_name") != self.job_name:
            raise AirflowException(
                f"Trigger sent a verdict for training job {verdict.get('job_name')!r}, "
                f"expected {self.job_name!r}"
            )
        return self._conclude(context, verdict)

    def _conclude(self, context: Any, verdict: dict[str, Any]) -> dict[str, Any]:
        """Alert first (whatever the policy), then fail or return the verdict."""
        outcome = decide(verdict, self.rule_policies)
        fire_rule_alerts(self.notifiers, context, verdict)
        for warning in outcome.warnings:
            self.log.warning("%s", warning)
        if outcome.failed:
            raise AirflowFailException(outcome.message)
        self.log.info("Training job %s: %s", self.job_name, verdict)
        return verdict
