"""Exact TreeSHAP of a plain gbtree model, vectorized over rows, for the mean |SHAP| pass over every explained row.

Why not xgboost's `pred_contribs` for that pass: it walks every tree once per row with the recursive TreeSHAP
algorithm, which costs O(leaves x depth^2) per row and tree: on large data it is most of an explanation run. The
values are the same path-dependent TreeSHAP values xgboost
computes, but tabulated (the "Fast TreeSHAP v2" idea, Yang 2021, arXiv:2109.09847):

  By linearity, a tree's SHAP values are the sum over its leaves of the Shapley values of one game per leaf,
      v_leaf(S) = value x prod_{j in S} one_j(x) x prod_{j not in S} zero_j,   S subset of the leaf's path features,
  where zero_j is the product of the cover fractions of the path's splits on feature j (what xgboost calls the zero
  fraction) and one_j(x) is 1 when row x meets every condition of the path on feature j (the one fraction). The
  Shapley values of that game depend on the row only through its d bits one_j(x), so each leaf gets a table of
  2^d x d values once, and a row's contributions are table look-ups, vectorized over a chunk of rows.

Written here, not imported: the paper's package, fasttreeshap, last released in 2023 (0.1.6, a wheel for macOS
cp39 only; elsewhere it builds from source, with its own fork of shap and numba) and reads xgboost models through
that old shap fork. The algorithm is short; the tests hold it to xgboost's own values.

A row then costs look-ups instead of a tree walk (bench/bench_tree_shap.py measures it against `pred_contribs`).
Building the tables costs per table entry, independent of the rows, and grows as 2^depth, so `pred_contribs_reason`
keeps few rows with deep trees on `pred_contribs`. But it is many small numpy calls: run it where no other Python
thread competes for the GIL (shap_rows runs it in its own process). `unsupported_reason` lists the models it does
not handle (then xgboost's `pred_contribs` is used); the tests compare it with `pred_contribs` on models with
missing values, repeated features on a path, weights, deep trees and several objectives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sm_explain.exact_sums import exact_sums, to_float

# A leaf with d distinct features on its path gets a 2^d x d table; deep trees fall back to pred_contribs.
MAX_PATH_FEATURES = 12
MAX_TABLE_ENTRIES = 1 << 25
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class _Leaf:
    features: tuple[int, ...]  # distinct features on the path, in path order
    conditions: tuple[tuple[tuple[int, bool], ...], ...]  # per feature: (internal node position, goes left) pairs
    table_columns: tuple[pa.Array, ...]  # per feature k: float32 Shapley value of k for each bit pattern (2^d)


@dataclass(frozen=True)
class _Tree:
    splits: tuple[tuple[int, np.float32, bool], ...]  # per internal node: feature, threshold, missing goes left
    leaves: tuple[_Leaf, ...]


def _trees_of(model: dict) -> list[dict]:
    return model["learner"]["gradient_booster"]["model"]["trees"]


def unsupported_reason(model: dict) -> str | None:
    """Why TreeShap cannot compute this model's values (`json.loads(booster.save_raw("json"))`), or None."""
    return _structure_reason(model) or _size_reason(_leaf_widths(model))


def pred_contribs_reason(model: dict, n_rows: int) -> str | None:
    """Why `pred_contribs` is the way for this model over `n_rows` rows (TreeShap cannot do it, or its tables would
    cost more than they save), or None when TreeShap is; one walk over the trees for both questions."""
    structure = _structure_reason(model)
    if structure is not None:
        return f"tree_shap does not handle {structure}"
    widths = _leaf_widths(model)
    size = _size_reason(widths)
    if size is not None:
        return f"tree_shap does not handle {size}"
    return _slower_reason(widths, n_rows)


def _structure_reason(model: dict) -> str | None:
    learner = model["learner"]
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        return f"booster {booster.get('name')!r} (only gbtree)"
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
        return "more than one output per row"
    for tree in _trees_of(model):
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            return "vector leaves"
        if any(tree.get("split_type", ())) or tree.get("categories_nodes"):
            return "categorical splits"
    return None


def _size_reason(widths: list[int]) -> str | None:
    if max(widths, default=0) > MAX_PATH_FEATURES:
        return f"a path with more than {MAX_PATH_FEATURES} distinct features"
    entries = _table_entries(widths)
    if entries > MAX_TABLE_ENTRIES:
        return f"leaf tables of {entries} entries (more than {MAX_TABLE_ENTRIES})"
    return None


# Rough CPU costs measured on this project's 2-core machine (bench/bench_tree_shap.py and ad hoc runs): building the
# tables costs about 2 us per table entry (1-2 us measured, from 51 depth-5 trees to 100 depth-8 trees); xgboost's
# pred_contribs about 0.27 us per row and leaf (68 CPU-s for 160,000 rows x 1,564 leaves); the look-ups a few
# hundredths of that. So the tables only pay off above a number of rows, which grows with the leaves' depth.
TABLE_SECONDS_PER_ENTRY = 2e-6
PRED_CONTRIBS_SECONDS_PER_ROW_LEAF = 2.7e-7


def _slower_reason(widths: list[int], n_rows: int) -> str | None:
    """Why building the tables would cost more than `pred_contribs` over `n_rows` rows (few rows, deep trees), or
    None when TreeShap is the faster way (with a 2x margin for the estimate's roughness)."""
    entries = _table_entries(widths)
    table_seconds = TABLE_SECONDS_PER_ENTRY * entries
    pred_contribs_seconds = PRED_CONTRIBS_SECONDS_PER_ROW_LEAF * n_rows * len(widths)
    if 2 * table_seconds > pred_contribs_seconds:
        return (f"{n_rows} rows are too few to pay for tables of {entries} entries "
                f"(about {table_seconds:.1f} s against {pred_contribs_seconds:.1f} s)")
    return None


def _table_entries(widths: list[int]) -> int:
    return sum(d << d for d in widths)  # a leaf with d distinct path features: 2^d patterns x d values


def _leaf_widths(model: dict) -> list[int]:
    """Number of distinct features on the path to each leaf, over every tree."""
    widths = []
    for tree in _trees_of(model):
        left, right, feature = tree["left_children"], tree["right_children"], tree["split_indices"]
        stack: list[tuple[int, frozenset[int]]] = [(0, frozenset())]
        while stack:
            node, seen = stack.pop()
            if left[node] == -1:
                widths.append(len(seen))
                continue
            stack += [(left[node], seen | {feature[node]}), (right[node], seen | {feature[node]})]
    return widths


def _shapley_table(zero_fractions: list[float], value: float) -> np.ndarray:
    """(d, 2^d) Shapley values of v(S) = value x prod_{j in S} one_j x prod_{j not in S} zero_j for every pattern of
    the one_j bits (bit j of the pattern column). phi_i = value (one_i - zero_i) sum_k w_k e_k, with e_k the
    coefficient of t^k in prod_{j != i} (zero_j + one_j t) and w_k = k! (d-1-k)! / d!."""
    d = len(zero_fractions)
    patterns = np.arange(1 << d)
    ones = ((patterns[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float64)  # (2^d, d)
    weights = np.array([math.factorial(k) * math.factorial(d - 1 - k) / math.factorial(d) for k in range(d)])
    table = np.empty((d, 1 << d), dtype=np.float64)
    for i in range(d):
        coefficients = np.zeros((1 << d, d))
        coefficients[:, 0] = 1.0
        for j in range(d):
            if j != i:
                shifted = coefficients[:, :-1] * ones[:, j:j + 1]
                coefficients *= zero_fractions[j]
                coefficients[:, 1:] += shifted
        table[i] = value * (ones[:, i] - zero_fractions[i]) * (coefficients * weights).sum(axis=1)
    return table.astype(np.float32)


def _compile_tree(tree: dict) -> _Tree:
    left, right = tree["left_children"], tree["right_children"]
    feature, condition = tree["split_indices"], tree["split_conditions"]  # a leaf's condition is its value
    default_left, cover = tree["default_left"], tree["sum_hessian"]
    # Walked from the root: pruned nodes may stay in the arrays, and only what the root reaches counts. A split gets
    # its position when first reached, before any leaf below it.
    splits: list[tuple[int, np.float32, bool]] = []
    position: dict[int, int] = {}
    leaves = []
    stack: list[tuple[int, tuple[tuple[int, int, bool], ...]]] = [(0, ())]
    while stack:
        node, path = stack.pop()
        if left[node] != -1:
            position[node] = len(splits)
            splits.append((int(feature[node]), np.float32(condition[node]), bool(default_left[node])))
            stack.append((left[node], (*path, (node, left[node], True))))
            stack.append((right[node], (*path, (node, right[node], False))))
            continue
        if not path:  # a tree that is a single leaf only moves the bias
            continue
        conditions: dict[int, list[tuple[int, bool]]] = {}
        zero: dict[int, float] = {}
        for parent, child, goes_left in path:
            f = int(feature[parent])
            conditions.setdefault(f, []).append((position[parent], goes_left))
            # As xgboost: the cover fraction of the branch taken; a repeated feature multiplies them.
            zero[f] = zero.get(f, 1.0) * (cover[child] / cover[parent] if cover[parent] else 0.0)
        features = tuple(conditions)
        table = _shapley_table([zero[f] for f in features], float(condition[node]))
        leaves.append(_Leaf(features, tuple(tuple(conditions[f]) for f in features),
                            tuple(pa.array(column) for column in table)))
    return _Tree(tuple(splits), tuple(leaves))


class TreeShap:
    """A model's trees compiled to leaf tables; `contributions` and `abs_sums` give SHAP values without the bias."""

    def __init__(self, model: dict, n_features: int, progress: Callable[[], None] = lambda: None) -> None:
        """Compiles every leaf's table; `progress` is called after each tree (a long compile shows it lives)."""
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"TreeShap does not handle this model: {reason}")
        self.n_features = n_features
        self._trees = []
        for tree in _trees_of(model):
            self._trees.append(_compile_tree(tree))
            progress()
        widest = max((len(leaf.features) for tree in self._trees for leaf in tree.leaves), default=0)
        self._pattern_dtype = np.uint8 if widest <= 8 else np.uint16

    @classmethod
    def from_json(cls, model_json: bytes | str, n_features: int) -> TreeShap:
        return cls(json.loads(model_json), n_features)

    def _chunk_contributions(self, rows: np.ndarray) -> np.ndarray:
        """(features, rows) float32 SHAP values of one chunk of rows."""
        columns = np.asfortranarray(rows, dtype=np.float32)  # each feature's values contiguous
        n = columns.shape[0]
        has_missing = np.isnan(columns).any(axis=0)
        contributions = np.zeros((self.n_features, n), dtype=np.float32)
        pattern = np.empty(n, dtype=self._pattern_dtype)
        for tree in self._trees:
            branches = []  # per internal node: (rows going left, rows going right)
            for f, threshold, missing_left in tree.splits:
                column = columns[:, f]
                goes_left = column < threshold
                if has_missing[f]:
                    goes_left = np.where(np.isnan(column), missing_left, goes_left)
                branches.append((goes_left, ~goes_left))
            for leaf in tree.leaves:
                # Horner: the last feature's bit is shifted in first, so feature k ends at bit k.
                for k in range(len(leaf.features) - 1, -1, -1):
                    conditions = leaf.conditions[k]
                    node, goes_left = conditions[0]
                    meets = branches[node][0 if goes_left else 1]
                    for node, goes_left in conditions[1:]:
                        meets = meets & branches[node][0 if goes_left else 1]
                    if k == len(leaf.features) - 1:
                        np.copyto(pattern, meets)
                    else:
                        np.add(pattern, pattern, out=pattern)
                        np.bitwise_or(pattern, meets, out=pattern)
                patterns = pa.array(pattern)
                for f, values in zip(leaf.features, leaf.table_columns, strict=True):
                    # Arrow's take: a small-table gather about 3x faster than numpy's take with byte indices.
                    np.add(contributions[f], pc.take(values, patterns, boundscheck=False).to_numpy(),
                           out=contributions[f])
        return contributions

    def contributions(self, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
        """(rows, features) float32 SHAP values, bias excluded (as `pred_contribs=True`[:, :-1])."""
        parts = [self._chunk_contributions(rows[start: start + chunk_rows]).T
                 for start in range(0, rows.shape[0], chunk_rows)]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_features), dtype=np.float32)

    def abs_sums(self, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS,
                 progress: Callable[[], None] = lambda: None) -> np.ndarray:
        """(features,) float64 sum over rows of |SHAP| (the exact sum, rounded once)."""
        return np.array([to_float(total) for total in self.exact_abs_sums(rows, chunk_rows, progress)])

    def exact_abs_sums(self, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS,
                       progress: Callable[[], None] = lambda: None,
                       rows_done: Callable[[int], None] | None = None) -> list[int]:
        """Per feature, the exact sum over rows of |SHAP| (`exact_sums` units), holding one chunk's values at a
        time; `progress` is called after each chunk, `rows_done` with the rows done so far. A row's values do not
        depend on its chunk, and the sums are exact, so any split of the rows into chunks or part files adds up to
        the same integers."""
        sums = [0] * self.n_features
        for start in range(0, rows.shape[0], chunk_rows):
            chunk = exact_sums(np.abs(self._chunk_contributions(rows[start: start + chunk_rows])))
            sums = [a + b for a, b in zip(sums, chunk, strict=True)]
            progress()
            if rows_done is not None:
                rows_done(min(rows.shape[0], start + chunk_rows))
        return sums
