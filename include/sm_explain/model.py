"""The trained booster from the job's `model.tar.gz` (member `xgboost-model`, any native xgboost format)."""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

import xgboost as xgb

from sm_explain import storage
from sm_explain.errors import BadRequest

MODEL_MEMBER = "xgboost-model"


def load_booster(model_artifact_uri: str) -> xgb.Booster:
    with tempfile.TemporaryDirectory(prefix="sm_explain_model_") as tmp:
        archive = storage.download(model_artifact_uri, Path(tmp) / "model.tar.gz")
        try:
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    member = tar.getmember(MODEL_MEMBER)
                except KeyError as exc:
                    raise BadRequest(f"model_artifact_uri {model_artifact_uri!r} holds no {MODEL_MEMBER!r}") from exc
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise BadRequest(f"{MODEL_MEMBER!r} in {model_artifact_uri!r} is not a regular file")
                model_bytes = extracted.read()
        except tarfile.TarError as exc:
            raise BadRequest(f"model_artifact_uri {model_artifact_uri!r} is not a tar.gz archive: {exc}") from exc
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(model_bytes))
    except xgb.core.XGBoostError as exc:
        raise BadRequest(f"{MODEL_MEMBER!r} in {model_artifact_uri!r} is not an xgboost model: {exc}") from exc
    return booster


def objective_of(booster: xgb.Booster) -> str:
    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])
