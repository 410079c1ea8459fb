"""`make demo`'s run (scripts/run_dag_locally.run_dag): it starts now, so the UI shows its real start date and
duration, and processes the version its date names, through the dataset_version param."""

from __future__ import annotations

import datetime as dt
from typing import Any

from run_dag_locally import run_dag


class RecordingDag:
    def test(self, **kwargs: Any) -> dict[str, Any]:
        self.kwargs = kwargs
        return kwargs


def test_the_demo_run_starts_now_and_keeps_its_version() -> None:
    dag = RecordingDag()
    before = dt.datetime.now(dt.UTC)
    kwargs = run_dag(dag, dt.date(2026, 11, 22), {"debugger": "off"})
    assert kwargs["logical_date"] >= before and kwargs["run_after"] == kwargs["logical_date"]
    assert kwargs["run_conf"] == {"debugger": "off", "dataset_version": "2026-11-22"}


def test_a_version_in_the_conf_wins_over_the_date() -> None:
    kwargs = run_dag(RecordingDag(), dt.datetime(2026, 11, 1, tzinfo=dt.UTC), {"dataset_version": "bench-3"})
    assert kwargs["run_conf"] == {"dataset_version": "bench-3"}
