"""SageMaker Debugger built-in rules, evaluated locally (runtime env).

AWS ships the built-in rule code only inside its rule image; these rules are reimplemented from the
public "List of Debugger built-in rules" with smdebug's `Rule` API: LossNotDecreasing, Overfit,
TreeDepth, ClassImbalance (parameters and defaults in registry.py, behaviour in builtin.py).

Entry points:
- `python -m sm_local.rules --trial-path DIR --config CONFIG.json --result RESULT.json`
  (the "Rule process" contract in docs/architecture.md);
- `evaluate_rule(trial_path, rule_config) -> RuleResult` for tests and benchmarks.

Data the rules need from the Debugger hook (DebugHookConfig.CollectionConfigurations):
- LossNotDecreasing: scalar loss tensors, e.g. the `metrics` collection (`train-logloss`,
  `validation-logloss`; metrics that grow, such as auc, are ignored) or `losses`;
- Overfit: `train-<metric>` and `validation-<metric>` pairs (`metrics` or `losses`, validation channel);
- TreeDepth: the `trees` collection (`trees/Node`, `trees/Yes`, `trees/No` of each saved round);
- ClassImbalance: the `labels` and `predictions` collections (validation channel).

Rising-loss configuration (verified by tests/runtime/sm_local/test_rules_process.py on the real Adult
data): built-in XGBoost 1.7-1 on Adult (label first, categorical columns as integer codes, 80/20
split) with `RISING_LOSS_HYPERPARAMETERS` below, and LossNotDecreasing with
`{"collection_names": "metrics", "num_steps": "10"}` (metrics saved every 5 or 10 rounds) ends
`IssuesFound` at step 10: eta 1 with 12-level trees, no minimum child weight and no split gain
threshold memorise the training rows, so train-logloss falls toward 0 while validation-logloss rises
from the first rounds on (measured 0.345 at round 0, 0.359-0.383 at round 10, 0.41-0.44 at round 20,
0.55 at round 90). Training takes about 0.5 s per round on a 2-core machine.
"""

from __future__ import annotations

from sm_local.rules.evaluate import RuleResult, evaluate_rule, write_result
from sm_local.rules.registry import RULES

SUPPORTED_RULES: tuple[str, ...] = tuple(sorted(RULES))

RISING_LOSS_HYPERPARAMETERS: dict[str, str] = {
    "objective": "binary:logistic",
    "num_round": "50",
    "eta": "1",
    "max_depth": "12",
    "min_child_weight": "0",
    "gamma": "0",
}

__all__ = ["RISING_LOSS_HYPERPARAMETERS", "RuleResult", "SUPPORTED_RULES", "evaluate_rule", "write_result"]
