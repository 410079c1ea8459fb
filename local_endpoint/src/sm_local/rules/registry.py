"""The supported built-in rules: their documented parameters (with documented defaults) and where the
implementation lives. No smdebug import here, so configuration errors are reported instantly.

Parameters and defaults follow the public page "List of Debugger built-in rules" (SageMaker developer
guide). Where two revisions of that page disagree, the older defaults are used, as SageMaker's own
rule configurations (smdebug_rulesconfig) send no parameters besides `rule_to_invoke`:
LossNotDecreasing `diff_percent` 0.0 ("checks if the loss is decreasing"), `mode` unset (EVAL, then
TRAIN, then GLOBAL), and `increase_threshold_percent` (only in the newer page) unset.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sm_local.rules.parameters import (
    ParameterSpec,
    RuleConfigurationError,
    parse_bool,
    parse_float,
    parse_int,
    parse_mode,
    parse_name_list,
    parse_parameters,
    parse_regex,
    parse_regex_list,
)


@dataclass(frozen=True)
class RuleDefinition:
    name: str
    parameters: tuple[ParameterSpec, ...]
    implementation: str  # "module:Class", imported only when the rule runs (smdebug is slow to import)

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return parse_parameters(self.name, self.parameters, raw)

    def load_class(self) -> type:
        module_name, class_name = self.implementation.split(":")
        return getattr(importlib.import_module(module_name), class_name)


_BUILTIN = "sm_local.rules.builtin"

RULES: dict[str, RuleDefinition] = {
    rule.name: rule
    for rule in (
        RuleDefinition(
            "LossNotDecreasing",
            (
                ParameterSpec("collection_names", parse_name_list, ()),
                ParameterSpec("tensor_regex", parse_regex_list, ()),
                ParameterSpec("use_losses_collection", parse_bool, True),
                ParameterSpec("num_steps", partial(parse_int, minimum=1), 10),
                ParameterSpec("diff_percent", partial(parse_float, minimum=0.0, maximum=100.0, maximum_exclusive=True), 0.0),
                ParameterSpec("increase_threshold_percent", partial(parse_float, minimum=0.0), None),
                ParameterSpec("mode", parse_mode, None),
            ),
            f"{_BUILTIN}:LossNotDecreasing",
        ),
        RuleDefinition(
            "Overfit",
            (
                ParameterSpec("tensor_regex", parse_regex_list, ()),
                ParameterSpec("start_step", partial(parse_int, minimum=0), 0),
                ParameterSpec("patience", partial(parse_int, minimum=1), 1),
                ParameterSpec("ratio_threshold", partial(parse_float, minimum=0.0), 0.1),
            ),
            f"{_BUILTIN}:Overfit",
        ),
        RuleDefinition(
            "TreeDepth",
            (ParameterSpec("depth", partial(parse_float, minimum=0.0), 4.0),),
            f"{_BUILTIN}:TreeDepth",
        ),
        RuleDefinition(
            "ClassImbalance",
            (
                ParameterSpec("threshold_imbalance", partial(parse_float, minimum=1.0), 10.0),
                ParameterSpec("threshold_misprediction", partial(parse_float, minimum=0.0, maximum=1.0), 0.7),
                ParameterSpec("samples", partial(parse_int, minimum=1), 500),
                ParameterSpec("argmax", parse_bool, False),
                ParameterSpec("labels_regex", parse_regex, ".*labels"),
                ParameterSpec("predictions_regex", parse_regex, ".*predictions"),
            ),
            f"{_BUILTIN}:ClassImbalance",
        ),
    )
}


def resolve_rule(rule_config: Mapping[str, Any]) -> tuple[RuleDefinition, dict[str, Any]]:
    """The rule a `DebugRuleConfigurations` entry asks for, with its typed parameters."""
    if not isinstance(rule_config, Mapping):
        raise RuleConfigurationError("the rule configuration must be a JSON object (a DebugRuleConfigurations entry)")
    raw = rule_config.get("RuleParameters") or {}
    if not isinstance(raw, Mapping):
        raise RuleConfigurationError("RuleParameters must be a map of strings")
    rule_name = raw.get("rule_to_invoke")
    if not rule_name:
        raise RuleConfigurationError(
            f"RuleParameters.rule_to_invoke is missing; supported rules: {', '.join(sorted(RULES))}"
        )
    definition = RULES.get(str(rule_name).strip())
    if definition is None:
        raise RuleConfigurationError(
            f"rule_to_invoke={rule_name!r} is not a supported built-in rule; "
            f"supported rules: {', '.join(sorted(RULES))}"
        )
    return definition, definition.parse(raw)
