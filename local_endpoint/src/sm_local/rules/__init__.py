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

Rising-loss configuration (verified by tests/local_endpoint/test_rules_process.py on the real Adult
data): built-in XGBoost 1.7-1 on Adult (label first, categorical columns as integer codes, 80/20
split) with `RISING_LOSS_HYPERPARAMETERS` below, and LossNotDecreasing with
`{"collection_names": "metrics", "num_steps": "10"}` (metrics saved every 5 or 10 rounds) ends
`IssuesFound` at step 10: eta 1 with 16-level trees, no minimum child weight, no split gain threshold and
no L2 regularisation memorise the training rows, so train-logloss falls to 0 while validation-logloss rises
from the first rounds on. Measured with the image's own xgboost 1.7.4 (exact tree method, its default on
data this size): 0.42 at round 0, 0.49 at round 5, 0.65 at round 10, 0.83 at round 20, 1.24 at round 50
(xgboost 3.0.5, hist: 0.45, 0.57, 0.72, 0.93, 1.33). With `lambda` left at 1 and 12 levels, the exact
method's validation-logloss still falls until round 5 and the rule finds nothing at step 10.
"""

from __future__ import annotations

from sm_local.rules.evaluate import RuleResult, evaluate_rule, write_result
from sm_local.rules.registry import RULES

SUPPORTED_RULES: tuple[str, ...] = tuple(sorted(RULES))

RISING_LOSS_HYPERPARAMETERS: dict[str, str] = {
    "objective": "binary:logistic",
    "num_round": "50",
    "eta": "1",
    "max_depth": "16",
    "min_child_weight": "0",
    "gamma": "0",
    "lambda": "0",
}

__all__ = ["RISING_LOSS_HYPERPARAMETERS", "RuleResult", "SUPPORTED_RULES", "evaluate_rule", "write_result"]
