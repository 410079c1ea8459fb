"""Staging the real Adult file: the notebook's encoding and split, byte-identical reruns, isolated versions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap.datasets
from sklearn.model_selection import train_test_split

from sm_staging import stage

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"


@pytest.fixture(scope="module")
def notebook_split(
    monkeypatch_module: pytest.MonkeyPatch,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """What the notebook computes: shap.datasets.adult() on the same file, then its train_test_split."""
    monkeypatch_module.setattr(shap.datasets, "cache", lambda url, file_name=None: str(ADULT))
    features, label = shap.datasets.adult()
    return train_test_split(features, label, test_size=0.2, random_state=7)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("adult")
    result = stage(
        {
            "source": str(ADULT),
            "source_sha256": ADULT_SHA256,
            "destination": str(root / "v1" / "data"),
            "dataset_version": "v1",
        }
    )
    return root, result


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, header=None)


def test_result_names_the_files_rows_and_checksum(staged: tuple[Path, dict]) -> None:
    root, result = staged
    data = (root / "v1" / "data" / ADULT_SHA256).resolve()  # a function of the source's bytes
    assert result == {
        "dataset_version": "v1",
        "data_uri": f"{data}/",
        "train_uri": str(data / "train" / "train.csv"),
        "train_parts": 1,
        "validation_uri": str(data / "validation" / "validation.csv"),
        "train_channel_uri": f"{data}/train/",
        "validation_channel_uri": f"{data}/validation/",
        "features_uri": str(data / "features.json"),
        "rows": {"train": 26048, "validation": 6513},
        "n_features": 12,
        "source_sha256": ADULT_SHA256,
    }


def test_csvs_equal_the_notebooks_encoded_split(staged: tuple[Path, dict], notebook_split) -> None:
    _, result = staged
    x_train, x_validation, y_train, y_validation = notebook_split
    for uri, x, y in (
        (result["train_uri"], x_train, y_train),
        (result["validation_uri"], x_validation, y_validation),
    ):
        frame = _read(uri)
        assert frame.shape == (len(y), 13)
        np.testing.assert_array_equal(frame[0].to_numpy(), y.astype(int))  # label first, 1 = '>50K'
        np.testing.assert_array_equal(frame.iloc[:, 1:].to_numpy(), x.to_numpy(dtype=np.float64))


def test_known_rows_and_code_maps(staged: tuple[Path, dict]) -> None:
    _, result = staged
    features = json.loads(Path(result["features_uri"]).read_text())
    assert features["feature_names"] == [
        "Age",
        "Workclass",
        "Education-Num",
        "Marital Status",
        "Occupation",
        "Relationship",
        "Race",
        "Sex",
        "Capital Gain",
        "Capital Loss",
        "Hours per week",
        "Country",
    ]
    assert features["xgboost_feature_names"] == [f"f{i}" for i in range(12)]
    assert features["label"]["mapping"] == {"0": "<=50K", "1": ">50K"}
    categorical = features["categorical"]
    assert categorical["Sex"] == {"0": "Female", "1": "Male"}
    assert categorical["Workclass"]["0"] == "?" and categorical["Workclass"]["7"] == "State-gov"
    # shap gives Relationship its own order, not the sorted one
    assert categorical["Relationship"] == {
        "0": "Not-in-family",
        "1": "Unmarried",
        "2": "Other-relative",
        "3": "Own-child",
        "4": "Husband",
        "5": "Wife",
    }
    assert categorical["Country"]["39"] == "United-States"
    assert features["rows"] == {"train": 26048, "validation": 6513}
    assert features["source_sha256"] == ADULT_SHA256
    for name, uri in (("train.csv", result["train_uri"]), ("validation.csv", result["validation_uri"])):
        assert features["files"][name]["sha256"] == _sha256(Path(uri))
        assert Path(result["features_uri"]).parent / features["files"][name]["path"] == Path(uri)

    # The file's first line: 39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical,
    # Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K. It is row 0 of the source, which
    # the seeded split puts in train or validation; find it by its distinctive values.
    rows = pd.concat([_read(result["train_uri"]), _read(result["validation_uri"])])
    first = rows[(rows[1] == 39) & (rows[9] == 2174) & (rows[3] == 13) & (rows[2] == 7)]
    assert first.iloc[0].tolist() == [0, 39, 7, 13, 4, 1, 0, 4, 1, 2174, 0, 40, 39]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`: its bytes and modification time (a rewrite of the same bytes changes it)."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_rerun_writes_nothing_and_other_versions_are_untouched(staged: tuple[Path, dict]) -> None:
    root, _ = staged
    version_one = root / "v1" / "data"
    before = _tree(version_one)
    other = root / "v0" / "data"
    other.mkdir(parents=True)
    (other / "train.csv").write_text("sentinel\n")

    # Through the CLI, as operators call it.
    request = root / "request.json"
    result_file = root / "result.json"
    request.write_text(
        json.dumps({"source": str(ADULT), "destination": str(version_one), "dataset_version": "v1"})
    )
    completed = subprocess.run(
        [sys.executable, "-m", "sm_staging", "--request", str(request), "--result", str(result_file)],
        env={"PATH": "/usr/bin:/bin", "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1",
             "HOME": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(result_file.read_text())["rows"] == {"train": 26048, "validation": 6513}
    assert _tree(version_one) == before, "a rerun of the same source must find its files and write none"
    assert sorted(before) == [f"{ADULT_SHA256}/{name}" for name in
                              ("features.json", "train/train.csv", "validation/validation.csv")]
    assert (other / "train.csv").read_text() == "sentinel\n"
    assert sorted(p.name for p in other.iterdir()) == ["train.csv"]
