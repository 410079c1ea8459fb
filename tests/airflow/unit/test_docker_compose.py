"""docker-compose.yaml and docker/Dockerfile: rendered by the compose CLI where one is installed, and checked
against what the images really run. No Docker engine runs here, so what can run without one runs for real: the
healthchecks of the stand-ins for AWS against the local stack, the seed-versions script, the UI login through
Airflow's own simple auth manager."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import yaml

from compose_env import SETTINGS, generated, read_env, write_env
from seed_versions import weekly_versions

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
# Where the code that may read a variable lives (the distributions being split out included, once they exist).
CODE_DIRS = ("plugins", "dags", "include", "scripts", "contracts/src", "local_endpoint", "docker")

ONE_SHOT = {"airflow-init", "minio-init", "seed-versions"}
LONG_RUNNING = set(SERVICES) - ONE_SHOT
STAND_INS_FOR_AWS = {"moto", "sagemaker-local", "seed-versions"}
ALWAYS = {"postgres", "airflow-init", "airflow-apiserver", "airflow-dag-processor", "airflow-triggerer", "minio",
          "minio-init", "moto", "sagemaker-local", "seed-versions"}
PROFILES = {
    "local": ({"local"}, ALWAYS | {"airflow-scheduler"}),
    "celery": ({"celery"}, ALWAYS | {"redis", "airflow-celery-scheduler", "airflow-worker"}),
    "celery+flower": ({"celery", "flower"}, ALWAYS | {"redis", "airflow-celery-scheduler", "airflow-worker", "flower"}),
}
SECRET_REFERENCE = "run scripts/compose_env.py"


def _argv(value: object) -> list[str]:
    """A compose command or entrypoint as the argument vector it becomes (a string is split like a shell)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _active(profiles: set[str]) -> dict[str, dict]:
    """The services compose starts with these profiles: those without profiles, and those in one of them."""
    return {name: service for name, service in SERVICES.items()
            if not service.get("profiles") or set(service["profiles"]) & profiles}


# --- the rendering by the real compose CLI ---------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE_CLI = _compose_cli()
needs_compose_cli = pytest.mark.skipif(COMPOSE_CLI is None, reason="no compose CLI (docker compose, docker-compose)")


def _render(env_file: Path, profiles: set[str]) -> subprocess.CompletedProcess[str]:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    env = {key: value for key, value in os.environ.items()
           if key not in interpolated and not key.startswith("COMPOSE_")}
    command = [*COMPOSE_CLI, "--env-file", str(env_file), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
    for profile in sorted(profiles):
        command += ["--profile", profile]
    return subprocess.run([*command, "config"], capture_output=True, text=True, env=env, timeout=120)


@needs_compose_cli
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_compose_renders_each_profile_with_every_variable_set(tmp_path: Path, profile: str) -> None:
    profiles, expected = PROFILES[profile]
    env_file = tmp_path / ".env"
    write_env(env_file)
    result = _render(env_file, profiles)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    # docker compose v2 renders the active services only; docker-compose v1 renders all, with their profiles.
    active = {name for name, service in rendered.items()
              if not service.get("profiles") or set(service["profiles"]) & profiles}
    assert active == expected
    assert not re.search(r"(?<!\$)\$\{", result.stdout), "a variable was left uninterpolated"
    for name in active:
        for port in rendered[name].get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond the loopback interface"


@needs_compose_cli
@pytest.mark.reliability
def test_compose_refuses_to_render_without_the_generated_secrets(tmp_path: Path, reliability) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in SETTINGS.items()))
    result = _render(env_file, {"local"})
    assert result.returncode != 0
    assert SECRET_REFERENCE in result.stderr, result.stderr
    reliability.refused("deployment", "docker compose with an .env lacking the secrets compose_env.py writes",
                        "compose refuses to start, naming scripts/compose_env.py", result.stderr.strip())


# --- what each service runs, through the apache/airflow image's entrypoint --------------------------------------

# The apache/airflow image: ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"], CMD [], /entrypoint being
# scripts/docker/entrypoint_prod.sh. Its dispatch, read from the copy inlined into
# https://github.com/apache/airflow/blob/0060b1a446d07a86af2b4f847b2242195e9423ac/Dockerfile (Airflow 3.3; the same
# in scripts/docker/entrypoint_prod.sh at 65318caa011f995555d05a6a04f1b51bbe631ae1): after its checks it
#   - execs `/bin/bash <rest>` when the first argument is `bash`, `python <rest>` (Airflow's interpreter) for `python`;
#   - drops a first argument `airflow`;
#   - execs `airflow <arguments>` for everything else: a path to another program becomes airflow's first argument.
IMAGE_ENTRYPOINT = ["/usr/bin/dumb-init", "--", "/entrypoint"]
# What the base image provides that the services call (the same Dockerfile: dumb-init and curl from its runtime apt
# packages, /opt/airflow/{dags,logs} created and owned by airflow:0, Airflow's console scripts on PATH).
BASE_EXECUTABLES = {"/usr/bin/dumb-init", "/bin/bash", "/entrypoint"}
BASE_AIRFLOW_DIRECTORIES = {"/opt/airflow", "/opt/airflow/dags", "/opt/airflow/logs"}
# `airflow celery ...` comes from the celery provider (in the image, not in this environment), and exists only when
# the configured executor is CeleryExecutor.
PROVIDER_COMMANDS = {"celery": {"worker", "flower"}}


def entrypoint_prod(arguments: list[str]) -> list[str]:
    """What /entrypoint execs for these arguments (its dispatch, above)."""
    if arguments[:1] == ["bash"]:
        return ["/bin/bash", *arguments[1:]]
    if arguments[:1] == ["python"]:
        return ["python", *arguments[1:]]
    if arguments[:1] == ["airflow"]:
        arguments = arguments[1:]
    return ["airflow", *arguments]


def runs(service: dict) -> list[str]:
    """The program a service of the apache/airflow-based image runs, past dumb-init and /entrypoint."""
    entrypoint = IMAGE_ENTRYPOINT if service.get("entrypoint") is None else _argv(service["entrypoint"])
    argv = [*entrypoint, *_argv(service.get("command"))]
    if argv[:2] == ["/usr/bin/dumb-init", "--"]:
        argv = argv[2:]
    return entrypoint_prod(argv[1:]) if argv[:1] == ["/entrypoint"] else argv


@cache
def _airflow_commands() -> dict[str, set[str]]:
    from airflow.cli.cli_config import GroupCommand, core_commands

    commands = {command.name: ({sub.name for sub in command.subcommands} if isinstance(command, GroupCommand)
                               else set()) for command in core_commands}
    return {**commands, **PROVIDER_COMMANDS}


def _airflow_problem(arguments: list[str], environment: dict) -> str | None:
    commands = _airflow_commands()
    if not arguments or arguments[0] not in commands:
        return f"runs `airflow {' '.join(arguments)}`: {arguments[:1]} is not an airflow command"
    group = commands[arguments[0]]
    if group and (len(arguments) < 2 or arguments[1] not in group):
        return f"runs `airflow {' '.join(arguments)}`: not one of airflow {arguments[0]}'s commands {sorted(group)}"
    if arguments[0] in PROVIDER_COMMANDS and environment.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        return f"runs `airflow {arguments[0]}`, which exists only with AIRFLOW__CORE__EXECUTOR=CeleryExecutor"
    return None


def _run_problem(service: dict) -> str | None:
    """None when what the service runs exists in its image and does what it means, else what is wrong."""
    argv = runs(service)
    environment = service.get("environment") or {}
    image = image_of(service)
    if argv[0] == "airflow":
        return _airflow_problem(argv[1:], environment)
    if argv[0] not in image.executables:
        return f"runs {argv[0]}, which its image ({service['build'].get('target')}) does not have"
    if argv[0] == "/bin/bash":
        script = argv[argv.index("-c") + 1]
        for line in script.replace("\\\n", " ").splitlines():
            words = shlex.split(line) if line.strip().startswith("/entrypoint ") else []
            if words[:2] == ["/entrypoint", "airflow"] and (problem := _airflow_problem(words[2:], environment)):
                return problem
        for path in re.findall(r"(?<![\w$}/.-])(/opt/[\w./-]+)", script):
            if path not in image.paths:
                return f"its script uses {path}, which its image ({service['build'].get('target')}) does not have"
    if "-m" in argv[:3] and not _module_source(argv[argv.index("-m") + 1]):
        return f"runs module {argv[argv.index('-m') + 1]}, which no source directory holds"
    return None


def _module_source(module: str) -> Path | None:
    relative = Path(*module.split(".")).with_suffix(".py")
    for root in (REPO / "include", REPO / "local_endpoint" / "src"):
        if (root / relative).is_file():
            return root / relative
    return None


OUR_IMAGE_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


@pytest.mark.parametrize("name", OUR_IMAGE_SERVICES)
def test_each_service_runs_a_program_its_image_has(name: str) -> None:
    assert _run_problem(SERVICES[name]) is None, f"{name}: {_run_problem(SERVICES[name])}"


def test_a_program_path_handed_to_the_airflow_entrypoint_is_caught() -> None:
    """The check above can fail: the endpoint's command without an entrypoint of its own runs `airflow <path>`."""
    broken = {**SERVICES["sagemaker-local"], "command": [*runs(SERVICES["sagemaker-local"])]}
    del broken["entrypoint"]
    assert runs(broken)[:2] == ["airflow", "/opt/runtime-venv/bin/python"]
    assert "is not an airflow command" in _run_problem(broken)


def test_airflow_components_run_through_the_image_entrypoint_and_stand_ins_for_aws_do_not() -> None:
    for name in OUR_IMAGE_SERVICES:
        entrypoint = SERVICES[name].get("entrypoint")
        if name in STAND_INS_FOR_AWS:
            # Not Airflow components: Airflow's entrypoint would hand their command to `airflow`.
            assert entrypoint and _argv(entrypoint)[0] != "/entrypoint", name
        elif name != "airflow-init":
            assert entrypoint is None, f"{name} bypasses the image's entrypoint (its checks, `airflow <command>`)"


# --- the Dockerfile: two targets ---------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@cache
def _stages() -> dict[str, Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, Stage] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            words = rest.split()
            current = Stage(words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else "", words[0])
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction.upper(), " ".join(rest.split())))
    return stages


def _chain(target: str) -> list[Stage]:
    stages, chain = _stages(), []
    while target in stages:
        chain.insert(0, stages[target])
        target = stages[target].base
    return chain


@dataclass
class Image:
    """What a target's filesystem has that the services use: created directories (and their owners), copied
    files, executables of the venvs it builds."""

    directories: dict[str, tuple[str, str]]
    copies: dict[str, str]  # destination -> source in the repository
    executables: set[str]
    environment: dict[str, str]

    @property
    def paths(self) -> set[str]:
        return set(self.directories) | set(self.copies) | self.executables


@cache
def _image(target: str) -> Image:
    image = Image(dict.fromkeys(BASE_AIRFLOW_DIRECTORIES, ("airflow", "0")), {}, set(BASE_EXECUTABLES), {})
    for stage in _chain(target):
        for instruction, rest in stage.instructions:
            if instruction == "COPY" and "--from" not in rest and "--mount" not in rest:
                source, destination = [word for word in rest.split() if not word.startswith("--")]
                image.copies[destination] = source
            elif instruction == "ENV":
                image.environment.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
            elif instruction == "RUN":
                for part in rest.split("&&"):
                    words = shlex.split(part)
                    if words[:1] == ["install"] and "-d" in words:
                        owner, group = words[words.index("-o") + 1], words[words.index("-g") + 1]
                        paths = [word for word in words[words.index("-d") + 1:] if word.startswith("/")]
                        image.directories.update({path: (owner, group) for path in paths})
                    venv = re.search(r"python -m venv (\S+)", part)
                    if venv:
                        image.executables |= {f"{venv[1]}/bin/python", f"{venv[1]}/bin/pip"}
                if re.search(r"moto\\?\[server\\?\]", rest):
                    image.executables |= {f"{venv}/bin/moto_server" for venv in
                                          re.findall(r"(\S+)/bin/pip install", rest)}
    return image


def image_of(service: dict) -> Image:
    return _image(service["build"].get("target", ""))


def test_the_dockerfile_has_a_deployment_target_and_a_local_stack_target_built_from_it() -> None:
    stages = _stages()
    assert set(stages) == {"deployment", "local-stack"}
    assert stages["deployment"].base == "${AIRFLOW_IMAGE}"
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.\d+\.\d+-python3\.11$", DOCKERFILE.read_text(), re.M)
    assert stages["local-stack"].base == "deployment"


def test_only_the_stand_ins_for_aws_run_the_local_stack_image() -> None:
    for name in OUR_IMAGE_SERVICES:
        target = SERVICES[name]["build"]["target"]
        assert target == ("local-stack" if name in STAND_INS_FOR_AWS else "deployment"), name
        assert SERVICES[name]["image"] == f"sm-explain-ops:{target}"


def _requirement_name(line: str) -> str:
    return re.split(r"[\[=<>~! ;]", line.strip(), maxsplit=1)[0].lower()


def test_the_deployment_image_holds_no_local_endpoint_and_no_test_tool() -> None:
    deployment = " ".join(rest for stage in _chain("deployment") for _, rest in stage.instructions)
    for word in ("local_endpoint", "sm_local", "moto"):
        assert word not in deployment, f"the deployment target installs {word}"
    # No dev/test requirements file enters it, and the runtime pins it installs hold no test tool.
    assert "-dev" not in deployment and "requirements-runtime-dev" not in deployment
    assert "pip install --no-cache-dir -r /tmp/runtime-requirements.txt" in deployment
    kept = {_requirement_name(line) for line in (REPO / "include" / "runtime-requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert not {name for name in kept if name.startswith(("pytest", "moto", "ruff"))}
    assert {"smdebug", "xgboost-cpu", "shap", "numpy", "boto3"} <= kept


def test_the_local_stack_image_adds_the_endpoint_and_moto_at_the_tested_version() -> None:
    local = _image("local-stack")
    assert "/opt/moto-venv/bin/moto_server" in local.executables
    assert "/opt/moto-venv/bin/moto_server" not in _image("deployment").executables
    pin = re.search(r"grep -hE '([^']+)' /tmp/airflow-requirements/\*\.txt", DOCKERFILE.read_text())[1]
    assert local.copies["/tmp/airflow-requirements/"] == "requirements*.txt"
    pins = [line for path in sorted(REPO.glob("requirements*.txt")) for line in path.read_text().splitlines()
            if re.search(pin, line)]
    assert len(pins) == 1 and pins[0].startswith("moto[server]==")


def _volume_mounts() -> list[tuple[str, str, str]]:
    """(service, source, target) of each short-syntax mount; a source may be a `${VARIABLE:-default}`."""
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = re.match(r"(\$\{[^}]*\}|[^:]+):([^:]+)", volume).groups()
            mounts.append((name, source, target))
    return mounts


@pytest.mark.parametrize(("name", "volume", "target"), [
    mount for mount in _volume_mounts() if "build" in SERVICES[mount[0]] and mount[1] in COMPOSE["volumes"]])
def test_named_volumes_mount_on_directories_the_image_gives_to_airflow(name: str, volume: str, target: str) -> None:
    """A new named volume takes the owner of the directory it is mounted on; one the image lacks is root's, and
    the services run as airflow (uid 50000, gid 0)."""
    assert volume in COMPOSE["volumes"], f"{name} mounts undeclared volume {volume}"
    directories = image_of(SERVICES[name]).directories
    assert target in directories, f"{name} mounts {volume} on {target}, which its image does not create"
    assert directories[target] == ("airflow", "0"), f"{target} belongs to {directories[target]}, not airflow:0"


def test_bind_mounts_are_read_only_and_only_data() -> None:
    binds = [(name, source, target) for name, source, target in _volume_mounts() if source not in COMPOSE["volumes"]]
    assert all(source.startswith(("${", ".", "/")) for _, source, _ in binds), f"undeclared volumes in {binds}"
    assert [(name, target) for name, _, target in binds] == [("seed-versions", "/seed-data")]
    assert SERVICES["seed-versions"]["volumes"] == ["${SEED_DATA_DIR:-../shared/data}:/seed-data:ro"]


def test_every_service_but_the_init_runs_as_the_images_user() -> None:
    """The Airflow image's user is airflow (uid 50000, gid 0); only airflow-init runs as root, to hand over the
    volumes, as in Airflow's own compose file."""
    assert {name for name, service in SERVICES.items() if "user" in service} == {"airflow-init"}
    assert SERVICES["airflow-init"]["user"] == "0:0"
    for target in ("deployment", "local-stack"):
        users = [rest for instruction, rest in _stages()[target].instructions if instruction == "USER"]
        assert users[-1] == "airflow", f"{target} ends as {users[-1]}"


# The distributions the image installs: the provider (the root pyproject.toml), the contracts, the runtime, the
# local endpoint.
DISTRIBUTIONS = {"pyproject.toml": REPO / "pyproject.toml", "contracts": REPO / "contracts" / "pyproject.toml",
                 "include": REPO / "include" / "pyproject.toml",
                 "local_endpoint": REPO / "local_endpoint" / "pyproject.toml"}


def _build_sources() -> list[str]:
    """What the image is built from: the bind mounts of the steps that install distributions, the copies."""
    mounted = set(re.findall(r"--mount=type=bind,source=([^,\s]+)", DOCKERFILE.read_text()))
    copies = {source for target in ("deployment", "local-stack") for source in _image(target).copies.values()}
    return sorted(mounted | copies)


@pytest.mark.parametrize("source", _build_sources())
def test_the_dockerfile_builds_from_what_the_repository_holds(source: str) -> None:
    pyproject = DISTRIBUTIONS.get(source)
    if pyproject and not (pyproject.is_file() and "[build-system]" in pyproject.read_text()):
        pytest.skip(f"{pyproject.relative_to(REPO)} does not build a distribution yet: the split of the repository "
                    "into distributions adds it")
    assert list(REPO.glob(source)), f"the Dockerfile builds from {source}, which does not exist"


def test_the_dockerfile_installs_each_distribution_into_its_environment() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    runtime = set(re.findall(r"/opt/runtime-venv/bin/pip install --no-cache-dir ((?:/tmp/sm-explain-src/\S+ ?)+)", text))
    airflow = re.search(r"&& pip install --no-cache-dir -c (\S+) +\"apache-airflow==\$\{AIRFLOW_VERSION\}\" ([^&]+)", text)
    # Under the tested constraints, which the build context holds.
    assert airflow[1] == "/tmp/sm-explain-src/constraints/airflow-3.3.2-python-3.11.txt"
    assert (REPO / "constraints" / "airflow-3.3.2-python-3.11.txt").is_file()
    airflow = airflow[2].split()
    assert {path for group in runtime for path in group.split()} == {
        "/tmp/sm-explain-src/contracts", "/tmp/sm-explain-src/include", "/tmp/sm-explain-src/local_endpoint"}
    assert airflow == ["/tmp/sm-explain-src/contracts", "/tmp/sm-explain-src"]
    assert "/tmp/sm-explain-src/local_endpoint" in " ".join(rest for _, rest in _stages()["local-stack"].instructions)


def test_the_build_context_leaves_out_secrets_and_local_environments() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", ".venv", ".venv-runtime", ".venv-images", ".local", ".git"} <= ignored


# --- healthchecks, restarts, dependencies, profiles ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_long_running_services_have_a_healthcheck_and_restart(name: str) -> None:
    service = SERVICES[name]
    healthcheck = service.get("healthcheck") or {}
    assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"
    assert service.get("restart") in {"always", "unless-stopped"}, f"{name} is not restarted"


def test_one_shot_services_are_never_restarted() -> None:
    for name in ONE_SHOT:
        assert SERVICES[name].get("restart") == "no", name
        assert "healthcheck" not in SERVICES[name]


def test_every_dependency_waits_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for dependency, spec in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, f"{name} waits on {dependency} with {spec}"


def test_the_schedulers_healthcheck_is_the_server_airflow_starts() -> None:
    for name in ("airflow-scheduler", "airflow-celery-scheduler"):
        service = SERVICES[name]
        assert service["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
        assert service["healthcheck"]["test"][-1] == "http://localhost:8974/health"  # [scheduler] health port


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_runs_one_scheduler_with_its_executor_and_only_its_own_dependencies(profile: str) -> None:
    profiles, expected = PROFILES[profile]
    active = _active(profiles)
    assert set(active) == expected
    schedulers = [name for name, service in active.items() if _argv(service.get("command")) == ["scheduler"]]
    assert len(schedulers) == 1, f"profile {profile} runs schedulers {schedulers}"
    executor = active[schedulers[0]]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    celery = [name for name, service in active.items() if _argv(service.get("command"))[:1] == ["celery"]]
    if "celery" in profiles:
        assert executor == "CeleryExecutor" and "airflow-worker" in celery
        broker_url = active[schedulers[0]]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
        broker = urlparse(re.sub(r"\$\{[^}]*\}", "secret", broker_url))
        assert broker.hostname in active and broker.port == 6379 and "6379" in active[broker.hostname]["expose"]
        assert {active[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"] for name in celery} == {broker_url}
    else:
        assert executor == "LocalExecutor" and not celery
    for name, service in active.items():  # docker compose v2 refuses a dependency outside the active profiles
        assert set(service.get("depends_on", {})) <= set(active), f"{name} needs a service profile {profile} lacks"


def test_plain_up_selects_the_local_profile() -> None:
    assert SETTINGS == {"COMPOSE_PROFILES": "local"}
    assert SERVICES["airflow-scheduler"]["profiles"] == ["local"]


# --- variables: each one set is read by something ----------------------------------------------------------------


@cache
def _code() -> str:
    return "\n".join(path.read_text(errors="replace") for directory in CODE_DIRS
                     for path in sorted((REPO / directory).rglob("*.py")) if (REPO / directory).is_dir())


def _environment_items() -> list[tuple[str, str, str]]:
    return [(name, key, str(value)) for name, service in SERVICES.items()
            for key, value in (service.get("environment") or {}).items()]


def test_every_sm_explain_variable_set_is_read_by_the_code() -> None:
    names = {key for _, key, _ in _environment_items() if key.startswith(("SM_EXPLAIN_", "SM_LOCAL_"))}
    names |= {key for target in ("deployment", "local-stack") for key in _image(target).environment}
    assert names >= {"SM_EXPLAIN_BUCKET", "SM_EXPLAIN_RUNTIME_PYTHON", "SM_LOCAL_IMAGE_CACHE"}
    unread = sorted(name for name in names if not re.search(rf"[\"']{name}[\"']", _code()))
    assert not unread, f"set but read by nothing in {', '.join(CODE_DIRS)}: {unread}"


# What third-party images and tools read (their own documentation): the postgres image's docker-entrypoint.sh, the
# MinIO server, redis-cli, and dumb-init (PID 1 of the apache/airflow image).
IMAGE_VARIABLES = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "minio/minio": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
    "redis": {"REDISCLI_AUTH"},
    "sm-explain-ops": {"DUMB_INIT_SETSID"},
}
# The celery provider's options (in the image; not installed in this environment).
CELERY_OPTIONS = {"broker_url", "result_backend", "flower_basic_auth"}
AWS_STANDARD = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}


@cache
def _airflow_options() -> dict[str, set[str]]:
    from airflow.configuration import retrieve_configuration_description
    from airflow.providers.amazon.get_provider_info import get_provider_info

    options = {section: set(content["options"]) for section, content in
               retrieve_configuration_description(include_providers=False).items()}
    for section, content in get_provider_info().get("config", {}).items():  # the Amazon provider's own, [aws]
        options.setdefault(section, set()).update(content["options"])
    return options


def _reader(name: str, key: str) -> str | None:
    """What reads variable `key` of service `name`, or None."""
    service = SERVICES[name]
    if key.startswith("AIRFLOW__"):
        section, _, option = key[len("AIRFLOW__"):].lower().partition("__")
        known = CELERY_OPTIONS if section == "celery" else _airflow_options().get(section, set())
        return f"Airflow's [{section}] {option}" if option in known else None
    if key.startswith("AIRFLOW_CONN_"):
        connection = key[len("AIRFLOW_CONN_"):].lower()
        return f"the {connection} connection" if f'"{connection}"' in _code() else None
    if key.startswith("AIRFLOW_VAR_"):
        variable = key[len("AIRFLOW_VAR_"):].lower()
        read = re.search(rf"Variable\.get\(\s*[\"']{variable}[\"']|var\.value\.{variable}\b", _code())
        return f"Variable {variable}" if read else None
    if key.startswith(("SM_EXPLAIN_", "SM_LOCAL_")):
        return "the code" if re.search(rf"[\"']{key}[\"']", _code()) else None
    if key in AWS_STANDARD or key.startswith("AWS_ENDPOINT_URL_"):
        return "boto3"
    image = service.get("image", "").split(":")[0]
    if key in IMAGE_VARIABLES.get(image, set()):
        return f"the {image} image"
    own = " ".join(_argv(service.get("entrypoint")) + _argv(service.get("command")) +
                   [str(word) for word in (service.get("healthcheck") or {}).get("test", [])])
    if re.search(rf"\$\$?\{{?{key}\b", own):
        return "the service's own command"
    copies = image_of(service).copies if "build" in service else {}
    scripts = [REPO / source for path, source in copies.items() if path in own]
    if any(key in script.read_text() for script in scripts if script.is_file()):
        return "the script the service runs"
    return None


@pytest.mark.parametrize(("name", "key"), [(name, key) for name, key, _ in _environment_items()])
def test_every_variable_set_is_read_by_something(name: str, key: str) -> None:
    assert _reader(name, key), f"{name} sets {key}, which nothing reads"


def test_variables_read_by_nothing_are_caught() -> None:
    """The check above can fail: an Airflow Variable no DAG reads, an option Airflow lacks, a name no code uses."""
    assert _reader("airflow-scheduler", "AIRFLOW_VAR_SM_EXPLAIN_BUCKET") is None
    assert _reader("airflow-scheduler", "AIRFLOW__CORE__NO_SUCH_OPTION") is None
    assert _reader("airflow-scheduler", "AIRFLOW__AWS__NO_SUCH_OPTION") is None
    assert _reader("airflow-scheduler", "SM_EXPLAIN_NOTHING") is None
    assert _reader("seed-versions", "SEED_SOURCE_NOTHING") is None


# --- endpoints, names and secrets ------------------------------------------------------------------------------


def _listening_ports(service: dict) -> set[int]:
    ports = {int(str(port).split(":")[-1]) for port in [*service.get("ports", []), *service.get("expose", [])]}
    ports |= {int(port) for port in re.findall(r"(?:--port|-p)\s+(\d+)", " ".join(_argv(service.get("command"))))}
    return ports


def test_airflow_connection_points_at_services_of_this_file() -> None:
    connection = json.loads(SERVICES["airflow-scheduler"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assert connection["conn_type"] == "aws"
    endpoints = connection["extra"]["service_config"]
    assert {"s3", "sagemaker", "sns", "logs"} <= set(endpoints)
    for service_name, config in endpoints.items():
        url = urlparse(config["endpoint_url"])
        assert url.hostname in SERVICES, f"{service_name} endpoint host {url.hostname} is not a service"
        assert url.port in _listening_ports(SERVICES[url.hostname]), (
            f"{service_name} endpoint port {url.port} is not what {url.hostname} listens on")


def test_the_bucket_created_and_seeded_is_the_one_the_dags_use() -> None:
    env = SERVICES["airflow-scheduler"]["environment"]
    assert f"local/{env['SM_EXPLAIN_BUCKET']}" in SERVICES["minio-init"]["entrypoint"]
    seed = SERVICES["seed-versions"]["command"][0]
    assert f"--bucket {env['SM_EXPLAIN_BUCKET']} --prefix {env['SM_EXPLAIN_PREFIX']}" in seed


@pytest.mark.reliability
def test_only_the_ui_and_flower_are_published_and_only_on_loopback(reliability) -> None:
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    assert set(published) == {"airflow-apiserver", "flower"}, published
    for ports in published.values():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{port} would listen on every host interface"
    reliability.refused("deployment", "docker compose publishing the endpoint, MinIO, moto, redis on all interfaces",
                        "only the Airflow UI and Flower published, on 127.0.0.1", f"published: {published}")


@pytest.mark.reliability
def test_no_secret_is_written_in_the_file(reliability) -> None:
    """Passwords, keys and the JWT secret come from .env (compose refuses to start without them)."""
    text = COMPOSE_FILE.read_text()
    assert "minioadmin" not in text and "local-compose-only-secret" not in text
    secrets_used = set(re.findall(r"\$\{([A-Z0-9_]+)", text)) & set(generated())
    assert secrets_used == set(generated()), f"compose_env writes {set(generated()) - secrets_used}, never used"
    for name in secrets_used:
        for reference in re.findall(rf"\$\{{{name}([^}}]*)\}}", text):
            assert reference == f":?{SECRET_REFERENCE}", f"${{{name}{reference}}} has a default or no message"
    secret_keys = {key for _, key, _ in _environment_items()
                   if re.search(r"PASSWORD|SECRET|FERNET|ACCESS_KEY|BASIC_AUTH|CLI_AUTH", key)
                   and not key.endswith("_FILE")}
    for name, key, value in _environment_items():
        if key in secret_keys:
            assert re.search(r"\$\{[A-Z0-9_]+:\?", value), f"{name}: {key} is {value!r}, not a secret from .env"
    database = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert ":${POSTGRES_PASSWORD:?" in database
    reliability.refused("deployment", "fixed JWT secret and default MinIO/Postgres/redis credentials in compose",
                        "every secret from a generated .env", f"secrets read from .env: {sorted(secrets_used)}")


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


# --- the UI login: Airflow's simple auth manager, given what airflow-init writes ---------------------------------

PASSWORDS_SCRIPT = REPO / "docker" / "simple_auth_passwords.py"
LOGIN = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_auth_manager

manager = create_auth_manager()
manager.init()
with TestClient(manager.get_fastapi_app()) as client:
    codes = [client.post("/token", json={"username": "airflow", "password": password}).status_code
             for password in sys.argv[1:]]
print(json.dumps(codes))
"""


def _write_passwords(passwords_file: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = SERVICES["airflow-init"]["environment"]
    script_env = {"PATH": os.environ["PATH"],
                  "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"],
                  "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file), **overrides}
    return subprocess.run([sys.executable, str(PASSWORDS_SCRIPT)], env=script_env, capture_output=True, text=True)


def test_airflow_init_writes_the_passwords_file_the_api_server_reads() -> None:
    init, api = SERVICES["airflow-init"], SERVICES["airflow-apiserver"]
    assert "python /opt/sm-explain/simple_auth_passwords.py" in runs(init)[-1]
    assert _image("deployment").copies["/opt/sm-explain/simple_auth_passwords.py"] == "docker/simple_auth_passwords.py"
    passwords_file = Path(api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(passwords_file)
    assert init["environment"]["AIRFLOW_UI_PASSWORD"] == f"${{AIRFLOW_UI_PASSWORD:?{SECRET_REFERENCE}}}"
    assert "AIRFLOW_UI_PASSWORD" not in api["environment"]
    volume = f"airflow-auth:{passwords_file.parent}"
    assert volume in init["volumes"] and volume in api["volumes"]
    # Root writes the file and the migration's logs: the hand-over to airflow comes after everything it writes.
    script = [line for line in runs(init)[-1].splitlines() if line.strip()]
    assert script[-1] == f'chown -R "$${{AIRFLOW_UID}}:0" /opt/airflow/logs {passwords_file.parent}'


def test_the_ui_password_in_env_is_the_one_airflow_accepts(tmp_path: Path) -> None:
    api_env = SERVICES["airflow-apiserver"]["environment"]
    password = generated()["AIRFLOW_UI_PASSWORD"]
    passwords_file = tmp_path / Path(api_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).name
    written = _write_passwords(passwords_file, AIRFLOW_UI_PASSWORD=password)
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    content = passwords_file.read_text()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__API_AUTH__JWT_SECRET": generated()["AIRFLOW_JWT_SECRET"],
           **{key: api_env[key] for key in ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS")},
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file)}
    login = subprocess.run([sys.executable, "-W", "ignore", "-c", LOGIN, password, password + "x"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert login.returncode == 0, login.stderr[-3000:]
    assert json.loads(login.stdout.splitlines()[-1]) == [201, 401]
    assert passwords_file.read_text() == content, "Airflow generated a password of its own"


@pytest.mark.reliability
def test_the_passwords_script_refuses_a_second_user_and_a_short_password(tmp_path: Path, reliability) -> None:
    passwords_file = tmp_path / "passwords.json"
    two_users = _write_passwords(passwords_file, AIRFLOW_UI_PASSWORD="x" * 20,
                                 AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="airflow:admin,bob:viewer")
    short = _write_passwords(passwords_file, AIRFLOW_UI_PASSWORD="short")
    assert two_users.returncode == 2 and "exactly one user" in two_users.stderr
    assert short.returncode == 2 and "AIRFLOW_UI_PASSWORD has 5 characters" in short.stderr
    assert not passwords_file.exists()
    reliability.refused("deployment", "airflow-init with two simple-auth users, or a 5-character UI password",
                        "refused naming the variable; no passwords file written",
                        f"{two_users.stderr.strip()} / {short.stderr.strip()}")


# --- the stand-ins for AWS, run here: healthchecks and seed-versions --------------------------------------------


@pytest.mark.stack
def test_the_stand_ins_healthchecks_pass_against_the_real_servers(local_stack) -> None:
    for name, live in (("sagemaker-local", local_stack.sagemaker_endpoint), ("moto", local_stack.s3_endpoint)):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "curl", "--fail"]
        checked = urlparse(test[-1])
        assert checked.hostname == "127.0.0.1" and checked.port in _listening_ports(SERVICES[name])
        live_url = urlparse(live)._replace(path=checked.path).geturl()
        with urllib.request.urlopen(live_url, timeout=10) as response:  # curl --fail: any 2xx
            assert 200 <= response.status < 300, f"{name}: {live_url} answered {response.status}"


def _seed_script(seed_dir: Path, download: Path) -> str:
    script = SERVICES["seed-versions"]["command"][0].replace("$$", "$")
    for container, local in (("/opt/runtime-venv/bin/python", sys.executable),
                             ("/opt/sm-explain/scripts/seed_versions.py", str(REPO / "scripts" / "seed_versions.py")),
                             ("/seed-data", str(seed_dir)), ("/tmp/adult.data", str(download))):
        script = script.replace(container, local)
    return script


def _run_seed(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    seed_dir = tmp_path / "seed-data"
    seed_dir.mkdir(exist_ok=True)
    entrypoint = _argv(SERVICES["seed-versions"]["entrypoint"])
    assert entrypoint == ["/bin/bash", "-euo", "pipefail", "-c"]
    return subprocess.run(["bash", *entrypoint[1:], _seed_script(seed_dir, tmp_path / "download")],
                          env={**os.environ, "SEED_SOURCE_URL": "", "SEED_SOURCE_SHA256": "", **env},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.stack
def test_seed_versions_loads_the_raw_versions_from_the_mounted_data(local_stack, adult_data_path: Path,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "seed-data").mkdir()
    (tmp_path / "seed-data" / "adult.data").symlink_to(adult_data_path)
    result = _run_seed(tmp_path)
    assert result.returncode == 0, result.stderr
    env = SERVICES["airflow-scheduler"]["environment"]
    listed = boto3.client("s3").list_objects_v2(Bucket=env["SM_EXPLAIN_BUCKET"], Prefix=f"{env['SM_EXPLAIN_PREFIX']}/raw/")
    keys = {item["Key"] for item in listed.get("Contents", [])}
    versions = weekly_versions(dt.date(2026, 11, 22), 3)
    assert {f"{env['SM_EXPLAIN_PREFIX']}/raw/{version}/adult.data" for version in versions} <= keys


@pytest.mark.reliability
def test_seed_versions_refuses_plain_http_and_data_of_another_checksum(tmp_path: Path, adult_data_path: Path,
                                                                       reliability) -> None:
    http = _run_seed(tmp_path, SEED_SOURCE_URL="http://example.invalid/adult.data")
    assert http.returncode == 2 and "only https:// is fetched" in http.stderr
    assert not (tmp_path / "download").exists()
    (tmp_path / "seed-data" / "adult.data").symlink_to(adult_data_path)
    other = _run_seed(tmp_path, SEED_SOURCE_SHA256="0" * 64)
    assert other.returncode == 2 and f"does not match the expected {'0' * 64}" in other.stderr
    missing = tmp_path / "empty"
    missing.mkdir()
    absent = subprocess.run(["bash", "-euo", "pipefail", "-c", _seed_script(missing, tmp_path / "download")],
                            env={**os.environ, "SEED_SOURCE_URL": "", "SEED_SOURCE_SHA256": ""},
                            capture_output=True, text=True)
    assert absent.returncode == 2 and "no seed data at" in absent.stderr
    reliability.refused("deployment", "seed-versions with an http:// SEED_SOURCE_URL, a wrong SEED_SOURCE_SHA256, "
                        "no data mounted", "each refused before anything is fetched or uploaded, naming the problem",
                        f"{http.stderr.strip()} / {other.stderr.strip()} / {absent.stderr.strip()}")
