"""How much the XGBoost Debugger hook writes for a configuration, and at which steps.

A training spec is refused before submission when its Debugger output would exceed a limit (2 GiB by default):
full_shap writes the whole (rows, features+1) matrix per feature and saved step, so a setting that looks
harmless can fill a bucket. The saved steps follow smdebug's SaveConfig rule exactly and are counted
arithmetically, so a huge ``num_round`` costs nothing to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sm_explain_contracts.hyperparameters import SPECS as HYPERPARAMETER_SPECS
from sm_explain_ops.training_request.fields import positive_int

DEFAULT_MAX_DEBUG_OUTPUT_BYTES = 2 * 1024**3
#: Collections whose size grows with the number of training/validation rows.
ROW_SCALED_COLLECTIONS = frozenset({"full_shap", "predictions", "labels"})

# smdebug's SaveConfigMode defaults (hook default save_interval is 10, not the collection default).
_HOOK_DEFAULT_SAVE_INTERVAL = 10

# Per tensor and step smdebug writes a TFRecord-framed Event proto (name, dtype, shape) and an
# index entry (JSON with the byte range): roughly this many bytes besides the values themselves.
_TENSOR_OVERHEAD_BYTES = 256
_FLOAT_BYTES = 4
_FEATURE_IMPORTANCE_TYPES = 5  # weight, gain, cover, total_gain, total_cover
_TREE_NODE_BYTES = 96  # one row of the trees dataframe (about a dozen columns)


@dataclass(frozen=True)
class SavedSteps:
    """The steps (boosting rounds) a collection is saved at, as a count and the first and last step.

    Computed arithmetically: the checks need only these, and listing every step would cost memory
    proportional to ``num_round``."""

    count: int
    first: int | None = None
    last: int | None = None

    def __bool__(self) -> bool:
        return self.count > 0

    def describe(self) -> str:
        if self.count == 0:
            return "no step"
        if self.count == 1:
            return f"step {self.first}"
        return f"{self.count} steps from {self.first} to {self.last}"


def saved_steps(parameters: Mapping[str, str], num_round: int) -> SavedSteps:
    """Which steps 0..num_round-1 smdebug saves for these collection parameters.

    Mirrors ``SaveConfigMode.should_save_step``: in ``save_steps``, or inside
    [start_step, end_step) and divisible by ``save_interval`` (hook default 10).
    """
    interval = positive_int(
        parameters.get("save_interval", _HOOK_DEFAULT_SAVE_INTERVAL), "Debugger save_interval"
    )
    start = positive_int(parameters.get("start_step", 0), "Debugger start_step", 0)
    end_text = parameters.get("end_step")
    end = num_round if end_text in (None, "") else min(positive_int(end_text, "Debugger end_step", 0), num_round)
    first_on_interval = -(-start // interval) * interval  # the first multiple of the interval >= start
    on_interval = (end - 1 - first_on_interval) // interval + 1 if first_on_interval < end else 0
    steps = [first_on_interval, first_on_interval + (on_interval - 1) * interval] if on_interval else []
    explicit_text = str(parameters.get("save_steps", "")).split(",")
    explicit = {positive_int(part, "Debugger save_steps", 0) for part in explicit_text if part.strip()}
    explicit = {step for step in explicit if step < num_round and not (start <= step < end and step % interval == 0)}
    steps += explicit
    if not steps:
        return SavedSteps(0)
    return SavedSteps(on_interval + len(explicit), min(steps), max(steps))


def estimate_debug_output_bytes(
    saved_steps_per_collection: Mapping[str, int],
    *,
    rows: int,
    features: int,
    validation_rows: int | None = None,
    metric_tensors: int = 2,
    num_round: int = 0,
    max_depth: int = 6,
) -> int:
    """Upper estimate of what the XGBoost Debugger hook writes, in bytes.

    ``saved_steps_per_collection`` maps a collection name to how many steps it is saved at.
    full_shap dominates: every ``full_shap/fN`` tensor holds the WHOLE (rows, features+1) matrix,
    so one saved step costs rows x (features+1)^2 x 4 bytes. average_shap is (features+1) x 4 bytes, metrics and feature importance
    a few hundred bytes per tensor.
    """
    columns = features + 1
    # A tree has at most 2^(depth+1) nodes and, with at least one row per leaf, about 2 x rows; max_depth 0
    # (no limit, lossguide) leaves only the second bound. The exponent is capped so a huge depth costs nothing.
    nodes_per_tree = 2 * rows if max_depth <= 0 else min(2 ** (min(max_depth, 62) + 1), 2 * rows)
    prediction_rows = validation_rows if validation_rows is not None else rows
    overhead = _TENSOR_OVERHEAD_BYTES
    per_step = {
        "metrics": metric_tensors * (_FLOAT_BYTES + overhead),
        "losses": metric_tensors * (_FLOAT_BYTES + overhead),
        "hyperparameters": len(HYPERPARAMETER_SPECS) * (_FLOAT_BYTES + overhead),
        "feature_importance": _FEATURE_IMPORTANCE_TYPES * features * (_FLOAT_BYTES + overhead),
        "average_shap": columns * (_FLOAT_BYTES + overhead),
        "full_shap": columns * (rows * columns * _FLOAT_BYTES + overhead),
        "predictions": prediction_rows * _FLOAT_BYTES + overhead,
        "labels": prediction_rows * _FLOAT_BYTES + overhead,
        "trees": max(num_round, 1) * nodes_per_tree * _TREE_NODE_BYTES,
    }
    total = 0
    for name, count in saved_steps_per_collection.items():
        if name not in per_step:
            raise ValueError(f"cannot estimate the size of unknown collection {name!r}")
        total += per_step[name] * int(count)
    return total


def human_bytes(size: int) -> str:
    """A size as the refusal messages show it: ``17.1 GiB``, ``512 B``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    raise AssertionError("unreachable")
