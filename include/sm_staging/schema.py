"""The staging request: its defaults (the Adult schema exactly as ``shap.datasets.adult()`` reads it)
and its validation, so every mistake is reported before any data is read or written."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from sm_explain_contracts.s3_uris import S3Location, S3UriError
from sm_explain_contracts.s3_uris import parse_s3_uri as contract_parse_s3_uri
from sm_explain_contracts.sources import source_problem
from sm_explain_contracts.versions import dataset_version_problem
from sm_staging.errors import StagingInputError

# shap.datasets.adult(): column names in file order; it drops Education (redundant with
# Education-Num) and fnlwgt, turns the object columns into category codes, and encodes
# Relationship with its own fixed order instead of the sorted category order.
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

BINARY_OBJECTIVES = frozenset({"binary:logistic", "binary:logitraw", "binary:hinge"})
REGRESSION_OBJECTIVES = frozenset(
    {"reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror"}
)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# S3 bucket naming rules (general purpose buckets): 3-63 chars, lower case, digits, dots, hyphens.
#: A deployment opt-in: with it set to 1, a source may be a path on the machine that stages (local runs,
#: tests, the demo). Off by default, so whoever may trigger a run cannot stage any file the worker can read.

KNOWN_KEYS = frozenset(
    {
        "source",
        "source_sha256",
        "destination",
        "dataset_version",
        "columns",
        "label_column",
        "positive_label",
        "drop_columns",
        "categorical_columns",
        "category_orders",
        "objective",
        "validation_fraction",
        "seed",
        "cache_dir",
    }
)


def parse_s3_uri(uri: str, *, what: str, require_key: bool = True) -> S3Location:
    """Split ``s3://bucket/key`` and refuse shapes S3 would reject (or that would hit the wrong place)."""
    try:
        return contract_parse_s3_uri(uri, what, require_key=require_key)
    except S3UriError as error:
        raise StagingInputError(str(error)) from None


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
    objective: str = "binary:logistic"
    validation_fraction: float = 0.2
    seed: int = 7
    cache_dir: str | None = None

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


def _string(request: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = request.get(key)
    if value is None:
        if required:
            raise StagingInputError(f"the request has no {key!r}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise StagingInputError(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _names(request: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = request.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise StagingInputError(f"{key!r} must be a list of column names, got {value!r}")
    if len(set(value)) != len(value):
        duplicates = sorted({v for v in value if value.count(v) > 1})
        raise StagingInputError(f"{key!r} names a column more than once: {duplicates}")
    return tuple(value)


def validate_version(version: str) -> None:
    problem = dataset_version_problem(version)  # the DAGs' and the staging task's rule, from one place
    if problem:
        raise StagingInputError(problem)


def _check_destination(destination: str, version: str) -> None:
    """The version must be a path segment of the destination, so versions never share keys."""
    if destination.startswith("s3://"):
        segments = parse_s3_uri(destination, what="destination").key.strip("/").split("/")
    elif "://" in destination:
        raise StagingInputError(f"destination {destination!r} must be an s3:// URI or a local directory")
    else:
        segments = [s for s in destination.replace("\\", "/").split("/") if s]
    if version not in segments:
        raise StagingInputError(
            f"destination {destination!r} does not contain the dataset version {version!r} as a path "
            "segment (expected .../<dataset_version>/data/), so it could overwrite another version"
        )


def _check_source(source: str, sha256: str | None) -> None:
    problem = source_problem(source, sha256)  # the staging task's rule too
    if problem:
        raise StagingInputError(problem)


def parse_request(request: Any) -> StagingRequest:
    """Validate a JSON request and fill in the Adult defaults.

    When ``columns`` is given (another schema), ``label_column`` becomes required and the Adult
    drop/categorical/category-order defaults no longer apply."""
    if not isinstance(request, dict):
        raise StagingInputError("the request must be a JSON object")
    unknown = sorted(set(request) - KNOWN_KEYS)
    if unknown:
        raise StagingInputError(f"unknown request keys {unknown}; known keys: {sorted(KNOWN_KEYS)}")

    source = _string(request, "source", required=True)
    destination = _string(request, "destination", required=True)
    version = _string(request, "dataset_version", required=True)
    assert source is not None and destination is not None and version is not None
    validate_version(version)

    sha256 = _string(request, "source_sha256")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not SHA256_PATTERN.match(sha256):
            raise StagingInputError(f"source_sha256 {sha256!r} is not 64 hexadecimal digits")
    _check_source(source, sha256)
    _check_destination(destination, version)

    custom_schema = request.get("columns") is not None
    columns = _names(request, "columns", ADULT_COLUMNS)
    if not columns:
        raise StagingInputError("'columns' is empty")
    label = _string(request, "label_column", required=custom_schema) or ADULT_LABEL
    drop = _names(request, "drop_columns", () if custom_schema else ADULT_DROP_COLUMNS)
    categorical = _names(request, "categorical_columns", () if custom_schema else ADULT_CATEGORICAL_COLUMNS)

    orders_value = request.get("category_orders")
    if orders_value is None:
        orders = {} if custom_schema else dict(ADULT_CATEGORY_ORDERS)
    else:
        if not isinstance(orders_value, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v)
            for v in orders_value.values()
        ):
            raise StagingInputError(
                "'category_orders' must map a column to a list of distinct category labels in code order"
            )
        orders = {k: tuple(v) for k, v in orders_value.items()}

    known = set(columns)
    for key, names in (
        ("drop_columns", drop),
        ("categorical_columns", categorical),
        ("category_orders", tuple(orders)),
    ):
        missing = [n for n in names if n not in known]
        if missing:
            raise StagingInputError(f"{key} names unknown columns {missing}; the columns are {list(columns)}")
    if label not in known:
        raise StagingInputError(f"label column {label!r} is not one of the columns {list(columns)}")
    if label in drop or label in categorical:
        raise StagingInputError(f"label column {label!r} cannot also be dropped or a categorical feature")
    not_categorical = [n for n in orders if n not in categorical]
    if not_categorical:
        raise StagingInputError(f"category_orders names columns that are not categorical: {not_categorical}")

    objective = _string(request, "objective") or "binary:logistic"
    if objective not in BINARY_OBJECTIVES | REGRESSION_OBJECTIVES:
        raise StagingInputError(
            f"objective {objective!r} is not supported; use one of "
            f"{sorted(BINARY_OBJECTIVES | REGRESSION_OBJECTIVES)}"
        )
    positive = request.get("positive_label", ADULT_POSITIVE_LABEL if objective in BINARY_OBJECTIVES else None)
    if objective in BINARY_OBJECTIVES and (not isinstance(positive, str) or not positive.strip()):
        raise StagingInputError(f"objective {objective!r} needs a 'positive_label' (a label value)")

    fraction = request.get("validation_fraction", 0.2)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not math.isfinite(fraction)
        or not 0 < fraction < 1
    ):
        raise StagingInputError(
            f"validation_fraction must be a number between 0 and 1 (exclusive), got {fraction!r}"
        )
    seed = request.get("seed", 7)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise StagingInputError(f"seed must be an integer in [0, 2**32), got {seed!r}")

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
        validation_fraction=float(fraction),
        seed=seed,
        cache_dir=_string(request, "cache_dir"),
    )
    if not staged.feature_columns:
        raise StagingInputError("no feature columns are left after dropping the label and drop_columns")
    return staged
