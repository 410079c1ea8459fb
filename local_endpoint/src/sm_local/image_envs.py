"""The local stand-in for pulling a built-in XGBoost image: one virtual environment per image version.

SageMaker runs each image version with its own xgboost (and smdebug); a model trained "by 1.7-1" under
another xgboost is a different model, saved in a different format. So the local endpoint runs the algorithm
of image V in an environment pinned to V's libraries (`sm_explain_contracts.images.IMAGES[V].requirements`), built on
first use and cached, as an image pull is. `make setup` builds the default version ahead of time:

    python -m sm_local.image_envs pull 1.7-1      # or --all; `list` shows what is cached

Environments live in `$SM_LOCAL_IMAGE_CACHE` (default `<repo>/.venv-images/`), one directory per version,
complete only once its marker file holds exactly the requirements it was built from: a build that was
interrupted, or a table that changed, means a rebuild. A lock per version lets concurrent jobs share one
build. The installer is uv when it is on PATH, else venv + pip; it is stopped
with the job (it runs in the job's process group), and is given `SM_LOCAL_IMAGE_BUILD_TIMEOUT_SECONDS` (default 1800) at most.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sm_explain_contracts.images import IMAGES, XGBOOST_VERSIONS, ImageVersion

CACHE_ENV = "SM_LOCAL_IMAGE_CACHE"
TIMEOUT_ENV = "SM_LOCAL_IMAGE_BUILD_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 1800.0
MARKER = "sm-local-image.json"
_OUTPUT_TAIL_LINES = 12
_LOCK_POLL_SECONDS = 0.5

Progress = Callable[[str], None]
Check = Callable[[], None]  # raises to abandon the build (a stopped job)


class ImagePullError(RuntimeError):
    """An image's environment could not be built here; the message says which and why."""


@dataclass(frozen=True)
class ImageEnvironment:
    image: ImageVersion
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def cache_dir() -> Path:
    """Where pulled images live: `SM_LOCAL_IMAGE_CACHE` (the Makefile and the tests set the repository's
    .venv-images), else the user's cache, like a container engine's image store (never inside the package)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sm-local" / "images"


def _image(version: str) -> ImageVersion:
    try:
        return IMAGES[version]
    except KeyError:
        raise ImagePullError(
            f"XGBoost image version {version!r} is unknown; versions: {', '.join(XGBOOST_VERSIONS)}."
        ) from None


def environment(version: str) -> ImageEnvironment:
    """Where version's environment lives, built or not."""
    return ImageEnvironment(_image(version), cache_dir() / f"sagemaker-xgboost-{version}")


def _expected_marker(image: ImageVersion) -> dict[str, object]:
    return {"version": image.version, "requirements": list(image.requirements), "python": _base_python_version()}


def _base_python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def is_ready(version: str) -> bool:
    env = environment(version)
    try:
        marker = json.loads((env.root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == _expected_marker(env.image) and env.python.exists()


def ensure(version: str, progress: Progress = print, check: Check | None = None) -> ImageEnvironment:
    """version's environment, built first when it is missing or stale; ImagePullError when it cannot be."""
    env = environment(version)
    if is_ready(version):
        return env
    env.root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(env.root.with_name(env.root.name + ".lock"), progress, check):
        if is_ready(version):  # another job built it while this one waited
            progress(f"Image sagemaker-xgboost:{version} is ready (built by another job)")
            return env
        _build(env, progress, check)
    return env


@contextlib.contextmanager
def _locked(path: Path, progress: Progress, check: Check | None) -> Iterator[None]:
    with path.open("a") as handle:
        waiting_said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not waiting_said:
                progress(f"Waiting for another job that is building {path.stem}")
                waiting_said = True
            if check is not None:
                check()
            time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(env: ImageEnvironment, progress: Progress, check: Check | None) -> None:
    image = env.image
    started = time.monotonic()
    progress(
        f"Pulling image sagemaker-xgboost:{image.version}: building its environment in {env.root} "
        f"({', '.join(image.requirements)})"
    )
    for note in image.substitutions:
        progress(f"  differs from the image: {note}")
    shutil.rmtree(env.root, ignore_errors=True)
    deadline = started + float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS)
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    uv = shutil.which("uv")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="requirements-", delete=False) as requirements:
        requirements.write("\n".join(image.requirements) + "\n")
    try:
        if uv:
            steps = [
                [uv, "venv", "--quiet", "--python", base_python, str(env.root)],
                [uv, "pip", "install", "--python", str(env.python), "--no-progress", "-r", requirements.name],
            ]
        else:
            steps = [
                [base_python, "-m", "venv", str(env.root)],
                [str(env.python), "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                 "--disable-pip-version-check", "-r", requirements.name],
            ]
        for command in steps:
            _run(command, image, progress, check, deadline)
        _verify(env)
    except BaseException:
        shutil.rmtree(env.root, ignore_errors=True)
        raise
    finally:
        os.unlink(requirements.name)
    (env.root / MARKER).write_text(json.dumps(_expected_marker(image), indent=1) + "\n")
    progress(f"Image sagemaker-xgboost:{image.version} is ready ({time.monotonic() - started:.0f} s)")


def _run(command: list[str], image: ImageVersion, progress: Progress, check: Check | None, deadline: float) -> None:
    """One installer step, its output passed on line by line; stopped with the job or at the deadline."""
    environment_vars = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=environment_vars, text=True, errors="replace",
    )  # in the caller's process group: a job stopped or killed as a group takes its installer along
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip()[:500])
        lines.put(None)

    reader = threading.Thread(target=read, name="image-build-output", daemon=True)
    reader.start()
    tail: deque[str] = deque(maxlen=_OUTPUT_TAIL_LINES)
    try:
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                tail.append(line)
                progress(f"  {line}")
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise ImagePullError(
                    f"Could not pull image sagemaker-xgboost:{image.version}: building its environment took "
                    f"longer than {TIMEOUT_ENV} allows."
                )
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
    if process.returncode != 0:
        if check is not None:
            check()  # killed because the job is being stopped: that is a stop, not a failed pull
        last = " | ".join(line for line in tail if line.strip())
        raise ImagePullError(
            f"Could not pull image sagemaker-xgboost:{image.version}: the local endpoint could not build its "
            f"environment ({image.requirements[0]}, Python {_base_python_version()}): "
            f"{Path(command[0]).name} exited with code {process.returncode}: {last}"
        )


def _verify(env: ImageEnvironment) -> None:
    """The environment imports the image's xgboost (and smdebug): proof that it can run the algorithm."""
    image = env.image
    script = "import xgboost; print(xgboost.__version__)"
    if image.smdebug:
        script += "; import smdebug; print(smdebug.__version__)"
    completed = subprocess.run(
        [str(env.python), "-I", "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=300
    )
    versions = completed.stdout.split()
    expected = [image.xgboost] + ([image.smdebug] if image.smdebug else [])
    if completed.returncode != 0 or versions != expected:
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImagePullError(
            f"Could not pull image sagemaker-xgboost:{image.version}: its environment was built but imports "
            f"{versions or 'nothing'} instead of xgboost {' and smdebug '.join(expected)} ({detail})."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sm_local.image_envs",
        description="Build (pull) or list the local environments of SageMaker's built-in XGBoost images.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pull = commands.add_parser("pull", help="build the environments of these image versions unless cached")
    pull.add_argument("versions", nargs="*", metavar="VERSION", help=f"one of {', '.join(XGBOOST_VERSIONS)}")
    pull.add_argument("--all", action="store_true", help="every version")
    commands.add_parser("list", help="each version, whether it is built, and where")
    args = parser.parse_args(argv)
    if args.command == "list":
        for version in XGBOOST_VERSIONS:
            env = environment(version)
            state = "ready" if is_ready(version) else "not pulled"
            print(f"{version:7} xgboost {env.image.xgboost:6} {state:10} {env.root}")
        return 0
    versions = list(XGBOOST_VERSIONS) if args.all else args.versions
    if not versions:
        parser.error("name at least one VERSION, or --all")
    for version in versions:
        try:
            ensure(version, progress=lambda line: print(line, flush=True))
        except ImagePullError as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
