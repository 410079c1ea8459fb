"""Every access to SageMaker Debugger data goes through this module.

smdebug 1.0.34 is unmaintained (last release 2023) and has sharp edges we work around here, in one place:
`create_trial()` polls forever when the location holds no trial, so we look for the collections file first and
run it on a thread with a deadline; `collection(...).tensor_names` can miss late tensors, so we list with
`trial.tensor_names(collection=...)`; every `full_shap/fN` tensor holds the WHOLE (rows, features + 1) matrix,
so we read exactly one of them at one step; and smdebug is imported lazily so the model path never pays for it.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sm_explain import storage
from sm_explain.errors import NoDebuggerData

IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
_FEATURE_TENSOR = re.compile(r"f(\d+)$")
# Reading one scalar tensor at one step is a separate (remote) read in smdebug: curves use at most this many steps.
MAX_CURVE_STEPS = 60


def _evenly_spaced(steps: list[int], limit: int = MAX_CURVE_STEPS) -> list[int]:
    """At most `limit` steps, always including the first and the last."""
    if len(steps) <= limit:
        return steps
    picks = np.unique(np.linspace(0, len(steps) - 1, limit).round().astype(int))
    return [steps[i] for i in picks]


def _create_trial_with_deadline(path: str, timeout_seconds: float) -> Any:
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")
    from smdebug.trials import create_trial

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["trial"] = create_trial(path)
        except Exception as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="smdebug-create-trial", daemon=True)
    worker.start()
    worker.join(timeout_seconds)
    if worker.is_alive():
        raise NoDebuggerData(f"no Debugger trial could be opened at {path!r} within {timeout_seconds:g} s")
    if "error" in outcome:
        raise NoDebuggerData(f"cannot open the Debugger trial at {path!r}: {outcome['error']}")
    return outcome["trial"]


def trial_present(path: str) -> bool:
    """Cheap check (one listing): has the hook written its collections file under `path`?"""
    return storage.any_object_under(storage.join(path, "collections"), "_collections.json")


@dataclass
class DebuggerTrial:
    path: str
    _trial: Any

    @classmethod
    def open(cls, path: str, timeout_seconds: float) -> DebuggerTrial:
        if not trial_present(path):
            raise NoDebuggerData(
                f"debug_output_uri {path!r} holds no Debugger trial (no collections/*_collections.json): "
                "was the job trained with a DebugHookConfig and an XGBoost image that runs the hook (<= 1.7-1)?"
            )
        # A local copy first: smdebug's S3 reader makes one request per tensor per step.
        local = storage.mirror_prefix(path) if storage.is_s3(path) else path
        trial = _create_trial_with_deadline(local, timeout_seconds)
        try:
            steps = trial.steps()
        except Exception as exc:
            raise NoDebuggerData(f"the Debugger trial at {path!r} has no readable steps: {exc}") from exc
        if not steps:
            raise NoDebuggerData(f"the Debugger trial at {path!r} has no saved steps")
        return cls(path=path, _trial=trial)

    def _names(self, collection: str) -> list[str]:
        try:
            return sorted(self._trial.tensor_names(collection=collection))
        except Exception:  # smdebug raises when the collection was not saved at all
            return []

    def has_full_shap(self) -> bool:
        return bool(self._names("full_shap"))

    def has_metrics(self) -> bool:
        return bool(self._names("metrics"))

    def _per_step_frame(self, tensor_names: dict[str, str]) -> pd.DataFrame:
        """Rows = steps, columns = given labels; each tensor is a scalar (or shape (1,)) per step."""
        all_steps = sorted({s for name in tensor_names for s in self._trial.tensor(name).steps()})
        steps = _evenly_spaced(all_steps)
        frame = pd.DataFrame(index=pd.Index(steps, name="step"), columns=list(tensor_names.values()), dtype="float64")
        for name, label in tensor_names.items():
            tensor = self._trial.tensor(name)
            available = set(tensor.steps())
            for step in steps:
                if step in available:
                    frame.loc[step, label] = float(np.asarray(tensor.value(step)).reshape(-1)[0])
        return frame

    def metric_curves(self) -> pd.DataFrame:
        """Columns such as `train-logloss`, `validation-error`, one row per (sampled) saved step."""
        names = self._names("metrics")
        if not names:
            raise NoDebuggerData(f"the Debugger trial at {self.path!r} has no 'metrics' collection")
        return self._per_step_frame({name: name for name in names})

    def feature_importance(self, importance_type: str) -> pd.DataFrame:
        """Columns = feature indices; a feature missing at a step (not used yet) is 0 as in get_score."""
        prefix = f"feature_importance/{importance_type}/"
        names = {n: int(_FEATURE_TENSOR.search(n).group(1)) for n in self._names("feature_importance")
                 if n.startswith(prefix) and _FEATURE_TENSOR.search(n)}
        if not names:
            raise NoDebuggerData(f"the Debugger trial at {self.path!r} has no {prefix}* tensors")
        return self._per_step_frame(names).fillna(0.0)

    def average_shap(self) -> pd.DataFrame:
        names = {n: int(_FEATURE_TENSOR.search(n).group(1)) for n in self._names("average_shap")
                 if _FEATURE_TENSOR.search(n)}
        if not names:
            raise NoDebuggerData(f"the Debugger trial at {self.path!r} has no average_shap tensors")
        return self._per_step_frame(names)

    def full_shap_last_step(self) -> tuple[int, np.ndarray]:
        """(step, float32 (rows, features + 1) matrix, bias last) from ONE full_shap tensor at its last step."""
        names = [n for n in self._names("full_shap") if _FEATURE_TENSOR.search(n)]
        if not names:
            raise NoDebuggerData(f"the Debugger trial at {self.path!r} has no full_shap tensors")
        tensor = self._trial.tensor(names[0])
        step = max(tensor.steps())
        return step, np.asarray(tensor.value(step), dtype=np.float32)
