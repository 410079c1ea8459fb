"""Run a runtime-environment CLI (``python -m <module> --request R --result S``) from an Airflow task.

smdebug, shap, xgboost and pandas-heavy work cannot live beside Airflow 3, so operators hand a small
JSON request to a module of the runtime distribution (``include/``) run by the runtime interpreter, stream its output into the
task log and return its small JSON result (contract: docs/architecture.md, "Runtime entry points").
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore import utils as botocore_utils
from botocore.exceptions import BotoCoreError

from sm_explain_contracts.envelope import EXIT_BAD_INPUT, bad_input_message, read_result

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
_TAIL_LINES = 30
_LINE_CHARS = 8192  # longest line copied to the task log; the rest of a longer one is dropped
_KILL_GRACE_SECONDS = 10
# What the child inherits besides AWS_* and SM_EXPLAIN_*: enough to run Python and reach endpoints,
# not the worker's Airflow configuration (which can hold secrets the runtime has no use for).
_INHERITED = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "OMP_NUM_THREADS",
    "MPLCONFIGDIR",
)
_INHERITED_PREFIXES = ("AWS_", "SM_EXPLAIN_", "SMDEBUG_")


class RuntimeTaskError(AirflowException):
    """The runtime process failed unexpectedly (crash, signal, timeout, no result)."""


class RuntimeInputError(RuntimeTaskError, AirflowFailException, ValueError):
    """The runtime process refused its input (exit 2); a retry cannot fix it, so no retries."""


def runtime_python() -> Path:
    """The runtime interpreter: ``SM_EXPLAIN_RUNTIME_PYTHON`` or ``<repo>/.venv-runtime/bin/python``."""
    configured = os.environ.get("SM_EXPLAIN_RUNTIME_PYTHON")
    python = Path(configured) if configured else REPO / ".venv-runtime" / "bin" / "python"
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise RuntimeTaskError(
            f"the runtime Python interpreter {python} does not exist or is not executable: "
            "run `make setup` to build .venv-runtime, or set SM_EXPLAIN_RUNTIME_PYTHON to the runtime "
            "environment's python"
        )
    return python


def include_dir() -> Path | None:
    """An extra directory of runtime packages (``SM_EXPLAIN_INCLUDE_DIR``), or None.

    The runtime modules normally come from the runtime environment itself, where the sm-explain-runtime
    distribution is installed; a deployment that ships them as a plain folder instead names it here."""
    configured = os.environ.get("SM_EXPLAIN_INCLUDE_DIR")
    return Path(configured) if configured else None


def _endpoint_env_name(service: str) -> str:
    """boto3's per-service endpoint variable (``logs`` -> ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``),
    derived with botocore's own service-id tables."""
    name = botocore_utils.SERVICE_NAME_ALIASES.get(service, service)
    service_id = botocore_utils.CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(name, name)
    return "AWS_ENDPOINT_URL_" + service_id.replace("-", "_").upper()


def aws_env_from_connection(aws_hook: Any) -> dict[str, str]:
    """Credentials, region and endpoints resolved from the hook's Airflow AWS connection, as the
    standard environment variables boto3 in the runtime process reads.

    ``aws_hook`` is any provider AWS hook (``AwsGenericHook`` subclass). Connection extras
    ``endpoint_url`` and ``service_config: {"s3": {"endpoint_url": ...}}`` become ``AWS_ENDPOINT_URL``
    and ``AWS_ENDPOINT_URL_S3`` etc. What the connection does not set is left to the runtime's own
    default chain (the inherited environment)."""
    env: dict[str, str] = {}
    config = aws_hook.conn_config
    try:
        credentials = aws_hook.get_credentials(region_name=aws_hook.region_name)
    except (AttributeError, BotoCoreError) as error:  # no credentials anywhere: the session returns None
        log.warning("No AWS credentials resolved from the connection (%s); the runtime uses its own.", error)
        credentials = None
    if credentials is not None:
        env["AWS_ACCESS_KEY_ID"] = credentials.access_key
        env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key
        if credentials.token:
            env["AWS_SESSION_TOKEN"] = credentials.token
    region = aws_hook.region_name or aws_hook.get_session().region_name
    if region:
        env["AWS_DEFAULT_REGION"] = region
        env["AWS_REGION"] = region
    if config.endpoint_url:
        env["AWS_ENDPOINT_URL"] = config.endpoint_url
    for service, service_config in (config.service_config or {}).items():
        endpoint = (service_config or {}).get("endpoint_url")
        if endpoint:
            env[_endpoint_env_name(service)] = endpoint
    if isinstance(config.verify, str):
        env["AWS_CA_BUNDLE"] = config.verify
    return env


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _INHERITED or key.startswith(_INHERITED_PREFIXES)
    }
    env.update(extra or {})
    extra_dir = include_dir()
    if extra_dir is not None:
        existing = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(extra_dir) + (os.pathsep + existing if existing else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pump(stream: IO[str], name: str, tail: deque[str] | None) -> None:
    """Copy the child's lines into the task log as they come (and keep the last ones for errors).

    Memory stays bounded: a line is read at most ``_LINE_CHARS`` at a time, and what a longer line holds past that is
    read and dropped (the log says how much), so a child printing megabytes without a newline costs no more."""
    while True:
        line = stream.readline(_LINE_CHARS)
        if not line:
            break
        text = line.rstrip("\n")
        if not line.endswith("\n"):
            dropped = 0
            while True:
                more = stream.readline(_LINE_CHARS)
                dropped += len(more.rstrip("\n"))
                if not more or more.endswith("\n"):
                    break
            if dropped:
                text += f" ... [{dropped} more characters, cut]"
        log.info("[%s] %s", name, text)
        if tail is not None:
            tail.append(text)
    stream.close()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_runtime_module(
    module: str,
    request: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``<runtime python> -m <module> --request R --result S`` and return the result dict.

    Raises :class:`RuntimeInputError` (a ``ValueError``) with the child's message on exit 2, and
    :class:`RuntimeTaskError` with the last stderr lines on any other failure."""
    python = runtime_python()
    with tempfile.TemporaryDirectory(prefix=f"sm-explain-{module}-") as work:
        request_path = Path(work) / "request.json"
        result_path = Path(work) / "result.json"
        request_path.write_text(json.dumps(request, indent=2), encoding="utf-8")
        command = [str(python), "-m", module, "--request", str(request_path), "--result", str(result_path)]
        log.info("Running the runtime module: %s -m %s", python, module)
        process = subprocess.Popen(
            command,
            env=_child_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            cwd=work,
        )
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        pumps = [
            threading.Thread(target=_pump, args=(process.stdout, module, None), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, module, tail), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise RuntimeTaskError(
                f"`python -m {module}` did not finish within {timeout:g} s and was stopped"
            ) from None
        finally:
            _stop(process)  # also when the task itself is interrupted or killed
            for pump in pumps:
                pump.join(timeout=_KILL_GRACE_SECONDS)

        result = read_result(result_path)
        if returncode == EXIT_BAD_INPUT:
            message = bad_input_message(result)
            raise RuntimeInputError(message or f"`python -m {module}` refused its input: " + " | ".join(tail))
        if returncode != 0:
            how = (
                f"was killed by signal {-returncode}"
                if returncode < 0
                else f"failed with exit code {returncode}"
            )
            details = "\n".join(tail) or "(no output on stderr)"
            raise RuntimeTaskError(f"`python -m {module}` {how}; last stderr lines:\n{details}")
        if not isinstance(result, dict):
            raise RuntimeTaskError(
                f"`python -m {module}` exited 0 but wrote no JSON object to {result_path.name}"
            )
        return result
