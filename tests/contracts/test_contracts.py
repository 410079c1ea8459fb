"""sm_explain_contracts, the rules both environments share: standard library only, and the runtime envelope."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sm_explain_contracts
from sm_explain_contracts.envelope import (
    EXIT_BAD_INPUT,
    bad_input_message,
    read_result,
    run_cli,
    write_json_atomic,
)

SOURCE = Path(sm_explain_contracts.__file__).resolve().parent


def test_every_module_imports_with_the_standard_library_alone() -> None:
    """No site-packages at all (-S -s): what an image's environment, or either side's, can always import."""
    modules = [f"sm_explain_contracts.{m.name}" for m in pkgutil.iter_modules([str(SOURCE)])]
    assert {"sm_explain_contracts.images", "sm_explain_contracts.versions", "sm_explain_contracts.envelope"} <= set(modules)
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\nprint('ok')"
    completed = subprocess.run([sys.executable, "-S", "-s", "-c", code, *modules], capture_output=True, text=True,
                               env={"PYTHONPATH": str(SOURCE.parent)}, cwd="/")
    assert completed.stdout.strip() == "ok", completed.stderr


class Refused(Exception):
    pass


def _handler(request: dict) -> dict:
    if request.get("bad"):
        raise Refused(f"bad is {request['bad']!r}: give nothing")
    return {"echo": request}


@pytest.mark.parametrize(
    ("request_text", "code", "message"),
    [
        ('{"x": 1}', 0, None),
        ('{"bad": 3}', EXIT_BAD_INPUT, "bad is 3: give nothing"),
        ("[1, 2]", EXIT_BAD_INPUT, "must be a JSON object"),
        ("{not json", EXIT_BAD_INPUT, "cannot read the request file"),
    ],
)
def test_run_cli_writes_the_result_or_the_named_error(tmp_path: Path, request_text: str, code: int,
                                                      message: str | None) -> None:
    request, result = tmp_path / "request.json", tmp_path / "result.json"
    request.write_text(request_text)
    assert run_cli(["--request", str(request), "--result", str(result)], "test", _handler, Refused) == code
    written = read_result(result)
    if message is None:
        assert written == {"echo": {"x": 1}}
    else:
        assert message in (bad_input_message(written) or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["request.json", "result.json"], "no temp file left"


def test_an_unexpected_error_is_not_dressed_as_bad_input(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text("{}")

    def broken(_: dict) -> dict:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_cli(["--request", str(request), "--result", str(tmp_path / "result.json")], "test", broken, Refused)
    assert not (tmp_path / "result.json").exists()


def test_write_json_atomic_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "status.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


@pytest.mark.parametrize(
    ("uri", "prefix", "inside"),
    [
        ("s3://bkt/p/v1/job/explanations/a.png", "s3://bkt/p/v1/job/explanations/", True),
        ("s3://bkt/p/v1/job/explanations/a.png", "s3://bkt/p/v1/job/explanations", True),
        ("s3://bkt/p/v1/job/explanations-x/a.png", "s3://bkt/p/v1/job/explanations/", False),
        ("s3://other/p/v1/job/explanations/a.png", "s3://bkt/p/v1/job/explanations/", False),
        ("s3://bkt/p/v1/job/explanations/../../secret", "s3://bkt/p/v1/job/explanations/", False),
        ("s3://bkt/p/v1/job/explanations//a.png", "s3://bkt/p/v1/job/explanations/", False),
        ("s3://bkt/p/v1/job/explanations/", "s3://bkt/p/v1/job/explanations/", False),  # the prefix itself
        ("s3://b/p/a.png", "s3://b/p/", False),  # no valid bucket: inside nothing
        ("s3://bkt/p/v1/job/explanations/a.png", "/tmp/x/explanations", False),
        ("/proc/self/environ", "s3://bkt/p/", False),
        (None, "s3://bkt/p/", False),
    ],
)
def test_is_under_is_one_rule_for_both_sides(uri: object, prefix: str, inside: bool) -> None:
    from sm_explain_contracts.s3_uris import is_under

    assert is_under(uri, prefix) is inside


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("", "must be an s3:// URI"),
        ("https://bkt/x", "is not an s3:// URI"),
        ("s3://Bad_Bucket/x", "invalid bucket name 'Bad_Bucket'"),
        ("s3://xn--bkt/x", "invalid bucket name"),
        ("s3://bkt/a b", "contains whitespace"),
        ("s3://bkt/a//b", "empty path segment"),
    ],
)
def test_s3_uris_are_refused_naming_field_and_problem(value: str, named: str) -> None:
    from sm_explain_contracts.s3_uris import S3UriError, parse_s3_uri

    with pytest.raises(S3UriError, match=named) as refused:
        parse_s3_uri(value, "train_uri")
    assert str(refused.value).startswith("train_uri")


@pytest.mark.parametrize("version", ["2026-11-22", "20261122", "7", "v1", "adult.v2_rc-1", "a" * 64])
def test_a_version_is_any_short_safe_name_digits_only_included(version: str) -> None:
    import re

    from sm_explain_contracts.versions import DATASET_VERSION_PATTERN, dataset_version_problem

    assert dataset_version_problem(version) is None
    assert re.match(DATASET_VERSION_PATTERN, version), "the DAG Params' pattern accepts what the rule accepts"


@pytest.mark.parametrize(
    ("version", "named"),
    [
        (20261122, "a version is a string (give '20261122', not the int)"),
        (None, "a version is a string"),
        ("a" * 65, "1-64 characters"),
        ("-v1", "starting with a letter or digit"),
        ("v1/../v2", "is invalid"),
        ("v1\n", "is invalid"),
        ("", "is invalid"),
        ("raw", "'raw' is reserved"),
        ("comparisons", "'comparisons' is reserved"),
    ],
)
def test_a_bad_version_is_refused_naming_it_and_the_rule(version: object, named: str) -> None:
    from sm_explain_contracts.versions import dataset_version_problem

    problem = dataset_version_problem(version)
    assert problem is not None and named in problem and repr(version) in problem


class _Refused(Exception):
    pass


def _refuse(request: dict) -> dict:
    raise _Refused(f"field 'x' is {request.get('x')!r}; it must be a number")


def test_bad_input_in_a_container_becomes_its_termination_message_and_nowhere_else(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from sm_explain_contracts.envelope import BAD_INPUT_MESSAGE_PREFIX, LOCAL_OPT_ML_ENV

    request = tmp_path / "request.json"
    request.write_text('{"x": "a"}')
    monkeypatch.delenv(LOCAL_OPT_ML_ENV, raising=False)
    assert run_cli(["--request", str(request), "--result", str(tmp_path / "r1.json")], "t", _refuse, _Refused) == 2
    assert not (tmp_path / "opt_ml").exists()  # on a worker: no termination message anywhere

    monkeypatch.setenv(LOCAL_OPT_ML_ENV, str(tmp_path / "opt_ml"))  # the local endpoint's stand-in for /opt/ml
    assert run_cli(["--request", str(request), "--result", str(tmp_path / "r2.json")], "t", _refuse, _Refused) == 2
    message = (tmp_path / "opt_ml" / "output" / "message").read_text()
    assert message == BAD_INPUT_MESSAGE_PREFIX + "field 'x' is 'a'; it must be a number"
