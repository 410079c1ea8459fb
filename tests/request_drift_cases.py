"""Bad requests that the Airflow tasks' pre-checks (tests/airflow/unit/test_request_drift.py) and the runtime CLIs
(tests/runtime/test_request_drift.py) must refuse alike, with exactly the message given here.

Every location is in S3 (nothing is read: each request fails before the first object is touched), and both sides
run without the local-paths opt-in, as a deployment does by default. Standard library only: both environments'
tests import it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

BUCKET = "sm-explain-drift"
ROOT = f"s3://{BUCKET}/adult/v1"
OUT = f"{ROOT}/job-1/explanations/"
_LOCAL_OFF = "(local runs and tests opt in with SM_EXPLAIN_ALLOW_LOCAL_SOURCES=1)"


class Case(NamedTuple):
    name: str
    change: dict[str, Any]  # over the base request
    message: str  # what both sides answer, word for word


STAGING_BASE: dict[str, Any] = {"source": f"s3://{BUCKET}/adult/raw/v1/adult.data", "destination": f"{ROOT}/data/",
                                "dataset_version": "v1"}
STAGING_CASES = [
    Case("reserved version", {"dataset_version": "raw", "destination": f"s3://{BUCKET}/adult/raw/data/"},
         "dataset_version 'raw' is reserved (one of ['comparisons', 'raw'] under the prefix)"),
    Case("version given as a number", {"dataset_version": 20261122},
         "dataset_version must be a non-empty string, got 20261122"),
    Case("short checksum", {"source_sha256": "abc"}, "source_sha256 'abc' is not 64 hexadecimal digits"),
    Case("plain http source", {"source": "http://example.org/adult.data"},
         "source 'http://example.org/adult.data' uses plain http://, which is refused (anyone on the way can change "
         "what arrives): use https:// with source_sha256, or s3://"),
    Case("local source", {"source": "/proc/self/environ"},
         "source '/proc/self/environ' is a local path, and local sources are off in this deployment: use s3:// or "
         f"https:// with source_sha256 {_LOCAL_OFF}"),
    Case("bad source bucket", {"source": "s3://Adult_Bucket/raw/v1/adult.data"},
         "source 's3://Adult_Bucket/raw/v1/adult.data' has an invalid bucket name 'Adult_Bucket' (3-63 lowercase "
         "letters, digits, dots and hyphens, starting and ending with a letter or digit)"),
    Case("destination of another scheme", {"destination": "gs://bucket/v1/data/"},
         "destination 'gs://bucket/v1/data/' must be an s3:// URI or a local directory"),
    Case("destination outside the version", {"destination": f"s3://{BUCKET}/adult/data/"},
         f"destination 's3://{BUCKET}/adult/data/' does not contain the dataset version 'v1' as a path segment "
         "(expected s3://<bucket>/<prefix>/<dataset_version>/data/), so it could overwrite another version"),
    Case("custom columns without label", {"columns": ["a", "b"]},
         "the request has no 'label_column', which is required when 'columns' is given"),
    Case("unknown categorical column", {"columns": ["label", "colour"], "label_column": "label",
                                        "categorical_columns": ["color"]},
         "categorical_columns names unknown columns ['color']; the columns are ['label', 'colour']"),
    Case("unsupported objective", {"objective": "multi:softmax"},
         "objective must be one of binary:logistic, binary:logitraw, binary:hinge, reg:squarederror, "
         "reg:squaredlogerror, reg:absoluteerror, reg:pseudohubererror, got 'multi:softmax'"),
    Case("validation fraction of 1.5", {"validation_fraction": 1.5},
         "validation_fraction must be a number between 0 and 1 (exclusive), got 1.5"),
    Case("negative seed", {"seed": -1}, "seed must be an integer from 0 to 4,294,967,295, got -1"),
]

EXPLAIN_BASE: dict[str, Any] = {
    "job_name": "job-1", "dataset_version": "v1", "features_uri": f"{ROOT}/data/features.json",
    "train_uri": f"{ROOT}/data/train/train.csv", "validation_uri": f"{ROOT}/data/validation/validation.csv",
    "model_artifact_uri": f"{ROOT}/training/job-1/output/model.tar.gz", "debug_output_uri": None, "output_uri": OUT,
    "source": "model",
}
EXPLAIN_CASES = [
    Case("unknown source", {"source": "shap"}, "source must be one of auto, model, debugger, got 'shap'"),
    Case("debugger source without its output", {"source": "debugger"},
         "source 'debugger' needs debug_output_uri (the job's Debugger output location), got None"),
    Case("bad train bucket", {"train_uri": "s3://Bad_Bucket/x"},
         "train_uri 's3://Bad_Bucket/x' has an invalid bucket name 'Bad_Bucket' (3-63 lowercase letters, digits, "
         "dots and hyphens, starting and ending with a letter or digit)"),
    Case("output of another scheme", {"output_uri": "ftp://host/x"},
         "output_uri 'ftp://host/x' is not an s3:// URI (expected s3://<bucket>/<prefix>)"),
    Case("local model artifact", {"model_artifact_uri": "/proc/self/environ"},
         "model_artifact_uri '/proc/self/environ' is a local path, and local paths are off in this deployment: use "
         f"an s3:// URI {_LOCAL_OFF}"),
    Case("too many outliers", {"outlier_top_n": 51}, "outlier_top_n must be an integer from 1 to 50, got 51"),
    Case("stacked sample of one", {"stacked_sample_size": 1},
         "stacked_sample_size must be an integer from 2 to 1,000, got 1"),
    Case("boolean seed", {"seed": True}, "seed must be an integer from 0 to 4,294,967,295, got True"),
    Case("zero trial timeout", {"trial_timeout_seconds": 0},
         "trial_timeout_seconds must be a number of seconds above 0 and at most 3600, got 0"),
    Case("unknown rows", {"explain_rows": "test"}, "explain_rows must be one of train, validation, got 'test'"),
    Case("multi-output objective", {"objective": "multi:softprob"},
         "objective must be one of binary:logistic, reg:squarederror, reg:linear, reg:logistic, got "
         "'multi:softprob'"),
    Case("misspelt option", {"outlier_topn": 3},
         "unknown request keys ['outlier_topn']; known keys: ['beeswarm_sample_size', 'dataset_version', "
         "'debug_output_uri', 'explain_rows', 'features_uri', 'force_plot_row', 'job_name', 'model_artifact_uri', "
         "'objective', 'outlier_top_n', 'output_uri', 'seed', 'source', 'stacked_sample_size', 'step_sample_size', "
         "'train_uri', 'trial_timeout_seconds', 'validation_uri']"),
]

REPORT_BASE: dict[str, Any] = {"manifest": {"artifacts": {"metrics.png": f"{OUT}metrics.png"}},
                               "verdict": {"rules": []}, "job_name": "job-1", "dataset_version": "v1",
                               "output_uri": OUT}
REPORT_CASES = [
    Case("no manifest", {"manifest": None},
         "manifest must be a mapping (the result of the explanation step, python -m sm_explain), got None"),
    Case("artifact outside the output", {"manifest": {"artifacts": {"shap_bar.png": "/proc/self/environ"}}},
         f"manifest artifact 'shap_bar.png' '/proc/self/environ' is not under the run's output location {OUT!r}: "
         "the report reads only the run's own artifacts"),
    Case("artifact climbing out", {"manifest": {"artifacts": {"shap_bar.png": f"{OUT}../../data/train.csv"}}},
         f"manifest artifact 'shap_bar.png' '{OUT}../../data/train.csv' is not under the run's output location "
         f"{OUT!r}: the report reads only the run's own artifacts"),
    Case("rules not a list", {"verdict": {"rules": "none"}},
         "verdict.rules must be a list of {name, status, details}, got 'none'"),
    Case("no verdict", {"verdict": None}, "verdict must be a mapping (training status, final metrics, rules), got None"),
    Case("script link", {"links": {"training_job": "javascript:alert(document.cookie)"}},
         "links.training_job must be a URL (https:// or http://) of at most 2,048 characters, got "
         "'javascript:alert(document.cookie)', which has the scheme 'javascript'"),
    Case("staged data as a web page", {"links": {"staged_data": "http://example.org/data/"}},
         "links.staged_data must be a URL (s3://) of at most 2,048 characters, got 'http://example.org/data/', "
         "which has the scheme 'http'"),
]
