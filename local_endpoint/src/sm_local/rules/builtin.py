"""Built-in Debugger rules reimplemented from the public parameter descriptions, on smdebug's `Rule` API.

AWS ships the real implementations only inside its rule image; these are written from the documented
behaviour (see registry.py for parameters and defaults). Each rule records a human-readable `finding`
when its condition is met (smdebug's exception carries only the rule name and step), a `summary()` for
a clean run, and raises `RuleConfigurationError` from `finish()` when the data it needs never arrived,
so that case ends `Error` instead of a misleading `NoIssuesFound`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.rules.rule import Rule

from sm_local.rules.parameters import RuleConfigurationError

# Metrics that grow as the model improves (smdebug's XGBoost hook keeps auc/map out of `losses` for the
# same reason); a "loss" rule must not read their rise as a problem.
INCREASING_METRIC = re.compile(r"-(auc|aucpr|map|ndcg|pre)(@[^/]*)?$")
# XGBoost evaluation-set metrics as the hook names them: "<eval set>-<metric>".
EVAL_SET_METRIC = re.compile(r"^(train|validation)-(.+)$")


def _scalar(value: Any) -> float | None:
    """The float in a one-element numeric tensor, None for anything else (docs: only scalars count)."""
    array = np.asarray(value)
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        return None
    return float(array.reshape(-1)[0])


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class BuiltinRule(Rule):
    """Common bookkeeping for the local built-in rules."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.finding: str | None = None

    def check_configuration(self) -> None:
        """Fail fast on configuration the trial can never satisfy (called once the trial exists)."""

    def finish(self) -> None:
        """Called when training data ended without the condition: raise if nothing could be examined."""

    def summary(self) -> str:
        raise NotImplementedError


class LossNotDecreasing(BuiltinRule):
    """The loss at step s must be lower than at the latest saved step at or before s - num_steps.

    Evaluation happens every num_steps per tensor (the next check is at the first saved step at least
    num_steps after the previous check). A comparison is an issue when the loss did not decrease by at
    least `diff_percent` percent (with the default 0: when it did not decrease at all). When
    `increase_threshold_percent` is set and the loss rose, the rise is tolerated up to that percent.
    """

    def __init__(
        self,
        base_trial: Any,
        *,
        collection_names: tuple[str, ...],
        tensor_regex: tuple[str, ...],
        use_losses_collection: bool,
        num_steps: int,
        diff_percent: float,
        increase_threshold_percent: float | None,
        mode: str | None,
    ) -> None:
        super().__init__(base_trial)
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.use_losses_collection = use_losses_collection
        self.num_steps = num_steps
        self.diff_percent = diff_percent
        self.increase_threshold_percent = increase_threshold_percent
        self.mode = mode
        self._last_checked: dict[str, int] = {}
        self._examined: set[str] = set()
        self._per_collection: dict[str, set[str]] = {name: set() for name in collection_names}
        self._comparisons = 0

    def check_configuration(self) -> None:
        known = set(self.base_trial.collections())
        missing = [name for name in self.collection_names if name not in known]
        if missing:
            raise RuleConfigurationError(
                f"collection(s) {', '.join(missing)} not known to the training job's Debugger hook "
                f"(collections: {', '.join(sorted(known))})"
            )

    def _selected_mode(self) -> ModeKeys:
        if self.mode is not None:
            return ModeKeys[self.mode]
        # Documented default: EVAL, then TRAIN, then GLOBAL (XGBoost saves GLOBAL steps only).
        modes = set(self.base_trial.modes())
        for mode in (ModeKeys.EVAL, ModeKeys.TRAIN):
            if mode in modes:
                return mode
        return ModeKeys.GLOBAL

    def _loss_tensor_names(self) -> set[str]:
        trial = self.base_trial
        names: set[str] = set()
        for collection in self.collection_names:
            found = set(trial.tensor_names(collection=collection))
            self._per_collection[collection] |= found
            names |= found
        if self.tensor_regex:
            names |= set(trial.tensor_names(regex=list(self.tensor_regex)))
        if self.use_losses_collection and "losses" in trial.collections():
            names |= set(trial.tensor_names(collection="losses"))
        if not names and not self.collection_names and not self.tensor_regex:
            # Docs: with no patterns the rule looks at all (scalar) tensors gathered.
            names = {name for name in trial.tensor_names() if not name.startswith("hyperparameters/")}
        return {name for name in names if not INCREASING_METRIC.search(name)}

    def _is_issue(self, previous: float, current: float) -> tuple[bool, str]:
        if math.isnan(previous) or math.isnan(current):
            return True, "the loss is NaN"
        if current > previous:
            rise = (current - previous) / abs(previous) * 100 if previous else math.inf
            text = f"rose by {rise:.2f}%"
            if self.increase_threshold_percent is None:
                return True, text
            return rise > self.increase_threshold_percent, (
                f"{text} (more than increase_threshold_percent={self.increase_threshold_percent:g})"
            )
        decrease = (previous - current) / abs(previous) * 100 if previous else (0.0 if current == previous else math.inf)
        if self.diff_percent == 0.0:
            return decrease <= 0.0, "did not decrease"
        return decrease < self.diff_percent, (
            f"decreased by only {decrease:.3f}% (less than diff_percent={self.diff_percent:g})"
        )

    def invoke_at_step(self, step: int) -> bool:
        mode = self._selected_mode()
        if mode is ModeKeys.GLOBAL:
            position = step
        else:
            step_mode, position = self.base_trial.mode_modestep(step)
            if step_mode is not mode:
                return False
        for name in sorted(self._loss_tensor_names()):
            tensor = self.base_trial.tensor(name)
            saved = tensor.steps(mode=mode)
            if position not in saved:
                continue
            current = _scalar(tensor.value(position, mode=mode))
            if current is None:
                continue
            self._examined.add(name)
            last = self._last_checked.get(name)
            if last is not None and position < last + self.num_steps:
                continue
            earlier = [s for s in saved if s <= position - self.num_steps]
            if not earlier:
                continue
            base_step = earlier[-1]
            previous = _scalar(tensor.value(base_step, mode=mode))
            if previous is None:
                continue
            self._last_checked[name] = position
            self._comparisons += 1
            issue, how = self._is_issue(previous, current)
            if issue:
                self.finding = (
                    f"{name} {how}: {_fmt(previous)} at step {base_step} -> {_fmt(current)} at step {position} "
                    f"(num_steps={self.num_steps}, diff_percent={self.diff_percent:g}, mode={mode.name})"
                )
                return True
        return False

    def finish(self) -> None:
        if self.mode is not None and self.mode != "GLOBAL" and ModeKeys[self.mode] not in set(self.base_trial.modes()):
            raise RuleConfigurationError(
                f"no steps were saved in mode {self.mode} (saved modes: "
                f"{', '.join(m.name for m in self.base_trial.modes()) or 'GLOBAL only, as XGBoost saves'})"
            )
        empty = [name for name, found in self._per_collection.items() if not found]
        if empty:
            raise RuleConfigurationError(
                f"no tensors of collection(s) {', '.join(empty)} were saved; configure them in "
                "DebugHookConfig.CollectionConfigurations"
            )
        if not self._examined:
            asked = []
            if self.collection_names:
                asked.append(f"collection_names={','.join(self.collection_names)}")
            if self.tensor_regex:
                asked.append(f"tensor_regex={','.join(self.tensor_regex)}")
            if self.use_losses_collection:
                asked.append("the losses collection")
            raise RuleConfigurationError(
                f"no scalar loss tensors were saved for {' / '.join(asked) or 'any tensor'}; "
                f"saved tensors: {', '.join(self.base_trial.tensor_names()[:20]) or 'none'}"
            )

    def summary(self) -> str:
        settings = f"num_steps={self.num_steps}, diff_percent={self.diff_percent:g}"
        if not self._comparisons:
            return (
                f"{', '.join(sorted(self._examined))} never had two saved steps num_steps apart, so nothing "
                f"was compared ({settings})"
            )
        return f"{', '.join(sorted(self._examined))} decreased in all {self._comparisons} comparison(s) ({settings})"


class Overfit(BuiltinRule):
    """(validation - train) / train of each loss metric must stay <= ratio_threshold.

    Pairs XGBoost's `train-<metric>` and `validation-<metric>` tensors (metrics that grow, like auc,
    are skipped). From `start_step`, the condition is met when the ratio exceeds `ratio_threshold` on
    `patience` consecutive saved steps.
    """

    def __init__(
        self, base_trial: Any, *, tensor_regex: tuple[str, ...], start_step: int, patience: int, ratio_threshold: float
    ) -> None:
        super().__init__(base_trial)
        self.tensor_regex = tensor_regex
        self.start_step = start_step
        self.patience = patience
        self.ratio_threshold = ratio_threshold
        self._streak: dict[str, int] = {}
        self._max_ratio: dict[str, float] = {}

    def _pairs(self) -> dict[str, tuple[str, str]]:
        trial = self.base_trial
        names = trial.tensor_names(regex=list(self.tensor_regex)) if self.tensor_regex else trial.tensor_names()
        by_metric: dict[str, dict[str, str]] = {}
        for name in names:
            match = EVAL_SET_METRIC.match(name)
            if match and not INCREASING_METRIC.search(name):
                by_metric.setdefault(match.group(2), {})[match.group(1)] = name
        return {m: (sets["train"], sets["validation"]) for m, sets in by_metric.items() if len(sets) == 2}

    def invoke_at_step(self, step: int) -> bool:
        if step < self.start_step:
            return False
        for metric, (train_name, validation_name) in sorted(self._pairs().items()):
            train_tensor, validation_tensor = self.base_trial.tensor(train_name), self.base_trial.tensor(validation_name)
            if step not in train_tensor.steps() or step not in validation_tensor.steps():
                continue
            train = float(np.mean(train_tensor.value(step)))
            validation = float(np.mean(validation_tensor.value(step)))
            ratio = (validation - train) / abs(train) if train else (math.inf if validation > train else 0.0)
            self._max_ratio[metric] = max(ratio, self._max_ratio.get(metric, -math.inf))
            self._streak[metric] = self._streak.get(metric, 0) + 1 if ratio > self.ratio_threshold else 0
            if self._streak[metric] >= self.patience:
                self.finding = (
                    f"{validation_name}={_fmt(validation)} vs {train_name}={_fmt(train)}: "
                    f"(validation - train) / train = {ratio:.4g} > ratio_threshold={self.ratio_threshold:g} "
                    f"for {self._streak[metric]} saved step(s) (patience={self.patience})"
                )
                return True
        return False

    def finish(self) -> None:
        if not self._max_ratio:
            raise RuleConfigurationError(
                "no pair of train-<metric> and validation-<metric> loss tensors was saved at or after "
                f"start_step={self.start_step} (save the metrics or losses collection with a validation channel)"
            )

    def summary(self) -> str:
        worst = ", ".join(f"{m}: {r:.4g}" for m, r in sorted(self._max_ratio.items()))
        return f"largest (validation - train) / train ratio per metric: {worst} (ratio_threshold={self.ratio_threshold:g})"


class TreeDepth(BuiltinRule):
    """Each saved boosting round's tree must not be deeper than `depth`.

    Needs the `trees` collection (smdebug's XGBoost hook saves `trees/Node`, `trees/Yes`, `trees/No`,
    ... for the tree of the saved round). The docs estimate depth as log2 of the largest node ID; the
    tree's real depth is computed from its Yes/No child links and the estimate is reported beside it.
    """

    def __init__(self, base_trial: Any, *, depth: float) -> None:
        super().__init__(base_trial)
        self.depth = depth
        self._depths: dict[int, int] = {}

    @staticmethod
    def _tree_depth(nodes: np.ndarray, yes: np.ndarray, no: np.ndarray) -> int:
        children: dict[int, list[int]] = {}
        for node, left, right in zip(nodes.tolist(), yes.tolist(), no.tolist(), strict=True):
            links = [str(link) for link in (left, right) if str(link) != "nan"]
            children[int(node)] = [int(link.rsplit("-", 1)[1]) for link in links]
        depth, frontier = 0, [0]
        while True:
            frontier = [child for node in frontier for child in children.get(node, [])]
            if not frontier:
                return depth
            depth += 1

    def invoke_at_step(self, step: int) -> bool:
        trial = self.base_trial
        if not all(trial.has_tensor(name) for name in ("trees/Node", "trees/Yes", "trees/No")):
            return False
        if step not in trial.tensor("trees/Node").steps():
            return False
        nodes = np.asarray(trial.tensor("trees/Node").value(step))
        depth = self._tree_depth(
            nodes, np.asarray(trial.tensor("trees/Yes").value(step)), np.asarray(trial.tensor("trees/No").value(step))
        )
        self._depths[step] = depth
        if depth > self.depth:
            largest = int(nodes.max())
            self.finding = (
                f"the tree of boosting round {step} has depth {depth} > depth={self.depth:g} "
                f"(largest node ID {largest}, log2 = {math.log2(largest) if largest > 0 else 0:.2f})"
            )
            return True
        return False

    def finish(self) -> None:
        if not self._depths:
            raise RuleConfigurationError(
                "no trees/Node, trees/Yes, trees/No tensors were saved: TreeDepth needs the trees collection "
                "(CollectionConfigurations: {'CollectionName': 'trees'})"
            )

    def summary(self) -> str:
        return f"deepest tree: depth {max(self._depths.values())} over {len(self._depths)} saved round(s) (depth={self.depth:g})"


class ClassImbalance(BuiltinRule):
    """Class counts and per-class misprediction rates over the labels/predictions seen so far.

    Once at least `samples` labels were seen: the condition is met when the largest class has more than
    `threshold_imbalance` times the samples of the smallest, or when some class's misprediction rate
    exceeds `threshold_misprediction`. Predictions are class ids; with `argmax` the last axis holds
    class scores; a 1-D float prediction in [0, 1] (XGBoost binary:logistic) is thresholded at 0.5.
    """

    def __init__(
        self,
        base_trial: Any,
        *,
        threshold_imbalance: float,
        threshold_misprediction: float,
        samples: int,
        argmax: bool,
        labels_regex: str,
        predictions_regex: str,
    ) -> None:
        super().__init__(base_trial)
        self.threshold_imbalance = threshold_imbalance
        self.threshold_misprediction = threshold_misprediction
        self.samples = samples
        self.argmax = argmax
        self.labels_regex = labels_regex
        self.predictions_regex = predictions_regex
        self._counts: Counter[int] = Counter()
        self._wrong: Counter[int] = Counter()

    def _predicted_classes(self, predictions: np.ndarray) -> np.ndarray:
        if self.argmax:
            return np.argmax(predictions, axis=-1).reshape(-1)
        flat = predictions.reshape(-1)
        if np.issubdtype(flat.dtype, np.floating) and not np.all(np.mod(flat, 1) == 0):
            if flat.min() < 0 or flat.max() > 1:
                raise RuleConfigurationError(
                    "predictions are neither class ids nor probabilities in [0, 1]; set argmax=True for class scores"
                )
            return (flat >= 0.5).astype(int)
        return flat.astype(int)

    def _values(self, pattern: str, step: int) -> np.ndarray | None:
        names = [n for n in self.base_trial.tensor_names(regex=[pattern]) if step in self.base_trial.tensor(n).steps()]
        if not names:
            return None
        arrays = [np.asarray(self.base_trial.tensor(name).value(step)) for name in sorted(names)]
        return np.concatenate([array.reshape(-1) if array.ndim <= 1 else array for array in arrays])

    def invoke_at_step(self, step: int) -> bool:
        labels = self._values(self.labels_regex, step)
        predictions = self._values(self.predictions_regex, step)
        if labels is None or predictions is None:
            return False
        labels = labels.reshape(-1).astype(int)
        predicted = self._predicted_classes(predictions)
        if predicted.shape != labels.shape:
            raise RuleConfigurationError(
                f"step {step}: {labels.size} labels but {predicted.size} predictions (check labels_regex/predictions_regex/argmax)"
            )
        self._counts.update(labels.tolist())
        self._wrong.update(labels[predicted != labels].tolist())
        if sum(self._counts.values()) < self.samples:
            return False
        smallest, largest = min(self._counts, key=self._counts.__getitem__), max(self._counts, key=self._counts.__getitem__)
        if len(self._counts) > 1 and self._counts[largest] > self.threshold_imbalance * self._counts[smallest]:
            self.finding = (
                f"class {largest} has {self._counts[largest]} samples and class {smallest} only "
                f"{self._counts[smallest]} (ratio {self._counts[largest] / self._counts[smallest]:.3g} > "
                f"threshold_imbalance={self.threshold_imbalance:g})"
            )
            return True
        for label in sorted(self._counts):
            rate = self._wrong[label] / self._counts[label]
            if rate > self.threshold_misprediction:
                self.finding = (
                    f"class {label}: {rate:.3f} of its {self._counts[label]} samples mispredicted "
                    f"(> threshold_misprediction={self.threshold_misprediction:g})"
                )
                return True
        return False

    def finish(self) -> None:
        if not self._counts:
            raise RuleConfigurationError(
                f"no tensors matching labels_regex={self.labels_regex!r} and predictions_regex="
                f"{self.predictions_regex!r} were saved at the same step (save the labels and predictions collections)"
            )

    def summary(self) -> str:
        counts = ", ".join(f"class {k}: {v}" for k, v in sorted(self._counts.items()))
        rates = ", ".join(f"class {k}: {self._wrong[k] / v:.3f}" for k, v in sorted(self._counts.items()))
        seen = sum(self._counts.values())
        note = "" if seen >= self.samples else f"; fewer than samples={self.samples} labels seen, nothing evaluated"
        return f"label counts {counts}; misprediction rates {rates}{note}"
