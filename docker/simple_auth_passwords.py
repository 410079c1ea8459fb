"""Write Airflow's simple auth manager passwords file so the compose deployment's UI password is the one in .env.

    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=airflow:admin \\
    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=/opt/airflow/auth/simple_auth_manager_passwords.json \\
    AIRFLOW_UI_PASSWORD=... python simple_auth_passwords.py

Airflow 3's SimpleAuthManager takes its users from `[core] simple_auth_manager_users` ("user:role") and checks a
login against the JSON object `{user: password}` in `[core] simple_auth_manager_passwords_file`; a user missing
there gets a random password, printed once in the api-server's log and lost with the file. The compose's
airflow-init runs this script before the api-server starts, so the one user's password is AIRFLOW_UI_PASSWORD
(written by scripts/compose_env.py), the same after every restart and rebuild. Standard library only: it runs in
the deployment image's Airflow interpreter, as root, before the file is handed to the airflow user.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

USERS_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
PASSWORDS_FILE_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
PASSWORD_ENV = "AIRFLOW_UI_PASSWORD"
MIN_PASSWORD_LENGTH = 12


def passwords(environ: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The passwords file and its content for the one configured user; ValueError naming what is wrong."""
    users = [entry for entry in (part.strip() for part in environ.get(USERS_ENV, "").split(",")) if entry]
    if len(users) != 1 or not users[0].split(":")[0]:
        raise ValueError(
            f"{USERS_ENV} is {environ.get(USERS_ENV, '')!r}: the compose deployment has exactly one user, "
            f"written 'user:role' (for example 'airflow:admin'), whose password is {PASSWORD_ENV}"
        )
    password = environ.get(PASSWORD_ENV, "")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"{PASSWORD_ENV} has {len(password)} characters; at least {MIN_PASSWORD_LENGTH} are needed "
            "(python3 scripts/compose_env.py writes a random one into .env)"
        )
    path = Path(environ.get(PASSWORDS_FILE_ENV, ""))
    if not path.is_absolute():
        raise ValueError(f"{PASSWORDS_FILE_ENV} is {str(path)!r}: an absolute path is needed")
    return path, {users[0].split(":")[0]: password}


def write(path: Path, content: dict[str, str]) -> None:
    """Replace the file atomically, readable by its owner only (it holds a password in plain text)."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(content) + "\n")
    os.replace(partial, path)


def main() -> int:
    try:
        path, content = passwords(dict(os.environ))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write(path, content)
    print(f"{path}: the password of user {next(iter(content))!r} is {PASSWORD_ENV} from .env")
    return 0


if __name__ == "__main__":
    sys.exit(main())
