"""Run one DAG run end to end on the local stack with `dag.test()` (deferrable sensors included), then
copy what the run wrote to S3 (figures, tables, report) into a local folder.

Used by `make demo` and by the end-to-end test. The stack must be running (`make local-up`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_local_env import airflow_env
from local_stack import DEFAULT_STATE_DIR, REPO, StackInfo, read_stack

DAG_FILE = REPO / "dags" / "adult_income_explainability.py"


def prepare_airflow(stack: StackInfo, airflow_home: Path) -> None:
    """Point this process (before Airflow is imported) and its children at a private Airflow home."""
    os.environ.update(airflow_env(stack, airflow_home))
    sys.path.insert(0, str(REPO / "plugins"))
    airflow_home.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())


def load_dag(path: Path = DAG_FILE, dag_id: str = "adult_income_explainability") -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def run_dag(dag: Any, version_date: dt.date | dt.datetime, conf: dict[str, Any]) -> Any:
    """One run of `dag`, started now; returns the DagRun (its state says how it ended).

    `dag.test` makes the run's start date its logical date, so a run with the logical date of the version it
    processes (say 2026-11-22) showed in the UI as started that day, lasting days. The run's logical date is now
    instead, and the version comes from `conf`'s `dataset_version`, else `version_date` (YYYY-MM-DD): the version the
    logical date gave before, first in resolve_run_target's order, so the same data and S3 locations. A logical date
    of now (to the microsecond) is no earlier run's either: `dag.test` clears the task instances at its logical
    date, and finds none to clear.
    """
    version = conf.get("dataset_version") or version_date.strftime("%Y-%m-%d")
    now = dt.datetime.now(dt.UTC)
    return dag.test(logical_date=now, run_after=now, run_conf={**conf, "dataset_version": version})


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def task_xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The task's XCom as the downstream tasks receive it (the Task SDK's serde, as tasks pull it): the core
    XComModel.deserialize_value would json-decode a string value again, turning "20261122" into a number."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else deserialize(row.value)


#: The tasks that run a runtime step, each as a processing job when a runtime image is set (its link's XCom).
RUNTIME_TASKS = ("stage_dataset", "explain", "report")


def ran_jobs(dag_run: Any) -> list[tuple[str, str, str, str]]:
    """(task, kind, job name, status) of every SageMaker job the run ran: the training job, and each runtime
    step's processing job (none for a step that ran on the worker)."""
    import boto3

    sagemaker = boto3.client("sagemaker")
    jobs = []
    training = task_xcom(dag_run, "start_training") or {}
    if training.get("job_name"):
        described = sagemaker.describe_training_job(TrainingJobName=training["job_name"])
        jobs.append(("start_training", "training", training["job_name"], described["TrainingJobStatus"]))
    for task_id in RUNTIME_TASKS:
        link = task_xcom(dag_run, task_id, "sagemaker_processing_job") or {}
        map_job = task_xcom(dag_run, task_id, "map_processing_job")  # a split explanation's first job
        if map_job:
            described = sagemaker.describe_processing_job(ProcessingJobName=map_job)
            count = described["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
            jobs.append((task_id, f"processing (map, {count} instances)", map_job, described["ProcessingJobStatus"]))
        if link.get("job_name"):
            described = sagemaker.describe_processing_job(ProcessingJobName=link["job_name"])
            jobs.append((task_id, "processing", link["job_name"], described["ProcessingJobStatus"]))
        else:
            jobs.append((task_id, "worker", "-", "(ran on the Airflow worker)"))
    return jobs


def download_prefix(s3_uri: str, destination: Path) -> list[Path]:
    """Copy every object under an s3:// prefix into destination (keeping the relative layout)."""
    import boto3

    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    written = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = destination / obj["Key"][len(prefix):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logical-date", type=dt.date.fromisoformat, default=dt.date(2026, 11, 22),
                        help="the data set version's date (YYYY-MM-DD) when --conf names no dataset_version; the run "
                        "itself starts now")
    parser.add_argument("--conf", type=json.loads, default={}, help="run conf (DAG params) as JSON")
    parser.add_argument("--output", type=Path, default=REPO / "demo-output")
    args = parser.parse_args(argv)
    stack = read_stack(DEFAULT_STATE_DIR)
    if stack is None:
        print("error: the local stack is not running; run `make local-up` first", file=sys.stderr)
        return 2
    prepare_airflow(stack, DEFAULT_STATE_DIR / "airflow")
    dag = load_dag()
    dag_run = run_dag(dag, args.logical_date, args.conf)
    states = task_states(dag_run)
    print(f"\nDAG run {dag_run.run_id}: {dag_run.state}")
    for task_id, state in states.items():
        print(f"  {task_id:32s} {state}")
    print("\nSageMaker jobs of this run:")
    for task_id, kind, name, status in ran_jobs(dag_run):
        print(f"  {task_id:16s} {kind:10s} {name:64s} {status}")
    report = task_xcom(dag_run, "report")
    manifest = task_xcom(dag_run, "explain")
    if not report or not manifest:
        print("error: the run produced no report", file=sys.stderr)
        return 1
    explanations = report["report_uri"].rsplit("/", 1)[0] + "/"
    files = download_prefix(explanations, args.output)
    print(f"\nReport:  {report['report_uri']}")
    print(f"Figures and tables ({len(manifest['artifacts'])} artifacts) under {explanations}")
    summary = manifest.get("summary", {})
    print(f"Explained from the {summary.get('source')} source; model file: {summary.get('model_file')}")
    print(f"Copied {len(files)} files to {args.output}/ ; open {args.output / 'report.html'}")
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
