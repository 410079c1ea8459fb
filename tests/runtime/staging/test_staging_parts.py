"""The training rows staged as part files (`train_parts`): the same rows in the same order as the single file,
a manifest that records each part, idempotent reruns, and refusals before anything is written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sm_explain_contracts.train_parts import PARTS_MANIFEST, parse_manifest
from sm_staging import StagingInputError, stage

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
PARTS = 7


def _stage(root: Path, version: str, **extra: object) -> dict:
    return stage({"source": str(ADULT), "source_sha256": ADULT_SHA256, "destination": str(root / version / "data"),
                  "dataset_version": version, **extra})


@pytest.fixture(scope="module")
def single_and_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("parts")
    return root, _stage(root, "one"), _stage(root, "seven", train_parts=PARTS)


def _tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_parts_concatenated_are_the_single_file_byte_for_byte(single_and_parts: tuple[Path, dict, dict]) -> None:
    _, single, parted = single_and_parts
    data = Path(parted["data_uri"])
    names = sorted(p.name for p in (data / "train").iterdir())
    assert names == [f"part-{i:05d}.csv" for i in range(PARTS)]  # nothing else in the training channel
    joined = b"".join((data / "train" / name).read_bytes() for name in names)
    assert joined == Path(single["train_uri"]).read_bytes()
    # Validation stays one file, the same bytes.
    assert Path(parted["validation_uri"]).read_bytes() == Path(single["validation_uri"]).read_bytes()
    assert parted["train_uri"] == str(data / PARTS_MANIFEST) and parted["train_parts"] == PARTS
    assert parted["train_channel_uri"] == f"{data}/train/"


def test_the_manifest_records_each_part_and_features_json_records_the_manifest(
    single_and_parts: tuple[Path, dict, dict],
) -> None:
    _, single, parted = single_and_parts
    data = Path(parted["data_uri"])
    entries = parse_manifest(json.loads((data / PARTS_MANIFEST).read_text()), PARTS_MANIFEST)
    sizes = [entry.rows for entry in entries]
    assert sum(sizes) == single["rows"]["train"] == 26048 and max(sizes) - min(sizes) <= 1
    for entry in entries:
        content = (data / entry.path).read_bytes()
        assert content.count(b"\n") == entry.rows and len(content) == entry.bytes
        assert hashlib.sha256(content).hexdigest() == entry.sha256
    features = json.loads((data / "features.json").read_text())
    assert set(features["files"]) == {PARTS_MANIFEST, "validation.csv"}
    assert features["files"][PARTS_MANIFEST]["sha256"] == hashlib.sha256((data / PARTS_MANIFEST).read_bytes()
                                                                         ).hexdigest()
    assert features["rows"] == single["rows"]


def test_a_rerun_with_the_same_parts_writes_nothing(single_and_parts: tuple[Path, dict, dict]) -> None:
    root, _, parted = single_and_parts
    before = _tree(root / "seven")
    assert _stage(root, "seven", train_parts=PARTS) == parted
    assert _tree(root / "seven") == before


@pytest.mark.reliability
def test_other_parts_under_the_same_version_are_refused_and_nothing_changes(
    single_and_parts: tuple[Path, dict, dict], reliability,
) -> None:
    root, _, _ = single_and_parts
    before = _tree(root / "seven")
    with pytest.raises(StagingInputError) as raised:
        _stage(root, "seven", train_parts=3)
    assert "already holds this source staged differently (differing in files)" in str(raised.value)
    assert _tree(root / "seven") == before
    reliability.refused("staging", "a rerun of a version with another train_parts", "refused naming what differs; "
                        "the parts a job reads are not rewritten", str(raised.value))


@pytest.mark.reliability
def test_more_parts_than_training_rows_are_refused_before_writing(tmp_path: Path, reliability) -> None:
    lines = ADULT.read_text().splitlines(keepends=True)[:40]
    small = tmp_path / "adult.data"
    small.write_text("".join(lines))
    request = {"source": str(small), "destination": str(tmp_path / "v1" / "data"), "dataset_version": "v1",
               "cache_dir": str(tmp_path / "cache"), "train_parts": 33}
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    assert str(raised.value) == ("train_parts 33 is more than the 32 training rows: every part holds at least one "
                                 "row")
    assert not (tmp_path / "v1").exists()
    reliability.refused("staging", "train_parts 33 for 32 training rows", "refused before anything is written",
                        str(raised.value))
