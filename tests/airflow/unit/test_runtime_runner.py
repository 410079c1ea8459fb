"""The runner of runtime-environment CLIs: results, bad input, crashes, timeouts, environment."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest

from sm_explain_ops.runtime import RuntimeInputError, RuntimeTaskError, run_runtime_module

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private include dir holding small CLIs that follow (or break) the runtime contract."""
    root = tmp_path / "include"
    root.mkdir()
    monkeypatch.setenv("SM_EXPLAIN_INCLUDE_DIR", str(root))
    monkeypatch.delenv("SM_EXPLAIN_RUNTIME_PYTHON", raising=False)
    return root


def _module(root: Path, name: str, body: str) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    prelude = textwrap.dedent(
        """
        import argparse, json, os, sys, time
        parser = argparse.ArgumentParser()
        parser.add_argument("--request")
        parser.add_argument("--result")
        args = parser.parse_args()
        request = json.load(open(args.request))
        """
    )
    (package / "__main__.py").write_text(prelude + textwrap.dedent(body))


def test_result_env_and_streamed_output(
    include: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _module(
        include,
        "echo_env",
        """
        print("working on", request["name"], file=sys.stderr)
        print("progress 50%")
        json.dump({
            "name": request["name"],
            "endpoint_s3": os.environ.get("AWS_ENDPOINT_URL_S3"),
            "region": os.environ.get("AWS_DEFAULT_REGION"),
            "profile_var": os.environ.get("AWS_PROFILE"),
            "airflow_var": os.environ.get("AIRFLOW__CORE__FERNET_KEY"),
            "first_path": sys.path[1],
        }, open(args.result, "w"))
        """,
    )
    monkeypatch.setenv("AWS_PROFILE", "inherited")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "secret-not-for-the-runtime")
    with caplog.at_level(logging.INFO, logger="sm_explain_ops.runtime"):
        result = run_runtime_module(
            "echo_env",
            {"name": "adult"},
            env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "us-east-1"},
        )
    assert result == {
        "name": "adult",
        "endpoint_s3": "http://127.0.0.1:9",
        "region": "us-east-1",  # the connection's value wins over the inherited one
        "profile_var": "inherited",
        "airflow_var": None,
        "first_path": str(include),
    }
    assert "[echo_env] working on adult" in caplog.text
    assert "[echo_env] progress 50%" in caplog.text


def test_stderr_lines_reach_the_task_log_while_the_child_runs(include: Path, tmp_path: Path) -> None:
    """The child prints a line, then waits until the task log has shown it: only a runner that copies lines as
    they come lets it finish with saw_it true (a runner reading at the end would let it time out)."""
    marker = tmp_path / "seen"
    _module(
        include,
        "live",
        f"""
        print("sm_explain: mean |SHAP| pass: 0 of 10 rows", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists({str(marker)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
        json.dump({{"saw_it": os.path.exists({str(marker)!r})}}, open(args.result, "w"))
        """,
    )

    class Marker(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "0 of 10 rows" in record.getMessage():
                marker.touch()

    logger = logging.getLogger("sm_explain_ops.runtime")
    handler, level = Marker(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert run_runtime_module("live", {}) == {"saw_it": True}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_line_without_end_is_cut_not_held_whole(
    include: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _module(
        include,
        "long_line",
        """
        sys.stderr.write("start " + "z" * 2_000_000 + "\\n")
        print("after", file=sys.stderr)
        json.dump({}, open(args.result, "w"))
        """,
    )
    with caplog.at_level(logging.INFO, logger="sm_explain_ops.runtime"):
        run_runtime_module("long_line", {})
    lines = [record.getMessage() for record in caplog.records if record.name == "sm_explain_ops.runtime"]
    [long] = [line for line in lines if line.startswith("[long_line] start ")]
    assert len(long) < 8300 and long.endswith(f" ... [{2_000_006 - 8192} more characters, cut]")
    assert "[long_line] after" in lines


def test_exit_2_raises_input_error_with_the_childs_message() -> None:
    """The real staging CLI refusing a request: the message reaches the task unchanged."""
    with pytest.raises(RuntimeInputError) as raised:
        run_runtime_module(
            "sm_staging",
            {"source": "/nonexistent/adult.data", "destination": "/tmp/x/v1/data", "dataset_version": "v1"},
        )
    assert str(raised.value) == "source /nonexistent/adult.data does not exist"
    assert isinstance(raised.value, ValueError)


def test_crash_raises_task_error_with_the_last_stderr_lines(include: Path) -> None:
    _module(include, "crashes", 'raise RuntimeError("the disk is on fire")\n')
    with pytest.raises(RuntimeTaskError) as raised:
        run_runtime_module("crashes", {})
    assert not isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "`python -m crashes` failed with exit code 1" in message
    assert "RuntimeError: the disk is on fire" in message


def test_success_without_result_is_a_task_error(include: Path) -> None:
    _module(include, "forgets", "pass\n")
    with pytest.raises(RuntimeTaskError, match="exited 0 but wrote no JSON object"):
        run_runtime_module("forgets", {})


def test_timeout_stops_the_child(include: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    _module(include, "hangs", f'open({str(pid_file)!r}, "w").write(str(os.getpid()))\ntime.sleep(60)\n')
    with pytest.raises(RuntimeTaskError, match="did not finish within 1 s and was stopped"):
        run_runtime_module("hangs", {}, timeout=1)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_missing_interpreter_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SM_EXPLAIN_RUNTIME_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(RuntimeTaskError) as raised:
        run_runtime_module("sm_staging", {})
    assert "no-such-python does not exist" in str(raised.value)
    assert "make setup" in str(raised.value) and "SM_EXPLAIN_RUNTIME_PYTHON" in str(raised.value)


def test_request_reaches_the_child_as_json(include: Path) -> None:
    _module(include, "echo", "json.dump({'seen': request}, open(args.result, 'w'))\n")
    request = {"source": "s3://bucket/raw/v1/adult.data", "columns": ["a", "b"], "seed": 7}
    assert run_runtime_module("echo", request) == {"seen": json.loads(json.dumps(request))}
