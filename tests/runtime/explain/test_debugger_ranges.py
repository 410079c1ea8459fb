"""Which bytes of a Debugger trial's event files the explanations read (`debugger_trial.ranges_read`): every small
tensor, one full_shap tensor at its last step for every worker, nothing else; index files that point outside the
trial are refused naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sm_explain.debugger_trial import ranges_read
from sm_explain.errors import NoDebuggerData

EVENT = "events/{step:012d}/{step:012d}_worker_{worker}.tfevents"


def _index(root: Path, step: int, worker: int, tensors: list[tuple[str, int, int]], event: str | None = None) -> None:
    path = root / "index" / "000000000" / f"{step:012d}_worker_{worker}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "meta": {"mode": "GLOBAL", "mode_step": step,
                 "event_file_name": event or EVENT.format(step=step, worker=worker)},
        "tensor_payload": [{"tensorname": name, "start_idx": start, "length": length} for name, start, length in tensors],
    }))


NOTEBOOK_STEP = [("train-logloss", 0, 100), ("average_shap/f0", 100, 120), ("full_shap/f0", 220, 5000),
                 ("full_shap/f1", 5220, 5000), ("full_shap/f10", 10220, 5000)]


def test_the_small_tensors_of_every_step_and_one_full_shap_tensor_at_the_last_step_of_each_worker(
    tmp_path: Path
) -> None:
    sizes = {}
    for step in (0, 5, 10):
        for worker in (0, 1):
            _index(tmp_path, step, worker, NOTEBOOK_STEP)
            sizes[EVENT.format(step=step, worker=worker)] = 15220
    wanted = ranges_read(tmp_path, sizes)
    for step in (0, 5):
        for worker in (0, 1):
            assert wanted[EVENT.format(step=step, worker=worker)] == [(0, 100), (100, 120)]
    for worker in (0, 1):  # full_shap/f0 sorts first (before f1 and f10); 10 is its last step
        assert wanted[EVENT.format(step=10, worker=worker)] == [(0, 100), (100, 120), (220, 5000)]


@pytest.mark.reliability
@pytest.mark.parametrize("case, tensors, event, expected", [
    ("event file outside the trial", NOTEBOOK_STEP, "../../../etc/passwd", "names the event file '../../../etc/passwd'"),
    ("range past the event file's end", [("full_shap/f0", 15000, 5000)], None, "outside events/"),
    ("negative start", [("train-logloss", -1, 10)], None, "at bytes -1+10"),
    ("start that is not an integer", [("train-logloss", "0", 10)], None, "at bytes '0'+10"),
])
def test_an_index_file_pointing_outside_the_trial_is_refused_naming_it(
    tmp_path: Path, case: str, tensors: list[tuple[str, int, int]], event: str | None, expected: str, reliability
) -> None:
    _index(tmp_path, 0, 0, tensors, event)
    with pytest.raises(NoDebuggerData) as raised:
        ranges_read(tmp_path, {EVENT.format(step=0, worker=0): 15220})
    message = str(raised.value)
    assert "index/000000000/000000000000_worker_0.json" in message and expected in message, message
    reliability.refused("explanations", f"Debugger index file: {case}",
                        "NoDebuggerData naming the index file, before any event byte is fetched", message)


def test_an_index_file_that_is_not_smdebugs_json_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "index" / "000000000" / "000000000000_worker_0.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(NoDebuggerData, match="index/000000000/000000000000_worker_0.json cannot be read"):
        ranges_read(tmp_path, {})
