"""S3 channel downloads, incremental tensor sync and CloudWatch shipping against the local stack's moto."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from sm_explain_contracts.safe_keys import UnsafeKeyError
from sm_local import s3io
from sm_local.cwlogs import TRAINING_LOG_GROUP, LogShipper

pytestmark = pytest.mark.stack


@pytest.fixture()
def bucket(local_stack: Any) -> str:
    name = f"xfer-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def test_download_prefix_lays_out_channel_like_sagemaker(tmp_path: Path, bucket: str) -> None:
    s3 = s3io.aws_client("s3")
    for key in (
        "data/train/part-0.csv",
        "data/train/sub/part-1.csv",
        "data/train/",
        "data/trainX.csv",
        "other/a",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3io.download_prefix(s3, f"s3://{bucket}/data/train/", tmp_path / "dir")[0] == 2
    assert sorted(p.relative_to(tmp_path / "dir").as_posix() for p in (tmp_path / "dir").rglob("*.csv")) == [
        "part-0.csv",
        "sub/part-1.csv",
    ]
    # Without the trailing slash the prefix also matches `trainX.csv` (S3 prefixes are not folders);
    # keys under the `data/train/` "folder" still land at the channel root.
    assert s3io.download_prefix(s3, f"s3://{bucket}/data/train", tmp_path / "partial")[0] == 3
    assert sorted(
        p.relative_to(tmp_path / "partial").as_posix() for p in (tmp_path / "partial").rglob("*.csv")
    ) == [
        "part-0.csv",
        "sub/part-1.csv",
        "trainX.csv",
    ]
    # A whole key as prefix: one file with its own name.
    assert s3io.download_prefix(s3, f"s3://{bucket}/data/trainX.csv", tmp_path / "single") == (1, 15)
    assert (tmp_path / "single" / "trainX.csv").read_bytes() == b"data/trainX.csv"


def test_download_of_nothing_raises(tmp_path: Path, bucket: str) -> None:
    s3 = s3io.aws_client("s3")
    with pytest.raises(s3io.NoObjectsFoundError):
        s3io.download_prefix(s3, f"s3://{bucket}/missing/", tmp_path)
    with pytest.raises(s3io.NoObjectsFoundError):
        s3io.download_prefix(s3, f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x", tmp_path)
    with pytest.raises(s3io.S3UriError, match="is not an s3:// URI"):
        s3io.download_prefix(s3, "https://example.com/x", tmp_path)


def _files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


# Key suffixes after the channel prefix `data/train/` that would leave the channel directory ({tmp}: tmp_path).
CLIMBING_KEYS = {
    "absolute after the prefix": "{tmp}/absolute-escape",
    "climbs with '..'": "../../../../up-escape",
    "'.' segment": "sub/./dot",
    "empty segment": "sub//empty",
    "backslash": "back\\slash",
    "256-byte segment": "n" * 256,
}


@pytest.mark.reliability
@pytest.mark.parametrize("what", list(CLIMBING_KEYS))
def test_channel_keys_that_leave_the_channel_directory_are_refused_before_anything_is_written(
    tmp_path: Path, bucket: str, what: str, reliability
) -> None:
    suffix = CLIMBING_KEYS[what].format(tmp=tmp_path)
    s3 = s3io.aws_client("s3")
    s3.put_object(Bucket=bucket, Key="data/train/part-0.csv", Body=b"1,2\n")
    bad_key = f"data/train/{suffix}"
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b"escaped")
    # Deep enough that '../../../../' from the channel directory still lands inside tmp_path.
    destination = tmp_path / "a" / "b" / "c" / "opt_ml" / "input" / "data" / "train"
    for uri in (f"s3://{bucket}/data/train/", f"s3://{bucket}/data/train"):
        with pytest.raises(UnsafeKeyError) as raised:
            s3io.download_prefix(s3, uri, destination)
        assert raised.value.key == bad_key and repr(bad_key) in str(raised.value)
        assert _files_under(tmp_path) == [], "nothing may be written, inside or outside the channel"
    reliability.refused("local endpoint", f"channel object key {what} ({bad_key[:60]!r})",
                        "refused naming the key; nothing written inside or outside the channel", str(raised.value))


@pytest.mark.reliability
def test_a_channel_larger_than_the_volume_left_is_refused_before_anything_is_written(
    tmp_path: Path, bucket: str, reliability
) -> None:
    """File mode copies the channel to the job's ML storage volume; what cannot fit fails before the copy."""
    s3 = s3io.aws_client("s3")
    for index in range(3):
        s3.put_object(Bucket=bucket, Key=f"big/train/part-{index}.csv", Body=b"x" * 1000)
    destination = tmp_path / "train"
    with pytest.raises(s3io.VolumeTooSmallError) as raised:
        s3io.download_prefix(s3, f"s3://{bucket}/big/train/", destination, max_bytes=2999)
    assert str(raised.value) == ("its 3 objects hold 3000 bytes, more than the 2999 bytes left on the training "
                                 "volume")
    assert _files_under(tmp_path) == []
    assert s3io.download_prefix(s3, f"s3://{bucket}/big/train/", destination, max_bytes=3000) == (3, 3000)
    reliability.refused("local endpoint", "channel data larger than the job's VolumeSizeInGB",
                        "the job fails with a ClientError before anything is copied", str(raised.value))


def test_directory_sync_uploads_only_new_and_changed_files(tmp_path: Path, bucket: str) -> None:
    s3 = s3io.aws_client("s3")
    tensors = tmp_path / "tensors"
    (tensors / "events").mkdir(parents=True)
    (tensors / "events" / "0.tfevents").write_bytes(b"step0")
    (tensors / "collections.json").write_text("{}")
    sync = s3io.DirectorySync(s3, tensors, f"s3://{bucket}/training/job/debug-output")

    assert sync.sync() == ["collections.json", "events/0.tfevents"]
    assert sync.sync() == []  # nothing changed: nothing uploaded

    (tensors / "events" / "1.tfevents").write_bytes(b"step1")
    (tensors / "index").mkdir()
    (tensors / "index" / "000000000001_worker_0.json.tmp").write_text("{half")  # smdebug mid-write
    changed = tensors / "collections.json"
    changed.write_text('{"a": 1}')
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a later mtime, whatever the clock
    assert sync.sync() == ["collections.json", "events/1.tfevents"]

    objects = s3.list_objects_v2(Bucket=bucket, Prefix="training/job/debug-output/")["Contents"]
    assert sorted(o["Key"] for o in objects) == [
        "training/job/debug-output/collections.json",
        "training/job/debug-output/events/0.tfevents",
        "training/job/debug-output/events/1.tfevents",
    ]
    body = s3.get_object(Bucket=bucket, Key="training/job/debug-output/collections.json")["Body"].read()
    assert body == b'{"a": 1}'


def test_upload_file_sends_one_put_up_to_the_limit_and_parts_above_it(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file up to SINGLE_PUT_MAX_BYTES is one object version with a plain (single PUT) ETag; a larger one is a
    multipart object (its ETag ends in -<parts>); both read back byte for byte."""
    monkeypatch.setattr(s3io, "SINGLE_PUT_MAX_BYTES", 9 * 1024 * 1024)
    s3 = s3io.aws_client("s3")
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(os.urandom(9 * 1024 * 1024))
    large.write_bytes(os.urandom(9 * 1024 * 1024 + 1))
    for path in (small, large):
        s3io.upload_file(s3, path, f"s3://{bucket}/up/{path.name}")
        got = s3.get_object(Bucket=bucket, Key=f"up/{path.name}")
        assert got["Body"].read() == path.read_bytes()
        assert ("-" in got["ETag"]) is (path is large), got["ETag"]


def test_periodic_sync_runs_in_the_background_until_stopped(tmp_path: Path, bucket: str) -> None:
    s3 = s3io.aws_client("s3")
    (tmp_path / "a").write_text("a")
    errors: list[BaseException] = []
    periodic = s3io.PeriodicSync(s3io.DirectorySync(s3, tmp_path, f"s3://{bucket}/p"), 0.1, errors.append)
    periodic.start()
    deadline = time.monotonic() + 10
    while s3.list_objects_v2(Bucket=bucket, Prefix="p/")["KeyCount"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    periodic.stop()
    assert s3.list_objects_v2(Bucket=bucket, Prefix="p/")["KeyCount"] == 1 and errors == []


def test_log_shipper_creates_stream_and_keeps_line_order(local_stack: Any) -> None:
    stream = f"ship-{uuid.uuid4().hex[:8]}/algo-1-1700000000"
    shipper = LogShipper(lambda: s3io.aws_client("logs"), stream, flush_interval=0.2)
    shipper.start()
    now = time.time()
    for i in range(50):
        shipper.put(f"line {i}", now)  # same millisecond: order must survive
    shipper.close()
    events = boto3.client("logs").get_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream)[
        "events"
    ]
    assert [e["message"] for e in events] == [f"line {i}" for i in range(50)]
    assert shipper.sent_events == 50


def test_a_flush_has_every_line_so_far_in_cloudwatch_when_it_returns_and_the_shipper_goes_on(local_stack: Any) -> None:
    stream = f"flush-{uuid.uuid4().hex[:8]}/algo-1-1700000000"
    shipper = LogShipper(lambda: s3io.aws_client("logs"), stream, flush_interval=3600)  # no timed flush would come
    shipper.start()
    logs = boto3.client("logs")

    def messages() -> list[str]:
        return [e["message"] for e in logs.get_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream,
                                                          startFromHead=True)["events"]]

    for round_ in range(3):
        for i in range(20):
            shipper.put(f"round {round_} line {i}")
        assert shipper.flush(timeout=30)
        assert messages() == [f"round {r} line {i}" for r in range(round_ + 1) for i in range(20)]
    shipper.put("after the flushes")
    shipper.close()
    assert messages()[-1] == "after the flushes" and shipper.sent_events == 61
    assert not shipper.flush(timeout=1)  # closed: nothing to wait for


def test_log_shipper_survives_an_unreachable_logs_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore reads the service id "CloudWatch Logs"; port 9 (discard) refuses connections.
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    shipper = LogShipper(lambda: s3io.aws_client("logs"), "job/algo-1-1", flush_interval=0.1)
    shipper.start()
    shipper.put("lost line")
    shipper.close()  # returns (the job goes on) although nothing could be sent
    assert shipper.failed and shipper.sent_events == 0
