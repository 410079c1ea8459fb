"""Write several distinct data set versions of the Adult data into S3 (the local stack by default),
so a local backfill has real versions to process.

Layout: ``s3://<bucket>/<prefix>/raw/<version>/adult.data``. Versions are weekly dates, the same
dates a weekly schedule gives as logical dates, so ``airflow backfill create`` over those weeks finds
one version per run. Each version is a seeded bootstrap resample of the source rows: same schema,
different rows, byte-identical on every rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import re
import sys
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"


def weekly_versions(last: dt.date, count: int) -> list[str]:
    """`count` weekly ISO dates ending at `last` (oldest first)."""
    return [(last - dt.timedelta(weeks=count - 1 - i)).isoformat() for i in range(count)]


def resample(lines: list[bytes], seed: int) -> bytes:
    """A seeded bootstrap sample of the data rows, as many rows as the source."""
    rng = random.Random(seed)
    return b"".join(rng.choices(lines, k=len(lines)))


def read_source(path: Path, expected_sha256: str | None) -> list[bytes]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise ValueError(f"{path}: sha256 {digest} does not match the expected {expected_sha256}")
    lines = [line + b"\n" for line in data.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no data rows")
    return lines


def seed_versions(bucket: str, prefix: str, versions: list[str], source: Path,
                  expected_sha256: str | None = ADULT_SHA256) -> dict[str, str]:
    """Upload one resampled file per version; returns {version: s3 uri}."""
    lines = read_source(source, expected_sha256)
    s3 = boto3.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)
    uris = {}
    for version in versions:
        seed = int(hashlib.sha256(version.encode()).hexdigest()[:8], 16)
        key = f"{prefix.strip('/')}/raw/{version}/adult.data"
        s3.put_object(Bucket=bucket, Key=key, Body=resample(lines, seed))
        uris[version] = f"s3://{bucket}/{key}"
    return uris


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a sha256: 64 lowercase hexadecimal digits")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default="sm-explain-local")
    parser.add_argument("--prefix", default="adult-income")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--sha256", type=_sha256, default=ADULT_SHA256,
                        help="the source's expected sha256 (default: the Adult data's); a file that differs is refused")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2026, 11, 22),
                        help="the newest version's date (a Sunday, like the weekly schedule's)")
    args = parser.parse_args(argv)
    try:
        uris = seed_versions(args.bucket, args.prefix, weekly_versions(args.last, args.count), args.source,
                             args.sha256)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for version, uri in uris.items():
        print(f"{version}: {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
