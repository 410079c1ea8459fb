"""`python -m sm_explain.map --request R.json --result S.json`: the full-data work of an explanation over some part
files of one channel (a Processing instance's share), written as one partial (`sm_explain.partials`) to
`partial_uri`; `python -m sm_explain.reduce` merges the partials and draws everything.

The request is an explanation request (the same fields as `python -m sm_explain`, the same run) plus `channel`,
`partial_uri`, and either `parts` (their staged paths) or `local_root` (the directory holding the instance's
share by staged path, e.g. `<local_root>/train/part-00003.csv`; every part found there is read), or neither (all
parts of the channel, from where they are staged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sm_explain.errors import BadRequest
from sm_explain.exact_sums import exact_square_sums, exact_sums
from sm_explain.outliers import candidates
from sm_explain.partials import ARRAYS, Partial
from sm_explain.parts import Part, read_part, total_rows
from sm_explain.run import Run
from sm_explain.sampling import sample_plan
from sm_explain.shap_rows import ExplainedShap, ModelShap, TensorShap
from sm_explain_contracts.envelope import exit_process, run_cli


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in the sorted `ids` of those `wanted` rows that are among them."""
    found = np.searchsorted(ids, wanted)
    inside = found < ids.shape[0]
    found, wanted = found[inside], wanted[inside]
    return found[ids[found] == wanted].astype(np.int64)


def _empty_arrays(n_features: int) -> dict[str, np.ndarray]:
    widths = {None: (0,), "F": (0, n_features), "F+1": (0, n_features + 1)}
    return {name: np.empty(widths[width], dtype=dtype) for name, (dtype, width) in ARRAYS.items()}


def _explained_shap(run: Run, features: np.ndarray, ids: np.ndarray, n_total: int,
                    cleanup: contextlib.ExitStack) -> tuple[ExplainedShap, int | None]:
    if run.use_debugger:
        assert run.trial is not None
        shap_step, contribs = run.trial.full_shap_last_step()
        if contribs.shape != (n_total, run.n_features + 1):
            raise BadRequest(
                f"full_shap at step {shap_step} has shape {contribs.shape}, but train_uri has "
                f"{n_total} rows of {run.n_features} features"
            )
        return TensorShap(contribs[ids], run.objective), shap_step
    assert run.booster is not None  # only the debugger source goes on without the model
    # The pass takes one core (TreeShap's process) or all (the pred_contribs fallback); this thread's own
    # predictions (curves, samples) keep to one, so they do not fight the pass for the cores. It chooses its way
    # for the whole channel's row count, so every part computes its values the same way.
    run.booster.set_param({"nthread": 1})
    shap = ModelShap(run.booster, run.objective, features, rows_for_choice=n_total)
    cleanup.callback(shap.close)
    return shap, None


def _read_rows(selected: list[Part], n_features: int, local_root: str | None
               ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The parts' features and labels in row order, and each part's row count. Several parts (whose counts the
    manifest gives) are read one at a time into one array, so memory holds the rows once plus one part's parse."""
    if len(selected) == 1:
        rows = read_part(selected[0], n_features, local_root)
        return rows.features, rows.labels, [rows.features.shape[0]]
    total = sum(part.rows or 0 for part in selected)
    features, labels = np.empty((total, n_features), dtype=np.float32), np.empty(total, dtype=np.float32)
    offset = 0
    for part in selected:
        rows = read_part(part, n_features, local_root)  # refused unless it holds the manifest's row count
        end = offset + rows.features.shape[0]
        features[offset:end], labels[offset:end] = rows.features, rows.labels
        offset = end
    return features, labels, [part.rows or 0 for part in selected]


def map_channel(run: Run, channel: str, selected: list[Part], local_root: str | None,
                cleanup: contextlib.ExitStack) -> Partial:
    """The partial of `selected` (parts of `channel`, in row order). For the explained channel, the mean |SHAP|
    pass is left running (`Partial.pending`) so the caller can draw meanwhile; `cleanup` stops it on failure."""
    n_total = total_rows(run.parts[channel])
    if n_total is not None and channel == run.explained_channel and run.request.force_plot_row >= n_total:
        raise BadRequest(f"force_plot_row {run.request.force_plot_row} is out of range: {channel} has {n_total} rows")
    features, labels, counts = _read_rows(selected, run.n_features, local_root)
    n_total = n_total if n_total is not None else counts[0]  # a single file: this map reads the whole channel
    ids = np.concatenate([np.arange(p.first_row, p.first_row + n, dtype=np.int64) for p, n in zip(selected, counts,
                                                                                                  strict=True)])
    partial = Partial(channel, run.fingerprint,
                      [{"path": p.path, "first_row": p.first_row, "rows": n, "sha256": p.sha256}
                       for p, n in zip(selected, counts, strict=True)],
                      n_total, run.n_features, explained=channel == run.explained_channel,
                      arrays=_empty_arrays(run.n_features))
    if partial.explained:
        if run.request.force_plot_row >= n_total:
            raise BadRequest(f"force_plot_row {run.request.force_plot_row} is out of range: {channel} has "
                             f"{n_total} rows")
        shap, partial.shap_step = _explained_shap(run, features, ids, n_total, cleanup)
        plan = sample_plan(run.request, n_total)
        partial.base_value = shap.base_value
        partial.shap_total = exact_sums(shap.shap_sums)[0]
        partial.shap_square_total = exact_square_sums(shap.shap_sums)
        candidate = candidates(ids, shap.shap_sums, plan.per_tail)
        kept = np.union1d(_positions(ids, plan.feature_rows), candidate).astype(np.int64)
        drawn = np.union1d(_positions(ids, plan.contribution_rows), candidate).astype(np.int64)
        partial.arrays.update(
            rows=ids[kept], features=features[kept], predictions=shap.predictions[kept].astype(np.float64),
            shap_sums=shap.shap_sums[kept].astype(np.float64), contribution_rows=ids[drawn],
            contributions=np.asarray(shap.contributions(drawn), dtype=np.float32).reshape(-1, run.n_features + 1),
            candidate_rows=ids[candidate])
        partial.pending = lambda: (shap.abs_sums(), shap.mean_abs_method)
    if run.metric_sums_needed:
        assert run.booster is not None
        from sm_explain import model_source

        partial.metric_sums = model_source.metric_sums(run.booster, run.objective, features, labels, run.steps)
    return partial


def handle(raw: dict[str, Any]) -> dict[str, Any]:
    from sm_explain.request import parse_map_request

    request = parse_map_request(raw)
    from sm_explain.partials import write_partial
    from sm_explain.parts import select_parts
    from sm_explain.run import open_run

    run = open_run(request.explain)
    if request.channel not in run.channels:
        raise BadRequest(f"channel {request.channel!r} is not read by this run (it reads {', '.join(run.channels)})")
    selected = select_parts(run.parts[request.channel], request.parts, request.local_root)
    with contextlib.ExitStack() as cleanup:
        partial = map_channel(run, request.channel, selected, request.local_root, cleanup)
        write_partial(request.partial_uri, partial)
    return {"partial_uri": request.partial_uri, "channel": request.channel, "parts": [p.path for p in selected],
            "rows": partial.n_rows, "mean_abs_shap_method": partial.method}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Map: the full-data part of an explanation over some part files, as one partial.",
                   handle, BadRequest)


if __name__ == "__main__":
    exit_process(main())
