"""``python -m sm_staging --request REQUEST.json --result RESULT.json`` (contract: sm_explain_contracts.envelope).

Exit 0 with the result, exit 2 with ``{"error": {...}}`` for bad input; anything else is a crash
whose traceback goes to stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from sm_explain_contracts.envelope import exit_process, run_cli
from sm_staging.errors import StagingInputError
from sm_staging.stage import stage


def handle(request: dict[str, Any]) -> dict[str, Any]:
    result = stage(request)
    print(
        f"staged {result['dataset_version']}: {result['rows']['train']} train / "
        f"{result['rows']['validation']} validation rows, {result['n_features']} features -> "
        f"{result['features_uri']}",
        file=sys.stderr,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run_cli(argv, "Stage a data set version: train/validation CSV and features.json.", handle,
                   StagingInputError)


if __name__ == "__main__":
    exit_process(main())
