"""A tiny staged data set and training spec on the local stack, for the start/wait/kill stack tests."""

from __future__ import annotations

import contextlib
import random
from types import SimpleNamespace
from typing import Any

import boto3

ROWS = {"train": 300, "validation": 100}


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def minimal_context(dag_id: str, run_id: str) -> dict[str, Any]:
    """The context keys the operators read, to call ``op.execute(context)`` outside a DAG run."""
    return {
        "dag": SimpleNamespace(dag_id=dag_id),
        "dag_run": SimpleNamespace(run_id=run_id),
        "run_id": run_id,
        "ti": RecordingTaskInstance(),
    }


def tiny_csv(rows: int, rng: random.Random) -> str:
    """Label first, no header; the label depends on the first feature so training has signal."""
    lines = []
    for _ in range(rows):
        features = [rng.uniform(-1, 1) for _ in range(4)]
        label = int(features[0] + rng.gauss(0, 0.3) > 0)
        lines.append(",".join([str(label), *(f"{value:.4f}" for value in features)]))
    return "\n".join(lines) + "\n"


def stage(bucket: str, prefix: str) -> None:
    """train.csv and validation.csv under ``s3://<bucket>/<prefix>/data/``, the bucket created if need be."""
    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    rng = random.Random(prefix)
    for channel, rows in ROWS.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/data/{channel}.csv", Body=tiny_csv(rows, rng))


def tiny_spec(bucket: str, prefix: str, **overrides: Any) -> dict[str, Any]:
    """A training spec over :func:`stage`'s data, with the default Debugger (metrics, LossNotDecreasing)."""
    spec = {
        "train_uri": f"s3://{bucket}/{prefix}/data/train.csv",
        "validation_uri": f"s3://{bucket}/{prefix}/data/validation.csv",
        "output_s3_uri": f"s3://{bucket}/{prefix}/training",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "hyperparameters": {"objective": "binary:logistic", "num_round": 20, "max_depth": 3, "eta": 0.3},
        "instance_type": "ml.m5.large",
        "max_runtime_seconds": 600,
        "data_shape": {"rows": ROWS["train"], "features": 4, "validation_rows": ROWS["validation"]},
    }
    return {**spec, **overrides}
