"""The one place that touches smdebug: build its XGBoost hook from the job's DebugHookConfig.

Why isolated: smdebug 1.0.34 (2023) is unmaintained. It pins numpy < 2 (it writes with
`ndarray.tostring`), imports `pkg_resources`, takes seconds to import, and swallows its own errors
(it disables itself and logs). So it is imported only when a job asks for Debugger, and everything it
needs from this container goes through `create_hook`.

Which images run it: the built-in XGBoost images 0.90-2 to 1.7-1 attach the hook (the container's
`callback.py::add_debugging`): `Hook.create_from_json_file` reads `/opt/ml/input/config/debughookconfig.json`
(`$SMDEBUG_CONFIG_FILE_PATH` first), then the container sets the hook's `hyperparameters` (the params
given to `xgb.train`), `train_data` (SHAP values are computed on it) and `validation_data` (predictions
and labels), and appends the hook to the training callbacks. Images 3.0-5 and newer have that code
commented out: they write no tensors, and neither does this container for them.

Each image runs its own smdebug beside its own xgboost (sm_explain_contracts.images: 1.0.10 for 0.90-2 .. 1.2-2, whose hook
is a function-style callback, 1.0.34 for 1.3-1 .. 1.7-1, a TrainingCallback).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xgboost

from sm_explain_contracts.images import DEBUGGER_HOOK_VERSIONS

log = logging.getLogger(__name__)

CONFIG_ENV = "SMDEBUG_CONFIG_FILE_PATH"


def hook_config_path(opt_ml: Path, framework_version: str) -> Path | None:
    """The DebugHookConfig file when this image version runs the hook and the job has one, else None."""
    if framework_version not in DEBUGGER_HOOK_VERSIONS:
        return None
    candidates = [os.environ.get(CONFIG_ENV), opt_ml / "input" / "config" / "debughookconfig.json"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _import_hook_class() -> type:
    """smdebug's Hook, imported quietly (it warns about pkg_resources and logs profiler defaults)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from smdebug.xgboost import Hook
    return Hook


def _adapted_hook_class(booster_type: str) -> type:
    """smdebug's Hook, with one fix for xgboost >= 1.3 (TrainingCallback API).

    The hook skips feature importance and tree dumps for boosters other than gbtree/dart by reading
    `model.booster`, an attribute xgboost's Booster no longer has. With `booster=gblinear` it then asks
    for gain/cover importances, which xgboost 3 refuses with an error that aborts training. Giving the
    model that attribute restores smdebug's own behaviour (a warning, no such tensors); everything else
    (what is saved when, names, values) stays smdebug's.
    """
    hook_class = _import_hook_class()
    if not hasattr(hook_class, "after_iteration"):
        return hook_class  # xgboost < 1.3: smdebug's function-style hook; those Boosters have `booster`

    class AdaptedHook(hook_class):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if getattr(model, "booster", None) is None:
                model.booster = booster_type
            return bool(super().after_iteration(model, epoch, evals_log))

    return AdaptedHook


def create_hook(
    config_path: Path,
    hyperparameters: dict[str, Any],
    train: xgboost.DMatrix,
    validation: xgboost.DMatrix | None,
) -> xgboost.callback.TrainingCallback:
    """smdebug's hook, configured as the real container configures it, ready to pass to `xgb.train`."""
    hook_class = _adapted_hook_class(str(hyperparameters.get("booster", "gbtree")))
    tensors_dir = _local_path(config_path)
    if tensors_dir is not None and (tensors_dir / "training_job_end.ts").exists():
        # smdebug refuses (and silently disables itself) when the directory holds a finished trial.
        raise RuntimeError(f"Debugger LocalPath {tensors_dir} already holds the tensors of a finished training")
    hook = hook_class.create_from_json_file(str(config_path))
    if hook is None:
        raise RuntimeError(f"smdebug could not build a hook from {config_path}")
    hook.hyperparameters = dict(hyperparameters)
    hook.train_data = train
    if validation is not None:
        hook.validation_data = validation
    log.info("Debug hook created from config %s, writing tensors to %s", config_path, hook.out_dir)
    return hook


def _local_path(config_path: Path) -> Path | None:
    import json

    try:
        local_path = json.loads(config_path.read_text()).get("LocalPath")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(local_path) if local_path else None
