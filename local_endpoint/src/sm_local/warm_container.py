"""A runtime-image container started ahead of its job: `python -m sm_local.warm_container`.

A cold container of the runtime image spends two to three seconds importing numpy, pandas, matplotlib, shap and
xgboost before its first line, which on two cores is most of what a local processing job costs beyond its work.
A spare processing supervisor (`sm_local.process.SpareSupervisors`) therefore starts one of these beside itself:
it imports those libraries, then waits on its stdin for one JSON line, the container's argv, environment and working
directory, and becomes that container (`runpy`, exactly as `python -m M` or `python FILE` would run it).

It stays true to a cold container because the supervisor only hands it a command it can run the same way
(`eligible`): the runtime interpreter with `-m MODULE` or a script path and nothing else, and an environment that
differs from the one it started with only in variables read at run time (`AWS_*`, `SM_*`), never in one that
Python or a preloaded library reads at start-up (`PYTHON*`, `OMP_*`, `MPLBACKEND`, `HOME`, ...). Anything else
gets a cold container. Preloading runs no code of the image's own packages, and the output of the preload is
discarded (the libraries print nothing there unless broken). It starts at nice 19, inherited from its spare
supervisor's preparation (`sm_local.supervision.supervisor_main`), so the spare refilled while a job runs costs that
job almost nothing, and it takes its supervisor's priority when it gets its job (`sm_local.priority.match_parent`), as
a cold container started then would have. It is the supervisor's child in its own session, as
a cold container is; it dies with the supervisor (`PR_SET_PDEATHSIG`) and ends at EOF without a job.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import re
import runpy
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import IO

from sm_local.priority import match_parent

#: Third-party libraries of the runtime image, imported ahead of the job (what its entry points import first).
PRELOADED_MODULES = ("numpy", "pandas", "pyarrow.parquet", "scipy.stats", "matplotlib", "matplotlib.pyplot",
                     "shap", "xgboost", "boto3", "botocore.session")
#: Variables that may differ between the warm container's start and its job: read by the job's code at run time.
RUN_TIME_ENV_PREFIXES = ("AWS_", "SM_")
MAX_JOB_LINE_BYTES = 4 * 1024 * 1024
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PR_SET_PDEATHSIG = 1


def eligible(command: Sequence[str], runtime_python: str, started_env: Mapping[str, str],
             job_env: Mapping[str, str]) -> bool:
    """Can a warm container started with `started_env` run `command` with `job_env` as a cold one would?"""
    if len(command) < 2 or command[0] != runtime_python:
        return False
    if command[1] == "-m":
        if len(command) < 3 or not _MODULE_NAME.fullmatch(command[2]):
            return False
    elif command[1].startswith("-") or not command[1].endswith(".py"):
        return False
    for key in set(started_env) | set(job_env):
        if not key.startswith(RUN_TIME_ENV_PREFIXES) and started_env.get(key) != job_env.get(key):
            return False
    return True


def job_line(command: Sequence[str], env: Mapping[str, str], cwd: str) -> bytes:
    """What the supervisor writes to a warm container's stdin to make it that container."""
    return json.dumps({"argv": list(command), "env": dict(env), "cwd": cwd}).encode("utf-8") + b"\n"


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop still ends it
        pass
    if os.getppid() != parent:  # the supervisor died before the call above took effect
        os._exit(0)


def _preload() -> None:
    """Import PRELOADED_MODULES with stdout and stderr on /dev/null (a missing one is the job's own error)."""
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    try:
        for name in PRELOADED_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001,S112 - the job's own import reports it
                continue
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def await_container(stream: IO[bytes]) -> tuple[list[str], dict[str, str], str] | None:
    """The handed-over (argv, env, cwd), or None at EOF (no job will come)."""
    line = stream.readline(MAX_JOB_LINE_BYTES)
    if not line.strip():
        return None
    handed = json.loads(line)
    return [str(part) for part in handed["argv"]], {str(k): str(v) for k, v in handed["env"].items()}, str(handed["cwd"])


def become(argv: list[str], env: dict[str, str], cwd: str) -> None:
    """Run the container command in this process, as the interpreter would run `argv[1:]`."""
    null = os.open(os.devnull, os.O_RDONLY)  # a cold container's stdin
    os.dup2(null, 0)
    os.close(null)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if argv[1] == "-m":
        sys.argv = [argv[2], *argv[3:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(argv[1]))
        runpy.run_path(argv[1], run_name="__main__")


def main() -> int:
    _die_with_parent()
    _preload()
    handed = await_container(sys.stdin.buffer)
    if handed is None:
        return 0
    try:  # a spare prepares at nice 19 (this container inherits that): run at the supervisor's priority now
        match_parent()
    except PermissionError as error:
        print(f"sm_local.warm_container: runs at nice {os.getpriority(os.PRIO_PROCESS, 0)}, not its supervisor's "
              f"({error.strerror})", file=sys.stderr)
    become(*handed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
