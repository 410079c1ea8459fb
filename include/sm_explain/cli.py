"""The shared shape of every runtime entry point: `--request R.json --result S.json`, exit 0 with the result,
exit 2 with `{"error": {...}}` for bad input, any other exit (with a traceback) for unexpected failures."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sm_explain.errors import BadRequest

EXIT_BAD_INPUT = 2


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """A reader never sees half a result file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def run_cli(argv: Sequence[str] | None, description: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Parse the two paths, call `handler(request)`, write the result; returns the process exit code."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--request", required=True, type=Path, help="JSON request file")
    parser.add_argument("--result", required=True, type=Path, help="where the JSON result is written")
    args = parser.parse_args(argv)
    try:
        try:
            request = json.loads(args.request.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read the request file {args.request}: {exc}") from exc
        if not isinstance(request, dict):
            raise BadRequest(f"the request in {args.request} must be a JSON object")
        result = handler(request)
    except BadRequest as exc:
        _write_json_atomically(args.result, {"error": {"type": type(exc).__name__, "message": str(exc)}})
        print(f"bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _write_json_atomically(args.result, result)
    return 0
