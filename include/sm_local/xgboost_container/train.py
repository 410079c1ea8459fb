"""One training run of the built-in XGBoost algorithm inside a staged `/opt/ml` directory.

Order matters and follows the real algorithm: validate hyperparameters and channels (milliseconds,
no data read), read and check the data, then train with XGBoost's own callbacks (per-round evaluation
printout, early stopping) plus smdebug's hook for the image versions that have it, and save the model.
Failures end in `/opt/ml/output/failure` (one sentence) and exit code 1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lean_xgboost import import_xgboost
from sm_local.xgboost_container import data as data_mod
from sm_local.xgboost_container.errors import AlgorithmError, ContainerError, UserError
from sm_local.xgboost_container.hyperparameters import (
    MAXIMIZE_METRICS,
    Hyperparameters,
    parse_hyperparameters,
)

if TYPE_CHECKING:
    import xgboost

log = logging.getLogger("sm_local.xgboost_container")

MODEL_NAME = "xgboost-model"
CHANNELS = ("train", "validation")
# Messages of XGBoost checks that mean bad input rather than a broken algorithm (as the container lists them).
_USER_ERROR_MARKERS = (
    "label must be in [0,1]",
    "label must be in [0, num_class)",
    "feature_names mismatch",
    "base_score must be in (0,1)",
    "label must be nonnegative",
    "label must be positive",
    "should be greater equal to 0",
    "Check failed: preds.size() == info.labels_.size()",
    "the dataset only contains pos or neg samples",
)


def run(opt_ml: Path, framework_version: str) -> int:
    """Train; return the process exit code (0 success, 1 failure written to `output/failure`)."""
    configure_logging()
    started = time.monotonic()
    try:
        train(opt_ml, framework_version)
    except ContainerError as error:
        log.error("%s: %s", type(error).__name__, error)
        write_failure(opt_ml, str(error))
        return 1
    except Exception as error:  # an unexpected failure still leaves a reason for DescribeTrainingJob
        log.exception("Training failed unexpectedly")
        write_failure(opt_ml, f"The XGBoost algorithm failed unexpectedly: {type(error).__name__}: {error}")
        return 1
    log.info("Training finished in %.1f s", time.monotonic() - started)
    return 0


def configure_logging() -> None:
    """Log lines like the algorithm's (`[2024-01-31:12:00:00:INFO] ...`) on stdout, interleaved in order
    with the per-round evaluation lines; library warnings go the same way."""
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="[%(asctime)s:%(levelname)s] %(message)s",
        datefmt="%Y-%m-%d:%H:%M:%S",
        force=True,
    )
    logging.captureWarnings(True)


def write_failure(opt_ml: Path, message: str) -> None:
    output = opt_ml / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "failure").write_text(" ".join(message.split()) + "\n")


def read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path.name} is not valid JSON: {error}.") from None


def train(opt_ml: Path, framework_version: str) -> None:
    config_dir = opt_ml / "input" / "config"
    raw_hyperparameters = read_json(config_dir / "hyperparameters.json", {})
    if not isinstance(raw_hyperparameters, dict):
        raise UserError("hyperparameters.json must be a JSON object of name -> string value.")
    hyperparameters = parse_hyperparameters(raw_hyperparameters)
    data_config = read_json(config_dir / "inputdataconfig.json", {})
    content_type = _validate_channels(data_config)
    resources = read_json(config_dir / "resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]})
    log.info("Running XGBoost Sagemaker in algorithm mode (framework version %s)", framework_version)
    log.info("Hyperparameters: %s", json.dumps(raw_hyperparameters, sort_keys=True))
    if hyperparameters.ignored:
        log.warning("Ignoring %s: accepted by the 1.x images but not used by XGBoost 2+", ", ".join(hyperparameters.ignored))
    if len(resources.get("hosts", [])) > 1:
        log.warning("The local endpoint trains on one host; hosts %s are ignored", resources["hosts"][1:])

    train_data, validation_data = _read_data(opt_ml, content_type, hyperparameters, "validation" in data_config)
    _train_and_save(opt_ml, framework_version, hyperparameters, train_data, validation_data)


def _validate_channels(data_config: Any) -> str:
    """Channel names and ContentTypes; returns the shared content type (`csv` or `libsvm`)."""
    if not isinstance(data_config, dict) or "train" not in data_config:
        raise UserError("Missing required channel: train (inputdataconfig.json has no 'train' channel).")
    extra = sorted(set(data_config) - set(CHANNELS))
    if extra:
        raise UserError(f"Extraneous channel found: {extra[0]}; the XGBoost algorithm reads channels train and validation.")
    content_types = {
        channel: data_mod.parse_content_type(channel, (data_config[channel] or {}).get("ContentType"))
        for channel in CHANNELS
        if channel in data_config
    }
    if len(set(content_types.values())) > 1:
        raise UserError(
            f"Channels train and validation must have the same ContentType; got {content_types['train']} "
            f"and {content_types['validation']}."
        )
    return content_types["train"]


def _read_data(
    opt_ml: Path, content_type: str, hyperparameters: Hyperparameters, has_validation: bool
) -> tuple[data_mod.ChannelData, data_mod.ChannelData | None]:
    data_dir = opt_ml / "input" / "data"
    train_data = data_mod.read_channel("train", data_dir / "train", content_type, hyperparameters.csv_weights)
    validation_data = None
    if has_validation:
        validation_data = data_mod.read_channel(
            "validation", data_dir / "validation", content_type, hyperparameters.csv_weights
        )
        data_mod.align_validation(train_data, validation_data, content_type)
    num_class = hyperparameters.booster_params.get("num_class")
    for channel_data in (train_data, validation_data):
        if channel_data is not None:
            data_mod.check_labels(channel_data, hyperparameters.objective, num_class)
            log.info("Channel %s: %s", channel_data.name, data_mod.describe(channel_data))
    return train_data, validation_data


def _train_and_save(
    opt_ml: Path,
    framework_version: str,
    hyperparameters: Hyperparameters,
    train_data: data_mod.ChannelData,
    validation_data: data_mod.ChannelData | None,
) -> None:
    xgboost = import_xgboost()

    from sm_local.xgboost_container import debugger

    dtrain = train_data.to_dmatrix()
    dvalidation = validation_data.to_dmatrix() if validation_data is not None else None
    log.info("Single node training.")
    log.info("Train matrix has %d rows and %d columns", dtrain.num_row(), dtrain.num_col())
    if dvalidation is not None:
        log.info("Validation matrix has %d rows", dvalidation.num_row())

    model_dir = opt_ml / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    params = hyperparameters.booster_params
    callbacks: list[xgboost.callback.TrainingCallback] = [xgboost.callback.EvaluationMonitor()]
    callbacks += _early_stopping(hyperparameters, has_validation=dvalidation is not None)
    if hyperparameters.save_model_on_termination:
        callbacks.append(_save_each_round(model_dir / MODEL_NAME))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    config_path = debugger.hook_config_path(opt_ml, framework_version)
    if config_path is not None:
        # The real container logs a failed hook at debug level and trains without tensors; here the job
        # fails instead, so a broken DebugHookConfig never looks like a run whose rules found nothing.
        try:
            callbacks.append(debugger.create_hook(config_path, params, dtrain, dvalidation))
        except Exception as error:
            raise AlgorithmError(f"The Debugger hook could not be created from {config_path}: {error}") from error
    elif framework_version not in debugger.DEBUGGER_HOOK_VERSIONS:
        log.info("Framework version %s does not run the Debugger hook; no tensors are written", framework_version)

    custom_metric = None
    if hyperparameters.container_metrics:
        from sm_local.xgboost_container.metrics import container_metric

        custom_metric = container_metric(hyperparameters.container_metrics, hyperparameters.objective)

    evals = [(dtrain, "train")] + ([(dvalidation, "validation")] if dvalidation is not None else [])
    try:
        booster = xgboost.train(
            params,
            dtrain,
            num_boost_round=hyperparameters.num_round,
            evals=evals,
            custom_metric=custom_metric,
            callbacks=callbacks,
            verbose_eval=False,
        )
    except xgboost.core.XGBoostError as error:
        raise _classify(error) from None

    if hyperparameters.early_stopping_rounds and dvalidation is not None:
        attributes = booster.attributes()
        log.info("Best iteration %s (best score %s)", attributes.get("best_iteration"), attributes.get("best_score"))
    save_model(booster, model_dir / MODEL_NAME)
    log.info("Stored trained model at %s", model_dir / MODEL_NAME)


def _early_stopping(hyperparameters: Hyperparameters, has_validation: bool) -> list[Any]:
    """Stop when the validation metric has not improved for `early_stopping_rounds` rounds, keeping the best model.

    The metric is the tuning objective metric, else the last `eval_metric`, else the objective's
    default one (XGBoost's choice: the last metric it evaluates).
    """
    import xgboost

    rounds = hyperparameters.early_stopping_rounds
    if not rounds:
        return []
    if not has_validation:
        log.warning("early_stopping_rounds needs a validation channel; training runs all %d rounds", hyperparameters.num_round)
        return []
    metric = hyperparameters.early_stopping_metric
    maximize = None if metric is None else metric.split("@")[0] in MAXIMIZE_METRICS
    log.info("Will train until validation-%s hasn't improved in %d rounds.", metric or "<default metric>", rounds)
    return [
        xgboost.callback.EarlyStopping(
            rounds=rounds, metric_name=metric, data_name="validation", maximize=maximize, save_best=True
        )
    ]


def save_model(booster: xgboost.Booster, path: Path) -> None:
    """Write the model in XGBoost's UBJSON format (what `save_model` picks for a name without extension,
    and what `xgboost.Booster().load_model(path)` reads back), atomically."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(booster.save_raw(raw_format="ubj"))
    partial.replace(path)


def _save_each_round(path: Path) -> xgboost.callback.TrainingCallback:
    """`save_model_on_termination=true`: keep the latest model on disk so a stopped job still has one."""
    import xgboost

    class SaveEachRound(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: xgboost.Booster, epoch: int, evals_log: dict) -> bool:
            save_model(model, path)
            return False

    return SaveEachRound()


_XGBOOST_LOG_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s*")


def _classify(error: Exception) -> ContainerError:
    """XGBoost errors carry a C++ stack trace; keep the first line, and blame the user when it is their data."""
    first_line = _XGBOOST_LOG_PREFIX.sub("", str(error).strip().splitlines()[0])
    if any(marker in str(error) for marker in _USER_ERROR_MARKERS):
        return UserError(f"XGBoost rejected the input: {first_line}")
    return AlgorithmError(f"XGB train call failed with exception: {first_line}")
