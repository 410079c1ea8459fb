"""The request rules both sides share (sm_explain_contracts.staging_request, explain_request, request_fields): what
the staging, explanation and report tasks check before the runtime starts is what the runtime parses with.

Standard library, pytest and sm_explain_contracts only: it runs under both environments' interpreters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sm_explain_contracts.explain_request import (
    MAX_LINK_CHARACTERS,
    ExplainRequest,
    parse_explain_request,
    parse_map_request,
    parse_reduce_request,
    parse_report_request,
)
from sm_explain_contracts.local_paths import ALLOW_LOCAL_SOURCES_ENV
from sm_explain_contracts.request_fields import RequestError, location
from sm_explain_contracts.staging_request import (
    ADULT_CATEGORICAL_COLUMNS,
    ADULT_COLUMNS,
    StagingRequest,
    parse_staging_request,
)
from sm_explain_contracts.train_parts import (
    PartEntry,
    PartsManifestError,
    manifest_document,
    parse_manifest,
    part_index,
    part_path,
)
from sm_explain_contracts.versions import dataset_version_problem

BUCKET = "s3://sm-explain-contracts"
STAGING = {"source": f"{BUCKET}/adult/raw/v1/adult.data", "destination": f"{BUCKET}/adult/v1/data/",
           "dataset_version": "v1"}
OUT = f"{BUCKET}/adult/v1/job-1/explanations/"
EXPLAIN = {
    "job_name": "job-1", "dataset_version": "v1", "features_uri": f"{BUCKET}/adult/v1/data/features.json",
    "train_uri": f"{BUCKET}/adult/v1/data/train.csv", "validation_uri": f"{BUCKET}/adult/v1/data/validation.csv",
    "model_artifact_uri": f"{BUCKET}/adult/v1/training/job-1/output/model.tar.gz", "debug_output_uri": None,
    "output_uri": OUT,
}
REPORT = {"manifest": {"artifacts": {"metrics.png": f"{OUT}metrics.png"}}, "verdict": {"rules": []},
          "job_name": "job-1", "dataset_version": "v1", "output_uri": OUT}
CUSTOM = {"columns": ["label", "colour", "size"], "label_column": "label", "positive_label": "yes"}


@pytest.fixture
def no_local_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment default: no local paths."""
    monkeypatch.delenv(ALLOW_LOCAL_SOURCES_ENV, raising=False)


def _refused(parse, request: Any) -> str:  # noqa: ANN001 - one of the parse functions
    with pytest.raises(RequestError) as raised:
        parse(request)
    assert isinstance(raised.value, ValueError)
    return str(raised.value)


# --- staging -----------------------------------------------------------------------------------------------------


def test_a_minimal_staging_request_gets_the_adult_schema_and_is_frozen() -> None:
    request = parse_staging_request(STAGING)
    assert request.columns == ADULT_COLUMNS and request.label_column == "Target"
    assert request.categorical_columns == ADULT_CATEGORICAL_COLUMNS and "Relationship" in request.category_orders
    assert (request.objective, request.validation_fraction, request.seed) == ("binary:logistic", 0.2, 7)
    assert request.feature_columns[:3] == ("Age", "Workclass", "Education-Num") and len(request.feature_columns) == 12
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.seed = 8  # type: ignore[misc]


def test_train_parts_default_to_one_file_and_reach_1024() -> None:
    assert parse_staging_request(STAGING).train_parts == 1
    assert parse_staging_request({**STAGING, "train_parts": 1024}).train_parts == 1024


def test_a_custom_schema_drops_the_adult_defaults_and_an_uppercase_checksum_is_lowered() -> None:
    request = parse_staging_request({**STAGING, **CUSTOM, "categorical_columns": ["colour"],
                                     "category_orders": {"colour": ["red", "blue"]}, "source_sha256": "AB" * 32,
                                     "objective": "reg:squarederror", "seed": 2**32 - 1, "validation_fraction": 0.5})
    assert isinstance(request, StagingRequest)
    assert (request.drop_columns, request.feature_columns, request.numeric_columns) == ((), ("colour", "size"),
                                                                                        ("size",))
    assert request.source_sha256 == "ab" * 32 and request.category_orders == {"colour": ("red", "blue")}
    assert not request.is_binary and request.seed == 2**32 - 1


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": None}, "the request has no 'source', which is required"),
        ({"destination": 7}, "destination must be a non-empty string, got 7"),
        ({"dataset_version": "raw", "destination": f"{BUCKET}/adult/raw/data/"}, dataset_version_problem("raw")),
        ({"dataset_version": "v1\n"}, dataset_version_problem("v1\n")),
        ({"label": "Target"}, "unknown request keys ['label']; known keys: ['cache_dir', 'categorical_columns', "),
        ({"source_sha256": "abc"}, "source_sha256 'abc' is not 64 hexadecimal digits"),
        ({"source": "http://example.org/adult.data"}, "uses plain http://, which is refused"),
        ({"source": "https://example.org/adult.data"}, "source_sha256 is required to verify what is downloaded"),
        ({"source": "s3://Adult_Bucket/raw/v1/adult.data"}, "has an invalid bucket name 'Adult_Bucket'"),
        ({"destination": "gs://bucket/v1/data/"},
         "destination 'gs://bucket/v1/data/' must be an s3:// URI or a local directory"),
        ({"destination": f"{BUCKET}/adult/data/"}, "does not contain the dataset version 'v1' as a path segment"),
        ({"columns": ["a", "b"]}, "the request has no 'label_column', which is required when 'columns' is given"),
        ({"columns": []}, "columns is empty"),
        ({"columns": ["a", "a"], "label_column": "a"}, "columns names a column more than once: ['a']"),
        ({"drop_columns": "fnlwgt"}, "drop_columns must be a list of column names, got 'fnlwgt'"),
        ({"categorical_columns": ["Sex", "Colour"]}, "categorical_columns names unknown columns ['Colour']"),
        ({**CUSTOM, "label_column": "income"}, "label column 'income' is not one of the columns"),
        ({**CUSTOM, "categorical_columns": ["label"]}, "label column 'label' cannot also be dropped or a categorical"),
        ({**CUSTOM, "category_orders": {"colour": ["red"]}},
         "category_orders names columns that are not categorical: ['colour']"),
        ({"category_orders": {"Sex": ["Male", "Male"]}}, "category_orders must map a column to a list of distinct"),
        ({**CUSTOM, "drop_columns": ["colour", "size"]}, "no feature columns are left"),
        ({"objective": "multi:softmax"}, "objective must be one of binary:logistic, binary:logitraw, binary:hinge, "),
        ({"positive_label": " "}, "objective 'binary:logistic' needs a 'positive_label'"),
        ({"validation_fraction": 1.5}, "validation_fraction must be a number between 0 and 1 (exclusive), got 1.5"),
        ({"validation_fraction": 0}, "validation_fraction must be a number between 0 and 1 (exclusive), got 0"),
        ({"validation_fraction": float("nan")}, "validation_fraction must be a number between 0 and 1"),
        ({"validation_fraction": "0.2"}, "validation_fraction must be a number between 0 and 1 (exclusive), got '0.2'"),
        ({"seed": 2**32}, "seed must be an integer from 0 to 4,294,967,295, got 4294967296"),
        ({"seed": True}, "seed must be an integer from 0 to 4,294,967,295, got True"),
        ({"train_parts": 0}, "train_parts must be an integer from 1 to 1,024, got 0"),
        ({"train_parts": 1025}, "train_parts must be an integer from 1 to 1,024, got 1025"),
        ({"train_parts": 2.0}, "train_parts must be an integer from 1 to 1,024, got 2.0"),
    ],
)
def test_a_bad_staging_field_is_refused_naming_it(change: dict[str, Any], message: str, reliability) -> None:
    refused = _refused(parse_staging_request, {**STAGING, **change})
    assert message in refused
    reliability.refused("request contract", f"staging request {change}", "RequestError naming the field", refused)


def test_a_staging_request_that_is_no_object_is_refused() -> None:
    assert "the request must be a JSON object with the keys ['cache_dir'," in _refused(parse_staging_request, [])


@pytest.mark.reliability
def test_a_local_source_needs_the_deployments_opt_in(no_local_paths, monkeypatch: pytest.MonkeyPatch,
                                                     reliability) -> None:
    request = {**STAGING, "source": "/proc/self/environ", "destination": "/tmp/adult/v1/data"}
    refused = _refused(parse_staging_request, request)
    assert "source '/proc/self/environ' is a local path, and local sources are off in this deployment" in refused
    monkeypatch.setenv(ALLOW_LOCAL_SOURCES_ENV, "1")
    assert parse_staging_request(request).source == "/proc/self/environ"
    reliability.refused("request contract", "staging source /proc/self/environ without the opt-in",
                        "RequestError naming the source and the opt-in", refused)


# --- explanations --------------------------------------------------------------------------------------------------


def test_a_minimal_explanation_request_gets_the_defaults_and_an_empty_objective_is_none() -> None:
    request = parse_explain_request({**EXPLAIN, "objective": ""})
    assert request == ExplainRequest(**EXPLAIN)
    assert (request.source, request.explain_rows, request.outlier_top_n, request.objective) == (
        "model", "validation", 5, None)


def test_every_bound_is_accepted_at_its_maximum() -> None:
    request = parse_explain_request({**EXPLAIN, "outlier_top_n": 50, "stacked_sample_size": 1_000,
                                     "beeswarm_sample_size": 20_000, "step_sample_size": 100_000, "seed": 2**32 - 1,
                                     "trial_timeout_seconds": 3600, "force_plot_row": 10**9, "source": "debugger",
                                     "debug_output_uri": f"{BUCKET}/adult/v1/training/job-1/debug-output"})
    assert (request.outlier_top_n, request.step_sample_size, request.trial_timeout_seconds) == (50, 100_000, 3600.0)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"job_name": ""}, "job_name must be a non-empty string, got ''"),
        ({"features_uri": None}, "the request has no 'features_uri', which is required"),
        ({"train_uri": "s3://Bad_Bucket/x"}, "train_uri 's3://Bad_Bucket/x' has an invalid bucket name 'Bad_Bucket'"),
        ({"output_uri": "ftp://host/x"}, "output_uri 'ftp://host/x' is not an s3:// URI"),
        ({"output_uri": "explanations"}, "output_uri 'explanations' is not an s3:// URI"),
        ({"model_artifact_uri": ""}, "model_artifact_uri must be an s3:// URI, got ''"),
        ({"debug_output_uri": f"{BUCKET} /x"}, "debug_output_uri 's3://sm-explain-contracts /x' "),
        ({"source": "shap"}, "source must be one of auto, model, debugger, got 'shap'"),
        ({"source": "debugger"}, "source 'debugger' needs debug_output_uri (the job's Debugger output location)"),
        ({"explain_rows": "test"}, "explain_rows must be one of train, validation, got 'test'"),
        ({"outlier_top_n": 51}, "outlier_top_n must be an integer from 1 to 50, got 51"),
        ({"outlier_top_n": 0}, "outlier_top_n must be an integer from 1 to 50, got 0"),
        ({"stacked_sample_size": 1}, "stacked_sample_size must be an integer from 2 to 1,000, got 1"),
        ({"beeswarm_sample_size": 10**7}, "beeswarm_sample_size must be an integer from 1 to 20,000"),
        ({"step_sample_size": 100_001}, "step_sample_size must be an integer from 1 to 100,000"),
        ({"step_sample_size": 5.0}, "step_sample_size must be an integer from 1 to 100,000, got 5.0"),
        ({"force_plot_row": -1}, "force_plot_row must be an integer >= 0, got -1"),
        ({"seed": True}, "seed must be an integer from 0 to 4,294,967,295, got True"),
        ({"trial_timeout_seconds": 0}, "trial_timeout_seconds must be a number of seconds above 0 and at most 3600"),
        ({"trial_timeout_seconds": float("inf")}, "trial_timeout_seconds must be a number of seconds above 0"),
        ({"trial_timeout_seconds": 3600.5}, "at most 3600, got 3600.5"),
        ({"objective": "multi:softprob"},
         "objective must be one of binary:logistic, reg:squarederror, reg:linear, reg:logistic, got 'multi:softprob'"),
        ({"outlier_topn": 3}, "unknown request keys ['outlier_topn']; known keys: ['beeswarm_sample_size', "),
        ({"dataset_version": "comparisons"}, "dataset_version 'comparisons' is reserved"),
        ({"dataset_version": "../v1"}, "dataset_version '../v1' is invalid"),
    ],
)
def test_a_bad_explanation_field_is_refused_naming_it(change: dict[str, Any], message: str, reliability) -> None:
    refused = _refused(parse_explain_request, {**EXPLAIN, **change})
    assert message in refused
    reliability.refused("request contract", f"explanation request {change}", "RequestError naming the field",
                        refused)


@pytest.mark.reliability
def test_a_huge_value_is_quoted_shortened(reliability) -> None:
    refused = _refused(parse_explain_request, {**EXPLAIN, "seed": "7" * 1_000_000})
    assert refused.startswith("seed must be an integer from 0 to 4,294,967,295, got '777")
    assert refused.endswith("...(shortened)") and len(refused) < 300
    reliability.refused("request contract", "a 1 MB string as seed", "refused, quoting at most 200 characters",
                        refused)


@pytest.mark.reliability
def test_local_locations_need_the_deployments_opt_in(no_local_paths, monkeypatch: pytest.MonkeyPatch,
                                                     reliability) -> None:
    refused = _refused(parse_explain_request, {**EXPLAIN, "model_artifact_uri": "/proc/self/environ"})
    assert refused == ("model_artifact_uri '/proc/self/environ' is a local path, and local paths are off in this "
                       "deployment: use an s3:// URI (local runs and tests opt in with "
                       f"{ALLOW_LOCAL_SOURCES_ENV}=1)")
    monkeypatch.setenv(ALLOW_LOCAL_SOURCES_ENV, "1")
    assert parse_explain_request({**EXPLAIN, "model_artifact_uri": "/tmp/model.tar.gz"}).model_artifact_uri == (
        "/tmp/model.tar.gz")
    with pytest.raises(RequestError, match="is a local path, and local paths are off"):
        location("/tmp/comparison", "output_uri", allow_local=False)  # a caller that never takes local paths
    reliability.refused("request contract", "local model_artifact_uri without the opt-in",
                        "RequestError naming the field and the opt-in", refused)


# --- report ------------------------------------------------------------------------------------------------------


def test_a_report_request_with_the_runs_artifacts_or_a_manifest_uri_is_accepted() -> None:
    inline = parse_report_request(REPORT)
    assert inline.manifest == REPORT["manifest"] and inline.manifest_uri is None
    by_uri = parse_report_request({**REPORT, "manifest": None, "manifest_uri": f"{OUT}manifest.json"})
    assert by_uri.manifest is None and by_uri.manifest_uri == f"{OUT}manifest.json"
    no_verdict = {key: value for key, value in REPORT.items() if key != "verdict"}
    assert parse_report_request(no_verdict).verdict == {}


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"manifest": None}, "manifest must be a mapping (the result of the explanation step, python -m sm_explain), "
                             "got None"),
        ({"manifest": {"artifacts": ["metrics.png"]}}, "manifest must hold an 'artifacts' mapping (name -> URI)"),
        ({"manifest": {"artifacts": {"shap_bar.png": "/proc/self/environ"}}},
         f"manifest artifact 'shap_bar.png' '/proc/self/environ' is not under the run's output location {OUT!r}: "
         "the report reads only the run's own artifacts"),
        ({"manifest": {"artifacts": {"x.png": f"{OUT}../../data/train.csv"}}}, "is not under the run's output"),
        ({"manifest": None, "manifest_uri": f"{BUCKET}/adult/v2/manifest.json"},
         "manifest_uri 's3://sm-explain-contracts/adult/v2/manifest.json' is not under the run's output location"),
        ({"verdict": None}, "verdict must be a mapping (training status, final metrics, rules), got None"),
        ({"verdict": {"rules": "none"}}, "verdict.rules must be a list of {name, status, details}, got 'none'"),
        ({"verdict": {"final_metrics": 0.1}}, "verdict.final_metrics must be an object or a list of {MetricName, "),
        ({"output_uri": "s3://a/x/"}, "output_uri 's3://a/x/' has an invalid bucket name 'a'"),
        ({"dataset_version": None}, "the request has no 'dataset_version', which is required"),
        ({"report_uri": OUT}, "unknown request keys ['report_uri']"),
    ],
)
def test_a_bad_report_field_is_refused_naming_it(change: dict[str, Any], message: str, reliability) -> None:
    refused = _refused(parse_report_request, {**REPORT, **change})
    assert message in refused
    reliability.refused("request contract", f"report request {change}", "RequestError naming the field", refused)


LINKS = {
    "training_job": "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/job-1",
    "staged_data": f"{BUCKET}/adult/v1/data/{'a' * 64}/",
    "staged_data_console": "https://s3.console.aws.amazon.com/s3/buckets/sm-explain-contracts?prefix=adult/v1/data/",
    "previous_report": f"{BUCKET}/adult/v0/job-0/explanations/report.html",
    "previous_report_console": "https://s3.console.aws.amazon.com/s3/object/sm-explain-contracts?prefix=adult/v0/",
}


def test_a_report_request_takes_links_and_the_previous_version() -> None:
    request = parse_report_request({**REPORT, "links": LINKS, "previous_dataset_version": "v0"})
    assert request.links == LINKS and request.previous_dataset_version == "v0"
    local = parse_report_request({**REPORT, "links": {"training_job": "http://127.0.0.1:8123/jobs/job-1/log",
                                                      "staged_data": None}})
    assert local.links == {"training_job": "http://127.0.0.1:8123/jobs/job-1/log"}  # a null link is no link
    assert parse_report_request(REPORT).links == {} and parse_report_request(REPORT).previous_dataset_version is None
    assert parse_report_request({**REPORT, "links": None}).links == {}
    longest = "https://example.org/" + "a" * (MAX_LINK_CHARACTERS - len("https://example.org/"))
    assert parse_report_request({**REPORT, "links": {"training_job": longest}}).links["training_job"] == longest


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"links": {"training_job": "javascript:alert(1)"}},
         "links.training_job must be a URL (https:// or http://) of at most 2,048 characters, got "
         "'javascript:alert(1)', which has the scheme 'javascript'"),
        ({"links": {"training_job": "data:text/html,<script>alert(1)</script>"}}, "which has the scheme 'data'"),
        ({"links": {"training_job": "//evil.example/x"}}, "which has no scheme"),
        ({"links": {"training_job": "https:///jobs/x"}}, "which names no host"),
        ({"links": {"training_job": "https://example.org/" + "a" * MAX_LINK_CHARACTERS}},
         f"which is {len('https://example.org/') + MAX_LINK_CHARACTERS:,} characters long"),
        ({"links": {"training_job": "https://example.org/a b"}}, "which contains whitespace or a control character"),
        ({"links": {"training_job": "https://example.org/\nSet-Cookie"}}, "contains whitespace or a control"),
        ({"links": {"staged_data": "https://example.org/data/"}},
         "links.staged_data must be a URL (s3://) of at most 2,048 characters, got 'https://example.org/data/', "
         "which has the scheme 'https'"),
        ({"links": {"staged_data": "s3://Bad_Bucket/data/"}}, "which has an invalid bucket name 'Bad_Bucket'"),
        ({"links": {"previous_report": "/etc/passwd"}}, "links.previous_report must be a URL (s3://)"),
        ({"links": {"staged_data_console": "http://s3.console.aws.amazon.com/"}},
         "links.staged_data_console must be a URL (https://) of at most 2,048 characters"),
        ({"links": {"training_job": 42}}, "which is not a non-empty string"),
        ({"links": {"job": "https://example.org/"}},
         "links has unknown names ['job']; known names: ['previous_report', 'previous_report_console', "
         "'staged_data', 'staged_data_console', 'training_job']"),
        ({"links": ["https://example.org/"]}, "links must be a mapping of link name to URL, got ['https://"),
        ({"previous_dataset_version": "v0"},
         "previous_dataset_version 'v0' is given without links.previous_report (its report)"),
        ({"links": LINKS, "previous_dataset_version": "v1"}, "previous_dataset_version 'v1' is this run's own version"),
        ({"links": LINKS, "previous_dataset_version": "<b>v0</b>"},
         "previous_dataset_version: dataset_version '<b>v0</b>' is invalid"),
    ],
)
def test_a_bad_report_link_is_refused_naming_it(change: dict[str, Any], message: str, reliability) -> None:
    refused = _refused(parse_report_request, {**REPORT, **change})
    assert message in refused
    reliability.refused("request contract", f"report request {change}"[:200],
                        "RequestError naming the link, what was given and what is accepted", refused)


# --- map, reduce and the parts manifest --------------------------------------------------------------------------

MAP = {**EXPLAIN, "channel": "train", "partial_uri": f"{BUCKET}/adult/v1/job-1/partials/0.npz"}


def test_a_map_request_takes_the_explanation_fields_and_its_own() -> None:
    request = parse_map_request({**MAP, "parts": ["train/part-00001.csv"], "local_root": "/opt/ml/processing/input"})
    assert request.explain == parse_explain_request(EXPLAIN)
    assert (request.channel, request.parts, request.local_root) == ("train", ("train/part-00001.csv",),
                                                                    "/opt/ml/processing/input")
    reduce = parse_reduce_request({**EXPLAIN, "partial_uris": [MAP["partial_uri"]]})
    assert reduce.partial_uris == (MAP["partial_uri"],) and reduce.explain == request.explain


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("parse", "change", "message"),
    [
        (parse_map_request, {"channel": "test"}, "channel must be one of train, validation, got 'test'"),
        (parse_map_request, {"parts": ["train/part-00000.csv"] * 2},
         "parts names a part more than once: ['train/part-00000.csv']"),
        (parse_map_request, {"parts": [f"train/part-{i:05d}.csv" for i in range(1025)]},
         "parts must be a list of 1 to 1024 part paths"),
        (parse_map_request, {"parts": []}, "parts must be a list of 1 to 1024 part paths"),
        (parse_map_request, {"local_root": "s3://sm-explain-contracts/x"}, "local_root 's3://sm-explain-contracts/x' "
                                                                           "must be a local directory"),
        (parse_map_request, {"partial_uri": None}, "the request has no 'partial_uri', which is required"),
        (parse_map_request, {"partial_uris": []}, "unknown request keys ['partial_uris']"),
        (parse_reduce_request, {"partial_uris": [f"{BUCKET}/p{i}.npz" for i in range(1026)]},
         "partial_uris must be a list of 1 to 1025 locations"),
        (parse_reduce_request, {"partial_uris": [f"{BUCKET}/p.npz", f"{BUCKET}/p.npz"]},
         "partial_uris names a partial more than once"),
        (parse_reduce_request, {"partial_uris": ["ftp://x/p.npz"]}, "partial_uris[0] 'ftp://x/p.npz' is not an s3://"),
    ],
)
def test_a_bad_map_or_reduce_field_is_refused_naming_it(parse, change: dict[str, Any], message: str,  # noqa: ANN001
                                                        reliability) -> None:
    base = MAP if parse is parse_map_request else {**EXPLAIN, "partial_uris": [MAP["partial_uri"]]}
    refused = _refused(parse, {**base, **change})
    assert message in refused
    reliability.refused("request contract", f"{parse.__name__} {str(change)[:80]}", "RequestError naming the field",
                        refused)


def _manifest(rows: list[int]) -> dict[str, Any]:
    entries, first = [], 0
    for i, n in enumerate(rows):
        entries.append(PartEntry(part_path(i), first, n, 10 * n, "a" * 64))
        first += n
    return manifest_document(entries)


def test_a_manifest_as_staging_writes_it_reads_back() -> None:
    entries = parse_manifest(_manifest([3, 3, 2]), "m")
    assert [(e.path, e.first_row, e.rows) for e in entries] == [("train/part-00000.csv", 0, 3),
                                                               ("train/part-00001.csv", 3, 3),
                                                               ("train/part-00002.csv", 6, 2)]
    assert part_index("train/part-00002.csv") == 2 and part_index("train/../part-00002.csv") is None


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["parts"][1].update(path="train/../../etc/passwd"),
         "m: part 1 has path 'train/../../etc/passwd', expected 'train/part-00001.csv'"),
        (lambda m: m["parts"][1].update(first_row=4), "m: part 1 starts at row 4, but the parts before it end at 3"),
        (lambda m: m["parts"][0].update(rows=0), "m: part 0 rows must be an integer from 1"),
        (lambda m: m["parts"][0].update(sha256="A" * 64), "m: part 0 sha256 must be 64 lowercase hexadecimal"),
        (lambda m: m.update(rows=9), "m says 9 rows, but its parts hold 8"),
        (lambda m: m.update(parts=m["parts"][:1]), "m: 'parts' must list from 2 to 1024 parts, got 1"),
        (lambda m: m.update(format="other"), "m is not a parts manifest written by staging"),
    ],
)
def test_a_manifest_that_staging_would_not_write_is_refused(edit, message: str, reliability) -> None:  # noqa: ANN001
    manifest = _manifest([3, 3, 2])
    edit(manifest)
    with pytest.raises(PartsManifestError) as raised:
        parse_manifest(manifest, "m")
    assert str(raised.value).startswith(message)
    reliability.refused("parts manifest", message.split(":")[-1].strip()[:60], "refused naming the part",
                        str(raised.value))
