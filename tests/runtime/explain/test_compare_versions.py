"""Cross-version comparison: mean |SHAP| and rank per feature and version, from each version's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sm_explain.compare import compare
from sm_explain.errors import BadRequest


def _version(tmp_path: Path, version: str, ranking: dict[str, float]) -> str:
    folder = tmp_path / version
    folder.mkdir()
    frame = pd.DataFrame({"feature": list(ranking), "mean_abs_shap": list(ranking.values())})
    frame.to_csv(folder / "shap_bar.csv", index=False)
    manifest = {"artifacts": {"shap_bar.csv": str(folder / "shap_bar.csv")}, "summary": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder / "manifest.json")


def test_mean_abs_shap_and_rank_move_across_versions(tmp_path: Path) -> None:
    manifests = {
        "2026-11-08": _version(tmp_path, "2026-11-08", {"Age": 0.9, "Relationship": 0.5, "<b>Sex</b>": 0.1}),
        "2026-11-15": _version(tmp_path, "2026-11-15", {"Relationship": 1.1, "Age": 0.7, "<b>Sex</b>": 0.2}),
    }
    result = compare({"manifests": manifests, "output_uri": str(tmp_path / "out")})

    assert set(result["artifacts"]) == {"shap_by_version.csv", "shap_rank_by_version.csv", "shap_by_version.png"}
    assert Path(result["artifacts"]["shap_by_version.png"]).read_bytes().startswith(b"\x89PNG")
    values = pd.read_csv(result["artifacts"]["shap_by_version.csv"]).set_index("feature")
    assert values.loc["Age"].tolist() == [0.9, 0.7]
    ranks = pd.read_csv(result["artifacts"]["shap_rank_by_version.csv"]).set_index("feature")
    assert ranks.loc["Relationship"].tolist() == [2, 1]
    assert result["summary"]["versions"] == ["2026-11-08", "2026-11-15"]
    assert result["summary"]["top_features_latest"][0] == "Relationship"
    assert result["summary"]["rank_changes"] == {"Relationship": 1, "Age": -1}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"manifests": {}, "output_uri": "/tmp/x"}, "at least two data set versions"),
        ({"manifests": {"a": "/no/such/manifest.json", "b": "/no/such/other.json"}, "output_uri": "/tmp/x"},
         "does not exist"),
        ({"manifests": {"a": {"artifacts": {}}, "b": {"artifacts": {}}}, "output_uri": "/tmp/x"}, "lists no shap_bar.csv"),
        ({"manifests": {v: {"artifacts": {"shap_bar.csv": "/tmp/x/shap_bar.csv"}} for v in "ab"}, "output_uri": "/tmp/x"},
         "does not say where it lives"),
        ({"manifests": {"a": {}, "b": {}}, "output_uri": "ftp://x"}, "output_uri 'ftp://x' is not an s3:// URI"),
    ],
)
def test_bad_requests_name_the_problem(request_, message) -> None:
    with pytest.raises(BadRequest, match=message):
        compare(request_)


@pytest.mark.reliability
def test_a_manifest_pointing_outside_its_own_explanations_is_refused(tmp_path: Path, reliability) -> None:
    """An edited manifest must not make the comparison read a file of the worker or another run's objects."""
    secret = tmp_path / "secret.csv"
    secret.write_text("feature,mean_abs_shap\nAWS_SECRET_ACCESS_KEY,1\n")
    manifests = {"2026-11-08": _version(tmp_path, "2026-11-08", {"Age": 0.9}),
                 "2026-11-15": _version(tmp_path, "2026-11-15", {"Age": 0.7})}
    edited = Path(manifests["2026-11-15"])
    edited.write_text(json.dumps({"artifacts": {"shap_bar.csv": str(secret)}, "summary": {}}))
    with pytest.raises(BadRequest, match=r"names shap_bar.csv at .*secret.csv.*not inside its own explanations") as raised:
        compare({"manifests": manifests, "output_uri": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()
    reliability.refused("comparison", "a version's manifest naming a file outside its explanations",
                        "refused naming the file; nothing read or written", str(raised.value))
