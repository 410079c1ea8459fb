"""Run the two environments' test suites side by side: `python3 scripts/parallel_suites.py NAME=COMMAND ...`.

The runtime suite (runtime env) and the Airflow suite (Airflow env) share nothing but the image cache (locked per
version) and each starts its own local stack on free ports, so they can run at once; most of their time is spent
waiting on jobs and processes, not on the CPU. Each suite's output goes to `<log dir>/<NAME>.log` and is printed
whole when the suite ends (so a CI log reads one suite at a time). The exit code is the first failing suite's,
else 0. Ctrl-C or SIGTERM stops every suite's process group.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=Path(".test-logs"))
    parser.add_argument("suites", nargs="+", help="NAME=COMMAND (a shell-quoted command line)")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
    for suite in args.suites:
        name, sep, command = suite.partition("=")
        if not sep or not name.isidentifier() or not command.strip():
            parser.error(f"{suite!r} is not NAME=COMMAND")
        log = args.log_dir / f"{name}.log"
        with log.open("wb") as stream:
            process = subprocess.Popen(shlex.split(command), stdout=stream, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        running[name] = (process, log, time.monotonic())
        print(f"[{name}] started: {command} (log: {log})", flush=True)

    def stop(signum: int, _frame: object) -> None:
        for process, _, _ in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed: int | None = None
    while running:
        for name, (process, log, started) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[name]
            print(f"\n===== [{name}] exited {code} after {time.monotonic() - started:.0f} s =====", flush=True)
            sys.stdout.buffer.write(log.read_bytes())
            sys.stdout.flush()
            if code != 0 and failed is None:
                failed = code
        time.sleep(1)
    return failed or 0


if __name__ == "__main__":
    sys.exit(main())
