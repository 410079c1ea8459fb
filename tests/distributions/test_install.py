"""Each distribution installs from its source into a fresh venv, as a user's `pip install` does, and works there.

Built as wheels (not editable), so a subpackage or entry point the packaging misses fails here, not in a user's
deployment. uv resolves from its cache (filled by `make setup`), under the same pins as the tested environments.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(UV is None, reason="uv builds the fresh venvs (`.ci/run` installs it)")]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True,
         ) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert completed.returncode == 0, f"{args}:\n{completed.stdout}\n{completed.stderr}"
    return completed


def _fresh_venv(tmp_path: Path, *install: str) -> Path:
    venv = tmp_path / "venv"
    _run([UV, "venv", "-q", "-p", sys.executable, str(venv)], cwd=tmp_path)
    _run([UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *install], cwd=REPO)
    return venv


def _clean_env(tmp_path: Path, venv: Path) -> dict[str, str]:
    """No PYTHONPATH, no repository on the path: only what the venv holds."""
    return {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path),
            "AIRFLOW_HOME": str(tmp_path / "airflow"), "AWS_DEFAULT_REGION": "us-east-1"}


def _found(venv: Path, tmp_path: Path, modules: list[str]) -> dict[str, str | None]:
    probe = ("import importlib.util, json, sys; print(json.dumps({m: (lambda s: s and s.origin)"
             "(importlib.util.find_spec(m)) for m in sys.argv[1:]}))")
    out = _run([str(venv / "bin" / "python"), "-c", probe, *modules], cwd=tmp_path, env=_clean_env(tmp_path, venv))
    return json.loads(out.stdout)


def test_the_contracts_install_alone_with_nothing_else(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, "./contracts")
    found = _found(venv, tmp_path, ["sm_explain_contracts.versions", "sm_explain_contracts.safe_keys"])
    assert all(origin and str(venv) in origin for origin in found.values()), found
    freeze = _run([UV, "pip", "freeze", "--python", str(venv / "bin" / "python")], cwd=tmp_path).stdout
    names = [line.split("==")[0].split(" @ ")[0] for line in freeze.splitlines() if line.strip()]
    assert names == ["sm-explain-contracts"]  # standard library only: nothing else came with it


def test_the_provider_installs_and_airflow_lists_it_with_its_links_and_notifier(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, "-c", "constraints/airflow-3.3.2-python-3.11.txt", "./contracts", ".")
    env = _clean_env(tmp_path, venv)
    found = _found(venv, tmp_path, ["sm_explain_ops.training_request.build", "sm_explain_ops.triggers.training_rules",
                                    "sm_explain", "sm_local", "smdebug", "pytest", "moto"])
    assert str(venv) in found["sm_explain_ops.training_request.build"], found
    assert str(venv) in found["sm_explain_ops.triggers.training_rules"], found
    # Neither the runtime, the local endpoint nor any test tool comes with the provider.
    assert [m for m in ("sm_explain", "sm_local", "smdebug", "pytest", "moto") if found[m]] == []
    airflow = str(venv / "bin" / "airflow")
    providers = json.loads(_run([airflow, "providers", "list", "-o", "json"], cwd=tmp_path, env=env).stdout)
    ours = [p for p in providers if p["package_name"] == "sm-explain-ops"]
    assert ours and ours[0]["version"] == "0.1.0", providers
    links = _run([airflow, "providers", "links", "-o", "json"], cwd=tmp_path, env=env).stdout
    assert "sm_explain_ops.links.TrainingJobLink" in links
    notifiers = _run([airflow, "providers", "notifications", "-o", "json"], cwd=tmp_path, env=env).stdout
    assert "sm_explain_ops.notifiers.rule_alert.SnsRuleAlertNotifier" in notifiers


def test_the_runtime_installs_without_the_local_endpoint_and_refuses_a_bad_request(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, "-c", "include/runtime-requirements.txt", "./contracts", "./include")
    found = _found(venv, tmp_path, ["sm_staging.__main__", "sm_explain.report", "sm_local", "pytest", "airflow"])
    assert str(venv) in found["sm_staging.__main__"] and str(venv) in found["sm_explain.report"], found
    assert [m for m in ("sm_local", "pytest", "airflow") if found[m]] == []
    (tmp_path / "request.json").write_text("{}")
    completed = _run([str(venv / "bin" / "python"), "-m", "sm_staging", "--request", "request.json",
                      "--result", "result.json"], cwd=tmp_path, env=_clean_env(tmp_path, venv), check=False)
    assert completed.returncode == 2, completed.stderr
    error = json.loads((tmp_path / "result.json").read_text())["error"]
    assert error["type"] == "StagingInputError" and "the request has no 'source'" in error["message"], error


def test_the_local_endpoint_installs_with_its_command(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, "-c", "include/runtime-requirements.txt", "./contracts", "./local_endpoint")
    found = _found(venv, tmp_path, ["sm_local.server", "sm_local.xgboost_container.train", "sm_local.rules"])
    assert all(origin and str(venv) in origin for origin in found.values()), found
    completed = _run([str(venv / "bin" / "sm-local-endpoint"), "--help"], cwd=tmp_path,
                     env=_clean_env(tmp_path, venv))
    assert "--state-dir" in completed.stdout
