"""Environment for running Airflow against the local stack: a private AIRFLOW_HOME under .local/, this
repository's dags/ and plugins/, and the `aws_default` connection with per-service endpoint URLs.

``python scripts/airflow_local_env.py`` prints ``export`` lines (used by ``make airflow``); the demo
and the end-to-end test call :func:`airflow_env` directly.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from local_stack import DEFAULT_STATE_DIR, REPO, StackInfo, read_stack

SERVICES_ON_MOTO = ("s3", "logs", "sns", "sqs", "sts")


def aws_connection_uri_json(stack: StackInfo) -> str:
    """The Airflow AWS connection as JSON (AIRFLOW_CONN_* accepts JSON): every service's endpoint
    set in the connection extra, as a deployment to another AWS-compatible stack would do."""
    service_config = {service: {"endpoint_url": stack.s3_endpoint} for service in SERVICES_ON_MOTO}
    service_config["sagemaker"] = {"endpoint_url": stack.sagemaker_endpoint}
    return json.dumps({
        "conn_type": "aws",
        "login": stack.env["AWS_ACCESS_KEY_ID"],
        "password": stack.env["AWS_SECRET_ACCESS_KEY"],
        "extra": {"region_name": stack.region, "service_config": service_config},
    })


def airflow_env(stack: StackInfo, airflow_home: Path) -> dict[str, str]:
    return {
        **stack.env,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection_uri_json(stack),
        # plugins/ first; a PYTHONPATH already set (say a worktree's contracts/src) stays behind it, so Airflow's
        # processes and the runtime processes they start import the same packages as the caller.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")])),
        # Locally a job takes seconds: poll often.
        "SM_EXPLAIN_POKE_INTERVAL": "2",
        # The provider's hooks parse botocore's JSON models once per process (dag.test() runs every task in one).
        "AIRFLOW__AWS__SESSION_FACTORY": "sm_explain_ops.hooks.sessions.SharedModelsSessionFactory",
        # The local demo may stage a file from this machine (source_uri a path); deployments leave this off.
        "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1",
    }


def main() -> int:
    stack = read_stack(DEFAULT_STATE_DIR)
    if stack is None:
        print("error: the local stack is not running; run `make local-up` first", file=sys.stderr)
        return 2
    for key, value in airflow_env(stack, DEFAULT_STATE_DIR / "airflow").items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
