"""End-to-end checks of `python -m sm_explain` and `python -m sm_explain.report` on small synthetic jobs: a real
Debugger trial written by smdebug's XGBoost hook and a model.tar.gz, both by the default image's own libraries, local directories and S3 (moto server)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
from PIL import Image

from local_stack import free_port
from sm_explain.errors import BadRequest
from sm_explain.explain import run_explanations
from sm_explain.request import parse_request
from sm_explain_contracts.images import DEFAULT_VERSION
from tests.runtime.image_training import train_in_image

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[3]
SCRIPT_NAME = "<script>alert(1)</script>"
FEATURES = ["age", SCRIPT_NAME, "workclass", "hours"]
WORKCLASS = ["Private", "State-gov", "Never-worked"]
OUTLIER_N = 3
ROUNDS = 9


def _write_job(root: Path, collections: list[str] | None) -> dict[str, str]:
    """Synthetic staged data, features.json, model.tar.gz and (when `collections`) a Debugger trial."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[:, 2] = rng.integers(0, len(WORKCLASS), n)
    y = ((x[:, 0] + x[:, 1] + (x[:, 2] == 1) + 0.3 * rng.normal(size=n)) > 0.5).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    np.savetxt(root / "train.csv", np.column_stack([y[:300], x[:300]]), delimiter=",", fmt="%.6g")
    np.savetxt(root / "validation.csv", np.column_stack([y[300:], x[300:]]), delimiter=",", fmt="%.6g")
    (root / "features.json").write_text(json.dumps(
        {"feature_names": FEATURES, "categorical": {"workclass": WORKCLASS}, "label": "income",
         "files": {name: {"sha256": _sha256(root / name)} for name in ("train.csv", "validation.csv")}}))
    # Train on what was written (as the container does), so SHAP rows match the CSV exactly; with the default
    # image's own xgboost and smdebug, which write the model file and the tensors as that image does.
    train = np.loadtxt(root / "train.csv", delimiter=",", dtype=np.float32)
    validation = np.loadtxt(root / "validation.csv", delimiter=",", dtype=np.float32)
    trial_dir = root / "debug-output"
    model_file = root / "model" / "xgboost-model"
    train_in_image(DEFAULT_VERSION, (train[:, 1:], train[:, 0]),
                   {"objective": "binary:logistic", "max_depth": 3, "eval_metric": ["logloss", "error"]}, ROUNDS,
                   validation=(validation[:, 1:], validation[:, 0]),
                   tensors_dir=trial_dir if collections is not None else None, collections=collections or (),
                   save_interval=2, model_path=model_file)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")
    return {
        "job_name": "job-1", "dataset_version": "v1",
        "features_uri": str(root / "features.json"), "train_uri": str(root / "train.csv"),
        "validation_uri": str(root / "validation.csv"), "model_artifact_uri": str(root / "model.tar.gz"),
        "debug_output_uri": str(trial_dir) if collections is not None else None,
        "output_uri": str(root / "explanations"), "outlier_top_n": OUTLIER_N, "stacked_sample_size": 20,
        "beeswarm_sample_size": 150, "step_sample_size": 100,
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NOTEBOOK_COLLECTIONS = ["metrics", "feature_importance", "average_shap", "full_shap"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _write_job(tmp_path_factory.mktemp("job"), NOTEBOOK_COLLECTIONS)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse_html(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.tags and parser.tags[0][0] == "html"
    return parser.tags


def _assert_artifacts(manifest: dict, read: callable) -> None:
    artifacts = manifest["artifacts"]
    expected = {"metrics.png", "metrics.csv", "average_shap.png", "average_shap.csv", "shap_bar.png", "shap_bar.csv",
                "shap_beeswarm.png", "shap_beeswarm.csv", "force_row.png", "force_row.html", "force_row.csv",
                "force_stacked.html", "outliers.csv", "outliers.parquet", "manifest.json"}
    expected |= {f"importance_{t}.{e}" for t in ("weight", "gain", "cover", "total_gain", "total_cover")
                 for e in ("png", "csv")}
    expected |= {f"outlier_{tail}_{k}.png" for tail in ("high", "low") for k in range(1, OUTLIER_N + 1)}
    assert expected <= set(artifacts)
    for name, uri in artifacts.items():
        data = read(uri)
        if name.endswith(".png"):
            Image.open(io.BytesIO(data)).verify()
        if name.endswith(".html"):
            text = data.decode("utf-8")
            _parse_html(text)
            assert SCRIPT_NAME not in text, f"{name} contains the feature name unescaped"
            assert "alert(1)" in text, f"{name} lost the feature name"
    outliers = pq.read_table(io.BytesIO(read(artifacts["outliers.parquet"]))).to_pandas()
    assert len(outliers) == 2 * OUTLIER_N
    assert list(outliers["tail"]) == ["high"] * OUTLIER_N + ["low"] * OUTLIER_N
    assert outliers["z_score"].iloc[0] > 0 > outliers["z_score"].iloc[-1]
    # The manifest is small and JSON-safe: URIs and a few numbers.
    stored = json.loads(read(artifacts["manifest.json"]))
    assert stored == manifest
    assert len(json.dumps(manifest)) < 8000
    summary = manifest["summary"]
    assert len(summary["outliers"]) == 2 * OUTLIER_N
    assert len(summary["top_features"]) == len(FEATURES)
    assert {f["feature"] for f in summary["top_features"]} == set(FEATURES)


def _read_local(uri: str) -> bytes:
    return Path(uri).read_bytes()


def _assert_top_features_are_pred_contribs(summary: dict, job: dict[str, str], rows_uri: str, rtol: float) -> None:
    """The manifest's mean |SHAP| per feature equals the job model's own `pred_contribs` on the explained rows."""
    booster = xgb.Booster()
    with tarfile.open(job["model_artifact_uri"]) as tar:
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    rows = np.loadtxt(rows_uri, delimiter=",", dtype=np.float32)
    expected = np.abs(booster.predict(xgb.DMatrix(rows[:, 1:]), pred_contribs=True)[:, :-1]).mean(axis=0)
    reported = {f["feature"]: f["mean_abs_shap"] for f in summary["top_features"]}
    np.testing.assert_allclose([reported[f] for f in FEATURES], expected, rtol=rtol)


def test_model_source_writes_every_artifact_and_reuses_trial_metrics(
        job: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    manifest = run_explanations(parse_request(job))
    _assert_artifacts(manifest, _read_local)
    # Progress on stderr (what the task log shows): one line per artifact, the SHAP pass's rows done of total.
    progress = [line for line in capfd.readouterr().err.splitlines() if line.startswith("sm_explain: ")]
    for name, uri in manifest["artifacts"].items():
        if name != "manifest.json":
            assert any(line.startswith(f"sm_explain: wrote {name} (") and line.endswith(f" to {uri}")
                       for line in progress), name
    assert "sm_explain: mean |SHAP| pass (pred_contribs): 0 of 100 rows" in progress
    assert any(line.startswith("sm_explain: mean |SHAP| pass (pred_contribs): 100 of 100 rows (100%) in ")
               for line in progress), progress
    assert len(progress) < len(manifest["artifacts"]) + 10, progress  # a few lines besides the artifacts
    summary = manifest["summary"]
    assert summary["source"] == "model" and summary["model_file"] == "legacy binary"  # image 1.7-1's
    assert summary["staged_data_checked"] is True  # features.json records each file's sha256
    assert summary["explained_rows"] == "validation" and summary["n_rows"] == 100
    assert summary["curve_sources"]["metrics"] == "debugger"
    # 100 rows are too few for TreeShap's tables to pay off (see test_shap_rows for its process): pred_contribs ran,
    # and the manifest says so. Either way the values are xgboost's own pred_contribs values.
    assert "100 rows are too few" in summary["mean_abs_shap_method"]
    _assert_top_features_are_pred_contribs(summary, job, job["validation_uri"], rtol=1e-5)
    # The force plot for the categorical feature shows its label.
    force_row = (Path(job["output_uri"]) / "force_row.csv").read_text()
    assert re.search(r"workclass,(Private|State-gov|Never-worked),", force_row)


def test_same_inputs_give_byte_identical_tables(job: dict[str, str], tmp_path: Path) -> None:
    first = run_explanations(parse_request({**job, "output_uri": str(tmp_path / "a")}))
    second = run_explanations(parse_request({**job, "output_uri": str(tmp_path / "b")}))
    tables = [n for n in first["artifacts"] if n.endswith((".csv", ".parquet"))]
    assert "outliers.parquet" in tables and "shap_beeswarm.csv" in tables
    for name in tables:
        assert Path(first["artifacts"][name]).read_bytes() == Path(second["artifacts"][name]).read_bytes(), name


def test_debugger_source_reads_the_trial_like_the_notebook(job: dict[str, str], tmp_path: Path) -> None:
    manifest = run_explanations(parse_request({**job, "source": "debugger", "output_uri": str(tmp_path)}))
    _assert_artifacts(manifest, _read_local)
    summary = manifest["summary"]
    assert summary["source"] == "debugger" and summary["explained_rows"] == "train"
    assert summary["n_rows"] == 300 and summary["shap_step"] == ROUNDS - 1
    assert set(summary["curve_sources"].values()) == {"debugger"}
    # Full SHAP of the final model equals the model's own contributions on the training rows.
    _assert_top_features_are_pred_contribs(summary, job, job["train_uri"], rtol=1e-4)


def test_debugger_source_explains_a_job_whose_model_cannot_be_read(job: dict[str, str], tmp_path: Path) -> None:
    """The tensors stand in for the model: every analysis comes from them, and the manifest says why the model
    was not used. Without the objective (which the model would have told), that is a clear bad request."""
    unreadable = tmp_path / "model.tar.gz"
    with tarfile.open(unreadable, "w:gz") as tar:
        member = tarfile.TarInfo("xgboost-model")
        content = b"\x00\x01 not a model at all"
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    request = {**job, "source": "debugger", "model_artifact_uri": str(unreadable), "output_uri": str(tmp_path / "out")}
    with pytest.raises(BadRequest, match=r"is not an XGBoost model file: .* give the training job's objective"):
        run_explanations(parse_request(request))
    assert not (tmp_path / "out").exists()
    manifest = run_explanations(parse_request({**request, "objective": "binary:logistic"}))
    _assert_artifacts(manifest, _read_local)
    summary = manifest["summary"]
    assert summary["source"] == "debugger"
    assert summary["model_file"].startswith("not used: ") and "is not an XGBoost model file" in summary["model_file"]
    assert set(summary["curve_sources"].values()) == {"debugger"}
    reference = run_explanations(parse_request({**job, "source": "debugger", "output_uri": str(tmp_path / "ref")}))
    assert summary["top_features"] == reference["summary"]["top_features"]


def test_auto_picks_debugger_only_when_full_shap_exists(job: dict[str, str], tmp_path: Path) -> None:
    with_shap = run_explanations(parse_request({**job, "source": "auto", "output_uri": str(tmp_path / "a")}))
    assert with_shap["summary"]["source"] == "debugger"
    no_shap_job = _write_job(tmp_path / "no-shap", ["metrics", "feature_importance"])
    without = run_explanations(parse_request({**no_shap_job, "source": "auto"}))
    assert without["summary"]["source"] == "model"
    assert without["summary"]["curve_sources"]["metrics"] == "debugger"


def test_model_without_trial_recomputes_metric_curves(job: dict[str, str], tmp_path: Path) -> None:
    """An XGBoost 3.x job writes no tensors: metrics per step come from the truncated model and match the hook's."""
    manifest = run_explanations(parse_request({**job, "debug_output_uri": None, "output_uri": str(tmp_path)}))
    _assert_artifacts(manifest, _read_local)
    assert set(manifest["summary"]["curve_sources"].values()) == {"model"}
    import pandas as pd

    recomputed = pd.read_csv(tmp_path / "metrics.csv").set_index("step")
    recorded = pd.read_csv(Path(job["output_uri"]) / "metrics.csv").set_index("step")  # from the trial
    common = recorded.index.intersection(recomputed.index)
    assert len(common) >= 4
    np.testing.assert_allclose(recomputed.loc[common, recorded.columns], recorded.loc[common], rtol=1e-4, atol=1e-6)
    importance = pd.read_csv(tmp_path / "importance_gain.csv").set_index("step")
    np.testing.assert_allclose(importance.sum(axis=1), 1.0, rtol=1e-6)


def test_model_curves_match_the_hooks_tensors(job: dict[str, str], tmp_path: Path) -> None:
    """Truncated-model average SHAP and feature importance equal what the Debugger hook saved per step."""
    import pandas as pd

    from sm_explain.debugger_trial import DebuggerTrial

    request = {**job, "debug_output_uri": None, "explain_rows": "train", "step_sample_size": 10_000,
               "output_uri": str(tmp_path)}
    run_explanations(parse_request(request))
    trial = DebuggerTrial.open(job["debug_output_uri"], 30)
    for stem, recorded in (("average_shap", trial.average_shap()), ("importance_total_gain",
                                                                     trial.feature_importance("total_gain"))):
        recorded = recorded.reindex(columns=range(len(FEATURES)), fill_value=0.0)
        recorded.columns = FEATURES
        ours = pd.read_csv(tmp_path / f"{stem}.csv").set_index("step")
        common = recorded.index.intersection(ours.index)
        assert len(common) >= 4, stem
        np.testing.assert_allclose(ours.loc[common, FEATURES], recorded.loc[common], rtol=1e-4, atol=1e-6,
                                   err_msg=stem)


def _run_cli(module: str, request: dict, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    request_file, result_file = tmp_path / "request.json", tmp_path / "result.json"
    request_file.write_text(json.dumps(request))
    completed = subprocess.run(
        [sys.executable, "-m", module, "--request", str(request_file), "--result", str(result_file)],
        env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=300,
    )
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return completed.returncode, result, completed.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model_artifact_uri": None}, "model_artifact_uri"),
        ({"output_uri": "http://example.com/x"}, "output_uri"),
        ({"model_artifact_uri": "/nonexistent/model.tar.gz"}, "model_artifact_uri"),
        ({"source": "magic"}, "source"),
        ({"source": "debugger", "debug_output_uri": None}, "debug_output_uri"),
    ],
)
def test_bad_request_exits_2_naming_the_problem(job: dict[str, str], tmp_path: Path, change: dict, named: str) -> None:
    request = {**job, **change}
    request = {k: v for k, v in request.items() if not (k == "model_artifact_uri" and v is None)}
    code, result, _ = _run_cli("sm_explain", request, tmp_path)
    assert code == 2
    assert result["error"]["type"] == "BadRequest" and named in result["error"]["message"]
    assert not Path(job["output_uri"], "ignored").exists()


def _minimal_request(tmp_path: Path, **changes: object) -> dict[str, object]:
    uris = {key: str(tmp_path / name) for key, name in (
        ("features_uri", "features.json"), ("train_uri", "train.csv"), ("validation_uri", "validation.csv"),
        ("model_artifact_uri", "model.tar.gz"), ("output_uri", "explanations"))}
    return {"job_name": "job-1", "dataset_version": "v1", "debug_output_uri": None, **uris, **changes}


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("outlier_top_n", 51, "outlier_top_n must be an integer from 1 to 50, got 51"),
        ("outlier_top_n", 10**9, "outlier_top_n must be an integer from 1 to 50"),
        ("stacked_sample_size", 1_001, "stacked_sample_size must be an integer from 2 to 1,000"),
        ("beeswarm_sample_size", 10**7, "beeswarm_sample_size must be an integer from 1 to 20,000"),
        ("step_sample_size", 100_001, "step_sample_size must be an integer from 1 to 100,000"),
        ("seed", 2**64, "seed must be an integer from 0 to 4,294,967,295"),
        ("trial_timeout_seconds", float("inf"), "trial_timeout_seconds must be a number of seconds above 0"),
        ("trial_timeout_seconds", float("nan"), "at most 3600"),
    ],
)
def test_unbounded_sample_sizes_and_timeouts_are_refused_by_name(
    tmp_path: Path, key: str, value: object, accepted: str, reliability
) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_request(_minimal_request(tmp_path, **{key: value}), check_inputs_exist=False)
    assert accepted in str(raised.value)
    reliability.refused("explanations", f"request {key}={value!r}", "refused naming the key and its range",
                        str(raised.value))


def test_sample_sizes_at_their_maximum_are_accepted(tmp_path: Path) -> None:
    request = parse_request(_minimal_request(tmp_path, outlier_top_n=50, stacked_sample_size=1_000,
                                             beeswarm_sample_size=20_000, step_sample_size=100_000,
                                             trial_timeout_seconds=3600), check_inputs_exist=False)
    assert (request.outlier_top_n, request.stacked_sample_size, request.step_sample_size) == (50, 1_000, 100_000)


def test_bad_validation_rows_fail_before_anything_is_written(job: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "validation.csv"
    bad.write_text("1,0.5,0.25\n0,0.1,0.2\n")  # two feature columns where features.json names four
    features = json.loads(Path(job["features_uri"]).read_text())
    features["files"]["validation.csv"]["sha256"] = _sha256(bad)  # as if staging had written these rows
    (tmp_path / "features.json").write_text(json.dumps(features))
    out = tmp_path / "out"
    code, result, _ = _run_cli("sm_explain", {**job, "validation_uri": str(bad), "features_uri": str(tmp_path / "features.json"),
                                              "output_uri": str(out)}, tmp_path)
    assert code == 2, result
    assert result["error"]["type"] == "BadRequest"
    assert "validation_uri" in result["error"]["message"] and "4 feature columns" in result["error"]["message"]
    assert not out.exists()


@pytest.mark.reliability
@pytest.mark.parametrize("channel", ["train", "validation"])
def test_staged_rows_that_changed_after_staging_are_refused_before_any_analysis(
    job: dict[str, str], tmp_path: Path, channel: str, reliability
) -> None:
    """Another staging run (or an edit) replaced the rows the model was trained on: the explanation must not
    silently explain other data than staging recorded in features.json."""
    replaced = tmp_path / f"{channel}.csv"
    lines = Path(job[f"{channel}_uri"]).read_text().splitlines(keepends=True)
    replaced.write_text("".join(lines[1:] + lines[:1]))  # same rows, same size, another order
    out = tmp_path / "out"
    request = {**job, f"{channel}_uri": str(replaced), "output_uri": str(out), "explain_rows": channel,
               "source": "model"}
    code, result, _ = _run_cli("sm_explain", request, tmp_path)
    assert code == 2, result
    message = result["error"]["message"]
    assert result["error"]["type"] == "BadRequest"
    assert f"{channel}_uri {str(replaced)!r} has sha256 {_sha256(replaced)}, but staging recorded" in message
    assert not out.exists()
    reliability.refused("explanations", f"{channel}.csv replaced after staging (rows reordered, same size)",
                        "BadRequest naming the file and both checksums, before any analysis; nothing written",
                        message)


def test_features_json_without_a_record_of_a_read_file_is_refused(job: dict[str, str], tmp_path: Path) -> None:
    features = json.loads(Path(job["features_uri"]).read_text())
    del features["files"]["validation.csv"]
    (tmp_path / "features.json").write_text(json.dumps(features))
    with pytest.raises(BadRequest, match="records no sha256 for validation.csv .* so validation_uri cannot be checked"):
        run_explanations(parse_request({**job, "features_uri": str(tmp_path / "features.json"),
                                        "output_uri": str(tmp_path / "out"), "source": "model"}))
    assert not (tmp_path / "out").exists()


def test_empty_debugger_location_fails_fast_with_a_clear_error(job: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty-trial"
    empty.mkdir()
    code, result, _ = _run_cli("sm_explain", {**job, "source": "debugger", "debug_output_uri": str(empty),
                                              "output_uri": str(tmp_path / "out")}, tmp_path)
    assert code == 2, result
    assert result["error"]["type"] == "NoDebuggerData"
    assert "holds no Debugger trial" in result["error"]["message"]  # not a wait until the trial timeout
    assert not (tmp_path / "out").exists()


def test_report_embeds_figures_and_verdicts_escaped(job: dict[str, str], tmp_path: Path) -> None:
    run_explanations(parse_request(job))
    verdict = {"training_status": "Completed", "final_metrics": [{"MetricName": "validation:error", "Value": 0.11}],
               "rules": [{"name": "LossNotDecreasing", "status": "IssuesFound", "details": f"at step 4 {SCRIPT_NAME}"}]}
    request = {"manifest_uri": str(Path(job["output_uri"]) / "manifest.json"), "verdict": verdict,
               "job_name": "job-1", "dataset_version": "v1", "output_uri": job["output_uri"]}
    code, result, stderr = _run_cli("sm_explain.report", request, tmp_path)
    assert code == 0, stderr
    text = Path(result["report_uri"]).read_text(encoding="utf-8")
    tags = _parse_html(text)
    assert SCRIPT_NAME not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not any(tag == "script" for tag, _ in tags)  # interactive plots live in sandboxed srcdoc iframes
    images = [attrs["src"] for tag, attrs in tags if tag == "img"]
    assert len(images) == 10 + 2 * OUTLIER_N  # 10 analysis figures + one force plot per outlier
    for src in images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert sum(tag == "iframe" for tag, _ in tags) == 2
    for expected in ("LossNotDecreasing", "IssuesFound", "validation:error", "job-1", "v1", "Private"):
        assert expected in text
    assert not any(tag in ("link", "script") or (attrs.get("src") or "data:").split(":")[0] != "data"
                   for tag, attrs in tags)  # nothing is fetched over the network

    code, result, _ = _run_cli("sm_explain.report", {**request, "manifest_uri": "/nope/manifest.json"}, tmp_path)
    assert code == 2 and "manifest_uri" in result["error"]["message"]


@pytest.mark.reliability
@pytest.mark.parametrize("planted", ["/proc/self/environ", "outside-symlink", "sibling-prefix"])
def test_report_refuses_an_artifact_outside_the_runs_output(
    job: dict[str, str], tmp_path: Path, planted: str, reliability
) -> None:
    """An edited manifest (it travels through XCom) names a file of the worker: the report must not embed it."""
    manifest = run_explanations(parse_request({**job, "output_uri": str(tmp_path / "explanations")}))
    output = Path(manifest["artifacts"]["manifest.json"]).parent
    case = {"outside-symlink": "a symlink inside the output to a file outside it",
            "sibling-prefix": "a sibling directory whose name starts with the output's"}.get(planted, planted)
    if planted == "outside-symlink":
        secret = tmp_path / "secret.txt"
        secret.write_text("AWS_SECRET_ACCESS_KEY=do-not-embed\n")
        link = output / "innocent.png"
        link.symlink_to(secret)
        planted = str(link)
    elif planted == "sibling-prefix":  # shares the output path as a string prefix, not as a directory
        sibling = Path(str(output) + "-other")
        sibling.mkdir()
        (sibling / "shap_bar.png").write_bytes(Path(manifest["artifacts"]["shap_bar.png"]).read_bytes())
        planted = str(sibling / "shap_bar.png")
    edited = {**manifest, "artifacts": {**manifest["artifacts"], "shap_bar.png": planted}}
    request = {"manifest": edited, "verdict": {"rules": []}, "job_name": "job-1", "dataset_version": "v1",
               "output_uri": str(output)}
    code, result, _ = _run_cli("sm_explain.report", request, tmp_path)
    assert code == 2, result
    message = result["error"]["message"]
    assert f"manifest artifact 'shap_bar.png' {planted!r} is not under the run's output location" in message
    assert not (output / "report.html").exists()
    reliability.refused("report", f"manifest artifact naming {case}",
                        "refused naming the artifact; no report written, nothing embedded", message)


# --- S3 (moto server) ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    port = free_port()
    server = subprocess.Popen([str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # AWS_ENDPOINT_URL_S3 too: it wins over AWS_ENDPOINT_URL, and the session's local_stack may have set it.
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
           "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto server did not start")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_s3_job_end_to_end_through_the_cli(job: dict[str, str], s3_env: dict[str, str], tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="bucket")
    base = "prefix/v1"
    uploads = {"features_uri": f"{base}/data/features.json", "train_uri": f"{base}/data/train.csv",
               "validation_uri": f"{base}/data/validation.csv",
               "model_artifact_uri": f"{base}/training/job-1/output/model.tar.gz"}
    request = dict(job)
    for key, s3_key in uploads.items():
        s3.upload_file(job[key], "bucket", s3_key)
        request[key] = f"s3://bucket/{s3_key}"
    trial_root = Path(job["debug_output_uri"])
    for path in trial_root.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "bucket", f"{base}/training/job-1/debug-output/{path.relative_to(trial_root)}")
    s3.put_object(Bucket="bucket", Key=f"{base}/job-1/explanations/unrelated.txt", Body=b"keep me")
    request.update(debug_output_uri=f"s3://bucket/{base}/training/job-1/debug-output",
                   output_uri=f"s3://bucket/{base}/job-1/explanations/", source="auto")

    code, manifest, stderr = _run_cli("sm_explain", request, tmp_path, s3_env)
    assert code == 0, stderr
    assert manifest["summary"]["source"] == "debugger"
    assert all(uri.startswith(f"s3://bucket/{base}/job-1/explanations/") for uri in manifest["artifacts"].values())

    def read(uri: str) -> bytes:
        bucket, key = uri[len("s3://"):].split("/", 1)
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    _assert_artifacts(manifest, read)
    report_request = {"manifest_uri": manifest["artifacts"]["manifest.json"], "verdict": {"rules": []},
                      "job_name": "job-1", "dataset_version": "v1", "output_uri": request["output_uri"]}
    code, result, stderr = _run_cli("sm_explain.report", report_request, tmp_path, s3_env)
    assert code == 0, stderr
    assert result["report_uri"] == f"s3://bucket/{base}/job-1/explanations/report.html"
    _parse_html(read(result["report_uri"]).decode("utf-8"))
    assert read(f"s3://bucket/{base}/job-1/explanations/unrelated.txt") == b"keep me"

