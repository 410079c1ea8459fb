"""Which explained rows each analysis looks at, by global row number: a function of the channel's row count and
the request alone, so every map picks the same rows of its parts that one run over all rows picks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sm_explain.request import ExplainRequest


def seeded_rows(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted sample of row numbers (all rows when there are fewer than `size`)."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=size, replace=False))


@dataclass(frozen=True)
class SamplePlan:
    n_rows: int
    swarm: np.ndarray  # beeswarm sample
    stacked: np.ndarray  # stacked force plot sample
    step: np.ndarray  # rows of the model-based per-step curves
    force_row: int
    per_tail: int  # outliers on each tail

    @property
    def contribution_rows(self) -> np.ndarray:
        """Rows whose full SHAP vectors are drawn (outliers are added per part, once known)."""
        return np.union1d(np.union1d(self.swarm, self.stacked), [self.force_row]).astype(np.int64)

    @property
    def feature_rows(self) -> np.ndarray:
        """Rows whose feature values some analysis reads."""
        return np.union1d(self.contribution_rows, self.step).astype(np.int64)


def sample_plan(request: ExplainRequest, n_rows: int) -> SamplePlan:
    return SamplePlan(
        n_rows=n_rows,
        swarm=seeded_rows(n_rows, request.beeswarm_sample_size, request.seed),
        stacked=seeded_rows(n_rows, request.stacked_sample_size, request.seed),
        step=seeded_rows(n_rows, request.step_sample_size, request.seed),
        force_row=request.force_plot_row,
        per_tail=min(request.outlier_top_n, n_rows // 2),
    )
