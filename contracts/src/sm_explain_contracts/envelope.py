"""The runtime entry points' contract with the Airflow side, and the one way files are written whole.

Every runtime module (`python -m sm_staging`, `sm_explain`, `sm_explain.report`, `sm_explain.compare`) runs as
`<runtime python> -m <module> --request REQUEST.json --result RESULT.json`:
- exit 0: RESULT.json is the result, a small JSON object;
- exit 2 (`EXIT_BAD_INPUT`): RESULT.json is `{"error": {"type": "<Exception>", "message": "<names the problem>"}}`;
- any other exit: an unexpected failure, its traceback on stderr.
`run_cli` is that entry point's body; the Airflow side (`sm_explain_ops.runtime`) reads the result with
`read_result`. Result, status and record files are replaced whole (`write_json_atomic`, `write_bytes_atomic`):
a reader never sees half of one.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
#: How a refused request starts its termination message (SageMaker's `/opt/ml/output/message`, shown as the
#: processing job's ExitMessage and FailureReason): the Airflow side reads it as "bad input, do not retry".
BAD_INPUT_MESSAGE_PREFIX = "sm-explain bad input: "
#: SageMaker keeps at most this much of a termination message.
TERMINATION_MESSAGE_LIMIT = 1024
#: The local endpoint's stand-in for `/opt/ml` in its processing containers.
LOCAL_OPT_ML_ENV = "SM_LOCAL_OPT_ML"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 1) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=indent, sort_keys=True).encode("utf-8"))


def error_result(error: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(error).__name__, "message": str(error)}}


def run_cli(
    argv: Sequence[str] | None,
    description: str,
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    bad_input: type[Exception] | tuple[type[Exception], ...],
) -> int:
    """Parse the two paths, call `handler(request)`, write the result; returns the process exit code.

    `bad_input` is the module's bad-request exception: it ends in exit 2 with its message in the result. A request
    file that is not a JSON object is bad input too. Anything else propagates (a traceback, a non-2 exit).
    """
    refused: tuple[type[Exception], ...] = (_BadRequestFile, *(bad_input if isinstance(bad_input, tuple) else (bad_input,)))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--request", required=True, type=Path, help="JSON request file")
    parser.add_argument("--result", required=True, type=Path, help="where the JSON result is written")
    args = parser.parse_args(argv)
    try:
        try:
            request = json.loads(args.request.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _BadRequestFile(f"cannot read the request file {args.request}: {exc}") from exc
        if not isinstance(request, dict):
            raise _BadRequestFile(f"the request in {args.request} must be a JSON object")
        result = handler(request)
    except refused as exc:
        payload = error_result(exc)
        if isinstance(exc, _BadRequestFile):
            payload["error"]["type"] = "BadRequest"
        write_json_atomic(args.result, payload, indent=2)
        write_termination_message(BAD_INPUT_MESSAGE_PREFIX + str(exc))
        print(f"bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_json_atomic(args.result, result, indent=2)
    return 0


def termination_message_path() -> Path | None:
    """`/opt/ml/output/message` when this process is a SageMaker container (the local endpoint's stand-in for
    `/opt/ml`, else a real `/opt/ml` that holds the job's `config/`), None on an Airflow worker, where nothing
    reads it and `/opt/ml` is no place to write."""
    local = os.environ.get(LOCAL_OPT_ML_ENV)
    opt_ml = Path(local) if local else Path("/opt/ml")
    if local or (opt_ml / "config").is_dir():
        return opt_ml / "output" / "message"
    return None


def write_termination_message(message: str) -> None:
    """Write `message` (cut to SageMaker's limit) as the container's termination message, when in one."""
    path = termination_message_path()
    if path is None:
        return
    data = message.encode("utf-8")[:TERMINATION_MESSAGE_LIMIT].decode("utf-8", errors="ignore")
    try:
        write_bytes_atomic(path, data.encode("utf-8"))
    except OSError as error:  # the exit code and the result file still say it; the job's reason is vaguer
        print(f"could not write the termination message {path}: {error}", file=sys.stderr)


def bad_input_from_termination_message(text: str | None) -> str | None:
    """The runtime's own message when a job's ExitMessage or FailureReason carries a bad-input termination
    message, else None."""
    if not text or BAD_INPUT_MESSAGE_PREFIX not in text:
        return None
    return text.split(BAD_INPUT_MESSAGE_PREFIX, 1)[1].strip()


class _BadRequestFile(Exception):
    """The request file itself is unreadable or not a JSON object."""


def read_result(path: Path) -> Any:
    """The result file's JSON, or None when it is missing or not JSON (the child crashed before writing it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def bad_input_message(result: Any) -> str | None:
    """The message of an exit-2 result, or None when the file does not hold one."""
    error = result.get("error") if isinstance(result, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


def exit_process(code: int) -> NoReturn:
    """End a runtime module's process with `code`, without the interpreter's teardown when nothing else runs.

    A process that loaded shap, matplotlib, numba and pandas (about 2,600 modules) spends over a second and a half
    tearing them down after its result is written, on every job. With no other non-daemon thread alive, this runs
    what a normal exit would have to run (the atexit handlers: logging's flush, multiprocessing's joins, the trial
    copy's removal), flushes stdout and stderr and ends the process; otherwise it exits normally, which waits for
    those threads."""
    others = [thread for thread in threading.enumerate()
              if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()  # the public atexit has no "run them now"; this is what the interpreter calls
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code)

