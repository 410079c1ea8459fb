"""`xgb.train` as the emulated image calls it, for each xgboost the images ship (0.90 .. 3.2).

Two generations of xgboost's training API, as the images use them:
- before 1.3 (images 0.90-1 .. 1.2-2): callbacks are functions of a `CallbackEnv`; early stopping is
  `early_stopping_rounds=` (on the last metric of the last evaluation set, xgboost's choice); container metrics
  (accuracy, f1, ...) are a `feval`;
- 1.3 and later: `TrainingCallback` objects (`EvaluationMonitor`, `EarlyStopping(save_best=True)` on the chosen
  metric); container metrics are a `feval` up to 1.5 and `custom_metric` from 1.6.
A `feval` gets raw margins from xgboost 1.2 on (transformed predictions before), `custom_metric` gets
transformed predictions: `metrics.container_metric` is told which.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

from sm_explain_contracts.hyperparameters import MAXIMIZE_METRICS, Hyperparameters
from sm_explain_contracts.images import ImageVersion
from sm_local.xgboost_container.model_file import save_model

log = logging.getLogger("sm_local.xgboost_container")


def library_version(xgboost: ModuleType) -> tuple[int, int]:
    major, minor = re.findall(r"\d+", xgboost.__version__)[:2]
    return int(major), int(minor)


def training_kwargs(
    xgboost: ModuleType,
    image: ImageVersion,
    hyperparameters: Hyperparameters,
    evals: list[tuple[Any, str]],
    model_path: Path,
    hook: Any | None,
) -> dict[str, Any]:
    """Keyword arguments for xgb.train beyond params, dtrain and num_boost_round."""
    version = library_version(xgboost)
    modern = hasattr(xgboost.callback, "TrainingCallback")
    has_validation = any(name == "validation" for _, name in evals)
    kwargs: dict[str, Any] = {"evals": evals, "verbose_eval": False}
    callbacks: list[Any] = []
    if modern:
        callbacks.append(xgboost.callback.EvaluationMonitor())
        callbacks += _early_stopping(xgboost, hyperparameters, has_validation)
    else:
        callbacks.append(_print_round)
        if hyperparameters.early_stopping_rounds:
            if has_validation:
                log.info("Will train until validation hasn't improved in %d rounds (on its last metric).",
                         hyperparameters.early_stopping_rounds)
                kwargs["early_stopping_rounds"] = hyperparameters.early_stopping_rounds
            else:
                _no_validation_warning(hyperparameters)
    if hyperparameters.save_model_on_termination:
        callbacks.append(_save_each_round(xgboost, model_path, image, modern))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if hook is not None:
        callbacks.append(hook)
    kwargs["callbacks"] = callbacks

    if hyperparameters.container_metrics:
        from sm_local.xgboost_container.metrics import container_metric

        if version >= (1, 6):
            kwargs["custom_metric"] = container_metric(hyperparameters.container_metrics, hyperparameters.objective)
        else:
            kwargs["feval"] = container_metric(
                hyperparameters.container_metrics, hyperparameters.objective, margins=version >= (1, 2)
            )
    return kwargs


def _print_round(env: Any) -> None:
    """The per-round evaluation line of the pre-1.3 images (`[12]\\ttrain-logloss:0.41234\\t...`)."""
    if env.evaluation_result_list:
        fields = "\t".join(f"{name}:{value:.5f}" for name, value, *_ in env.evaluation_result_list)
        print(f"[{env.iteration}]\t{fields}", flush=True)


def _no_validation_warning(hyperparameters: Hyperparameters) -> None:
    log.warning("early_stopping_rounds needs a validation channel; training runs all %d rounds",
                hyperparameters.num_round)


def _early_stopping(xgboost: ModuleType, hyperparameters: Hyperparameters, has_validation: bool) -> list[Any]:
    """Stop when the validation metric has not improved for `early_stopping_rounds` rounds, keeping the best model.

    The metric is the tuning objective metric, else the last `eval_metric`, else the objective's
    default one (XGBoost's choice: the last metric it evaluates).
    """
    rounds = hyperparameters.early_stopping_rounds
    if not rounds:
        return []
    if not has_validation:
        _no_validation_warning(hyperparameters)
        return []
    metric = hyperparameters.early_stopping_metric
    maximize = None if metric is None else metric.split("@")[0] in MAXIMIZE_METRICS
    log.info("Will train until validation-%s hasn't improved in %d rounds.", metric or "<default metric>", rounds)
    return [
        xgboost.callback.EarlyStopping(
            rounds=rounds, metric_name=metric, data_name="validation", maximize=maximize, save_best=True
        )
    ]


def _save_each_round(xgboost: ModuleType, path: Path, image: ImageVersion, modern: bool) -> Any:
    """`save_model_on_termination=true`: keep the latest model on disk so a stopped job still has one."""
    if not modern:
        def save_round(env: Any) -> None:
            save_model(env.model, path, image)

        return save_round

    class SaveEachRound(xgboost.callback.TrainingCallback):  # type: ignore[misc, name-defined]
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            save_model(model, path, image)
            return False

    return SaveEachRound()

