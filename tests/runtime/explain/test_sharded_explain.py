"""The explanation as a map over part files and a reduce, on the real Adult data: three maps over three staged
parts give exactly what one `python -m sm_explain` over the single file gives, and the reduce refuses partials
that are not the run's (wrong feature count, a part twice, a part missing, other data, not the format)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sm_explain.errors import BadRequest
from sm_explain.reduce import handle as reduce_handle
from sm_explain_contracts.images import DEFAULT_VERSION
from sm_staging import stage
from tests.conftest import ADULT_DATA
from tests.runtime.image_training import train_in_image

pytestmark = pytest.mark.process  # runtime CLIs and an image environment

ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
PARTS = 3
# Small samples keep the run short; every sampled row and the outliers still come from all three parts.
SETTINGS = {"explain_rows": "train", "outlier_top_n": 4, "stacked_sample_size": 20, "beeswarm_sample_size": 300,
            "step_sample_size": 300, "force_plot_row": 20000}


def _cli(module: str, request: dict[str, Any], tmp: Path, name: str) -> tuple[int, dict[str, Any]]:
    request_path, result_path = tmp / f"{name}.request.json", tmp / f"{name}.result.json"
    request_path.write_text(json.dumps(request))
    completed = subprocess.run([sys.executable, "-m", module, "--request", str(request_path), "--result",
                                str(result_path)], capture_output=True, text=True, timeout=600,
                               env={**os.environ, "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"})
    assert completed.returncode in (0, 2), completed.stderr[-3000:]
    return completed.returncode, json.loads(result_path.read_text())


def _explain_request(staged: dict[str, Any], model: Path, output: Path) -> dict[str, Any]:
    return {"job_name": "job-1", "dataset_version": staged["dataset_version"], "features_uri": staged["features_uri"],
            "train_uri": staged["train_uri"], "validation_uri": staged["validation_uri"],
            "model_artifact_uri": str(model), "debug_output_uri": None, "output_uri": str(output), **SETTINGS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sharded")
    staged = {}
    for version, parts in (("one", 1), ("three", PARTS)):
        staged[version] = stage({"source": str(ADULT_DATA), "source_sha256": ADULT_SHA256, "dataset_version": version,
                                 "destination": str(root / version / "data"), "train_parts": parts})
    model_file = root / "model" / "xgboost-model"
    train_in_image(DEFAULT_VERSION, Path(staged["one"]["train_uri"]),
                   {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3}, 12,
                   validation=Path(staged["one"]["validation_uri"]), model_path=model_file)
    model = root / "model.tar.gz"
    with tarfile.open(model, "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")

    code, single = _cli("sm_explain", _explain_request(staged["one"], model, root / "single"), root, "single")
    assert code == 0, single

    base = _explain_request(staged["three"], model, root / "sharded")
    data = Path(staged["three"]["data_uri"])
    share = root / "instance-0"  # as a Processing instance gets its ShardedByS3Key share: by staged path
    (share / "train").mkdir(parents=True)
    shutil.copyfile(data / "train" / "part-00000.csv", share / "train" / "part-00000.csv")
    maps = [{"channel": "train", "local_root": str(share)},
            {"channel": "train", "parts": ["train/part-00001.csv"]},
            {"channel": "train", "parts": ["train/part-00002.csv"]},
            {"channel": "validation"}]
    partials = []
    for i, own in enumerate(maps):
        partial = root / "partials" / f"partial-{i}.npz"
        code, result = _cli("sm_explain.map", {**base, **own, "partial_uri": str(partial)}, root, f"map-{i}")
        assert code == 0, result
        partials.append(partial)
    code, sharded = _cli("sm_explain.reduce", {**base, "partial_uris": [str(p) for p in partials]}, root, "reduce")
    assert code == 0, sharded
    return {"root": root, "staged": staged, "single": single, "sharded": sharded, "base": base,
            "partials": partials}


def test_three_maps_and_a_reduce_give_what_one_run_gives(runs: dict[str, Any]) -> None:
    single, sharded = runs["single"], runs["sharded"]
    assert set(single["artifacts"]) == set(sharded["artifacts"])
    # mean |SHAP| is an exact sum in both (any split of the rows adds up to the same integers), rounded once:
    # equal to the last bit, not merely within float64 summation error.
    assert sharded["summary"] == single["summary"]
    assert single["summary"]["n_rows"] == 26048 and len(single["summary"]["outliers"]) == 8
    assert single["summary"]["curve_sources"]["metrics"] == "model"  # recomputed over every row of both channels
    differing = [name for name in single["artifacts"] if name != "manifest.json"
                 and _content(single["artifacts"][name]) != _content(sharded["artifacts"][name])]
    assert differing == []  # every table and figure byte for byte, the pages but for shap's random element id


def _content(uri: str) -> bytes:
    """The artifact's bytes; in shap's force plot pages, its random element id (new on every call) made fixed."""
    data = Path(uri).read_bytes()
    return re.sub(rb"'i[0-9A-Z]{20}'", b"'id'", data) if uri.endswith(".html") else data


def test_the_outliers_come_from_every_part(runs: dict[str, Any]) -> None:
    """The global outliers are spread over the parts, so the reduce really ranked every part's candidates."""
    rows = [o["row"] for o in runs["sharded"]["summary"]["outliers"]]
    manifest = json.loads(Path(runs["staged"]["three"]["train_uri"]).read_text())
    owners = {next(p["path"] for p in manifest["parts"] if p["first_row"] <= r < p["first_row"] + p["rows"])
              for r in rows}
    assert len(owners) >= 2, owners


def _rewrite(source: Path, target: Path, edit_header=None, edit_arrays=None) -> Path:  # noqa: ANN001
    with np.load(source, allow_pickle=False) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    header = json.loads(arrays.pop("header").tobytes())
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    np.savez(target, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    return target


def _reduce(runs: dict[str, Any], partials: list[Path], tmp_path: Path) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        reduce_handle({**runs["base"], "output_uri": str(tmp_path / "out"),
                       "partial_uris": [str(p) for p in partials]})
    assert not (tmp_path / "out").exists()  # refused before anything is drawn
    return raised.value


@pytest.mark.reliability
def test_a_partial_with_another_feature_count_is_refused(runs: dict[str, Any], tmp_path: Path, reliability) -> None:
    def fewer_features(arrays: dict[str, np.ndarray]) -> None:
        arrays["features"] = arrays["features"][:, :-1]
        arrays["contributions"] = arrays["contributions"][:, 1:]

    def header(h: dict[str, Any]) -> None:
        h["n_features"] = 11
        h["abs_sums"] = h["abs_sums"][:-1]

    partials = list(runs["partials"])
    partials[1] = _rewrite(partials[1], tmp_path / "p1.npz", header, fewer_features)
    error = _reduce(runs, partials, tmp_path)
    assert str(error).startswith(f"partial_uris[1] '{partials[1]}' has 11 features, but features_uri names 12")
    reliability.refused("explanations", "reduce of a partial with 11 of the 12 features",
                        "refused naming the partial; nothing drawn", str(error))


@pytest.mark.reliability
def test_a_part_in_two_partials_is_refused(runs: dict[str, Any], tmp_path: Path, reliability) -> None:
    copy = tmp_path / "again.npz"
    shutil.copyfile(runs["partials"][2], copy)
    error = _reduce(runs, [*runs["partials"], copy], tmp_path)
    assert str(error).startswith("part train/part-00002.csv is in two partials: partial_uris[2]")
    reliability.refused("explanations", "reduce with one part's partial twice", "refused naming the part and both "
                        "partials; nothing drawn", str(error))


@pytest.mark.reliability
def test_a_missing_part_is_refused_through_the_cli(runs: dict[str, Any], tmp_path: Path, reliability) -> None:
    partials = [runs["partials"][i] for i in (0, 1, 3)]
    code, result = _cli("sm_explain.reduce", {**runs["base"], "output_uri": str(tmp_path / "out"),
                                              "partial_uris": [str(p) for p in partials]}, tmp_path, "reduce")
    assert code == 2 and result["error"]["type"] == "BadRequest"
    assert result["error"]["message"] == ("no partial covers part train/part-00002.csv of the train channel: every "
                                          "part must be mapped once")
    assert not (tmp_path / "out").exists()
    reliability.refused("explanations", "reduce without the partial of one part", "exit 2 naming the part; nothing "
                        "drawn", result["error"]["message"])


@pytest.mark.reliability
def test_a_partial_of_other_data_is_refused(runs: dict[str, Any], tmp_path: Path, reliability) -> None:
    def other_sha(header: dict[str, Any]) -> None:
        header["parts"][0]["sha256"] = "0" * 64

    partials = list(runs["partials"])
    partials[1] = _rewrite(partials[1], tmp_path / "p1.npz", other_sha)
    error = _reduce(runs, partials, tmp_path)
    assert f"partial_uris[1] '{partials[1]}' read part train/part-00001.csv with sha256 {'0' * 64}, but the run " \
           "records" in str(error)
    reliability.refused("explanations", "reduce of a partial whose part sha256 is not the manifest's",
                        "refused naming the partial and the part", str(error))


@pytest.mark.reliability
def test_a_partial_without_the_runs_metric_sums_is_refused(runs: dict[str, Any], tmp_path: Path,
                                                          reliability) -> None:
    def renamed(header: dict[str, Any]) -> None:
        header["metric_sums"] = {"rmse": header["metric_sums"]["logloss"]}

    partials = list(runs["partials"])
    partials[3] = _rewrite(partials[3], tmp_path / "p3.npz", renamed)
    error = _reduce(runs, partials, tmp_path)
    assert str(error) == (f"partial_uris[3] '{partials[3]}' lacks the metric sums (logloss, error) at the run's 12 "
                          "curve steps")
    reliability.refused("explanations", "reduce of a partial with other metrics than the model's objective",
                        "refused naming the partial", str(error))


@pytest.mark.reliability
def test_a_tampered_part_is_refused_by_its_map(runs: dict[str, Any], tmp_path: Path, reliability) -> None:
    share = tmp_path / "share"
    (share / "train").mkdir(parents=True)
    part = Path(runs["staged"]["three"]["data_uri"]) / "train" / "part-00001.csv"
    lines = part.read_text().splitlines(keepends=True)
    (share / "train" / "part-00001.csv").write_text("".join([lines[1], lines[0], *lines[2:]]))  # two rows swapped
    code, result = _cli("sm_explain.map", {**runs["base"], "channel": "train", "local_root": str(share),
                                           "partial_uri": str(tmp_path / "p.npz")}, tmp_path, "map")
    assert code == 2 and "training part train/part-00001.csv" in result["error"]["message"]
    assert "but staging recorded" in result["error"]["message"] and "in train_parts.json" in result["error"]["message"]
    assert not (tmp_path / "p.npz").exists()
    reliability.refused("explanations", "map over a part whose bytes differ from the manifest's sha256",
                        "exit 2 naming the part; no partial written", result["error"]["message"])


@pytest.mark.reliability
def test_a_partial_that_is_not_the_format_is_refused_unread(runs: dict[str, Any], tmp_path: Path,
                                                           reliability) -> None:
    pickled = tmp_path / "pickled.npz"  # an object array: loading it would unpickle
    with np.load(runs["partials"][1], allow_pickle=False) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    arrays["rows"] = np.array([object()], dtype=object)
    np.savez(pickled, **arrays)
    squeezed = tmp_path / "compressed.npz"
    with zipfile.ZipFile(runs["partials"][1]) as source, zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            out.writestr(member.filename, source.read(member))
    messages = []
    for bad in (pickled, squeezed):
        error = _reduce(runs, [runs["partials"][0], bad, *runs["partials"][2:]], tmp_path)
        assert str(error).startswith(f"partial_uris[1] '{bad}'") or "partial_uris[1]" in str(error)
        messages.append(str(error))
    assert "not a partial written by sm_explain.map" in messages[0] and "pickle" in messages[0].lower()
    assert messages[1] == f"partial_uris[1] '{squeezed}' has compressed members; partials are written uncompressed"
    reliability.refused("explanations", "a partial holding a pickled object array", "refused unread (no "
                        "unpickling), naming the partial", messages[0])
    reliability.refused("explanations", "a partial with deflated members", "refused before decompressing, naming "
                        "the partial", messages[1])


def test_a_partial_bytes_round_trip() -> None:
    """The format holds what the reduce needs, exactly (the integers are hexadecimal, any size)."""
    from sm_explain.partials import Partial, _parse, partial_bytes

    arrays = {"rows": np.array([3, 9], dtype=np.int64), "features": np.ones((2, 2), dtype=np.float32),
              "predictions": np.zeros(2), "shap_sums": np.array([0.5, -1.0]),
              "contribution_rows": np.array([9], dtype=np.int64), "contributions": np.ones((1, 3), dtype=np.float32),
              "candidate_rows": np.array([9], dtype=np.int64)}
    partial = Partial("train", {"k": 1}, [{"path": "train/part-00001.csv", "first_row": 2, "rows": 8,
                                           "sha256": None}], 20, 2, True, {"rmse": [3 << 1200]}, 0.25, None,
                      -(5 << 1100), 7 << 1100, "m", [1 << 1126, 2], arrays)
    back = _parse(io.BytesIO(partial_bytes(partial)).getvalue(), "p")
    assert back.abs_sums == [1 << 1126, 2] and back.shap_total == -(5 << 1100)
    assert back.metric_sums == {"rmse": [3 << 1200]} and back.parts == partial.parts
    for name, array in arrays.items():
        np.testing.assert_array_equal(back.arrays[name], array)


def _instance(root: Path, host: str, hosts: list[str], files: list[str], data: Path) -> Path:
    """A Processing instance's /opt/ml as SageMaker lays it out: its ShardedByS3Key share of each channel prefix
    under input/data/<channel>/, and config/resourceconfig.json."""
    opt_ml = root / host
    for path in files:
        target = opt_ml / "processing" / "input" / "data" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / path, target)
    (opt_ml / "config").mkdir(parents=True, exist_ok=True)
    (opt_ml / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    return opt_ml


def _map_job(request: dict[str, Any], opt_ml: Path) -> subprocess.CompletedProcess[str]:
    request_path = opt_ml / "request.json"
    request_path.write_text(json.dumps(request))
    return subprocess.run(
        [sys.executable, "-m", "sm_explain.map_job", "--request", str(request_path),
         "--input", str(opt_ml / "processing" / "input" / "data"),
         "--partials", str(opt_ml / "processing" / "output" / "partials"),
         "--resource-config", str(opt_ml / "config" / "resourceconfig.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"})


def test_three_instances_of_the_map_job_and_a_reduce_give_what_one_run_gives(runs: dict[str, Any],
                                                                           tmp_path: Path) -> None:
    """Each instance maps every channel it holds a share of; one that holds none writes no partial; the reduce
    over all of them draws what one `python -m sm_explain` draws."""
    data = Path(runs["staged"]["three"]["data_uri"])
    hosts = ["algo-1", "algo-2", "algo-3", "algo-4"]
    shares = {"algo-1": ["train/part-00000.csv", "train/part-00002.csv"],
              "algo-2": ["train/part-00001.csv", "validation/validation.csv"], "algo-3": [], "algo-4": []}
    request = {**runs["base"], "output_uri": str(tmp_path / "out")}
    partials, results = [], {}
    for host in hosts:
        opt_ml = _instance(tmp_path, host, hosts, shares[host], data)
        completed = _map_job(request, opt_ml)
        assert completed.returncode == 0, completed.stderr[-3000:]
        out = opt_ml / "processing" / "output" / "partials"
        results[host] = json.loads((out / f"{host}.json").read_text())
        partials += sorted(out.glob("*.partial"))
    assert [p.name for p in partials] == ["algo-1-train.partial", "algo-2-train.partial", "algo-2-validation.partial"]
    assert results["algo-1"]["partials"][0]["parts"] == ["train/part-00000.csv", "train/part-00002.csv"]
    assert results["algo-3"] == {"host": "algo-3", "partials": []}
    code, sharded = _cli("sm_explain.reduce", {**request, "partial_uris": [str(p) for p in partials]}, tmp_path,
                         "reduce")
    assert code == 0, sharded
    single = runs["single"]
    assert sharded["summary"] == single["summary"]
    differing = [name for name in single["artifacts"] if name != "manifest.json"
                 and _content(single["artifacts"][name]) != _content(sharded["artifacts"][name])]
    assert differing == []


@pytest.mark.reliability
def test_a_map_job_outside_a_sagemaker_instance_refuses_to_name_files(runs: dict[str, Any], tmp_path: Path,
                                                                     reliability) -> None:
    """The host name becomes a file name: anything but algo-<n> among the hosts is refused, and nothing is
    written (an environment fault, not bad input: a traceback, not exit 2)."""
    data = Path(runs["staged"]["three"]["data_uri"])
    opt_ml = _instance(tmp_path, "algo-1", ["algo-1"], ["train/part-00000.csv"], data)
    outputs = []
    for config in ({"current_host": "../../etc", "hosts": ["../../etc"]}, {"current_host": "algo-2",
                                                                          "hosts": ["algo-1"]}, "[]"):
        (opt_ml / "config" / "resourceconfig.json").write_text(config if isinstance(config, str)
                                                               else json.dumps(config))
        completed = _map_job({**runs["base"], "output_uri": str(tmp_path / "out")}, opt_ml)
        assert completed.returncode not in (0, 2)
        assert "not a SageMaker instance (algo-1 ...) of this job" in completed.stderr
        outputs.append(completed.stderr.strip().splitlines()[-1])
    assert not (opt_ml / "processing" / "output").exists()
    reliability.refused("explanations", "a map job whose resourceconfig.json names a host that is not algo-<n> of "
                        "the job (a path, another job's host, not a mapping)", "it stops before writing anything",
                        outputs[0])
