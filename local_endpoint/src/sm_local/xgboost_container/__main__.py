"""Command line of the algorithm process: `python -m sm_local.xgboost_container --opt-ml DIR --framework-version V`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sm_explain_contracts.images import XGBOOST_VERSIONS as FRAMEWORK_VERSIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sm_local.xgboost_container",
        description="Train like SageMaker's built-in XGBoost algorithm on a staged /opt/ml directory: "
        "model to DIR/model/xgboost-model, Debugger tensors (versions 0.90-2..1.7-1) where "
        "DebugHookConfig.LocalPath says, one-sentence failure reason to DIR/output/failure (exit 1).",
    )
    parser.add_argument("--opt-ml", type=Path, required=True, metavar="DIR", help="the container's /opt/ml")
    parser.add_argument("--framework-version", required=True, choices=FRAMEWORK_VERSIONS, metavar="VERSION",
                        help=f"image version, one of {', '.join(FRAMEWORK_VERSIONS)}")
    args = parser.parse_args(argv)

    from sm_local.xgboost_container.train import run

    return run(args.opt_ml, args.framework_version)


if __name__ == "__main__":
    sys.exit(main())
