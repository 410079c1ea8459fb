"""`python -m sm_explain.reduce --request R.json --result S.json`: merge the partials of every map
(`sm_explain.map`) and draw every figure and table as one run over all rows draws them (`explain.draw`).

The request is an explanation request plus `partial_uris`. Before anything is drawn, the partials must be of
this run (the same fingerprint: model, features, settings) and cover every part of each channel the run reads
exactly once, each part with the row count and sha256 the run's manifest records; a partial that does not is
refused, naming the partial and the part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sm_explain.errors import BadRequest
from sm_explain.exact_sums import mean_and_std, to_float
from sm_explain.model_source import metric_names
from sm_explain.partials import Partial
from sm_explain.run import Run
from sm_explain.sampling import SamplePlan, sample_plan
from sm_explain_contracts.envelope import exit_process, run_cli


@dataclass
class Merged:
    """Every partial of the run, merged: the explained rows' sample and statistics, the metric sums."""

    n_rows: int  # explained rows
    plan: SamplePlan
    base_value: float
    shap_step: int | None
    shap_mean: float
    shap_std: float
    rows: np.ndarray  # sampled rows (sorted), with their features, predictions and SHAP sums
    features: np.ndarray
    predictions: np.ndarray
    shap_sums: np.ndarray
    contribution_rows: np.ndarray  # rows with full SHAP vectors (sorted), and those vectors
    contributions: np.ndarray
    candidate_rows: np.ndarray
    metric_sums: dict[str, tuple[dict[str, list[int]], int]]  # channel -> (sums per metric, rows)
    explained: list[Partial]

    def _at(self, rows: np.ndarray, table: np.ndarray, what: str) -> np.ndarray:
        positions = np.searchsorted(table, rows)
        if rows.size and (positions.max() >= table.size or not np.array_equal(table[positions], rows)):
            raise BadRequest(f"the partials lack the {what} of some sampled rows: they are not all of this run")
        return positions

    def features_of(self, rows: np.ndarray) -> np.ndarray:
        return self.features[self._at(rows, self.rows, "feature values")]

    def predictions_of(self, rows: np.ndarray) -> np.ndarray:
        return self.predictions[self._at(rows, self.rows, "predictions")]

    def shap_sums_of(self, rows: np.ndarray) -> np.ndarray:
        return self.shap_sums[self._at(rows, self.rows, "SHAP sums")]

    def contributions_of(self, rows: np.ndarray) -> np.ndarray:
        return self.contributions[self._at(rows, self.contribution_rows, "SHAP values")]

    def mean_abs_shap(self) -> tuple[np.ndarray, str]:
        """Waits for any pass still running; the exact sums merged, over the row count, rounded once."""
        for partial in self.explained:
            partial.resolve()
        totals = [sum(column) for column in zip(*(p.abs_sums for p in self.explained), strict=True)]  # type: ignore[misc]
        methods = sorted({p.method for p in self.explained if p.method})
        return np.array([to_float(total, self.n_rows) for total in totals]), "; ".join(methods)


def _check_partial(run: Run, partial: Partial, what: str) -> None:
    if partial.channel not in run.channels:
        raise BadRequest(f"{what} covers the {partial.channel} channel, which this run does not read "
                         f"(it reads {', '.join(run.channels)})")
    if partial.n_features != run.n_features:
        raise BadRequest(f"{what} has {partial.n_features} features, but features_uri names {run.n_features}")
    for key in sorted(set(run.fingerprint) | set(partial.fingerprint)):
        if run.fingerprint.get(key) != partial.fingerprint.get(key):
            raise BadRequest(f"{what} is not of this run: its {key} is {partial.fingerprint.get(key)!r}, this run's "
                             f"is {run.fingerprint.get(key)!r}")
    if partial.explained != (partial.channel == run.explained_channel):
        raise BadRequest(f"{what} says the {partial.channel} channel is{'' if partial.explained else ' not'} "
                         "explained, which this run's settings contradict")
    if partial.explained and (partial.abs_sums is None and partial.pending is None
                              or partial.shap_total is None or partial.shap_square_total is None
                              or partial.base_value is None or len(partial.abs_sums or [0] * run.n_features)
                              != run.n_features):
        raise BadRequest(f"{what} lacks the SHAP sums of its rows (one per feature, {run.n_features})")
    if run.metric_sums_needed and (partial.metric_sums is None
                                   or set(partial.metric_sums) != set(metric_names(run.objective))
                                   or any(len(sums) != len(run.steps) for sums in partial.metric_sums.values())):
        raise BadRequest(f"{what} lacks the metric sums ({', '.join(metric_names(run.objective))}) at the run's "
                         f"{len(run.steps)} curve steps")


def _check_coverage(run: Run, partials: list[tuple[Partial, str]]) -> dict[str, int]:
    """Every part of every channel the run reads in exactly one partial, as the run records it; the row count
    of each channel."""
    owner: dict[tuple[str, str], str] = {}
    totals: dict[str, int] = {}
    for partial, what in partials:
        known = {part.path: part for part in run.parts[partial.channel]}
        for part in partial.parts:
            path = part["path"]
            expected = known.get(path)
            if expected is None:
                raise BadRequest(f"{what} covers {path!r}, which is not a part of the {partial.channel} channel")
            if (partial.channel, path) in owner:
                raise BadRequest(f"part {path} is in two partials: {owner[(partial.channel, path)]} and {what}")
            owner[(partial.channel, path)] = what
            if part["sha256"] != expected.sha256:
                raise BadRequest(f"{what} read part {path} with sha256 {part['sha256']}, but the run records "
                                 f"{expected.sha256} for it: it read other data")
            if part["first_row"] != expected.first_row or (expected.rows is not None and part["rows"] !=
                                                           expected.rows):
                raise BadRequest(f"{what} has part {path} at rows {part['first_row']}+{part['rows']}, but the run "
                                 f"records {expected.first_row}+{expected.rows}")
        channel_total = totals.setdefault(partial.channel, partial.n_total)
        if channel_total != partial.n_total:
            raise BadRequest(f"{what} counts {partial.n_total} rows in the {partial.channel} channel, another "
                             f"partial {channel_total}")
    for channel in run.channels:
        for part in run.parts[channel]:
            if (channel, part.path) not in owner:
                raise BadRequest(f"no partial covers part {part.path} of the {channel} channel: every part must be "
                                 "mapped once")
        covered = sum(p["rows"] for partial, _ in partials if partial.channel == channel for p in partial.parts)
        if covered != totals[channel]:
            raise BadRequest(f"the partials of the {channel} channel hold {covered} rows, but count "
                             f"{totals[channel]}")
    return totals


def merge(run: Run, partials: list[tuple[Partial, str]]) -> Merged:
    """The partials (each with the name used in messages), checked and merged."""
    for partial, what in partials:
        _check_partial(run, partial, what)
    totals = _check_coverage(run, partials)
    explained = sorted((p for p, _ in partials if p.explained), key=lambda p: p.parts[0]["first_row"])
    names = {id(p): what for p, what in partials}
    n_rows = totals[run.explained_channel]
    base_value = explained[0].base_value
    for partial in explained:
        if partial.base_value != base_value or partial.shap_step != explained[0].shap_step:
            raise BadRequest(f"{names[id(partial)]} has base value {partial.base_value} (step {partial.shap_step}), "
                             f"the first part's partial {base_value} (step {explained[0].shap_step})")

    def joined(name: str, order_by: str) -> np.ndarray:
        arrays = [p.arrays[name] for p in explained]
        order = np.argsort(np.concatenate([p.arrays[order_by] for p in explained]), kind="stable")
        return np.concatenate(arrays)[order]

    shap_mean, shap_std = mean_and_std(sum(p.shap_total for p in explained),  # type: ignore[misc]
                                       sum(p.shap_square_total for p in explained), n_rows)  # type: ignore[misc]
    metric_sums: dict[str, tuple[dict[str, list[int]], int]] = {}
    if run.metric_sums_needed:
        for channel in ("train", "validation"):
            of_channel = [p.metric_sums for p, _ in partials if p.channel == channel]
            if of_channel:
                merged = {name: [sum(values) for values in zip(*(s[name] for s in of_channel), strict=True)]
                          for name in of_channel[0]}  # type: ignore[index]
                metric_sums[channel] = (merged, totals[channel])
    assert base_value is not None  # _check_partial
    return Merged(n_rows=n_rows, plan=sample_plan(run.request, n_rows), base_value=base_value,
                  shap_step=explained[0].shap_step, shap_mean=shap_mean, shap_std=shap_std,
                  rows=joined("rows", "rows"), features=joined("features", "rows"),
                  predictions=joined("predictions", "rows"), shap_sums=joined("shap_sums", "rows"),
                  contribution_rows=joined("contribution_rows", "contribution_rows"),
                  contributions=joined("contributions", "contribution_rows"),
                  candidate_rows=np.sort(np.concatenate([p.arrays["candidate_rows"] for p in explained])),
                  metric_sums=metric_sums, explained=explained)


def handle(raw: dict[str, Any]) -> dict[str, Any]:
    from sm_explain.request import parse_reduce_request

    request = parse_reduce_request(raw)
    from sm_explain.explain import draw
    from sm_explain.partials import read_partial
    from sm_explain.run import open_run

    run = open_run(request.explain)
    partials = [(read_partial(uri, f"partial_uris[{i}]"), f"partial_uris[{i}] {uri!r}")
                for i, uri in enumerate(request.partial_uris)]
    return draw(run, merge(run, partials))


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Reduce: merge the partials of every map and write every explanation artifact.",
                   handle, BadRequest)


if __name__ == "__main__":
    exit_process(main())
