"""Cross-version comparison: how each feature's mean |SHAP| and its rank move across data set versions.

``python -m sm_explain.compare --request R --result S`` with
``{"manifests": {version: manifest (dict) or manifest.json URI}, "output_uri": ...}``.
Reads only each version's small ``shap_bar.csv`` (the global mean |SHAP| per feature), never SHAP
matrices, so comparing many versions stays cheap.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sm_explain import storage  # noqa: E402
from sm_explain.errors import BadRequest  # noqa: E402
from sm_explain_contracts.envelope import exit_process, run_cli  # noqa: E402

RANKING_ARTIFACT = "shap_bar.csv"
MAX_LINES_IN_FIGURE = 12


def _load_manifest(version: str, manifest: Any) -> tuple[Mapping[str, Any], str | None]:
    """The manifest and where it lives (the explanations "directory" its artifacts must be inside), as far as
    it says so itself when given as a mapping."""
    if isinstance(manifest, Mapping):
        location = (manifest.get("artifacts") or {}).get("manifest.json")
        return manifest, location if isinstance(location, str) else None
    if isinstance(manifest, str):
        storage.validate_uri(manifest, f"manifest of version {version}")
        if not storage.exists(manifest):
            raise BadRequest(f"the manifest of version {version} does not exist: {manifest}")
        return json.loads(storage.read_bytes(manifest)), manifest
    raise BadRequest(f"the manifest of version {version} must be a mapping or a URI, got {manifest!r}")


def _validate(request: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], str]:
    unknown = set(request) - {"manifests", "output_uri"}
    if unknown:
        raise BadRequest(f"unknown request keys: {', '.join(sorted(unknown))}")
    manifests = request.get("manifests")
    if not isinstance(manifests, Mapping) or len(manifests) < 2:
        raise BadRequest("manifests must map at least two data set versions to their manifests")
    output_uri = storage.validate_uri(request.get("output_uri"), "output_uri")
    loaded = {}
    for version in sorted(manifests):
        manifest, location = _load_manifest(str(version), manifests[version])
        ranking = (manifest.get("artifacts") or {}).get(RANKING_ARTIFACT)
        if not isinstance(ranking, str):
            raise BadRequest(f"the manifest of version {version} lists no {RANKING_ARTIFACT}")
        if location is None:
            raise BadRequest(f"the manifest of version {version} does not say where it lives (artifacts "
                             "'manifest.json'), so its artifacts cannot be checked")
        # A manifest is outside input (anyone who can write the bucket can write one): it may only point at
        # its own explanations, never at another run's objects or a file of the worker.
        directory = location.rsplit("/", 1)[0] + "/"
        if not storage.is_under(ranking, directory):
            raise BadRequest(f"the manifest of version {version} names {RANKING_ARTIFACT} at {ranking!r}, which is "
                             f"not inside its own explanations {directory!r}")
        loaded[str(version)] = manifest
    return loaded, output_uri


def shap_by_version(manifests: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Mean |SHAP| per feature (rows) and version (columns, in version order)."""
    columns = {}
    for version, manifest in manifests.items():
        ranking = pd.read_csv(io.BytesIO(storage.read_bytes(manifest["artifacts"][RANKING_ARTIFACT])))
        columns[version] = ranking.set_index("feature")["mean_abs_shap"]
    table = pd.DataFrame(columns)
    table.index.name = "feature"
    return table.sort_values(table.columns[-1], ascending=False, kind="stable")


def ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Rank 1 = largest mean |SHAP| within each version; features missing in a version get no rank."""
    return table.rank(axis=0, ascending=False, method="min").astype("Int64")


def _figure(table: pd.DataFrame, rank_table: pd.DataFrame) -> bytes:
    shown = table.index[:MAX_LINES_IN_FIGURE]
    versions = list(table.columns)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    for feature in shown:
        left.plot(versions, table.loc[feature].to_numpy(dtype=float), marker="o", label=str(feature))
        right.plot(versions, rank_table.loc[feature].to_numpy(dtype=float), marker="o", label=str(feature))
    left.set_title("Mean |SHAP| per data set version")
    left.set_ylabel("mean |SHAP| (log-odds)")
    right.set_title("Rank per data set version (1 = most important)")
    right.set_ylabel("rank")
    right.invert_yaxis()
    for axis in (left, right):
        axis.set_xlabel("data set version")
        axis.tick_params(axis="x", rotation=30)
    right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()


def compare(request: Mapping[str, Any]) -> dict[str, Any]:
    manifests, output_uri = _validate(request)
    table = shap_by_version(manifests)
    rank_table = ranks(table)
    artifacts = {}
    outputs = {
        "shap_by_version.csv": (table.reset_index().to_csv(index=False).encode(), "text/csv"),
        "shap_rank_by_version.csv": (rank_table.reset_index().to_csv(index=False).encode(), "text/csv"),
        "shap_by_version.png": (_figure(table, rank_table), "image/png"),
    }
    for name, (data, content_type) in outputs.items():
        uri = storage.join(output_uri, name)
        storage.write_bytes(uri, data, content_type)
        artifacts[name] = uri
    first, last = table.columns[0], table.columns[-1]
    moves = (rank_table[first] - rank_table[last]).dropna().sort_values(ascending=False, kind="stable")
    return {
        "artifacts": artifacts,
        "summary": {
            "versions": list(table.columns),
            "top_features_latest": [str(f) for f in table.index[:5]],
            "rank_changes": {str(f): int(v) for f, v in moves.items() if v != 0},
        },
    }


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, "Compare mean |SHAP| across data set versions", compare, BadRequest)


if __name__ == "__main__":
    exit_process(main())
