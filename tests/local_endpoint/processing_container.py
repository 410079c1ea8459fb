"""The code of the processing jobs in the tests (no tests here): uploaded to S3 as an input, as SageMaker's
ScriptProcessor does, and run by the job's container command `python3 /opt/ml/processing/input/code/<this file>`.

Arguments are `key=value`; every path argument is an /opt/ml path (the endpoint rewrites them to its stand-ins).
- `config=`: resourceconfig.json; `input=`: a directory whose files it lists; `output=`: where it writes
  `<host>.json` (host, hosts, the files it saw, `SM_TEST_GREETING`, `GREETING` and `SM_LOCAL_PROCESSING_ROOT` from
  its environment, its pid and working directory);
- `key_uri=`: first wait until that S3 object exists (a test releases the container when it is ready);
- `mode=`: `list` (the default), `fail` (writes `message=` as the termination message, exits 3), `sleep` (writes
  its pid to `<output>/<host>.pid`, then sleeps), `continuous` (writes `first.txt` to `stream=`, waits until that
  file is in S3 under `stream_uri=`, then writes `second.txt`: it succeeds only if outputs upload while it runs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _s3_exists(uri: str) -> bool:
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    return any(item["Key"] == key for item in listing.get("Contents", []))


def _wait_for(uri: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _s3_exists(uri):
            return True
        time.sleep(0.2)
    return False


def _thread_nice_values() -> list[int]:
    """The nice value of every thread of this process (field 19 of /proc/self/task/<tid>/stat)."""
    values = []
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            values.append(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return values


def main(argv: list[str]) -> int:
    args = dict(arg.split("=", 1) for arg in argv)
    config = json.loads(Path(args["config"]).read_text())
    host = config["current_host"]
    output = Path(args["output"])
    files = []
    if "input" in args:
        root = Path(args["input"])
        files = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    (output / f"{host}.json").write_text(json.dumps({
        "host": host, "hosts": config["hosts"], "files": files, "greeting": os.environ.get("SM_TEST_GREETING"),
        "plain_greeting": os.environ.get("GREETING"), "pid": os.getpid(), "cwd": os.getcwd(), "argv0": sys.argv[0],
        "root": os.environ.get("SM_LOCAL_PROCESSING_ROOT"), "args": argv, "nice": _thread_nice_values(),
    }))
    print(f"processed {len(files)} files on {host}", flush=True)
    if "key_uri" in args and not _wait_for(args["key_uri"], 120):
        print(f"{args['key_uri']} never appeared", file=sys.stderr)
        return 5
    mode = args.get("mode", "list")
    if mode == "fail":
        Path(args["message"]).write_text("the input had no rows\n")
        print("failing on purpose", file=sys.stderr, flush=True)
        return 3
    if mode == "sleep":
        (output / f"{host}.pid").write_text(str(os.getpid()))
        time.sleep(300)
    if mode == "continuous":
        stream = Path(args["stream"])
        (stream / "first.txt").write_text("written while running\n")
        if not _wait_for(args["stream_uri"].rstrip("/") + "/first.txt", 60):
            print("first.txt never reached S3 while the container ran", file=sys.stderr)
            return 4
        (stream / "second.txt").write_text("written last\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
