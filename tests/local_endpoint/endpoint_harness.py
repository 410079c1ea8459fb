"""Runs `python -m sm_local.server` as a subprocess for the endpoint tests, as the launcher does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sm_local import process as processes
from sm_local.store import JOB_KIND_DIRS, read_json

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


@dataclass
class EndpointProcess:
    state_dir: Path
    stop_grace_seconds: float = 1.5
    extra_args: list[str] = field(default_factory=list)  # more `python -m sm_local.server` options
    process: subprocess.Popen[str] | None = None
    url: str = ""
    stderr_lines: list[str] = field(default_factory=list)

    def start(self) -> EndpointProcess:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(HERE),
            SM_LOCAL_SUPERVISOR_MODULE="endpoint_test_supervisor",
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sm_local.server",
                "--port",
                "0",
                "--state-dir",
                str(self.state_dir),
                "--stop-grace-seconds",
                str(self.stop_grace_seconds),
                *self.extra_args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._first_stdout_line(timeout=30)
        assert line.startswith("listening on http://127.0.0.1:"), f"unexpected first line {line!r}"
        self.url = line.split("listening on ", 1)[1].strip()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self

    def _first_stdout_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise AssertionError(f"the endpoint did not start: {err}")
        return result[0]

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    def stop(self) -> None:
        """Stop the server only; job supervisors live on, as they do when the real server stops."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    def kill_jobs(self) -> None:
        """Tear down every supervisor this test's jobs (training and processing) started."""
        for kind_dir in JOB_KIND_DIRS:
            for job_file in (self.state_dir / kind_dir).glob("*/job.json"):
                job = read_json(job_file) or {}
                identity = processes.ProcessIdentity.of_supervisor(job)
                if identity is not None:
                    processes.kill_job(identity, job_file.parent)

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "sagemaker",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def raw_post(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One request exactly as awsJson1_1 sends it, for checks a client library would hide."""
        request = urllib.request.Request(
            self.url + "/",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@contextlib.contextmanager
def serving(state_dir: Path, **options: Any) -> Iterator[EndpointProcess]:
    """A started endpoint; afterwards it is stopped and its jobs' processes killed."""
    server = EndpointProcess(state_dir, **options).start()
    try:
        yield server
    finally:
        server.stop()
        server.kill_jobs()


def wait_for(check: Callable[[], Any], timeout: float = 60, interval: float = 0.1) -> Any:
    """The first true result of `check`; AssertionError after `timeout` seconds (it only bounds a broken test)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(interval)


def processing_job_ended(client: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    """DescribeProcessingJob once the job is Completed, Failed or Stopped."""

    def ended() -> dict[str, Any] | None:
        job = client.describe_processing_job(ProcessingJobName=name)
        return job if job["ProcessingJobStatus"] not in ("InProgress", "Stopping") else None

    return wait_for(ended, timeout, interval=0.2)


def training_job_request(name: str, behaviour: str = "sleep", **overrides: Any) -> dict[str, Any]:
    """A CreateTrainingJob request as the project's DAG sends it (built-in XGBoost + one rule)."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {
            "num_round": "20",
            "objective": "binary:logistic",
            "endpoint_test_behaviour": behaviour,
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/adult/v1/data/train.csv",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/adult/v1/training"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "DebugHookConfig": {
            "S3OutputPath": "s3://bucket/adult/v1/training",
            "CollectionConfigurations": [
                {"CollectionName": "metrics", "CollectionParameters": {"save_interval": "5"}}
            ],
        },
        "DebugRuleConfigurations": [
            {
                "RuleConfigurationName": "LossNotDecreasing",
                "RuleEvaluatorImage": RULES_IMAGE,
                "RuleParameters": {"rule_to_invoke": "LossNotDecreasing"},
            }
        ],
    }
    request.update(overrides)
    return request


RUNTIME_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime:latest"
PROCESSING_CODE = HERE / "processing_container.py"


def processing_job_request(
    name: str, bucket: str, *, mode: str = "list", instances: int = 1, upload_mode: str = "EndOfJob",
    distribution: str = "FullyReplicated", extra_args: list[str] | None = None, **overrides: Any,
) -> dict[str, Any]:
    """A CreateProcessingJob as SageMaker's ScriptProcessor sends it: the code (processing_container.py, uploaded
    by `upload_processing_code`) and the data under `s3://<bucket>/data/` as inputs, one output."""
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
        "AppSpecification": {
            "ImageUri": RUNTIME_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/processing_container.py"],
            "ContainerArguments": [
                "config=/opt/ml/config/resourceconfig.json", "input=/opt/ml/processing/input/data",
                "output=/opt/ml/processing/output", f"mode={mode}", *(extra_args or []),
            ],
        },
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": {"S3Uri": f"s3://{bucket}/code/processing_container.py",
                                              "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "data", "S3Input": {"S3Uri": f"s3://{bucket}/data/", "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File",
                                              "S3DataDistributionType": distribution}},
        ],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "result", "S3Output": {"S3Uri": f"s3://{bucket}/out/{name}",
                                                  "LocalPath": "/opt/ml/processing/output",
                                                  "S3UploadMode": upload_mode}},
        ]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": instances, "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 5}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Environment": {"SM_TEST_GREETING": "hello from the request"},
    }
    request.update(overrides)
    return request


def upload_processing_code(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="code/processing_container.py", Body=PROCESSING_CODE.read_bytes())
