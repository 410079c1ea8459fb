"""Write `<model_dir>/xgboost-model` exactly as the emulated image's train.py does.

Images 0.90-1 .. 1.2-2 pickle the Booster (`pkl.dump(bst, f)`, with the protocol their Python used); 1.3-1 and
later call `bst.save_model(model_location)` with no extension, so xgboost picks the format: legacy binary in
1.x, UBJSON from 2.1. Saving goes through a file of the same name in a scratch directory, then a rename, so
a stopped job never leaves half a model; the format written is checked against the image table, so an
environment that drifted from its image fails the job instead of producing a model the image would not.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sm_explain_contracts.images import PICKLE, ImageVersion, detect_model_format
from sm_local.xgboost_container.errors import AlgorithmError

if TYPE_CHECKING:
    import xgboost

MODEL_NAME = "xgboost-model"


def save_model(booster: xgboost.Booster, path: Path, image: ImageVersion) -> None:
    # Beside the model directory, not in it: SageMaker packs all of /opt/ml/model into model.tar.gz.
    scratch = Path(tempfile.mkdtemp(prefix=".saving-model-", dir=path.parent.parent))
    try:
        partial = scratch / path.name  # the very name the image saves to: xgboost chooses the format by it
        if image.model_format == PICKLE:
            with partial.open("wb") as handle:
                pickle.dump(booster, handle, protocol=image.pickle_protocol)
        else:
            booster.save_model(str(partial))
        with partial.open("rb") as handle:
            written = detect_model_format(handle.read(16))
        if written != image.model_format:
            raise AlgorithmError(
                f"Saving the model wrote the {written or 'unknown'} format, but image {image.version} writes "
                f"{image.model_format}: this environment's xgboost is not the image's {image.xgboost}."
            )
        partial.replace(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
