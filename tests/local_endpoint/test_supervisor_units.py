"""The supervisor's pure pieces: metric lines, status.json transitions, model tarball, log names."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from sm_local.cwlogs import MAX_BATCH_EVENTS, batches, log_stream_name
from sm_local.job_status import JobStatus, truncate
from sm_local.supervisor import parse_metric_line, write_model_tarball


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[0]\ttrain-logloss:0.61\tvalidation-logloss:0.62",
            [("train:logloss", 0.61), ("validation:logloss", 0.62)],
        ),
        (
            "[12]#011train-error:0.1#011validation-error:0.25",
            [("train:error", 0.1), ("validation:error", 0.25)],
        ),
        # Logger prefixes and CloudWatch-style timestamps before the round number.
        ("[2026-01-01:00:00:00:INFO] [49]#011validation-auc:0.93", [("validation:auc", 0.93)]),
        ("[3]\ttrain-ndcg@5:0.8\ttrain-error@0.7:0.12\n", [("train:ndcg@5", 0.8), ("train:error@0.7", 0.12)]),
        ("[4]\ttrain-rmse:1e-05", [("train:rmse", 1e-05)]),
    ],
)
def test_metric_lines_are_parsed(line: str, expected: list[tuple[str, float]]) -> None:
    assert parse_metric_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[0] starting",
        "Train matrix has 100 rows",
        "[5]\tnot a metric",
        "[1]\ttrain-logloss:nan-ish",
        "loss:0.2",
    ],
)
def test_other_lines_are_not_metrics(line: str) -> None:
    assert parse_metric_line(line) is None


def test_transitions_close_the_previous_one_and_map_primary_status(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = JobStatus(
        path, {"LossNotDecreasing": "arn:aws:sagemaker:us-east-1:1:processing-job/x"}, created=10.0
    )
    status.transition("Starting", at=10.0)
    status.transition("Downloading", at=11.5)
    on_disk = json.loads(path.read_text())
    assert on_disk["TrainingJobStatus"] == "InProgress" and on_disk["SecondaryStatus"] == "Downloading"
    assert on_disk["SecondaryStatusTransitions"] == [
        {
            "Status": "Starting",
            "StartTime": 10.0,
            "EndTime": 11.5,
            "StatusMessage": "Preparing the instances for training",
        },
        {"Status": "Downloading", "StartTime": 11.5, "StatusMessage": "Downloading input data"},
    ]
    assert on_disk["DebugRuleEvaluationStatuses"] == [
        {
            "RuleConfigurationName": "LossNotDecreasing",
            "RuleEvaluationJobArn": "arn:aws:sagemaker:us-east-1:1:processing-job/x",
            "RuleEvaluationStatus": "InProgress",
            "LastModifiedTime": 10.0,
        }
    ]
    status.transition("Stopping", at=12.0)
    assert status.job_status == "Stopping" and not status.is_terminal
    status.transition("MaxRuntimeExceeded", at=13.0)
    final = json.loads(path.read_text())
    assert final["TrainingJobStatus"] == "Stopped" and final["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert final["SecondaryStatusTransitions"][-1]["EndTime"] == 13.0  # terminal: closed at once
    assert status.is_terminal
    # No temp files left beside status.json.
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_rule_status_details_are_truncated_and_pending_rules_tracked(tmp_path: Path) -> None:
    status = JobStatus(tmp_path / "status.json", {"A": "arn-a", "B": "arn-b"})
    status.set_rule("A", "IssuesFound", "x" * 5000)
    details = json.loads((tmp_path / "status.json").read_text())["DebugRuleEvaluationStatuses"][0][
        "StatusDetails"
    ]
    assert len(details) == 1024 and details.endswith("...")
    assert status.pending_rules() == ["B"]
    status.set_rule("B", "Stopping")
    assert status.pending_rules() == ["B"]
    with pytest.raises(KeyError, match="no rule configuration named 'C'"):
        status.set_rule("C", "Error")


def test_update_removes_fields_set_to_none(tmp_path: Path) -> None:
    status = JobStatus(tmp_path / "status.json", {})
    status.update(FailureReason="x")
    status.update(FailureReason=None)
    assert "FailureReason" not in json.loads((tmp_path / "status.json").read_text())
    assert "DebugRuleEvaluationStatuses" not in status.data
    assert truncate("short") == "short"


def test_model_tarball_holds_the_model_directory_at_its_root(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "extra").mkdir(parents=True)
    (model_dir / "xgboost-model").write_bytes(b"model")
    (model_dir / "extra" / "notes.txt").write_text("n")
    tarball = tmp_path / "out" / "model.tar.gz"
    write_model_tarball(model_dir, tarball)
    with tarfile.open(tarball) as archive:
        assert sorted(archive.getnames()) == ["extra", "extra/notes.txt", "xgboost-model"]
        assert archive.extractfile("xgboost-model").read() == b"model"


def test_log_stream_name_is_sagemakers() -> None:
    assert log_stream_name("my-job", 1_700_000_000.9) == "my-job/algo-1-1700000000"


def test_log_batches_respect_put_log_events_limits() -> None:
    many = [{"timestamp": i, "message": "m"} for i in range(MAX_BATCH_EVENTS + 5)]
    assert [len(b) for b in batches(many)] == [MAX_BATCH_EVENTS, 5]
    big = [{"timestamp": i, "message": "x" * 200_000} for i in range(7)]
    sizes = [len(b) for b in batches(big)]
    assert sum(sizes) == 7 and all(sum(len(e["message"]) + 26 for e in b) <= 1_048_576 for b in batches(big))
    assert sizes == [5, 2]


def test_a_host_log_written_from_two_threads_reads_in_cloudwatch_in_the_files_order(tmp_path: Path) -> None:
    """The stdout and stderr readers share one HostLog: the events' timestamps never decrease in the order the
    lines reach the file, so CloudWatch (which returns a stream sorted by timestamp) shows the file's order."""
    import threading

    from sm_local.supervision import HostLog

    log = HostLog(tmp_path / "algo-1.log", lambda: None, "job/algo-1-0", "/aws/sagemaker/TrainingJobs")
    queued: list[tuple[str, float]] = []
    log.shipper.put = lambda message, timestamp=None: queued.append((message, timestamp))  # type: ignore[method-assign]

    def write(prefix: str) -> None:
        for index in range(3000):
            log.line(f"{prefix} {index}")

    threads = [threading.Thread(target=write, args=(prefix,)) for prefix in ("stdout", "stderr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    lines = (tmp_path / "algo-1.log").read_text().splitlines()
    assert len(lines) == 6000 and [message for message, _ in queued] == lines
    stamps = [timestamp for _, timestamp in queued]
    assert stamps == sorted(stamps)
