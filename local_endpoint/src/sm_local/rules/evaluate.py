"""Evaluate one built-in rule against a Debugger trial that is still being written, and report the
SageMaker-style rule status.

Why not smdebug's own waiting: `create_trial()` polls forever when no collections file ever appears
(an XGBoost 3.x image writes no tensors), and `Trial.wait_for_steps()` / `invoke_rule()` sleep a fixed
2 s between polls. The evaluator therefore waits for the collections file or the end marker itself and
drives `Rule.invoke(step)` only for steps the trial reports complete, polling every `poll_interval`.
smdebug (unmaintained since 2023) stays behind this module and builtin.py.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sm_explain_contracts.envelope import write_json_atomic
from sm_local.rules.parameters import RuleConfigurationError
from sm_local.rules.registry import resolve_rule

END_MARKER = "training_job_end.ts"
MAX_DETAILS = 1024  # DescribeTrainingJob.DebugRuleEvaluationStatuses[].StatusDetails limit
DEFAULT_POLL_INTERVAL = 0.1  # seconds; a stat() or an index listing per poll is cheap on a local disk

# smdebug reads these when a trial is created. A trial that sees the end marker sleeps
# TRAINING_END_DELAY_REFRESH seconds (default 1) before its final refresh, in case an S3 upload lags the
# marker; locally the marker is written after the training process has exited (or by the hook after
# closing its writers), so every index file is already on disk and the wait is pure latency.
os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
# SMDEBUG_INCOMPLETE_STEP_WAIT_WINDOW (default 1000) only matters when several workers write steps;
# the built-in XGBoost container writes from one worker, so it keeps smdebug's default.
# smdebug warns on every query that matches no tensor yet (normal while training runs).
os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleResult:
    """A terminal rule status as DescribeTrainingJob reports it."""

    status: str  # "NoIssuesFound" | "IssuesFound" | "Error"
    details: str

    def to_dict(self) -> dict[str, str]:
        details = self.details if len(self.details) <= MAX_DETAILS else self.details[: MAX_DETAILS - 3] + "..."
        return {"RuleEvaluationStatus": self.status, "StatusDetails": details}


class _Timeout(Exception):
    pass


def write_result(path: str | os.PathLike[str], result: RuleResult) -> None:
    """Whole (tmp + rename): the supervisor never sees half a result."""
    write_json_atomic(Path(path), result.to_dict())


def _preload_smdebug() -> None:
    """Import smdebug (about 2-3 s: it pulls in pandas and boto3) while training runs, not after it."""

    def load() -> None:
        try:
            import smdebug.trials  # noqa: F401

            import sm_local.rules.builtin  # noqa: F401
        except Exception:  # the real import in evaluate_rule reports it
            logger.debug("smdebug preload failed", exc_info=True)

    threading.Thread(target=load, name="smdebug-preload", daemon=True).start()


def _has_collections_file(trial_path: str) -> bool:
    return bool(glob.glob(os.path.join(trial_path, "collections", "*", "*collections.json")))


def _wait_for_trial(trial_path: str, poll_interval: float, deadline: float | None) -> bool:
    """True once the hook wrote its collections file; False if training ended without one."""
    end_marker = os.path.join(trial_path, END_MARKER)
    while True:
        if _has_collections_file(trial_path):
            return True
        if os.path.exists(end_marker):
            # The hook may write the collections file in its last moments: look once more.
            return _has_collections_file(trial_path)
        if deadline is not None and time.monotonic() > deadline:
            raise _Timeout("no Debugger data and no end marker")
        time.sleep(poll_interval)


def _drive(trial: Any, rule: Any, rule_name: str, poll_interval: float, deadline: float | None) -> RuleResult:
    """Invoke the rule on every complete step, in order, until the condition is met or data ends."""
    from smdebug.analysis.utils import no_refresh
    from smdebug.core.tensor import StepState
    from smdebug.exceptions import (
        RuleEvaluationConditionMet,
        StepUnavailable,
        TensorUnavailable,
        TensorUnavailableForStep,
    )

    next_step = 0
    # What smdebug's rule_invoker logs first in a rule job's log.
    logger.info("Started execution of rule %s at step %d", type(rule).__name__, next_step)
    while True:
        steps = trial.steps(show_incomplete_steps=True)  # one refresh: new index files, end marker
        ended = trial.loaded_all_steps
        for step in steps:
            if step < next_step:
                continue
            with no_refresh(trial):
                state = trial.has_passed_step(step)
            if state is StepState.NOT_YET_AVAILABLE:
                break
            if state is StepState.AVAILABLE:
                try:
                    rule.invoke(step)
                except RuleEvaluationConditionMet:
                    return RuleResult(
                        "IssuesFound",
                        f"RuleEvaluationConditionMet: Evaluation of the rule {rule_name} at step {step} "
                        f"resulted in the condition being met: {rule.finding}",
                    )
                except (TensorUnavailableForStep, StepUnavailable, TensorUnavailable) as exc:
                    logger.debug("step %s skipped: %s", step, exc)
            next_step = step + 1
        else:
            if ended:
                rule.finish()
                return RuleResult("NoIssuesFound", f"No issues found by {rule_name}: {rule.summary()}")
        if deadline is not None and time.monotonic() > deadline:
            raise _Timeout(f"training data still incomplete after step {next_step - 1}")
        time.sleep(poll_interval)


def evaluate_rule(
    trial_path: str,
    rule_config: Mapping[str, Any],
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float | None = None,
) -> RuleResult:
    """Evaluate the `DebugRuleConfigurations` entry `rule_config` on the (local) trial at `trial_path`.

    Waits for data until the end marker `training_job_end.ts` exists (or `timeout` seconds pass), and
    never raises: every failure is an `Error` result whose details say why.
    """
    try:
        definition, parameters = resolve_rule(rule_config)
    except RuleConfigurationError as exc:
        return RuleResult("Error", f"Invalid rule configuration: {exc}")
    deadline = None if timeout is None else time.monotonic() + timeout
    _preload_smdebug()
    try:
        if not _wait_for_trial(trial_path, poll_interval, deadline):
            return RuleResult(
                "Error",
                f"{definition.name}: no Debugger tensors were saved in {trial_path} before training ended "
                "(XGBoost 3.x images write none / collection not saved); check DebugHookConfig and the "
                "framework version.",
            )
        from smdebug.trials import create_trial

        rule_class = definition.load_class()
        trial = create_trial(trial_path)
        rule = rule_class(trial, **parameters)
        rule.check_configuration()
        return _drive(trial, rule, definition.name, poll_interval, deadline)
    except RuleConfigurationError as exc:
        return RuleResult("Error", f"{definition.name}: {exc}")
    except _Timeout as exc:
        return RuleResult("Error", f"{definition.name}: timed out after {timeout:g} s ({exc})")
    except Exception as exc:  # any failure must still end the rule with a status
        logger.exception("rule %s failed", definition.name)
        return RuleResult("Error", f"{definition.name} failed: {type(exc).__name__}: {exc}")
