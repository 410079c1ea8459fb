"""Write `.env` for docker-compose.yaml: a random secret for every password and key it needs.

    python3 scripts/compose_env.py [--force]

docker-compose.yaml holds no secret: compose reads these from `.env` (next to it) and refuses to start without
them. The file is created readable by its owner only, is never committed (.gitignore), and is not overwritten
unless --force is given (that would lock Airflow out of its own metadata database and MinIO's data).
Standard library only.
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


def generated() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "MINIO_ROOT_USER": "sm-explain-" + secrets.token_hex(4),
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(32),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        # Airflow's Fernet key: 32 random bytes, url-safe base64.
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"),
    }


def write_env(path: Path, force: bool = False) -> dict[str, str]:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; keep it (its secrets protect the existing volumes) or pass --force")
    values = generated()
    text = "# Written by scripts/compose_env.py: secrets for docker-compose.yaml. Never commit this file.\n"
    text += "".join(f"{key}={value}\n" for key, value in values.items())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace an existing .env")
    parser.add_argument("--path", type=Path, default=ENV_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        values = write_env(args.path, args.force)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.path} ({', '.join(values)}); now: docker compose up --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
