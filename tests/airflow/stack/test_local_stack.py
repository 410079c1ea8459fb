"""`make local-up`/`local-down` behaviour: idempotent, never half-started, clear port errors."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import pytest

from local_stack import StackError, read_stack, start_stack, stop_stack

pytestmark = pytest.mark.stack


def test_up_is_idempotent_writes_env_and_down_stops(tmp_path: Path) -> None:
    first = start_stack(tmp_path)
    try:
        again = start_stack(tmp_path)
        assert again == first, "a second `up` must reuse the running stack"
        env_file = (tmp_path / "stack.env").read_text()
        for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_DEFAULT_REGION",
                    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert f"export {key}=" in env_file
        sm = boto3.client("sagemaker", endpoint_url=first.sagemaker_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        assert sm.list_training_jobs()["TrainingJobSummaries"] == []
        s3 = boto3.client("s3", endpoint_url=first.s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="stack-check")
        assert "stack-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        assert stop_stack(tmp_path) is True
    assert read_stack(tmp_path) is None
    assert not (tmp_path / "stack.env").exists()
    assert stop_stack(tmp_path) is False, "a second `down` has nothing to stop"


def test_taken_port_is_a_clear_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} .*already taken"):
            start_stack(tmp_path, sagemaker_port=port)
    assert read_stack(tmp_path) is None
    assert not (tmp_path / "stack.json").exists()
