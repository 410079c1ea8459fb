"""`storage.mirror_prefix` copies a job's Debugger output from S3 (the local stack's moto) to a temporary
directory: every key stays inside it, and a prefix far bigger than one job's output is refused before copying."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from sm_explain import storage
from sm_explain.errors import BadRequest

pytestmark = pytest.mark.stack

DEBUG_OUTPUT = "v1/training/job-1/debug-output"


@pytest.fixture()
def bucket(local_stack: Any) -> str:
    name = f"mirror-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The mirror's temporary directories go four levels below tmp_path, so '../../../../x' stays observable."""
    root = tmp_path / "a" / "b" / "c"
    root.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def _put(bucket: str, keys: dict[str, bytes]) -> None:
    s3 = boto3.client("s3")
    for key, body in keys.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_a_trial_is_mirrored_with_its_layout_and_folder_markers_skipped(bucket: str, temp_root: Path) -> None:
    _put(bucket, {f"{DEBUG_OUTPUT}/": b"", f"{DEBUG_OUTPUT}/index/000000000000_worker_0.json": b"{}",
                  f"{DEBUG_OUTPUT}/collections/000000000/worker_0_collections.json": b"{}",
                  f"{DEBUG_OUTPUT}-other/x": b"not this job's"})
    local = Path(storage.mirror_prefix(f"s3://{bucket}/{DEBUG_OUTPUT}"))
    assert local.parent == temp_root
    assert _files_under(local) == ["collections/000000000/worker_0_collections.json",
                                   "index/000000000000_worker_0.json"]


@pytest.mark.reliability
@pytest.mark.parametrize("suffix, what", [
    ("/{tmp}/absolute-escape", "absolute after the prefix"),
    ("index/../../../../../up-escape", "climbs with '..'"),
    ("index/./x.json", "'.' segment"),
    ("index/a\\b.json", "backslash"),
    ("index/" + "n" * 256, "256-byte segment"),
])
def test_a_debug_output_key_leaving_the_mirror_is_refused_before_anything_is_copied(
    bucket: str, temp_root: Path, tmp_path: Path, suffix: str, what: str, reliability
) -> None:
    bad_key = f"{DEBUG_OUTPUT}/{suffix.format(tmp=tmp_path)}"
    _put(bucket, {f"{DEBUG_OUTPUT}/index/000000000000_worker_0.json": b"{}", bad_key: b"escaped"})
    with pytest.raises(BadRequest) as raised:
        storage.mirror_prefix(f"s3://{bucket}/{DEBUG_OUTPUT}/")
    message = str(raised.value)
    assert repr(bad_key) in message and f"s3://{bucket}/{DEBUG_OUTPUT}/" in message, message
    assert _files_under(tmp_path) == [], "nothing may be copied, inside or outside the mirror"
    reliability.refused("explanations", f"debug-output key {what} ({bad_key[len(DEBUG_OUTPUT) + 1:][:60]!r})",
                        "BadRequest naming the key; nothing written outside the mirror", message)


@pytest.mark.reliability
@pytest.mark.parametrize("bound", ["objects", "bytes"])
def test_a_prefix_bigger_than_a_jobs_debugger_output_is_refused_before_copying(
    bucket: str, temp_root: Path, tmp_path: Path, bound: str, reliability
) -> None:
    _put(bucket, {f"{DEBUG_OUTPUT}/events/{step:012d}.tfevents": b"x" * 1000 for step in range(5)})
    limits = {"max_objects": 4} if bound == "objects" else {"max_bytes": 4500}
    with pytest.raises(BadRequest) as raised:
        storage.mirror_prefix(f"s3://{bucket}/{DEBUG_OUTPUT}", **limits)
    message = str(raised.value)
    assert ("more than 4 objects" if bound == "objects" else "more than 4,500 bytes") in message, message
    assert "at most 2 GiB" in message, message
    assert _files_under(tmp_path) == [] and list(temp_root.iterdir()) == [], "nothing may be copied"
    reliability.refused("explanations", f"Debugger output over the mirror's {bound} bound",
                        "BadRequest with the sizes before anything is downloaded", message)


def test_an_s3_trial_is_read_alike_from_a_copy_of_only_the_bytes_read(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real trial (the default image's smdebug, the notebook's collections) read from S3 gives exactly what the
    same trial read from its directory gives, though the copy fetched only the small tensors and one full_shap
    tensor at one step of the event files; a tensor it did not fetch cannot be read (an error, never zeros)."""
    import numpy as np

    from sm_explain.debugger_trial import IMPORTANCE_TYPES, DebuggerTrial
    from tests.runtime.explain.test_explain_runs import NOTEBOOK_COLLECTIONS, _write_job

    trial_dir = Path(_write_job(tmp_path / "job", NOTEBOOK_COLLECTIONS)["debug_output_uri"])
    s3 = boto3.client("s3")
    event_bytes = 0
    for path in sorted(p for p in trial_dir.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{DEBUG_OUTPUT}/{path.relative_to(trial_dir).as_posix()}")
        event_bytes += path.stat().st_size if path.name.endswith(".tfevents") else 0
    # Only the bytes read (this small trial's tensors lie closer than the merge gap, which would fetch them whole).
    monkeypatch.setattr(storage, "RANGE_MERGE_GAP", 0)
    fetched: list[int] = []  # bytes of the ranged GETs: what was copied of the event files
    storage._s3_client().meta.events.register("after-call.s3.GetObject", lambda parsed, **_: fetched.append(
        int(parsed.get("ContentLength") or 0) if parsed.get("ContentRange") else 0))

    remote = DebuggerTrial.open(f"s3://{bucket}/{DEBUG_OUTPUT}", timeout_seconds=60)
    local = DebuggerTrial.open(str(trial_dir), timeout_seconds=60)
    (remote_step, remote_shap), (local_step, local_shap) = remote.full_shap_last_step(), local.full_shap_last_step()
    assert remote_step == local_step and np.array_equal(remote_shap, local_shap)
    assert remote.metric_curves().equals(local.metric_curves())
    assert remote.average_shap().equals(local.average_shap())
    for importance_type in IMPORTANCE_TYPES:
        assert remote.feature_importance(importance_type).equals(local.feature_importance(importance_type))
    assert 0 < sum(fetched) < event_bytes / 2, (sum(fetched), event_bytes)
    with pytest.raises(Exception):  # noqa: B017  (smdebug's own error, whatever its class)
        remote._trial.tensor("full_shap/f1").value(remote_step)
