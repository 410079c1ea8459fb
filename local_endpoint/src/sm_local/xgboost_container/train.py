"""One training run of the built-in XGBoost algorithm inside a staged `/opt/ml` directory.

Order matters and follows the real algorithm: validate hyperparameters and channels (milliseconds,
no data read), read and check the data, then train with XGBoost's own callbacks (per-round evaluation
printout, early stopping) plus smdebug's hook for the image versions that have it, and save the model.
Failures end in `/opt/ml/output/failure` (one sentence) and exit code 1.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from sm_explain_contracts.hyperparameters import HyperparameterError, Hyperparameters, parse_hyperparameters
from sm_explain_contracts.images import IMAGES, ImageVersion
from sm_explain_contracts.lean_xgboost import import_xgboost
from sm_local.xgboost_container import data as data_mod
from sm_local.xgboost_container.errors import AlgorithmError, ContainerError, UserError
from sm_local.xgboost_container.model_file import MODEL_NAME, save_model
from sm_local.xgboost_container.training import training_kwargs

log = logging.getLogger("sm_local.xgboost_container")

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
    image = IMAGES[framework_version]
    config_dir = opt_ml / "input" / "config"
    raw_hyperparameters = read_json(config_dir / "hyperparameters.json", {})
    if not isinstance(raw_hyperparameters, dict):
        raise UserError("hyperparameters.json must be a JSON object of name -> string value.")
    try:
        hyperparameters = parse_hyperparameters(raw_hyperparameters, xgboost_version=image.xgboost)
    except HyperparameterError as error:
        raise UserError(str(error)) from None
    data_config = read_json(config_dir / "inputdataconfig.json", {})
    content_type = _validate_channels(data_config)
    resources = read_json(config_dir / "resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]})
    log.info("Running XGBoost Sagemaker in algorithm mode (framework version %s, xgboost %s)",
             framework_version, image.xgboost)
    log.info("Hyperparameters: %s", json.dumps(raw_hyperparameters, sort_keys=True))
    if hyperparameters.ignored:
        log.warning("Ignoring %s: accepted by the 1.x images but not used by xgboost %s",
                    ", ".join(hyperparameters.ignored), image.xgboost)
    if len(resources.get("hosts", [])) > 1:
        log.warning("The local endpoint trains on one host; hosts %s are ignored", resources["hosts"][1:])

    train_data, validation_data = _read_data(opt_ml, content_type, hyperparameters, "validation" in data_config)
    _train_and_save(opt_ml, image, hyperparameters, train_data, validation_data)


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
    image: ImageVersion,
    hyperparameters: Hyperparameters,
    train_data: data_mod.ChannelData,
    validation_data: data_mod.ChannelData | None,
) -> None:
    xgboost = import_xgboost()
    if xgboost.__version__ != image.xgboost:
        raise AlgorithmError(
            f"This environment runs xgboost {xgboost.__version__}, but image {image.version} ships xgboost "
            f"{image.xgboost}: run the algorithm in the image's environment (python -m sm_local.image_envs "
            f"pull {image.version}), as the local endpoint does."
        )

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

    hook = None
    config_path = debugger.hook_config_path(opt_ml, image.version)
    if config_path is not None:
        # The real container logs a failed hook at debug level and trains without tensors; here the job
        # fails instead, so a broken DebugHookConfig never looks like a run whose rules found nothing.
        try:
            hook = debugger.create_hook(config_path, params, dtrain, dvalidation)
        except Exception as error:
            raise AlgorithmError(f"The Debugger hook could not be created from {config_path}: {error}") from error
    elif not image.debugger_hook:
        log.info("Framework version %s does not run the Debugger hook; no tensors are written", image.version)

    evals = [(dtrain, "train")] + ([(dvalidation, "validation")] if dvalidation is not None else [])
    kwargs = training_kwargs(xgboost, image, hyperparameters, evals, model_dir / MODEL_NAME, hook)
    try:
        booster = xgboost.train(params, dtrain, num_boost_round=hyperparameters.num_round, **kwargs)
    except xgboost.core.XGBoostError as error:
        raise _classify(error) from None

    if hyperparameters.early_stopping_rounds and dvalidation is not None:
        attributes = booster.attributes()
        log.info("Best iteration %s (best score %s)", attributes.get("best_iteration"), attributes.get("best_score"))
    save_model(booster, model_dir / MODEL_NAME, image)
    log.info("Stored trained model at %s (%s, as image %s writes it)", model_dir / MODEL_NAME,
             image.model_format, image.version)


_XGBOOST_LOG_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s*")


def _classify(error: Exception) -> ContainerError:
    """XGBoost errors carry a C++ stack trace; keep the first line, and blame the user when it is their data."""
    first_line = _XGBOOST_LOG_PREFIX.sub("", str(error).strip().splitlines()[0])
    if any(marker in str(error) for marker in _USER_ERROR_MARKERS):
        return UserError(f"XGBoost rejected the input: {first_line}")
    return AlgorithmError(f"XGB train call failed with exception: {first_line}")
