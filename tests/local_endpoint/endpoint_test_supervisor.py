"""A stand-in supervisor for testing the endpoint's OWN supervision logic (liveness, stop, restart).

The server runs it through `SM_LOCAL_SUPERVISOR_MODULE=endpoint_test_supervisor`; the job's
`HyperParameters["endpoint_test_behaviour"]` picks how it misbehaves. It trains nothing: the real
supervisor (sm_local.supervisor) and its tests cover training.

- `exit`: exits at once, without status.json (a crash before the first status).
- `sleep`: starts a child (its "algorithm", pid in `child.pid`), writes `Training` and sleeps;
  SIGTERM's default action kills it (no final status).
- `graceful`: writes `Training`; on SIGTERM writes `Stopping` then `Stopped` and exits, as the contract says.
- `ignore-term`: writes `Training`, ignores SIGTERM and sleeps (the server must kill it).
- `complete-rules-pending`: writes `Completed` with rules still `InProgress` and exits.
- `complete`: writes `Completed` with every rule `NoIssuesFound` and exits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sm_local.store import read_json, rule_evaluation_job_arn, write_json_atomic


def _status(job: dict[str, Any], job_status: str, secondary: str, rule_status: str) -> dict[str, Any]:
    now = time.time()
    return {
        "TrainingJobStatus": job_status,
        "SecondaryStatus": secondary,
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": job["CreationTime"], "EndTime": now},
            {"Status": secondary, "StartTime": now, "StatusMessage": f"test supervisor: {secondary}"},
        ],
        "TrainingStartTime": now,
        "LastModifiedTime": now,
        "DebugRuleEvaluationStatuses": [
            {
                "RuleConfigurationName": rule["RuleConfigurationName"],
                "RuleEvaluationJobArn": rule_evaluation_job_arn(
                    job["Region"], job["TrainingJobName"], rule["RuleConfigurationName"]
                ),
                "RuleEvaluationStatus": rule_status,
                "LastModifiedTime": now,
            }
            for rule in job.get("DebugRuleConfigurations") or []
        ],
    }


def main(job_dir: Path) -> int:
    job = read_json(job_dir / "job.json")
    assert job is not None, f"no job.json in {job_dir}"
    behaviour = (job.get("HyperParameters") or {}).get("endpoint_test_behaviour", "sleep")
    status_path = job_dir / "status.json"
    if behaviour == "exit":
        return 3
    if behaviour == "complete":
        write_json_atomic(status_path, _status(job, "Completed", "Completed", "NoIssuesFound"))
        return 0
    if behaviour == "complete-rules-pending":
        write_json_atomic(status_path, _status(job, "Completed", "Completed", "InProgress"))
        return 0
    if behaviour == "graceful":

        def stop(*_: object) -> None:
            write_json_atomic(status_path, _status(job, "Stopping", "Stopping", "Stopping"))
            time.sleep(0.3)
            write_json_atomic(status_path, _status(job, "Stopped", "Stopped", "Stopped"))
            sys.exit(0)

        signal.signal(signal.SIGTERM, stop)
    elif behaviour == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if behaviour == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (job_dir / "child.pid").write_text(str(child.pid))
    write_json_atomic(status_path, _status(job, "InProgress", "Training", "InProgress"))
    print(f"test supervisor {behaviour}: training", flush=True)
    deadline = time.monotonic() + 120  # never outlive a test run by long
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
