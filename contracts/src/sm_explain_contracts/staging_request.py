"""The `python -m sm_staging` request: its fields, defaults (the Adult schema exactly as `shap.datasets.adult()`
reads it) and rules, in one place.

The staging task checks its request with `parse_staging_request` before the runtime starts, and the runtime
parses it with the same function before any data is read or written, so both refuse alike, in the same words.
What needs the data (the file exists, its checksum, its columns and labels) only the runtime can check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from sm_explain_contracts.request_fields import (
    RequestError,
    choice,
    given,
    integer,
    names,
    number,
    request_object,
    required_string,
    string,
)
from sm_explain_contracts.s3_uris import S3UriError, parse_s3_uri
from sm_explain_contracts.sources import source_problem
from sm_explain_contracts.versions import dataset_version_problem

# shap.datasets.adult(): column names in file order; it drops Education (redundant with Education-Num) and
# fnlwgt, turns the object columns into category codes, and encodes Relationship with its own fixed order
# instead of the sorted category order.
ADULT_COLUMNS: tuple[str, ...] = (
    "Age",
    "Workclass",
    "fnlwgt",
    "Education",
    "Education-Num",
    "Marital Status",
    "Occupation",
    "Relationship",
    "Race",
    "Sex",
    "Capital Gain",
    "Capital Loss",
    "Hours per week",
    "Country",
    "Target",
)
ADULT_LABEL = "Target"
ADULT_POSITIVE_LABEL = ">50K"
ADULT_DROP_COLUMNS: tuple[str, ...] = ("Education", "fnlwgt")
ADULT_CATEGORICAL_COLUMNS: tuple[str, ...] = (
    "Workclass",
    "Marital Status",
    "Occupation",
    "Relationship",
    "Race",
    "Sex",
    "Country",
)
ADULT_CATEGORY_ORDERS: dict[str, tuple[str, ...]] = {
    "Relationship": ("Not-in-family", "Unmarried", "Other-relative", "Own-child", "Husband", "Wife"),
}

BINARY_OBJECTIVES = ("binary:logistic", "binary:logitraw", "binary:hinge")
REGRESSION_OBJECTIVES = ("reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror")
DEFAULT_OBJECTIVE = "binary:logistic"
DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_SEED = 7
MAX_SEED = 2**32 - 1  # numpy's seed range
# The training rows may be staged as this many part files at most (train/part-00000.csv ...): enough for one part
# per Processing instance of the largest fleets, and few enough that the parts manifest stays small.
MAX_TRAIN_PARTS = 1024
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class StagingRequest:
    source: str
    destination: str
    dataset_version: str
    source_sha256: str | None = None
    columns: tuple[str, ...] = ADULT_COLUMNS
    label_column: str = ADULT_LABEL
    positive_label: str | None = ADULT_POSITIVE_LABEL
    drop_columns: tuple[str, ...] = ADULT_DROP_COLUMNS
    categorical_columns: tuple[str, ...] = ADULT_CATEGORICAL_COLUMNS
    category_orders: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ADULT_CATEGORY_ORDERS))
    objective: str = DEFAULT_OBJECTIVE
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = DEFAULT_SEED
    cache_dir: str | None = None
    # 1: one train/train.csv (the layout every existing job reads); K > 1: train/part-00000.csv ... in row order.
    train_parts: int = 1

    @property
    def is_binary(self) -> bool:
        return self.objective in BINARY_OBJECTIVES

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Features in file order: every column except the label and the dropped ones."""
        dropped = set(self.drop_columns)
        return tuple(c for c in self.columns if c != self.label_column and c not in dropped)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        categorical = set(self.categorical_columns)
        return tuple(c for c in self.feature_columns if c not in categorical)


REQUEST_KEYS = frozenset(f.name for f in fields(StagingRequest))


def _refuse(problem: str | None) -> None:
    if problem:
        raise RequestError(problem)


def _destination_segments(destination: str) -> list[str]:
    if destination.startswith("s3://"):
        try:
            return parse_s3_uri(destination, "destination", require_key=True).segments
        except S3UriError as error:
            raise RequestError(str(error)) from None
    if "://" in destination:
        raise RequestError(f"destination {given(destination)} must be an s3:// URI or a local directory")
    return [segment for segment in destination.replace("\\", "/").split("/") if segment]


def _check_destination(destination: str, version: str) -> None:
    """The version must be a path segment of the destination, so versions never share keys."""
    if version not in _destination_segments(destination):
        raise RequestError(
            f"destination {given(destination)} does not contain the dataset version {version!r} as a path segment "
            "(expected s3://<bucket>/<prefix>/<dataset_version>/data/), so it could overwrite another version"
        )


def _category_orders(raw: dict[str, Any], default: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    value = raw.get("category_orders")
    if value is None:
        return dict(default)
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v) for v in value.values()
    ):
        raise RequestError(
            "category_orders must map a column to a list of distinct category labels in code order, "
            f"got {given(value)}"
        )
    return {k: tuple(v) for k, v in value.items()}


def parse_staging_request(raw: object) -> StagingRequest:
    """Check every field of a staging request and fill in the Adult defaults; RequestError names the first problem.

    When `columns` is given (another schema), `label_column` becomes required and the Adult drop, categorical
    and category-order defaults no longer apply."""
    request = dict(request_object(raw, REQUEST_KEYS))
    source = required_string(request, "source")
    destination = required_string(request, "destination")
    version = required_string(request, "dataset_version")
    _refuse(dataset_version_problem(version))

    sha256 = string(request, "source_sha256")
    if sha256 is not None and not _SHA256.match(sha256):
        raise RequestError(f"source_sha256 {given(sha256)} is not 64 hexadecimal digits")
    sha256 = sha256.lower() if sha256 is not None else None
    _refuse(source_problem(source, sha256))
    _check_destination(destination, version)

    custom_schema = request.get("columns") is not None
    columns = names(request, "columns", ADULT_COLUMNS)
    if not columns:
        raise RequestError("columns is empty: name every column of the file in order")
    label = (
        required_string(request, "label_column", " when 'columns' is given")
        if custom_schema
        else string(request, "label_column") or ADULT_LABEL
    )
    drop = names(request, "drop_columns", () if custom_schema else ADULT_DROP_COLUMNS)
    categorical = names(request, "categorical_columns", () if custom_schema else ADULT_CATEGORICAL_COLUMNS)
    orders = _category_orders(request, {} if custom_schema else ADULT_CATEGORY_ORDERS)

    known = set(columns)
    for key, listed in (("drop_columns", drop), ("categorical_columns", categorical), ("category_orders", orders)):
        missing = [n for n in listed if n not in known]
        if missing:
            raise RequestError(f"{key} names unknown columns {missing}; the columns are {list(columns)}")
    if label not in known:
        raise RequestError(f"label column {label!r} is not one of the columns {list(columns)}")
    if label in drop or label in categorical:
        raise RequestError(f"label column {label!r} cannot also be dropped or a categorical feature")
    not_categorical = [n for n in orders if n not in categorical]
    if not_categorical:
        raise RequestError(f"category_orders names columns that are not categorical: {not_categorical}")

    objective = choice(request, "objective", DEFAULT_OBJECTIVE, BINARY_OBJECTIVES + REGRESSION_OBJECTIVES)
    binary = objective in BINARY_OBJECTIVES
    positive = request.get("positive_label", ADULT_POSITIVE_LABEL if binary else None)
    if binary and (not isinstance(positive, str) or not positive.strip()):
        raise RequestError(
            f"objective {objective!r} needs a 'positive_label' (the label value of the positive class), "
            f"got {given(positive)}"
        )

    staged = StagingRequest(
        source=source,
        destination=destination,
        dataset_version=version,
        source_sha256=sha256,
        columns=columns,
        label_column=label,
        positive_label=positive.strip() if isinstance(positive, str) else None,
        drop_columns=drop,
        categorical_columns=categorical,
        category_orders=orders,
        objective=objective,
        validation_fraction=number(request, "validation_fraction", DEFAULT_VALIDATION_FRACTION, above=0, below=1,
                                   accepted="a number between 0 and 1 (exclusive)"),
        seed=integer(request, "seed", DEFAULT_SEED, 0, MAX_SEED),
        cache_dir=string(request, "cache_dir"),
        train_parts=integer(request, "train_parts", 1, 1, MAX_TRAIN_PARTS),
    )
    if not staged.feature_columns:
        raise RequestError("no feature columns are left after dropping the label and drop_columns")
    return staged
