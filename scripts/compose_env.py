"""Write `.env` for docker-compose.yaml: a random secret for every password and key it needs, and its settings.

    python3 scripts/compose_env.py [--force]

docker-compose.yaml holds no secret: compose reads these from `.env` (next to it) and refuses to start without
them. The file is created readable by its owner only and is never committed (.gitignore). An existing `.env` keeps
every value it has (changing POSTGRES_PASSWORD or the MinIO keys would lock the services out of their own volumes):
only the keys it lacks are added, so a `.env` written for an older docker-compose.yaml gains what the new one
needs. --force replaces the whole file. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV_FILE = REPO / ".env"

#: Not secrets: compose's own settings. `local` is the profile of the LocalExecutor scheduler, which plain
#: `docker compose up` then starts; `--profile celery` replaces the list (redis, the CeleryExecutor scheduler and
#: its workers instead).
SETTINGS = {"COMPOSE_PROFILES": "local"}


def generated() -> dict[str, str]:
    """Fresh secrets, all url-safe (they are embedded in database and broker URLs as they are)."""
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "MINIO_ROOT_USER": "sm-explain-" + secrets.token_hex(4),
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(32),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        # The Airflow UI's (and Flower's) password of user `airflow` (docker/simple_auth_passwords.py).
        "AIRFLOW_UI_PASSWORD": secrets.token_urlsafe(18),
        # 64 characters: the api-server signs its JWTs with HMAC-SHA512, which wants a key of 64 bytes or more.
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        # Airflow's Fernet key: 32 random bytes, url-safe base64.
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"),
    }


def read_env(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, separator, value = line.partition("=")
        if separator and not key.lstrip().startswith("#"):
            values[key.strip()] = value
    return values


def write_env(path: Path, force: bool = False) -> dict[str, str]:
    """Create `path`, or add to it the keys it lacks (all of them with `force`); returns what was written."""
    existing = {} if force or not path.exists() else read_env(path)
    added = {key: value for key, value in {**SETTINGS, **generated()}.items() if key not in existing}
    if not added:
        return {}
    lines = "".join(f"{key}={value}\n" for key, value in added.items())
    if existing:
        text = path.read_text(encoding="utf-8")
        text += ("" if text.endswith("\n") else "\n") + lines
    else:
        text = "# Written by scripts/compose_env.py: secrets for docker-compose.yaml. Never commit this file.\n" + lines
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace an existing .env, every value new")
    parser.add_argument("--path", type=Path, default=ENV_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    added = write_env(args.path, args.force)
    if not added:
        print(f"{args.path} already has every key docker-compose.yaml needs; nothing changed")
    else:
        print(f"wrote {', '.join(added)} to {args.path}; now: docker compose up --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
