"""Staged data is pinned to its source: each source stages under its own sha256, a training channel's prefix
holds exactly one file, and files already staged are never rewritten (local stack S3, bucket versioning counts
every write)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from sm_staging import StagingInputError, stage

REPO = Path(__file__).resolve().parents[3]
ADULT = REPO.parent / "shared" / "data" / "adult.data"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
BUCKET = "sm-explain-pinned"


def _versions(client, prefix: str) -> list[tuple[str, str]]:  # noqa: ANN001
    """(key, version id) of every object version under the prefix: a write of the same bytes adds one."""
    pages = client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted((v["Key"], v["VersionId"]) for page in pages for v in page.get("Versions", []))


def _keys(client, prefix: str) -> list[str]:  # noqa: ANN001
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.fixture(scope="module")
def s3(local_stack, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    client.upload_file(str(ADULT), BUCKET, "adult/raw/v1/adult.data")
    sample = tmp_path_factory.mktemp("sample") / "adult.data"
    with ADULT.open() as handle:
        sample.write_text("".join(next(handle) for _ in range(2000)))
    client.upload_file(str(sample), BUCKET, "adult/raw/v1/corrected.data")
    return client


def _request(source: str, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"source": f"s3://{BUCKET}/adult/raw/v1/{source}", "destination": f"s3://{BUCKET}/adult/v1/data/",
            "dataset_version": "v1", "cache_dir": str(tmp_path / "cache"), **extra}


def test_two_sources_of_one_version_never_share_objects_and_a_rerun_writes_nothing(s3, tmp_path: Path) -> None:  # noqa: ANN001
    first = stage(_request("adult.data", tmp_path))
    written_by_first = _versions(s3, f"adult/v1/data/{ADULT_SHA256}/")
    second = stage(_request("corrected.data", tmp_path))  # another run of v1, another source

    assert first["data_uri"] == f"s3://{BUCKET}/adult/v1/data/{ADULT_SHA256}/"
    assert second["data_uri"] == f"s3://{BUCKET}/adult/v1/data/{second['source_sha256']}/"
    assert second["source_sha256"] != ADULT_SHA256
    assert _versions(s3, f"adult/v1/data/{ADULT_SHA256}/") == written_by_first, "the second source wrote over the first"
    assert (first["rows"], second["rows"]) == ({"train": 26048, "validation": 6513}, {"train": 1600, "validation": 400})

    # Each training channel is a prefix ending in '/' that holds exactly its one file (S3Prefix matches by prefix).
    for result in (first, second):
        for channel in ("train", "validation"):
            prefix = result[f"{channel}_channel_uri"].removeprefix(f"s3://{BUCKET}/")
            assert prefix.endswith(f"/{channel}/")
            assert _keys(s3, prefix) == [f"{prefix}{channel}.csv"]
            assert result[f"{channel}_uri"] == f"s3://{BUCKET}/{prefix}{channel}.csv"

    assert stage(_request("adult.data", tmp_path)) == first
    assert _versions(s3, f"adult/v1/data/{ADULT_SHA256}/") == written_by_first, "a rerun rewrote staged objects"


@pytest.mark.reliability
def test_the_same_source_with_other_settings_never_overwrites_staged_files(s3, tmp_path: Path, reliability) -> None:  # noqa: ANN001
    stage(_request("adult.data", tmp_path))
    before = _versions(s3, "adult/v1/data/")
    with pytest.raises(StagingInputError) as raised:
        stage(_request("adult.data", tmp_path, seed=8))
    message = str(raised.value)
    assert f"s3://{BUCKET}/adult/v1/data/{ADULT_SHA256}/ already holds this source staged differently" in message
    assert "split" in message and "another dataset_version" in message
    assert _versions(s3, "adult/v1/data/") == before
    reliability.refused("staging", "same source, same version, another split seed",
                        "refused naming what differs; no staged object rewritten", message)


def _stage_in_a_process(request: dict[str, object]) -> dict[str, object]:
    return stage(request)


def test_runs_staging_one_version_at_the_same_moment_write_each_object_once(s3, tmp_path: Path) -> None:  # noqa: ANN001
    """Scheduled runs and a backfill may stage one version concurrently: each object is created once, by whichever
    run gets there first, and every run returns the same staged files."""
    import multiprocessing

    request = _request("corrected.data", tmp_path, dataset_version="v-concurrent",
                       destination=f"s3://{BUCKET}/adult/v-concurrent/data/")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_stage_in_a_process, [request] * 4)

    assert all(result == results[0] for result in results)
    versions = _versions(s3, "adult/v-concurrent/data/")
    keys = [key for key, _ in versions]
    assert sorted(set(keys)) == keys, f"an object was written more than once: {versions}"
    assert {key.rsplit("/", 1)[-1] for key in keys} == {"features.json", "train.csv", "validation.csv"}


def test_an_object_created_between_the_check_and_the_write_is_kept(s3, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The window a check-then-write leaves open: the files appear after staging looked for them. The conditional
    write keeps what is there, and the run returns the staged files it found."""
    import importlib

    staging = importlib.import_module("sm_staging.stage")  # the package exports the function of that name

    request = _request("corrected.data", tmp_path, dataset_version="v-window",
                       destination=f"s3://{BUCKET}/adult/v-window/data/")
    first = stage(request)
    before = _versions(s3, "adult/v-window/data/")
    monkeypatch.setattr(staging, "_already_staged", lambda *args: False)  # as if nothing had been there
    monkeypatch.setattr(staging.Destination, "size", lambda self, name: None, raising=True)
    monkeypatch.setattr(staging, "_check_kept", lambda *args: None)
    assert stage(request) == first
    assert _versions(s3, "adult/v-window/data/") == before, "a conditional write replaced an object"


@pytest.mark.reliability
def test_a_foreign_file_left_in_an_unfinished_version_is_refused_not_overwritten(s3, tmp_path: Path, reliability) -> None:  # noqa: ANN001
    """A staging with other settings that stopped before its features.json leaves files that are not this
    staging's: refused, naming the file, and nothing is rewritten."""
    request = _request("corrected.data", tmp_path, dataset_version="v-foreign",
                       destination=f"s3://{BUCKET}/adult/v-foreign/data/")
    prefix = f"adult/v-foreign/data/{stage(request)['source_sha256']}/"
    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}features.json")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}train/train.csv", Body=b"0,1,2\n")  # another run's, unfinished
    before = _versions(s3, prefix)
    with pytest.raises(StagingInputError) as raised:
        stage(request)
    message = str(raised.value)
    assert f"s3://{BUCKET}/{prefix}train/train.csv exists with 6 bytes" in message
    assert "never overwritten" in message and "another dataset_version" in message
    assert [key for key, _ in _versions(s3, prefix) if key.endswith(".csv")] == [
        key for key, _ in before if key.endswith(".csv")]
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}train/train.csv")["Body"].read() == b"0,1,2\n"
    reliability.refused("staging", "a version holding another staging's unfinished train.csv",
                        "refused naming the file; nothing overwritten", message)


@pytest.mark.parametrize("megabytes", [1, 9], ids=["put", "multipart"])
def test_publish_creates_an_object_only_where_none_is(s3, tmp_path: Path, monkeypatch, megabytes: int) -> None:  # noqa: ANN001
    """Small files go up in one PutObject, large ones (over s3transfer's 8 MiB threshold) in a multipart upload:
    both are conditional, so a second writer that missed the object in its check still keeps the first one."""
    from sm_staging.stage import Destination

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part.csv").write_bytes(b"1,2\n" * (megabytes * 262144))
    destination = Destination(f"s3://{BUCKET}/adult/v-publish-{megabytes}/data/")
    assert destination.publish(tmp_path, ["train/part.csv"]) == []
    monkeypatch.setattr(Destination, "size", lambda self, name: None)
    (tmp_path / "train" / "part.csv").write_bytes(b"3,4\n" * (megabytes * 262144))  # another writer's bytes
    assert destination.publish(tmp_path, ["train/part.csv"]) == ["train/part.csv"]
    prefix = f"adult/v-publish-{megabytes}/data/"
    assert len(_versions(s3, prefix)) == 1
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}train/part.csv")["Body"].read(4) == b"1,2\n"
    assert s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == [], "an upload was left open"


def test_a_directory_destination_creates_each_file_only_where_none_is(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from sm_staging.stage import Destination

    (tmp_path / "work" / "train").mkdir(parents=True)
    (tmp_path / "work" / "train" / "train.csv").write_text("1,2\n")
    destination = Destination(str(tmp_path / "out"))
    assert destination.publish(tmp_path / "work", ["train/train.csv"]) == []
    (tmp_path / "work" / "train" / "train.csv").write_text("3,4\n")
    assert destination.publish(tmp_path / "work", ["train/train.csv"]) == ["train/train.csv"]
    assert (tmp_path / "out" / "train" / "train.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["train.csv"], "a partial file was left"
