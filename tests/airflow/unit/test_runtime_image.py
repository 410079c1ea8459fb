"""docker/runtime.Dockerfile, the runtime image SageMaker Processing jobs run: what it installs and runs.

No Docker engine or registry here, so the file is read the way the builder reads it (continuation lines joined,
one instruction per line) and checked against the repository it is built from.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "docker" / "runtime.Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(" ", 1)[0].upper(), " ".join(line.split(" ", 1)[1].split()))
            for line in lines if line and not line.startswith("#")]


def _runs() -> str:
    return " && ".join(rest for instruction, rest in _instructions() if instruction == "RUN")


def test_the_image_is_python_3_11_as_the_runtime_environment_it_packages() -> None:
    arg = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-slim", DOCKERFILE.read_text(), re.M)
    assert arg and arg[1] == "3.11"
    assert [rest for instruction, rest in _instructions() if instruction == "FROM"] == ["${PYTHON_IMAGE} AS runtime"]


def test_it_installs_the_runtime_pins_then_the_contracts_and_the_runtime_and_nothing_else() -> None:
    runs = _runs()
    assert "pip install --no-cache-dir -r /tmp/runtime-requirements.txt" in runs
    installed = re.search(r"pip install --no-cache-dir --no-deps ((?:/tmp/sm-explain-src/\S+ ?)+)", runs)[1].split()
    assert installed == ["/tmp/sm-explain-src/contracts", "/tmp/sm-explain-src/include"]
    for absent in ("local_endpoint", "sm_local", "requirements-dev", "requirements-runtime-dev", "pytest", "moto",
                   "apache-airflow", "plugins"):
        assert absent not in " ".join(rest for _, rest in _instructions()), f"the runtime image installs {absent}"


def test_every_source_it_copies_or_mounts_exists() -> None:
    for instruction, rest in _instructions():
        if instruction == "COPY":
            source = [word for word in rest.split() if not word.startswith("--")][0]
            assert (REPO / source).is_file(), source
    for source in re.findall(r"--mount=type=bind,source=([^,\s]+)", _runs()):
        assert (REPO / source / "pyproject.toml").is_file(), f"{source} is not a distribution"


def test_the_runtime_pins_hold_no_test_tool_and_the_libraries_the_image_imports() -> None:
    pins = {re.split(r"[\[=<>~! ;]", line.strip(), maxsplit=1)[0].lower()
            for line in (REPO / "include" / "runtime-requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert not {name for name in pins if name.startswith(("pytest", "moto", "ruff"))}
    assert {"smdebug", "shap", "xgboost-cpu"} <= pins
    # xgboost's wheels need OpenMP, which slim images lack: installed before the pins.
    assert "apt-get install -y --no-install-recommends libgomp1" in _runs()


def test_its_entry_points_are_the_runtime_clis() -> None:
    instructions = dict(_instructions())
    assert shlex.split(instructions["ENTRYPOINT"].replace('"', "").strip("[]").replace(",", " ")) == ["python", "-m"]
    assert instructions["WORKDIR"] == "/opt/ml/processing"
    for module in ("sm_staging", "sm_explain", "sm_explain.report"):
        path = REPO / "include" / Path(*module.split("."))
        assert (path / "__main__.py").is_file() or path.with_suffix(".py").is_file(), module
        assert f"python -m {module} " in DOCKERFILE.read_text()
    assert "sm_staging.__main__, sm_explain.__main__, sm_explain.report" in _runs()  # checked at build time
