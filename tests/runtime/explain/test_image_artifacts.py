"""Every model file a built-in XGBoost image writes is explained, with that image's own SHAP values.

For each image version, its own xgboost (in the image's environment, sm_local.image_envs) trains a model and
saves it the way the image's train.py does (`pkl.dump(bst, f, protocol=N)` or `bst.save_model(path)`, written
by tests/runtime/image_training_script.py, independently of the local endpoint's container). The explanations,
on the runtime's xgboost, must read it and report per feature the mean |SHAP| that the image's own
`pred_contribs` gives. The local endpoint's container, given the same data, must write the same format and the
same model.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from sm_explain.explain import run_explanations
from sm_explain.model import booster_from_bytes
from sm_explain.request import parse_request
from sm_explain_contracts.images import IMAGES, LEGACY_BINARY, PICKLE, UBJ, detect_model_format
from tests.local_endpoint.test_xgb_container_helpers import csv_rows, layout_opt_ml, run_container
from tests.runtime.image_training import train_in_image

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

FEATURES = ["age", "education", "hours", "capital", "workclass", "score"]
PARAMS = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "gamma": 0, "min_child_weight": 1}
ROUNDS = 15
EXPECTED_FORMATS = {
    "0.90-1": PICKLE, "0.90-2": PICKLE, "1.0-1": PICKLE, "1.2-1": PICKLE, "1.2-2": PICKLE,
    "1.3-1": LEGACY_BINARY, "1.5-1": LEGACY_BINARY, "1.7-1": LEGACY_BINARY, "3.0-5": UBJ, "3.2-0": UBJ,
}


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary problem with a categorical-looking column; values rounded as the CSV stores them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).round(4)
    x[:, 4] = rng.integers(0, 5, n)
    logit = 1.2 * x[:, 0] - x[:, 1] + 0.8 * (x[:, 4] == 2) + 0.5 * x[:, 2] * x[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return x, y


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("staged")
    train, validation = _rows(3000, 0), _rows(4000, 1)
    (root / "train.csv").write_text(csv_rows(train[1], train[0]))
    (root / "validation.csv").write_text(csv_rows(validation[1], validation[0]))
    (root / "features.json").write_text(json.dumps({
        "feature_names": FEATURES, "categorical": {"workclass": {str(c): f"class-{c}" for c in range(5)}},
        "label": "income"}))
    return {"root": root, "train": train, "validation": validation}


def test_the_table_says_what_each_image_writes() -> None:
    assert {version: image.model_format for version, image in IMAGES.items()} == EXPECTED_FORMATS


@pytest.mark.parametrize("version", list(IMAGES))
def test_an_image_artifact_explains_with_that_images_own_shap(version: str, data: dict, tmp_path: Path) -> None:
    model_file = tmp_path / "model" / "xgboost-model"
    image = train_in_image(version, data["train"], PARAMS, ROUNDS, validation=data["validation"],
                           model_path=model_file, contribs_of="validation_features")
    assert image.xgboost == IMAGES[version].xgboost
    written = model_file.read_bytes()
    assert detect_model_format(written) == EXPECTED_FORMATS[version]

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")
    root: Path = data["root"]
    manifest = run_explanations(parse_request({
        "job_name": f"job-{version}", "dataset_version": "v1", "features_uri": str(root / "features.json"),
        "train_uri": str(root / "train.csv"), "validation_uri": str(root / "validation.csv"),
        "model_artifact_uri": str(archive), "debug_output_uri": None, "output_uri": str(tmp_path / "explanations"),
        "source": "model", "explain_rows": "validation", "stacked_sample_size": 10, "beeswarm_sample_size": 50,
        "step_sample_size": 50, "outlier_top_n": 2,
    }))
    assert manifest["summary"]["source"] == "model"
    assert manifest["summary"]["model_file"] == EXPECTED_FORMATS[version]
    bar = pd.read_csv(tmp_path / "explanations" / "shap_bar.csv").set_index("feature")["mean_abs_shap"]
    expected = np.abs(image.contribs[:, :-1]).mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(bar[FEATURES].to_numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("version", ["0.90-2", "1.2-2", "1.7-1", "3.0-5"])
def test_the_local_container_writes_what_the_image_writes(version: str, data: dict, tmp_path: Path) -> None:
    """Same data, same hyperparameters: the endpoint's algorithm process and the image's own call give the same
    file format and the same model."""
    root: Path = data["root"]
    reference = train_in_image(version, data["train"], PARAMS, ROUNDS, validation=data["validation"],
                               model_path=tmp_path / "reference" / "xgboost-model")
    opt_ml = layout_opt_ml(
        tmp_path / "job", {**{k: str(v) for k, v in PARAMS.items()}, "num_round": str(ROUNDS)},
        {"train": {"train.csv": (root / "train.csv").read_text()},
         "validation": {"validation.csv": (root / "validation.csv").read_text()}},
    )
    run = run_container(opt_ml, version)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    ours, theirs = run.model_path.read_bytes(), reference.model_path.read_bytes()
    assert detect_model_format(ours) == detect_model_format(theirs) == EXPECTED_FORMATS[version]
    rows = xgb.DMatrix(data["validation"][0].astype(np.float32))
    np.testing.assert_allclose(booster_from_bytes(ours, "ours").predict(rows),
                               booster_from_bytes(theirs, "theirs").predict(rows), rtol=1e-6)


def test_the_container_refuses_an_environment_that_is_not_its_images(data: dict, tmp_path: Path) -> None:
    """Image 1.7-1's algorithm in the runtime's xgboost (3.0.5) would write UBJSON, not 1.7-1's legacy binary."""
    import sys

    opt_ml = layout_opt_ml(tmp_path, {"num_round": "2", "objective": "binary:logistic"},
                           {"train": {"train.csv": (data["root"] / "train.csv").read_text()}})
    run = run_container(opt_ml, "1.7-1", python=sys.executable)
    assert run.returncode == 1
    assert run.failure is not None and "runs xgboost 3.0.5, but image 1.7-1 ships xgboost 1.7.4" in run.failure
    assert not run.model_path.exists()
