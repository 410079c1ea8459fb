"""`envelope.exit_process`: a runtime module's process ends with its code, its atexit work done and its output
flushed, without the interpreter's teardown, and waits for a thread that still runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from pathlib import Path
    from sm_explain_contracts.envelope import exit_process

    marker = Path(sys.argv[1])
    atexit.register(marker.write_text, "atexit ran")
    import os
    teardown_fd = os.open(sys.argv[1] + ".teardown", os.O_WRONLY | os.O_CREAT)
    class Teardown:
        def __del__(self, write=os.write, fd=teardown_fd):  # a module global's finalizer: only in the teardown
            write(fd, b"teardown ran")
    keep = Teardown()
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()  # a daemon is no reason to wait
    if sys.argv[2] == "worker":
        threading.Thread(target=lambda: (time.sleep(0.5), Path(sys.argv[1] + ".worker").write_text("done"))).start()
    sys.stdout.write("buffered, no newline")
    (sys.exit if sys.argv[2] == "normal" else exit_process)(3)
""")


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(tmp_path / "marker"), mode], capture_output=True,
                          text=True, timeout=120)


def test_the_process_ends_with_its_code_atexit_done_output_flushed_and_no_teardown(tmp_path: Path) -> None:
    done = _run(tmp_path, "alone")
    assert done.returncode == 3 and done.stdout == "buffered, no newline", done.stderr
    assert (tmp_path / "marker").read_text() == "atexit ran"
    assert (tmp_path / "marker.teardown").read_text() == ""  # the teardown was skipped
    normal = _run(tmp_path, "normal")  # what a plain exit does: the same, plus the teardown
    assert normal.returncode == 3 and (tmp_path / "marker.teardown").read_text() == "teardown ran"


def test_a_thread_still_running_is_waited_for_as_a_normal_exit_waits(tmp_path: Path) -> None:
    done = _run(tmp_path, "worker")
    assert done.returncode == 3 and done.stdout == "buffered, no newline", done.stderr
    assert (tmp_path / "marker.worker").read_text() == "done"
    assert (tmp_path / "marker").read_text() == "atexit ran"
