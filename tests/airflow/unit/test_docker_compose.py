"""No Docker engine runs here, so check that docker-compose.yaml parses and is consistent."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from compose_env import generated, read_env, write_env

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
    ports = {int(str(p).split(":")[-1]) for p in [*service.get("ports", []), *service.get("expose", [])]}
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


SECRET = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


def _environment_items() -> list[tuple[str, str, str]]:
    items = []
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            items.append((name, key, str(value)))
    return items


@pytest.mark.reliability
def test_only_the_airflow_ui_is_published_and_only_on_loopback(reliability) -> None:
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    assert set(published) == {"airflow-apiserver"}, published
    for ports in published.values():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{port} would listen on every host interface"
    reliability.refused("deployment", "docker compose publishing the endpoint, MinIO, moto on all interfaces",
                        "only the Airflow UI published, on 127.0.0.1", f"published: {published}")


@pytest.mark.reliability
def test_no_secret_is_written_in_the_file(reliability) -> None:
    """Passwords, keys and the JWT secret come from .env (compose refuses to start without them)."""
    text = (REPO / "docker-compose.yaml").read_text()
    assert "minioadmin" not in text and "local-compose-only-secret" not in text
    secret_keys = {key for _, key, _ in _environment_items()
                   if re.search(r"PASSWORD|SECRET|FERNET|ACCESS_KEY", key) and not key.endswith("_FILE")}
    assert secret_keys >= {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "MINIO_ROOT_PASSWORD",
                           "POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY"}
    names = set()
    for service, key, value in _environment_items():
        if key in secret_keys:
            match = SECRET.match(value)
            assert match, f"{service}: {key} is {value!r}, not a required ${{VARIABLE}} from .env"
            names.add(match["name"])
    assert names <= set(generated()), f"compose needs {names - set(generated())}, which compose_env does not write"
    database = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert ":${POSTGRES_PASSWORD:?" in database
    reliability.refused("deployment", "fixed JWT secret and default MinIO/Postgres credentials in compose",
                        "every secret from a generated .env", f"secrets read from .env: {sorted(names)}")


def test_compose_env_writes_private_random_secrets(tmp_path: Path) -> None:
    import base64

    path = tmp_path / ".env"
    first = write_env(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_env(path) == first
    assert first["COMPOSE_PROFILES"] == "local"
    assert len(base64.urlsafe_b64decode(first["AIRFLOW_FERNET_KEY"])) == 32
    assert len(first["AIRFLOW_JWT_SECRET"]) >= 64  # HMAC-SHA512's key length
    assert all(len(first[key]) >= 16 for key in generated())
    assert write_env(path, force=True) != first


def test_compose_env_keeps_an_existing_env_and_adds_only_what_it_lacks(tmp_path: Path) -> None:
    """Re-running it over the .env of an older compose file must not change a secret the volumes were made with."""
    path = tmp_path / ".env"
    old = {key: value for key, value in generated().items() if key not in {"REDIS_PASSWORD", "AIRFLOW_UI_PASSWORD"}}
    path.write_text("# mine\n" + "".join(f"{key}={value}\n" for key, value in old.items()))
    path.chmod(0o644)
    added = write_env(path)
    assert set(added) == {"REDIS_PASSWORD", "AIRFLOW_UI_PASSWORD", "COMPOSE_PROFILES"}
    assert read_env(path) == {**old, **added}
    assert path.read_text().startswith("# mine\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_env(path) == {}
    assert read_env(path) == {**old, **added}
