"""The features.json sm_staging writes is the one sm_explain reads: real names and category labels."""

from __future__ import annotations

from pathlib import Path

from sm_explain.features import load_features
from sm_staging.stage import stage


def test_staged_adult_features_give_names_and_category_labels(adult_data_path: Path, tmp_path: Path) -> None:
    result = stage({"source": str(adult_data_path), "destination": str(tmp_path / "v1" / "data"),
                    "dataset_version": "v1"})
    space = load_features(result["features_uri"])
    assert space.names[:3] == ["Age", "Workclass", "Education-Num"]
    workclass = space.names.index("Workclass")
    labels = {space.display_value(workclass, code) for code in range(8)}
    assert "Private" in labels and "State-gov" in labels
    assert space.display_value(space.names.index("Age"), 39.0) == 39.0
