"""`sm_local.image_envs`, the local image pull, as `make setup` and concurrent jobs use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Starts real processes (runtime CLIs, the endpoint, image environments): not in `make test-fast`.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
VERSION = "3.0-5"  # the smallest environment


def _pull(cache: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SM_LOCAL_IMAGE_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "sm_local.image_envs", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(cache: Path, *args: str) -> str:
    process = _pull(cache, *args)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def test_two_jobs_pulling_at_once_share_one_build_and_a_stale_one_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "images"
    first, second = _pull(cache, "pull", VERSION), _pull(cache, "pull", VERSION)
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert sum(output.count(f"Pulling image sagemaker-xgboost:{VERSION}") for output in outputs) == 1, outputs
    assert "xgboost-cpu: the same release without the GPU libraries" in "".join(outputs)
    assert f"{VERSION:7} xgboost 3.0.5  ready" in _run(cache, "list")
    python = cache / f"sagemaker-xgboost-{VERSION}" / "bin" / "python"
    version = subprocess.run([str(python), "-I", "-c", "import xgboost; print(xgboost.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "3.0.5"

    # Already pulled: nothing to do.
    assert "Pulling image" not in _run(cache, "pull", VERSION)
    # A marker of other requirements (the table changed, or a build was cut short) means a rebuild.
    marker = cache / f"sagemaker-xgboost-{VERSION}" / "sm-local-image.json"
    stale = json.loads(marker.read_text())
    marker.write_text(json.dumps({**stale, "requirements": ["xgboost-cpu==3.0.4"]}))
    assert f"Pulling image sagemaker-xgboost:{VERSION}" in _run(cache, "pull", VERSION)
    assert json.loads(marker.read_text()) == stale


def test_an_unknown_version_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    process = _pull(tmp_path, "pull", "1.6-1")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "XGBoost image version '1.6-1' is unknown; versions: 0.90-1, 0.90-2, 1.0-1" in output


def test_pulled_images_live_in_the_configured_cache_or_the_users_never_in_the_package(
    tmp_path: Path, monkeypatch) -> None:
    import sm_local
    from sm_local.image_envs import cache_dir

    monkeypatch.setenv("SM_LOCAL_IMAGE_CACHE", str(tmp_path / "images"))
    assert cache_dir() == tmp_path / "images"
    monkeypatch.delenv("SM_LOCAL_IMAGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "sm-local" / "images"
    assert not cache_dir().is_relative_to(Path(sm_local.__file__).resolve().parents[1])
