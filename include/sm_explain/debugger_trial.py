"""Every access to SageMaker Debugger data goes through this module.

smdebug 1.0.34 is unmaintained (last release 2023) and has sharp edges we work around here, in one place:
`create_trial()` polls forever when the location holds no trial, so we look for the collections file first and
run it on a thread with a deadline; `collection(...).tensor_names` can miss late tensors, so we list with
`trial.tensor_names(collection=...)`; every `full_shap/fN` tensor holds the WHOLE (rows, features + 1) matrix,
so we read exactly one of them at one step, and copy only that one (and the small tensors) of an S3 trial; and smdebug
is imported lazily so the model path never pays for it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sm_explain import storage
from sm_explain.errors import NoDebuggerData

IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
_FEATURE_TENSOR = re.compile(r"f(\d+)$")
# Reading one scalar tensor at one step is a separate (remote) read in smdebug: curves use at most this many steps.
MAX_CURVE_STEPS = 60


FULL_SHAP_PREFIX = "full_shap/"
_INDEX_STEP = re.compile(r"(\d+)_[^/]*\.json$")


def chosen_full_shap(names: Iterable[str]) -> str | None:
    """The one full_shap tensor the explanations read (each holds the whole matrix): the first `full_shap/fN` by name."""
    candidates = sorted(n for n in names if n.startswith(FULL_SHAP_PREFIX) and _FEATURE_TENSOR.search(n))
    return candidates[0] if candidates else None


def ranges_read(root: Path, event_sizes: dict[str, int]) -> dict[str, storage.Ranges]:
    """The byte ranges of each event file (relative path -> ranges) that `DebuggerTrial` reads, from the trial's
    index files under `root`: every tensor but the full_shap ones, and the chosen full_shap tensor at its last step
    (every worker's). The rest of an event file, about 12 of every 13 bytes of the notebook's trial, is never read.

    The index files come from the job's output: one that is not smdebug's JSON, names an event file the trial does
    not hold, or gives a range outside it is refused (NoDebuggerData naming it)."""
    entries: list[tuple[str, int, str, int, int]] = []  # (event file, step, tensor, start, length)
    for index_file in sorted((root / "index").rglob("*.json")):
        where = index_file.relative_to(root).as_posix()
        step_match = _INDEX_STEP.search(index_file.name)
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
            event_file = index["meta"]["event_file_name"]
            payload = [(str(t["tensorname"]), t["start_idx"], t["length"]) for t in index["tensor_payload"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NoDebuggerData(f"the Debugger index file {where} cannot be read: {exc!r}") from exc
        if step_match is None or not isinstance(event_file, str) or event_file not in event_sizes:
            raise NoDebuggerData(f"the Debugger index file {where} names the event file {event_file!r}, which is not "
                                 "in the trial (or the index file's name carries no step)")
        for name, start, length in payload:
            if not (type(start) is int and type(length) is int and 0 <= start and 0 < length
                    and start + length <= event_sizes[event_file]):
                raise NoDebuggerData(f"the Debugger index file {where} places {name!r} at bytes {start!r}+{length!r}, "
                                     f"outside {event_file} ({event_sizes[event_file]:,} bytes)")
            entries.append((event_file, int(step_match.group(1)), name, start, length))
    chosen = chosen_full_shap(name for _, _, name, _, _ in entries)
    last_step = max((step for _, step, name, _, _ in entries if name == chosen), default=None)
    wanted: dict[str, storage.Ranges] = {}
    for event_file, step, name, start, length in entries:
        if not name.startswith(FULL_SHAP_PREFIX) or (name == chosen and step == last_step):
            wanted.setdefault(event_file, []).append((start, length))
    return wanted


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
        # A local copy first (of the event files, only what is read): smdebug's S3 reader makes one request per
        # tensor per step.
        local = (storage.mirror_prefix(path, partial_suffix=".tfevents", ranges_of=ranges_read)
                 if storage.is_s3(path) else path)
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
        name = chosen_full_shap(self._names("full_shap"))
        if name is None:
            raise NoDebuggerData(f"the Debugger trial at {self.path!r} has no full_shap tensors")
        tensor = self._trial.tensor(name)
        step = max(tensor.steps())
        return step, np.asarray(tensor.value(step), dtype=np.float32)
