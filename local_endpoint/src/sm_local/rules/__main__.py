"""`python -m sm_local.rules --trial-path DIR --config CONFIG.json --result RESULT.json`

Runs one built-in rule (the supervisor starts one process per DebugRuleConfigurations entry) and
writes RESULT.json atomically. Exit 0 whenever a result was written, 1 if it could not be.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from sm_local.rules.evaluate import DEFAULT_POLL_INTERVAL, RuleResult, evaluate_rule, write_result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sm_local.rules", description=__doc__.splitlines()[0])
    parser.add_argument("--trial-path", required=True, help="Debugger output directory (DIR/output/tensors)")
    parser.add_argument("--config", required=True, help="one DebugRuleConfigurations entry as JSON")
    parser.add_argument("--result", required=True, help="where to write the rule status JSON")
    parser.add_argument("--timeout", type=float, default=None, help="give up (Error) after this many seconds")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, help="seconds between polls")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        result = RuleResult("Error", f"Invalid rule configuration: cannot read {args.config}: {exc}")
    else:
        result = evaluate_rule(args.trial_path, config, poll_interval=args.poll_interval, timeout=args.timeout)
    try:
        write_result(args.result, result)
    except OSError as exc:
        print(f"cannot write {args.result}: {exc}", file=sys.stderr)
        return 1
    print(f"{result.status}: {result.details}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: a daemon thread may still be importing smdebug (see evaluate.py), and
    # the result is already on disk.
    os._exit(code)
