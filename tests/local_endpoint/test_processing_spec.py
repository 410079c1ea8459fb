"""The rules of `sm_local.processing_spec` on their own: /opt/ml paths rewritten in a container's command, the
runtime image, the container command, ShardedByS3Key. The endpoint's tests run them through real jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sm_local.processing_spec import (
    ContainerCommandError,
    HostLayout,
    container_command,
    runtime_image_problem,
    shard,
)

HOST = HostLayout(2, Path("/state/processing-jobs/job/hosts/algo-2"))
OPT_ML = "/state/processing-jobs/job/hosts/algo-2/opt_ml"


@pytest.mark.parametrize(
    ("value", "rewritten"),
    [
        ("/opt/ml/processing/input", f"{OPT_ML}/processing/input"),
        ("--input=/opt/ml/processing/input", f"--input={OPT_ML}/processing/input"),
        ("/opt/ml/processing/a,/opt/ml/processing/b", f"{OPT_ML}/processing/a,{OPT_ML}/processing/b"),
        ("/opt/ml/output/message", f"{OPT_ML}/output/message"),
        ("/opt/ml", OPT_ML),
        ("s3://bucket/opt/ml/processing/x", "s3://bucket/opt/ml/processing/x"),
        ("/opt/mlflow/x", "/opt/mlflow/x"),
        ("/data/opt/ml/x", "/data/opt/ml/x"),
    ],
)
def test_only_opt_ml_paths_of_their_own_are_rewritten(value: str, rewritten: str) -> None:
    assert HOST.rewrite(value) == rewritten


def test_the_runtime_image_is_the_configured_uri_or_any_image_of_its_repository() -> None:
    configured = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/runtime:7"
    for uri in (configured, "123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime:latest",
                "localhost:5000/sm-explain-runtime", "registry.example.com/a/sm-explain-runtime@sha256:" + "0" * 64):
        assert runtime_image_problem(uri, configured) is None, uri
    problem = runtime_image_problem("123456789012.dkr.ecr.us-east-1.amazonaws.com/sm-explain-runtime-old:1",
                                    configured)
    assert problem is not None and problem.startswith("ClientError: Failed to pull the image")


def test_python_is_the_runtime_interpreter_and_nothing_runs_through_a_shell(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    app = {"ContainerEntrypoint": ["/usr/local/bin/python3", "/opt/ml/processing/code/run.py"],
           "ContainerArguments": ["--out", "/opt/ml/processing/output"]}
    assert container_command(app, HOST, str(python)) == [
        str(python), f"{OPT_ML}/processing/code/run.py", "--out", f"{OPT_ML}/processing/output"]
    for entrypoint in (["sh", "-c", "id"], ["/bin/bash"], ["python2"], ["../bin/python"]):
        with pytest.raises(ContainerCommandError, match="is not a program of the runtime image"):
            container_command({"ContainerEntrypoint": entrypoint}, HOST, str(python))


def test_sharded_by_s3_key_splits_the_sorted_keys_round_robin_and_covers_each_once() -> None:
    keys = [f"part-{index:02d}" for index in range(11)]
    shares = [shard(list(reversed(keys)), host, 3, "ShardedByS3Key") for host in (1, 2, 3)]
    assert shares[0] == ["part-00", "part-03", "part-06", "part-09"]
    assert sorted(key for share in shares for key in share) == keys
    assert {len(share) for share in shares} == {3, 4}
    assert shard(keys, 2, 3, "FullyReplicated") == keys
