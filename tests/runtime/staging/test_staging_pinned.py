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
