"""The notebook's whole workflow as one bare process (the baseline of `bench/bench_dag.py`).

Stage the real Adult data to a local directory, train the notebook's XGBoost with smdebug's XGBoost hook
(metrics, feature_importance, full_shap, average_shap every 5 steps; a process in image 1.7-1's environment, with
that image's xgboost and smdebug, as every real training runs), evaluate LossNotDecreasing on the
trial, then make the same figures, tables and HTML report the DAG makes (`sm_explain` on the local trial
and model, `source: debugger`, `explain_rows: train`). No AWS, no Airflow, no job bookkeeping: the
least a user could run to get the same result.

Run in the runtime environment: `PYTHONPATH=include .venv-runtime/bin/python bench/notebook_bare.py
--work DIR --result RESULT.json`. RESULT.json holds seconds per phase (imports included: this is a cold
process, like each DAG task's runtime subprocess) and what was produced.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse  # noqa: E402  (the clock starts before any import)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the tests' helper that trains in an image's environment
ADULT_DATA = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
# "Explainability with Amazon SageMaker Debugger": the notebook's hyperparameters and Debugger setup.
PARAMS: dict[str, Any] = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
                          "objective": "binary:logistic"}
NUM_ROUND = 51
COLLECTIONS = ("metrics", "feature_importance", "full_shap", "average_shap")
SAVE_INTERVAL = 5
RULE_CONFIG = {
    "RuleConfigurationName": "LossNotDecreasing",
    "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
    "RuleParameters": {"rule_to_invoke": "LossNotDecreasing", "collection_names": "metrics", "num_steps": "10"},
}
JOB_NAME = "bare-notebook"
IMAGE_VERSION = "1.7-1"
VERSION = "bench-bare"


def train_with_hook(staged: dict[str, Any], tensors: Path, model_dir: Path) -> tuple[Path, dict[str, float]]:
    """xgboost.train with smdebug's hook, in the image's own environment (xgboost 1.7.4 and smdebug, as the
    endpoint's job and SageMaker's 1.7-1 image train), the model saved as that image saves it; returns the
    model.tar.gz path and the final metrics."""
    from tests.runtime.image_training import train_in_image

    model_dir.mkdir(parents=True, exist_ok=True)
    training = train_in_image(
        IMAGE_VERSION, Path(staged["train_uri"]), PARAMS, NUM_ROUND, validation=Path(staged["validation_uri"]),
        tensors_dir=tensors, collections=COLLECTIONS, save_interval=SAVE_INTERVAL,
        model_path=model_dir / "xgboost-model",
    )
    archive = model_dir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_dir / "xgboost-model", arcname="xgboost-model")
    return archive, training.final_metrics


def run(work: Path) -> dict[str, Any]:
    if not ADULT_DATA.is_file():
        raise SystemExit(f"the real Adult data is expected at {ADULT_DATA}")
    clock = {"process_start": PROCESS_START}

    from sm_staging.stage import stage

    os.environ.setdefault("SM_EXPLAIN_ALLOW_LOCAL_SOURCES", "1")  # the shared Adult file is on this machine
    staged = stage({"source": str(ADULT_DATA), "source_sha256": ADULT_SHA256,
                    "destination": str(work / VERSION / "data"), "dataset_version": VERSION})
    clock["staged"] = time.perf_counter()

    archive, final_metrics = train_with_hook(staged, work / "tensors", work / "model")
    clock["trained"] = time.perf_counter()

    from sm_local.rules import evaluate_rule

    rule = evaluate_rule(str(work / "tensors"), RULE_CONFIG)
    if rule.status not in {"NoIssuesFound", "IssuesFound"}:
        raise SystemExit(f"LossNotDecreasing ended {rule.status}: {rule.details}")
    clock["rule"] = time.perf_counter()

    from sm_explain.explain import run_explanations
    from sm_explain.request import parse_request

    output = work / "explanations"
    manifest = run_explanations(parse_request({
        "job_name": JOB_NAME, "dataset_version": VERSION, "features_uri": staged["features_uri"],
        "train_uri": staged["train_uri"], "validation_uri": staged["validation_uri"],
        "model_artifact_uri": str(archive), "debug_output_uri": str(work / "tensors"), "output_uri": str(output),
        "source": "debugger", "explain_rows": "train",
    }))
    clock["explained"] = time.perf_counter()

    from sm_explain.report import build_report

    report = build_report({
        "manifest": manifest, "job_name": JOB_NAME, "dataset_version": VERSION, "output_uri": str(output),
        "verdict": {"training_status": "Completed", "final_metrics": final_metrics,
                    "rules": [{"name": "LossNotDecreasing", "status": rule.status, "details": rule.details}]},
    })
    clock["reported"] = time.perf_counter()

    marks = list(clock.values())
    phases = dict(zip(("stage (imports included)", "train with hook, save model", "LossNotDecreasing rule",
                       "explain (sm_explain, debugger source)", "report"),
                      (b - a for a, b in zip(marks, marks[1:], strict=False)), strict=True))
    return {"phases": phases, "in_process_total": marks[-1] - marks[0], "rule_status": rule.status,
            "artifacts": sorted(manifest["artifacts"]), "report_uri": report["report_uri"],
            "shap_source": manifest["summary"]["source"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="empty directory for data, tensors, outputs")
    parser.add_argument("--result", required=True, type=Path, help="where the JSON timings are written")
    args = parser.parse_args()
    args.result.write_text(json.dumps(run(args.work), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
