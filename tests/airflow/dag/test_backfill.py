"""A real local backfill: Airflow's own components (`airflow standalone`: scheduler, dag-processor,
triggerer, api-server with the LocalExecutor) run `airflow backfill create` over three weekly data set
versions seeded into the local S3, three runs at once, while two manual runs of one more version run beside them;
then the comparison DAG draws the three versions side by side. No run may write over another's objects."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_local_env import airflow_env
from local_stack import free_port
from seed_versions import seed_versions, weekly_versions
from sm_explain_ops.pipeline import NOTEBOOK_HYPERPARAMETERS

DEADLINE_SECONDS = 1500
# Five DAG runs through Airflow's own components on two cores: the suite's 900 s per-test limit would cut the test
# before its own deadline for the runs; this one gets that deadline plus the services' start and the comparison.
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(DEADLINE_SECONDS + 600)]

BUCKET = "sm-explain-backfill"
PREFIX = "adult-income"
VERSIONS = weekly_versions(__import__("datetime").date(2026, 11, 22), 3)  # 2026-11-08 .. 2026-11-22
SAME_VERSION = "2026-11-29-twice"  # two manual runs of this one version, at the same time as the backfill
# Cheap settings: the point here is scheduling, versioning and isolation, not the model or SHAP at every step.
# 15 rounds, not 51: the default Debugger saves metrics every 5 steps, so steps 0, 5 and 10, and LossNotDecreasing
# (num_steps 10) still has losses 10 steps apart (the training request refuses fewer). Five runs of the whole DAG
# through Airflow's own task processes on two cores take minutes.
RUN_CONF = {
    "hyperparameters": {**NOTEBOOK_HYPERPARAMETERS, "num_round": 15},
    "debugger": "default",
    "explanation_source": "model",
    "explanation_options": {"explain_rows": "validation", "beeswarm_sample_size": 500,
                            "stacked_sample_size": 50, "step_sample_size": 500, "outlier_top_n": 3},
}


@pytest.fixture(scope="module")
def airflow_services(local_stack, adult_data_path, tmp_path_factory) -> Iterator[dict[str, str]]:
    """`airflow standalone` on a free port against the local stack, as `make airflow` runs it."""
    seed_versions(BUCKET, PREFIX, [*VERSIONS, SAME_VERSION], adult_data_path)
    # With versioning on, an object written twice keeps both versions: the test counts them.
    boto3.client("s3").put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    home = tmp_path_factory.mktemp("airflow-standalone")
    port = free_port()
    env = {
        **os.environ,
        **airflow_env(local_stack, home),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Only the backfill (and triggered runs) should run: no run for the latest weekly interval.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Each task process parses the DAG file again; with several runs' tasks at once on two loaded cores that took
        # more than Airflow's default 30 s, and a task that cannot parse its DAG is rescheduled, then failed.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "SM_EXPLAIN_BUCKET": BUCKET,
        "SM_EXPLAIN_PREFIX": PREFIX,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = open(home / "standalone.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_dag(env, "adult_income_explainability", process, home)
        yield env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        # A component still shutting down (the scheduler waits on its executor) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def _airflow(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def _wait_for_dag(env: dict[str, str], dag_id: str, process: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "standalone.log").read_text()[-4000:]
        listed = subprocess.run([sys.executable, "-m", "airflow", "dags", "list", "-o", "json"], env=env,
                                capture_output=True, text=True)
        if listed.returncode == 0 and dag_id in listed.stdout:
            return
        time.sleep(3)
    raise AssertionError(f"{dag_id} was never parsed:\n{(home / 'standalone.log').read_text()[-4000:]}")


def _runs(env: dict[str, str], dag_id: str) -> list[dict[str, Any]]:
    """The DAG's runs, oldest first (the CLI may print log lines before its JSON)."""
    output = _airflow(env, "dags", "list-runs", dag_id, "-o", "json")
    listed = next((line for line in reversed(output.splitlines()) if line.startswith("[")), "[]")
    return sorted(json.loads(listed), key=lambda run: run["run_after"])


def _wait_for_runs(env: dict[str, str], dag_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        runs = _runs(env, dag_id)
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(10)
    raise AssertionError(f"runs of {dag_id} did not finish: {_runs(env, dag_id)}")


def _keys(prefix: str) -> list[str]:
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _object_versions() -> dict[str, int]:
    s3 = boto3.client("s3")
    counts: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


@pytest.mark.reliability
def test_backfill_trains_and_explains_each_version_on_its_own(airflow_services, reliability) -> None:
    env = airflow_services
    _airflow(env, "backfill", "create", "--dag-id", "adult_income_explainability",
             "--from-date", VERSIONS[0], "--to-date", VERSIONS[-1], "--max-active-runs", str(len(VERSIONS)),
             "--dag-run-conf", json.dumps(RUN_CONF))
    for _ in range(2):
        _airflow(env, "dags", "trigger", "adult_income_explainability",
                 "--conf", json.dumps({**RUN_CONF, "dataset_version": SAME_VERSION}))
    runs = _wait_for_runs(env, "adult_income_explainability", len(VERSIONS) + 2)
    assert [r["state"] for r in runs] == ["success"] * (len(VERSIONS) + 2), runs
    backfilled = [r["run_id"] for r in runs if r["run_id"].startswith("backfill__")]
    # Each backfill run is a partition whose key (in its run id: backfill__<tick>__<key>__<random>) is its version.
    assert sorted(run_id.split("__")[2] for run_id in backfilled) == VERSIONS, backfilled

    jobs = boto3.client("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    job_names = sorted(j["TrainingJobName"] for j in jobs if j["TrainingJobName"].startswith("adult-income"))
    assert len(job_names) == len(set(job_names)) == len(VERSIONS) + 2, job_names
    for version, expected_runs in [*((v, 1) for v in VERSIONS), (SAME_VERSION, 2)]:
        reports = [k for k in _keys(f"{PREFIX}/{version}/") if k.endswith("/explanations/report.html")]
        assert len(reports) == expected_runs, f"version {version} should have {expected_runs} report(s): {reports}"
        for report in reports:
            job = report.split("/")[2]
            assert job in job_names and version[:10] in job
    # No object was written twice: the two runs of one version share its staged files (written once) and keep
    # their own jobs and explanations; a job's own Debugger sync may refresh its own files, nothing else.
    rewritten = {key: n for key, n in _object_versions().items() if n > 1 and "/debug-output/" not in key}
    assert rewritten == {}, rewritten
    staged = [k for k in _keys(f"{PREFIX}/{SAME_VERSION}/data/") if k.endswith(".csv")]
    assert len(staged) == 2, staged  # train and validation, once, for both runs
    reliability.survived(
        "DAG", f"{len(VERSIONS)} backfill runs of distinct versions at once, plus 2 runs of one version beside them",
        "every run succeeds on its own job; no object written twice; the same version's data staged once",
        f"{len(runs)} runs {sorted({r['state'] for r in runs})}; {len(job_names)} distinct jobs; objects written "
        f"twice: {len(rewritten)}; staged files of the shared version: {len(staged)}",
        artifacts_lost=len(rewritten))

    _airflow(env, "dags", "trigger", "adult_income_version_comparison",
             "--conf", json.dumps({"versions": VERSIONS, "bucket": BUCKET, "prefix": PREFIX}))
    comparison = _wait_for_runs(env, "adult_income_version_comparison", 1)
    assert comparison[0]["state"] == "success", comparison
    figure = f"{PREFIX}/comparisons/{VERSIONS[0]}_to_{VERSIONS[-1]}/shap_by_version.png"
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=figure)["Body"].read()
    assert body.startswith(b"\x89PNG")
    # The stack sets a runtime image, so the comparison computed as a processing job, as every runtime step does.
    jobs = boto3.client("sagemaker").list_processing_jobs(NameContains="compare-versions", MaxResults=100)
    assert [j["ProcessingJobStatus"] for j in jobs["ProcessingJobSummaries"]] == ["Completed"]
