"""The session factory that parses botocore's models once per process (sm_explain_ops.hooks.sessions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

from sm_explain_contracts.botocore_models import forget_shared_models
from sm_explain_ops.hooks.sessions import SharedModelsSessionFactory

REPO = Path(__file__).resolve().parents[3]
FACTORY = "sm_explain_ops.hooks.sessions.SharedModelsSessionFactory"


@pytest.fixture()
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every model file botocore parses from here on, and a process that has shared no loader yet."""
    files: list[str] = []
    real = botocore.loaders.JSONFileLoader.load_file

    def load_file(self: Any, file_path: str) -> Any:
        files.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    forget_shared_models()
    yield files
    forget_shared_models()


def _client(factory: type[BaseSessionFactory], service: str) -> Any:
    session = factory(conn=AwsConnectionWrapper(conn=None), region_name="us-east-1").create_session()
    return session.client(service, endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="testing", aws_secret_access_key="testing")


def test_each_model_is_parsed_once_per_process_whatever_the_number_of_hooks(parsed: list[str]) -> None:
    _client(SharedModelsSessionFactory, "sagemaker")
    first = list(parsed)
    assert any("sagemaker" in path for path in first) and any("endpoints" in path for path in first)
    for _ in range(3):
        client = _client(SharedModelsSessionFactory, "sagemaker")
    assert parsed == first  # three more sessions and clients: nothing parsed again
    assert client.meta.service_model.operation_model("DescribeProcessingJob").name == "DescribeProcessingJob"
    _client(SharedModelsSessionFactory, "s3")
    assert [path for path in parsed[len(first):] if "endpoints" in path] == []  # a new service: its model only


def test_the_providers_own_factory_parses_them_again_for_each_session(parsed: list[str]) -> None:
    _client(BaseSessionFactory, "sagemaker")
    first = len(parsed)
    _client(BaseSessionFactory, "sagemaker")
    assert len(parsed) == 2 * first  # what the shared loader saves


def test_the_provider_takes_it_from_its_session_factory_setting() -> None:
    env = dict(os.environ, AIRFLOW__AWS__SESSION_FACTORY=FACTORY,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")])))
    probe = ("import json; from airflow.providers.amazon.aws.hooks.base_aws import SessionFactory as f; "
             "print(json.dumps(f.__module__ + '.' + f.__qualname__))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == FACTORY


def test_the_local_airflow_environment_sets_it(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from airflow_local_env import airflow_env
        from local_stack import StackInfo
    finally:
        sys.path.remove(str(REPO / "scripts"))
    stack = StackInfo(state_dir=str(tmp_path), moto_port=1, sagemaker_port=2, moto_pid=3, sagemaker_pid=4)
    env = airflow_env(stack, tmp_path / "airflow")
    assert env["AIRFLOW__AWS__SESSION_FACTORY"] == FACTORY
    assert env["SM_EXPLAIN_LOG_SETTLE_SECONDS"] == "0"  # the stack's endpoint has every log line before a job ends
