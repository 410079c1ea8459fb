"""Read the raw CSV and encode it as the notebook does (``shap.datasets.adult()``).

Reading follows shap's call exactly (``names=...``, ``na_values="?"``, numeric columns float32,
the others ``category``), so the category codes are pandas' sorted-category codes of the raw values
(with their leading spaces), a column with a fixed category order (Adult's Relationship) gets that
order, and the label is True where it equals the positive label. Everything is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sm_staging.errors import StagingInputError
from sm_staging.layout import CsvLayout, check_field_counts
from sm_staging.schema import StagingRequest

_SHOWN_VALUES = 5
# Codes are written as numbers that XGBoost and the explanations read as float32, which holds every integer
# up to 2^24 exactly; past that, two categories would read back as one code.
MAX_CATEGORIES = 2**24


@dataclass(frozen=True)
class EncodedDataset:
    features: pd.DataFrame  # feature columns in file order, numeric float32, categoricals as codes
    label: np.ndarray  # int8 0/1 for binary objectives, float32 otherwise
    category_maps: dict[str, dict[str, str]]  # feature -> {code: label}
    label_mapping: dict[str, str] | None  # {"0": negative label, "1": positive label}

    @property
    def rows(self) -> int:
        return len(self.label)


def _read(path: Path, request: StagingRequest, source_name: str) -> pd.DataFrame:
    numeric = set(request.numeric_columns)
    label_dtype = "category" if request.is_binary else "float32"
    dtypes = {
        column: (
            "float32" if column in numeric else label_dtype if column == request.label_column else "category"
        )
        for column in request.columns
        if column not in request.drop_columns
    }
    try:
        return pd.read_csv(
            path,
            names=list(request.columns),
            header=None,
            usecols=list(dtypes),
            dtype=dtypes,
            na_values="?",
        )
    except pd.errors.EmptyDataError:
        raise StagingInputError(f"source {source_name} has no data rows") from None
    except (ValueError, TypeError):
        _raise_numeric_problem(path, request, dtypes, source_name)
        raise


def _raise_numeric_problem(
    path: Path, request: StagingRequest, dtypes: dict[str, str], source_name: str
) -> None:
    """Only on failure: find which float column holds a non-number, and on which line."""
    float_columns = [c for c, t in dtypes.items() if t == "float32"]
    raw = pd.read_csv(
        path, names=list(request.columns), header=None, usecols=float_columns, dtype=str, na_values="?"
    )
    layout = check_field_counts(path, len(request.columns), source_name)
    for column in float_columns:
        converted = pd.to_numeric(raw[column], errors="coerce")
        bad = np.flatnonzero(converted.isna().to_numpy() & raw[column].notna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise StagingInputError(
                f"column {column!r} must be numeric but line {layout.line_of_row(row)} has "
                f"{raw[column].iloc[row]!r} ({bad.size} such rows)"
            )


def _codes_and_map(
    column: pd.Series, order: tuple[str, ...] | None, name: str, layout: CsvLayout
) -> tuple[np.ndarray, dict[str, str]]:
    categories = column.cat.categories.astype(str)
    if len(categories) > MAX_CATEGORIES:
        raise StagingInputError(
            f"categorical column {name!r} has {len(categories):,} distinct values; at most {MAX_CATEGORIES:,} "
            "category codes stay exact in the float32 values training and the explanations read"
        )
    stripped = [c.strip() for c in categories]  # per category, not per row
    codes = column.cat.codes.to_numpy()  # pandas widens the code type with the category count
    if order is None:
        return codes, {str(i): label for i, label in enumerate(stripped)}
    position = {label: i for i, label in enumerate(order)}
    unknown = [label for label in stripped if label not in position]
    if unknown:
        first_row = int(np.flatnonzero(np.isin(codes, [stripped.index(u) for u in unknown]))[0])
        raise StagingInputError(
            f"column {name!r} has values {unknown[:_SHOWN_VALUES]} outside its category order {list(order)} "
            f"(first on line {layout.line_of_row(first_row)})"
        )
    # int32: an order of any length (at most MAX_CATEGORIES) keeps its codes; int8 would wrap past 127.
    lookup = np.array([position[label] for label in stripped] + [-1], dtype=np.int32)
    return lookup[codes], {str(i): label for i, label in enumerate(order)}


def _binary_label(
    column: pd.Series, request: StagingRequest, layout: CsvLayout
) -> tuple[np.ndarray, dict[str, str]]:
    codes = column.cat.codes.to_numpy()
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        raise StagingInputError(
            f"label column {request.label_column!r} is empty on {missing.size} rows "
            f"(first on line {layout.line_of_row(int(missing[0]))})"
        )
    present = np.bincount(codes.astype(np.int64), minlength=len(column.cat.categories)) > 0
    labels = sorted(
        {c.strip() for c, used in zip(column.cat.categories.astype(str), present, strict=True) if used}
    )
    if len(labels) > 2:
        raise StagingInputError(
            f"label column {request.label_column!r} is not binary for {request.objective}: "
            f"{len(labels)} distinct values, e.g. {labels[:_SHOWN_VALUES]}"
        )
    if len(labels) < 2:
        raise StagingInputError(
            f"label column {request.label_column!r} has only one class ({labels[0]!r}); "
            f"{request.objective} needs two"
        )
    positive = request.positive_label
    if positive not in labels:
        raise StagingInputError(
            f"positive_label {positive!r} is not a value of label column {request.label_column!r} "
            f"(values: {labels})"
        )
    is_positive = np.array([c.strip() == positive for c in column.cat.categories.astype(str)])
    negative = next(label for label in labels if label != positive)
    return is_positive[codes].astype(np.int8), {"0": negative, "1": positive}


def _refuse_infinite(values: np.ndarray, name: str, layout: CsvLayout) -> None:
    """An empty field or '?' is a missing value (NaN), which XGBoost handles; 'inf', '-Infinity' or a number
    past float32's range (3.4e38) is not a value training or SHAP can use."""
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        row = int(infinite[0])
        raise StagingInputError(
            f"column {name!r} must hold finite numbers but line {layout.line_of_row(row)} has a value that reads "
            f"as {values[row]} (an infinity, or beyond float32's range of about 3.4e38; {infinite.size} such rows)"
        )


def _numeric_label(column: pd.Series, request: StagingRequest, layout: CsvLayout) -> np.ndarray:
    values = column.to_numpy(dtype=np.float32)
    _refuse_infinite(values, request.label_column, layout)
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise StagingInputError(
            f"label column {request.label_column!r} is empty on {missing.size} rows "
            f"(first on line {layout.line_of_row(int(missing[0]))})"
        )
    if values.min() == values.max():
        raise StagingInputError(f"label column {request.label_column!r} is constant ({values[0]})")
    return values


def load_and_encode(path: Path, request: StagingRequest, source_name: str) -> EncodedDataset:
    """Validate the file's shape and labels, then encode it; raises before anything is written."""
    layout = check_field_counts(path, len(request.columns), source_name)
    if layout.data_rows == 0:
        raise StagingInputError(f"source {source_name} has no data rows")
    frame = _read(path, request, source_name)

    category_maps: dict[str, dict[str, str]] = {}
    features: dict[str, pd.Series | np.ndarray] = {}
    for name in request.feature_columns:
        if name in request.categorical_columns:
            codes, mapping = _codes_and_map(frame[name], request.category_orders.get(name), name, layout)
            features[name] = codes
            category_maps[name] = mapping
        else:
            features[name] = frame[name].to_numpy()
            _refuse_infinite(features[name], name, layout)

    label_column = frame[request.label_column]
    del frame
    if request.is_binary:
        label, label_mapping = _binary_label(label_column, request, layout)
    else:
        label, label_mapping = _numeric_label(label_column, request, layout), None
    return EncodedDataset(
        features=pd.DataFrame(features, copy=False),
        label=label,
        category_maps=category_maps,
        label_mapping=label_mapping,
    )
