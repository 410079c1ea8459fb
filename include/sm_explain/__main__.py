"""`python -m sm_explain --request R.json --result S.json`: explanations for one training job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sm_explain.errors import BadRequest
from sm_explain_contracts.envelope import exit_process, run_cli


def handle(raw: dict[str, Any]) -> dict[str, Any]:
    from sm_explain.request import parse_request

    request = parse_request(raw)
    # Imported only after the request is known good, so bad input fails before xgboost/shap/smdebug load.
    from sm_explain.explain import run_explanations

    return run_explanations(request)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Explain one XGBoost training job (SHAP from the model or Debugger tensors).", handle, BadRequest)


if __name__ == "__main__":
    exit_process(main())
