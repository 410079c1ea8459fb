"""Model files and Debugger tensors written by a built-in image's own libraries, for tests.

Production never trains with the runtime's xgboost: tensors and models come from the images (0.90 .. 3.2, each
with its smdebug). So tests that need them train in an image's environment (`sm_local.image_envs`, built on
first use) through `image_training_script.py`, not in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sm_explain_contracts.images import IMAGES, PICKLE
from sm_local import image_envs

SCRIPT = Path(__file__).with_name("image_training_script.py")


@dataclass(frozen=True)
class ImageTraining:
    version: str
    xgboost: str
    model_path: Path | None
    contribs: np.ndarray | None
    final_metrics: dict[str, float]
    seconds: dict[str, float]  # load (the .npz), hook (smdebug's, when asked), train: measured in the image


def image_python(version: str) -> Path:
    return image_envs.ensure(version, progress=lambda line: None).python


def train_in_image(
    version: str,
    train: tuple[np.ndarray, np.ndarray] | Path,
    params: dict[str, Any],
    rounds: int,
    *,
    validation: tuple[np.ndarray, np.ndarray] | Path | None = None,
    tensors_dir: Path | None = None,
    collections: Sequence[str] = ("metrics",),
    save_interval: int = 5,
    slow_seconds: float = 0.0,
    model_path: Path | None = None,
    contribs_of: str | None = None,
    end_marker: bool = True,
    timeout: float = 600,
) -> ImageTraining:
    """Train with image `version`'s xgboost; smdebug's hook writes to `tensors_dir` when given (then the end
    marker, as the local supervisor writes it), the model goes to `model_path` as the image saves it, and
    `contribs_of` ("train_features"/"validation_features") asks for that library's own pred_contribs.
    `train` and `validation` are (features, labels), or paths of staged CSVs, which are then read (and timed)
    inside the image's process."""
    image = IMAGES[version]
    with tempfile.TemporaryDirectory(prefix="image-training-") as scratch:
        contribs_path = Path(scratch) / "contribs.npy"
        config: dict[str, Any] = {
            "params": params, "rounds": rounds, "slow_seconds": slow_seconds,
            "save": f"pickle:{image.pickle_protocol}" if image.model_format == PICKLE else "save_model",
        }
        if isinstance(train, Path):
            config["csv"] = {"train": str(train), **({"validation": str(validation)} if validation else {})}
        else:
            data_path = Path(scratch) / "data.npz"
            arrays = {"train_features": train[0], "train_labels": train[1]}
            if validation is not None:
                assert not isinstance(validation, Path)
                arrays.update(validation_features=validation[0], validation_labels=validation[1])
            np.savez(data_path, **arrays)
            config["data"] = str(data_path)
        if tensors_dir is not None:
            config["hook"] = {"out_dir": str(tensors_dir), "collections": list(collections),
                              "save_interval": save_interval}
        if model_path is not None:
            config["model_path"] = str(model_path)
        if contribs_of is not None:
            config.update(contribs_path=str(contribs_path), contribs_of=contribs_of)
        config_path = Path(scratch) / "config.json"
        config_path.write_text(json.dumps(config))
        # As in a SageMaker container, TRAINING_JOB_NAME is set, so the hook leaves the end marker to the caller.
        env = {**os.environ, "TRAINING_JOB_NAME": "image-training"}
        env.pop("PYTHONPATH", None)
        completed = subprocess.run([str(image_python(version)), "-W", "ignore", str(SCRIPT), str(config_path)],
                                   capture_output=True, text=True, timeout=timeout, env=env)
        if completed.returncode != 0:
            raise RuntimeError(f"training in image {version} failed:\n{completed.stderr[-3000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        contribs = np.load(contribs_path) if contribs_of is not None else None
    if tensors_dir is not None and end_marker:
        (tensors_dir / "training_job_end.ts").touch()
    return ImageTraining(version, result["xgboost"], model_path, contribs, result["final_metrics"],
                         result["seconds"])
