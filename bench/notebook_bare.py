"""The notebook's whole workflow as one bare process (issue 5 baseline for `bench/bench_dag.py`).

Stage the real Adult data to a local directory, train the notebook's XGBoost with smdebug's XGBoost hook
(metrics, feature_importance, full_shap, average_shap every 5 steps), evaluate LossNotDecreasing on the
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
import atexit  # noqa: E402
import json  # noqa: E402
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
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
VERSION = "bench-bare"


def read_channel(path: str) -> Any:
    """A headerless CSV with the label first, as the built-in algorithm reads it (features f0..fN)."""
    import pandas as pd
    import xgboost

    frame = pd.read_csv(path, header=None, dtype="float32")
    return xgboost.DMatrix(frame.iloc[:, 1:].to_numpy(), label=frame.iloc[:, 0].to_numpy())


def train_with_hook(staged: dict[str, Any], tensors: Path, model_dir: Path) -> tuple[Path, dict[str, float]]:
    """xgboost.train with smdebug's hook; returns the model.tar.gz path and the final metrics."""
    import xgboost
    from smdebug.xgboost import Hook, SaveConfig

    dtrain = read_channel(staged["train_uri"])
    dvalidation = read_channel(staged["validation_uri"])
    hook = Hook(out_dir=str(tensors), include_collections=list(COLLECTIONS),
                save_config=SaveConfig(save_interval=SAVE_INTERVAL), train_data=dtrain, validation_data=dvalidation)
    evals_log: dict[str, dict[str, list[float]]] = {}
    booster = xgboost.train(PARAMS, dtrain, num_boost_round=NUM_ROUND, evals=[(dtrain, "train"),
                            (dvalidation, "validation")], callbacks=[hook], evals_result=evals_log, verbose_eval=False)
    hook.close()  # flushes the writers and writes the end marker the rule waits for
    atexit.unregister(hook._cleanup)  # smdebug would otherwise redo it at exit
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "xgboost-model"))
    archive = model_dir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_dir / "xgboost-model", arcname="xgboost-model")
    final = {f"{data}:{metric}": float(values[-1]) for data, metrics in evals_log.items()
             for metric, values in metrics.items()}
    return archive, final


def run(work: Path) -> dict[str, Any]:
    if not ADULT_DATA.is_file():
        raise SystemExit(f"the real Adult data is expected at {ADULT_DATA}")
    clock = {"process_start": PROCESS_START}

    from sm_staging.stage import stage

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
