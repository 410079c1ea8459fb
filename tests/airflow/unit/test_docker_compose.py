"""No Docker engine runs here, so check that docker-compose.yaml parses and is consistent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_has_every_component() -> None:
    for name in ("postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "minio", "minio-init", "sagemaker-local"):
        assert name in SERVICES, f"service {name} is missing"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_and_volumes_exist(name: str) -> None:
    service = SERVICES[name]
    for dependency in service.get("depends_on", {}):
        assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
        assert dependency != name
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
        else:
            assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


def _published_or_listening_ports(service: dict) -> set[int]:
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    command = " ".join(map(str, service.get("command", []))) if isinstance(service.get("command"), list) else ""
    ports |= {int(p) for p in re.findall(r"--port\s+(\d+)", command)}
    return ports


def test_airflow_connection_points_at_services_of_this_file() -> None:
    env = SERVICES["airflow-scheduler"]["environment"]
    connection = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert connection["conn_type"] == "aws"
    endpoints = connection["extra"]["service_config"]
    assert {"s3", "sagemaker", "sns", "logs"} <= set(endpoints)
    for service_name, config in endpoints.items():
        url = urlparse(config["endpoint_url"])
        assert url.hostname in SERVICES, f"{service_name} endpoint host {url.hostname} is not a service"
        assert url.port in _published_or_listening_ports(SERVICES[url.hostname]), (
            f"{service_name} endpoint port {url.port} is not what {url.hostname} listens on")


def test_bucket_created_by_minio_init_is_the_one_airflow_uses() -> None:
    bucket = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW_VAR_SM_EXPLAIN_BUCKET"]
    assert f"local/{bucket}" in SERVICES["minio-init"]["entrypoint"]


def test_local_endpoint_runs_the_runtime_module_from_include() -> None:
    command = SERVICES["sagemaker-local"]["command"]
    module = command[command.index("-m") + 1]
    assert (REPO / "include" / Path(*module.split("."))).with_suffix(".py").exists()
    assert SERVICES["sagemaker-local"]["environment"]["PYTHONPATH"] == "/opt/sm-explain/include"


def test_dockerfile_copies_files_that_exist_and_builds_the_runtime_venv() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", dockerfile, flags=re.M):
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert "include/runtime-requirements.txt" in dockerfile
    assert "SM_EXPLAIN_RUNTIME_PYTHON=/opt/runtime-venv/bin/python" in dockerfile
