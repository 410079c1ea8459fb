"""Built-in SageMaker Debugger rules evaluated locally (placeholder docstring, completed below)."""

from __future__ import annotations

from sm_local.rules.evaluate import RuleResult, evaluate_rule, write_result
from sm_local.rules.registry import RULES

SUPPORTED_RULES: tuple[str, ...] = tuple(sorted(RULES))

__all__ = ["RuleResult", "SUPPORTED_RULES", "evaluate_rule", "write_result"]
