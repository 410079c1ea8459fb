"""Shared by the test_xgb_container_* modules: lay out an `/opt/ml` directory as the supervisor does and
run `python -m sm_local.xgboost_container` on it as a subprocess (holds no tests itself)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sm_local.code_path import child_pythonpath

REPO = Path(__file__).resolve().parents[2]
ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"


@dataclass
class ContainerRun:
    returncode: int
    stdout: str
    stderr: str
    opt_ml: Path

    @property
    def failure(self) -> str | None:
        path = self.opt_ml / "output" / "failure"
        return path.read_text().strip() if path.exists() else None

    @property
    def model_path(self) -> Path:
        return self.opt_ml / "model" / "xgboost-model"

    @property
    def tensors_dir(self) -> Path:
        return self.opt_ml / "output" / "tensors"


def csv_rows(labels: np.ndarray, features: np.ndarray) -> str:
    """Label first, no header, as the algorithm expects."""
    table = np.column_stack([labels, features])
    return "\n".join(",".join(f"{value:.6g}" for value in row) for row in table) + "\n"


def layout_opt_ml(
    root: Path,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Mapping[str, str]],
    content_type: str = "text/csv",
    collections: Mapping[str, Mapping[str, str]] | None = None,
    hook_parameters: Mapping[str, str] | None = None,
) -> Path:
    """`channels` maps channel -> {file name: text}; `collections` (name -> CollectionParameters) adds a
    DebugHookConfig with LocalPath `<opt_ml>/output/tensors`, as the supervisor writes it."""
    opt_ml = root / "opt_ml"
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters)))
    (config / "inputdataconfig.json").write_text(
        json.dumps({name: {"ContentType": content_type, "TrainingInputMode": "File"} for name in channels})
    )
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel, files in channels.items():
        directory = opt_ml / "input" / "data" / channel
        directory.mkdir(parents=True)
        for name, text in files.items():
            (directory / name).write_text(text)
    if collections is not None:
        hook_config: dict[str, Any] = {
            "LocalPath": str(opt_ml / "output" / "tensors"),
            "HookParameters": dict(hook_parameters or {}),
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": dict(parameters)}
                for name, parameters in collections.items()
            ],
        }
        (config / "debughookconfig.json").write_text(json.dumps(hook_config))
    return opt_ml


def image_python(framework_version: str) -> str:
    """The python of the image's environment (built on first use, as the endpoint pulls it)."""
    from sm_local import image_envs

    return str(image_envs.ensure(framework_version, progress=lambda line: None).python)


def run_container(
    opt_ml: Path, framework_version: str = "1.7-1", env: Mapping[str, str] | None = None, timeout: float = 600,
    python: str | None = None,
) -> ContainerRun:
    """Run the algorithm process like the supervisor, in the image's environment: SMDEBUG_CONFIG_FILE_PATH set
    when the job has Debugger."""
    environment = {key: value for key, value in os.environ.items() if key not in ("SMDEBUG_CONFIG_FILE_PATH", "TRAINING_JOB_NAME")}
    environment["PYTHONPATH"] = os.pathsep.join(child_pythonpath(opt_ml.parent))
    hook_config = opt_ml / "input" / "config" / "debughookconfig.json"
    if hook_config.exists():
        environment["SMDEBUG_CONFIG_FILE_PATH"] = str(hook_config)
    environment.update(env or {})
    completed = subprocess.run(
        [python or image_python(framework_version), "-m", "sm_local.xgboost_container", "--opt-ml", str(opt_ml),
         "--framework-version", framework_version],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return ContainerRun(completed.returncode, completed.stdout, completed.stderr, opt_ml)


def separable_data(rows: int, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small binary problem XGBoost learns in a few rounds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).round(4)  # exactly what csv_rows writes
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=rows) > 0).astype(int)
    return y, x


def open_trial(path: Path) -> Any:
    """smdebug's trial on a finished local run (the end marker must exist, or create_trial polls forever)."""
    assert (path / "training_job_end.ts").exists(), f"no end marker in {path}"
    from smdebug.trials import create_trial

    return create_trial(str(path))
