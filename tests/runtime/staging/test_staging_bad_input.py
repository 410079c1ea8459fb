"""Every bad input fails with a message naming the problem, and nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sm_staging import StagingInputError, stage
from sm_staging.layout import check_field_counts

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"


@pytest.fixture(scope="module")
def adult_lines() -> list[str]:
    """The first 40 real Adult lines: a small file with both classes and the real formatting."""
    with ADULT.open() as handle:
        return [next(handle) for _ in range(40)]


def _write(tmp_path: Path, lines: list[str], name: str = "adult.data") -> Path:
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


def _request(tmp_path: Path, path: Path | str, **overrides: Any) -> dict[str, Any]:
    return {
        "source": str(path),
        "destination": str(tmp_path / "out" / "v1" / "data"),
        "dataset_version": "v1",
        "cache_dir": str(tmp_path / "cache"),
        **overrides,
    }


def _relabel(lines: list[str], label: str) -> list[str]:
    return [line.rsplit(",", 1)[0] + f", {label}\n" for line in lines]


def _drop_second_field(line: str) -> str:
    fields = line.split(",")
    return ",".join(fields[:1] + fields[2:])


def _empty_label(line: str) -> str:
    return line.rsplit(",", 1)[0] + ",\n"


def _case(name: str, lines_edit, overrides: dict[str, Any], message: str):  # noqa: ANN001, ANN202
    return pytest.param(lines_edit, overrides, message, id=name)


CASES = [
    _case(
        "missing source",
        None,
        {"source": "/nonexistent/adult.data"},
        "source /nonexistent/adult.data does not exist",
    ),
    _case(
        "bad s3 bucket",
        None,
        {"source": "s3://Bad_Bucket/raw/v1/adult.data"},
        "invalid bucket name 'Bad_Bucket'",
    ),
    _case("s3 uri without key", None, {"source": "s3://bucket-a"}, "names no key or prefix after the bucket"),
    _case("bad destination uri", None, {"destination": "s3://x/v1/data/"}, "invalid bucket name 'x'"),
    _case("unsupported scheme", None, {"source": "ftp://host/adult.data"}, "unsupported scheme"),
    _case(
        "https without checksum",
        None,
        {"source": "https://example.org/adult.data"},
        "source_sha256 is required to verify what is downloaded",
    ),
    _case("checksum mismatch", lambda lines: lines, {"source_sha256": "0" * 64}, "checksum mismatch"),
    _case("empty file", lambda lines: [], {}, "is empty"),
    _case("only blank lines", lambda lines: ["\n", "\n"], {}, "has no data rows"),
    _case(
        "missing label column",
        lambda lines: lines,
        {"columns": ["a", "b"], "label_column": "income"},
        "label column 'income' is not one of the columns",
    ),
    _case("custom columns without label", lambda lines: lines, {"columns": ["a", "b"]}, "no 'label_column'"),
    _case(
        "unknown drop column",
        lambda lines: lines,
        {"drop_columns": ["Salary"]},
        "drop_columns names unknown columns ['Salary']",
    ),
    _case(
        "unknown categorical column",
        lambda lines: lines,
        {"categorical_columns": ["Sex", "Colour"]},
        "categorical_columns names unknown columns ['Colour']",
    ),
    _case(
        "row with a missing field",
        lambda lines: lines[:6] + [_drop_second_field(lines[6])] + lines[7:],
        {},
        "line 7 has 14 fields, expected 15",
    ),
    _case(
        "row with an extra field",
        lambda lines: lines[:2] + ["1," + lines[2]] + lines[3:],
        {},
        "line 3 has 16 fields",
    ),
    _case(
        "label not binary",
        lambda lines: lines[:-1] + _relabel(lines[-1:], "unknown"),
        {},
        "is not binary for binary:logistic: 3 distinct values",
    ),
    _case("one class", lambda lines: _relabel(lines, "<=50K"), {}, "has only one class ('<=50K')"),
    _case(
        "positive label absent",
        lambda lines: lines,
        {"positive_label": ">50K."},
        "positive_label '>50K.' is not a value",
    ),
    _case(
        "empty label",
        lambda lines: lines[:4] + [_empty_label(lines[4])] + lines[5:],
        {},
        "is empty on 1 rows (first on line 5)",
    ),
    _case(
        "non-numeric value",
        lambda lines: lines[:8] + ["abc" + lines[8][2:]] + lines[9:],
        {},
        "column 'Age' must be numeric but line 9 has 'abc'",
    ),
    _case(
        "empty split", lambda lines: [lines[0], lines[7]], {"validation_fraction": 0.6}, "leaves an empty set"
    ),
    _case(
        "reserved version",
        lambda lines: lines,
        {"dataset_version": "raw", "destination": "{tmp}/raw/data"},
        "is reserved",
    ),
    _case(
        "invalid version", lambda lines: lines, {"dataset_version": "v 1"}, "dataset_version 'v 1' is invalid"
    ),
    _case(
        "destination outside the version",
        lambda lines: lines,
        {"destination": "{tmp}/somewhere/data"},
        "does not contain the dataset version 'v1'",
    ),
    _case(
        "bad fraction",
        lambda lines: lines,
        {"validation_fraction": 1.5},
        "validation_fraction must be a number between 0 and 1",
    ),
    _case("unknown request key", lambda lines: lines, {"label": "Target"}, "unknown request keys ['label']"),
]


@pytest.mark.parametrize(("edit", "overrides", "message"), CASES)
def test_bad_input_names_the_problem_and_writes_nothing(
    tmp_path: Path,
    adult_lines: list[str],
    edit,
    overrides: dict[str, Any],
    message: str,  # noqa: ANN001
) -> None:
    source = _write(tmp_path, edit(adult_lines)) if edit is not None else tmp_path / "unused"
    overrides = {
        k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in overrides.items()
    }
    request = _request(tmp_path, source, **overrides)
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    assert message in str(raised.value)
    assert not (tmp_path / "out").exists()
    assert not Path(request["destination"]).exists()


def test_cli_exits_2_with_the_error_in_the_result(tmp_path: Path, adult_lines: list[str]) -> None:
    source = _write(tmp_path, _relabel(adult_lines, ">50K"))
    request_file = tmp_path / "request.json"
    result_file = tmp_path / "result.json"
    request_file.write_text(json.dumps(_request(tmp_path, source)))
    completed = subprocess.run(
        [sys.executable, "-m", "sm_staging", "--request", str(request_file), "--result", str(result_file)],
        env={"PATH": "/usr/bin:/bin", "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1",
             "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    error = json.loads(result_file.read_text())["error"]
    assert error["type"] == "StagingInputError"
    assert "has only one class ('>50K')" in error["message"]
    assert "only one class" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_good_small_file_with_blank_lines_and_crlf_stages(tmp_path: Path, adult_lines: list[str]) -> None:
    """Blank lines and Windows line ends are not errors (pandas skips/handles them), and line numbers
    in later errors still count them."""
    lines = [line.replace("\n", "\r\n") for line in adult_lines[:20]] + ["\r\n"] + adult_lines[20:] + ["\n"]
    result = stage(_request(tmp_path, _write(tmp_path, lines)))
    assert result["rows"] == {"train": 32, "validation": 8}
    broken = lines[:25] + [lines[25].replace(",", "", 1)] + lines[26:]
    with pytest.raises(StagingInputError, match="line 26 has 14 fields"):
        stage(_request(tmp_path, _write(tmp_path, broken, "broken.data")))


def test_field_count_check_across_chunk_boundaries_and_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sm_staging.layout as layout

    monkeypatch.setattr(layout, "_CHUNK", 7)  # lines and quoted fields straddle chunks
    path = tmp_path / "quoted.csv"
    path.write_text('1,"a,b",2\n\n3,"c\nd",4\r\n5,e,6')
    result = check_field_counts(path, 3, "quoted.csv")
    assert result.data_rows == 3
    assert result.blank_lines.tolist() == [2]
    assert result.line_of_row(1) == 3
    path.write_text('1,"a,b",2\n3,4\n')
    with pytest.raises(StagingInputError, match="line 2 has 2 fields, expected 3"):
        check_field_counts(path, 3, "quoted.csv")


@pytest.mark.reliability
@pytest.mark.parametrize("cell", ["inf", "-Infinity", "1e39"])
def test_a_non_finite_number_is_refused_naming_line_and_column(
    tmp_path: Path, adult_lines: list[str], cell: str, reliability
) -> None:
    """'inf' parses as a float, and 1e39 overflows float32 to inf: neither is a value XGBoost or SHAP can use
    (a missing value is an empty field or '?')."""
    fields = adult_lines[11].split(",")
    fields[12] = cell  # Hours per week
    lines = adult_lines[:11] + [",".join(fields)] + adult_lines[12:]
    request = _request(tmp_path, _write(tmp_path, lines))
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    message = str(raised.value)
    assert "column 'Hours per week' must hold finite numbers but line 12" in message and "1 such rows" in message
    assert not (tmp_path / "out").exists()
    reliability.refused("staging", f"numeric cell {cell!r} (Hours per week, line 12)",
                        "refused naming the column and the line; nothing written", message)


def _category_file(tmp_path: Path, labels: list[str]) -> Path:
    rows = [f"{'yes' if i % 2 else 'no'},{label}\n" for i, label in enumerate(labels * 2)]
    return _write(tmp_path, rows, "categories.csv")


def _custom_schema(**extra: Any) -> dict[str, Any]:
    return {"columns": ["label", "colour"], "label_column": "label", "positive_label": "yes",
            "categorical_columns": ["colour"], **extra}


def test_a_category_order_past_127_keeps_every_code(tmp_path: Path) -> None:
    """Codes in a fixed category order were int8: the 129th category came out as -128."""
    labels = [f"c{i:03d}" for i in range(200)]
    order = list(reversed(labels))  # code of c{i} is 199 - i
    request = _request(tmp_path, _category_file(tmp_path, labels), **_custom_schema(category_orders={"colour": order}))
    result = stage(request)
    staged = [line.split(",") for name in ("train.csv", "validation.csv")
              for line in Path(result[f"{name.split('.')[0]}_uri"]).read_text().splitlines()]
    codes = sorted({int(code) for _, code in staged})
    assert codes == list(range(200))
    features = json.loads(Path(result["features_uri"]).read_text())
    assert features["categorical"]["colour"]["150"] == "c049"


@pytest.mark.reliability
def test_more_categories_than_float32_keeps_exact_are_refused_naming_column_and_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    import sm_staging.encode as encode

    monkeypatch.setattr(encode, "MAX_CATEGORIES", 100)  # 2^24 distinct values would be a 200 MB file
    request = _request(tmp_path, _category_file(tmp_path, [f"c{i:03d}" for i in range(150)]), **_custom_schema())
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    assert "categorical column 'colour' has 150 distinct values; at most 100 category codes" in str(raised.value)
    assert not (tmp_path / "out").exists()
    reliability.refused("staging", "categorical column with more distinct values than float32 keeps exact",
                        "refused naming the column and the count; nothing written", str(raised.value))


@pytest.mark.parametrize("version", ["comparisons", "raw", "a" * 65, "v1/../v2", "-v1"])
def test_staging_refuses_the_versions_the_dags_refuse_with_the_same_sentence(tmp_path: Path, version: str) -> None:
    """One rule for a data set version (sm_explain_contracts.versions): the staging runtime answers exactly as the
    DAG params and the staging task do, so no version passes one side and fails the other."""
    from sm_explain_contracts.versions import dataset_version_problem
    from sm_staging.schema import parse_request

    expected = dataset_version_problem(version)
    assert expected is not None
    with pytest.raises(StagingInputError) as refused:
        parse_request({"source": str(tmp_path / "adult.data"), "destination": str(tmp_path / version / "data"),
                       "dataset_version": version})
    assert str(refused.value) == expected


def test_a_digit_only_version_is_staged_under_its_own_prefix_as_a_string(tmp_path: Path, adult_lines) -> None:
    """"20261122" is a version like "v1": staged under .../20261122/data/, named as the same string in the
    result and in features.json (nothing turns it into a number)."""
    source = _write(tmp_path, adult_lines)
    result = stage(_request(tmp_path, source, dataset_version="20261122",
                            destination=str(tmp_path / "out" / "20261122" / "data")))
    assert result["dataset_version"] == "20261122"
    assert result["features_uri"].startswith(str(tmp_path / "out" / "20261122" / "data") + "/")
    features = json.loads(Path(result["features_uri"]).read_text())
    assert features["dataset_version"] == "20261122"
