"""Scripted algorithm and rule processes for the supervisor's orchestration tests (no tests here).

The supervisor runs them instead of `sm_local.xgboost_container` / `sm_local.rules` through
`SM_LOCAL_ALGORITHM_MODULE` / `SM_LOCAL_RULES_MODULE`, with the same command lines and file
contracts (docs/architecture.md). They behave on purpose (succeed, fail, crash, hang) so the tests
can check what the supervisor does with each outcome; the real algorithm and rules have their own
tests, and test_supervisor_jobs.py also runs one job with the real algorithm.

- algorithm: `HyperParameters["scenario"]` in succeed | fail | crash | sleep.
- rule: `RuleParameters["scenario"]` in no_issues | issues | crash | slow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

END_MARKER = "training_job_end.ts"


def run_algorithm(opt_ml: Path) -> int:
    hyperparameters = json.loads((opt_ml / "input" / "config" / "hyperparameters.json").read_text())
    scenario = hyperparameters.get("scenario", "succeed")
    hook_config = os.environ.get("SMDEBUG_CONFIG_FILE_PATH")
    tensors = Path(json.loads(Path(hook_config).read_text())["LocalPath"]) if hook_config else None
    print(
        f"scripted algorithm: scenario {scenario}, channels {sorted(p.name for p in (opt_ml / 'input' / 'data').iterdir())}"
    )
    if scenario == "succeed":
        rounds = int(hyperparameters.get("num_round", "3"))
        for step in range(rounds):
            separator = "#011" if step % 2 else "\t"
            print(
                f"[{step}]{separator}train-logloss:{0.6 - step / 10:.5f}{separator}validation-logloss:{0.65 - step / 20:.5f}"
            )
            if tensors is not None:
                step_dir = tensors / "events" / f"{step:012d}"
                step_dir.mkdir(parents=True, exist_ok=True)
                (step_dir / f"{step:012d}_worker_0.tfevents").write_bytes(b"x" * (100 + step))
            time.sleep(float(hyperparameters.get("round_seconds", "0")))
        print("scripted algorithm: saving model", file=sys.stderr)
        (opt_ml / "model" / "xgboost-model").write_bytes(b"scripted model bytes")
        return 0
    if scenario == "fail":
        (opt_ml / "output" / "failure").write_text("Hyperparameter num_round: value -1 must be at least 1.\n")
        return 1
    if scenario == "crash":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("ValueError: scripted crash", file=sys.stderr)
        return 3
    if scenario == "sleep":
        # A grandchild in the same process group: the supervisor must not leave it behind.
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (opt_ml / "output" / "pids").write_text(f"{os.getpid()} {grandchild.pid}")
        print("scripted algorithm: sleeping", flush=True)
        time.sleep(120)
        return 0
    raise SystemExit(f"unknown scenario {scenario!r}")


def run_rule(trial_path: Path, config_path: Path, result_path: Path) -> int:
    config = json.loads(config_path.read_text())
    scenario = config.get("RuleParameters", {}).get("scenario", "no_issues")
    (result_path.parent / "pid").write_text(str(os.getpid()))
    if scenario == "crash":
        print("RuntimeError: scripted rule crash", file=sys.stderr)
        return 4
    print(f"scripted rule {config['RuleConfigurationName']}: waiting for training", flush=True)
    while not (trial_path / END_MARKER).exists():
        time.sleep(0.05)
    steps = len(list((trial_path / "events").glob("*"))) if (trial_path / "events").is_dir() else 0
    if scenario == "slow":
        time.sleep(1.5)
    status = "IssuesFound" if scenario == "issues" else "NoIssuesFound"
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "RuleEvaluationStatus": status,
                "StatusDetails": f"{config['RuleConfigurationName']}: {steps} steps",
            }
        )
    )
    os.replace(tmp, result_path)
    # After the result, as the real rule process prints its verdict: the supervisor must still ship this line.
    time.sleep(0.2)
    print(f"scripted rule {config['RuleConfigurationName']}: {status}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--opt-ml", type=Path)
    parser.add_argument("--framework-version")
    parser.add_argument("--trial-path", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--result", type=Path)
    args = parser.parse_args()
    if args.opt_ml is not None:
        return run_algorithm(args.opt_ml)
    return run_rule(args.trial_path, args.config, args.result)


if __name__ == "__main__":
    sys.exit(main())
