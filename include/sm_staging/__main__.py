"""``python -m sm_staging --request REQUEST.json --result RESULT.json`` (contract: docs/architecture.md).

Exit 0 with the result, exit 2 with ``{"error": {...}}`` for bad input; anything else is a crash
whose traceback goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sm_staging.errors import StagingInputError
from sm_staging.stage import stage

EXIT_BAD_INPUT = 2


def _write_result(path: Path, payload: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sm_staging", description=__doc__)
    parser.add_argument("--request", required=True, type=Path, help="JSON request file")
    parser.add_argument("--result", required=True, type=Path, help="where to write the JSON result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    try:
        request = json.loads(args.request.read_text(encoding="utf-8"))
        result = stage(request)
    except (StagingInputError, json.JSONDecodeError) as error:
        message = (
            str(error) if isinstance(error, StagingInputError) else f"the request is not valid JSON: {error}"
        )
        print(f"bad input: {message}", file=sys.stderr)
        _write_result(args.result, {"error": {"type": type(error).__name__, "message": message}})
        return EXIT_BAD_INPUT
    print(
        f"staged {result['dataset_version']}: {result['rows']['train']} train / "
        f"{result['rows']['validation']} validation rows, {result['n_features']} features -> "
        f"{result['features_uri']}",
        file=sys.stderr,
    )
    _write_result(args.result, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
