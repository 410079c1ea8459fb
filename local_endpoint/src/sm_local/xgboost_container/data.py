"""Read the `train` and `validation` channels into DMatrix objects, failing with a sentence a user can act on.

The built-in algorithm takes CSV (label in the first column, optional instance weight in the second
when `csv_weights=1`, no header) or libsvm (`<label> <index>:<value> ...`), every data file of the
channel's directory in name order, skipping hidden (`.`) and underscore (`_SUCCESS`) files. Features
are unnamed, so XGBoost calls them `f0..fN`, which is what Debugger tensors and explanations rely on.
Files are parsed by pandas (CSV) and scikit-learn (libsvm); only when parsing fails is a file rescanned
to name the exact line and column.
"""

from __future__ import annotations

import csv
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sm_local.xgboost_container.errors import UserError

if TYPE_CHECKING:
    import xgboost

log = logging.getLogger(__name__)

CSV = "csv"
LIBSVM = "libsvm"
_CSV_TYPES = {"csv", "text/csv"}
_LIBSVM_TYPES = {"libsvm", "text/libsvm", "text/x-libsvm"}
_UNSUPPORTED_TYPES = {"parquet", "application/x-parquet", "recordio-protobuf", "application/x-recordio-protobuf"}
_DELIMITERS = ",\t;| "


def parse_content_type(channel: str, content_type: str | None) -> str:
    """`text/csv; label_size=1` -> `csv`; a channel without ContentType is libsvm, as on SageMaker."""
    if not content_type:
        return LIBSVM
    media_type, *parameters = (part.strip() for part in content_type.lower().split(";"))
    if media_type in _CSV_TYPES:
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "label_size" and value.strip() != "1":
                raise UserError(
                    f"Channel {channel}: ContentType {content_type!r} is not accepted; label_size must be 1."
                )
        return CSV
    if media_type in _LIBSVM_TYPES:
        return LIBSVM
    accepted = "text/csv, csv, text/libsvm, text/x-libsvm, libsvm"
    if media_type in _UNSUPPORTED_TYPES:
        raise UserError(f"Channel {channel}: ContentType {content_type!r} is not supported by the local endpoint; use {accepted}.")
    raise UserError(f"Channel {channel}: {content_type!r} is not an accepted ContentType: {accepted}.")


def channel_files(channel: str, directory: Path) -> list[Path]:
    """Every non-empty data file under the channel directory, in a stable order."""
    if not directory.is_dir():
        raise UserError(f"No data in {channel} channel path {directory}: the directory does not exist.")
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith((".", "_")) for part in relative.parts):
            if path.is_file():
                log.info("Skipping %s in channel %s (hidden or marker file)", relative, channel)
            continue
        if path.is_file() and path.stat().st_size > 0:
            files.append(path)
    if not files:
        raise UserError(f"No data in {channel} channel path {directory}: it holds no non-empty data file.")
    return files


@dataclass
class ChannelData:
    """One channel's rows; `files` and `file_rows` map a row back to the file it came from."""

    name: str
    features: Any  # np.ndarray (CSV) or scipy.sparse.csr_matrix (libsvm)
    labels: np.ndarray
    weights: np.ndarray | None
    files: list[Path]
    file_rows: list[int]

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    def locate(self, row: int) -> str:
        """`file part-1.csv, line 12` for a 0-based row of the whole channel."""
        for path, count in zip(self.files, self.file_rows, strict=True):
            if row < count:
                return f"file {path.name}, line {row + 1}"
            row -= count
        return f"row {row + 1}"

    def to_dmatrix(self) -> xgboost.DMatrix:
        import xgboost

        return xgboost.DMatrix(self.features, label=self.labels, weight=self.weights)


def read_channel(channel: str, directory: Path, content_type: str, csv_weights: int = 0) -> ChannelData:
    files = channel_files(channel, directory)
    if content_type == CSV:
        return _read_csv_channel(channel, files, csv_weights)
    return _read_libsvm_channel(channel, files)


def sniff_delimiter(path: Path) -> str:
    """The delimiter of the first line, as the algorithm infers it (comma when there is only one column)."""
    with path.open(errors="replace") as handle:
        first_line = handle.readline()
    try:
        delimiter = csv.Sniffer().sniff(first_line, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    log.info("Determined delimiter of CSV input is '%s'", delimiter)
    return delimiter


def _read_csv_channel(channel: str, files: list[Path], csv_weights: int) -> ChannelData:
    import pandas as pd

    delimiter = sniff_delimiter(files[0])
    parts = []
    for path in files:
        try:
            frame = pd.read_csv(
                path, header=None, sep=delimiter, dtype=np.float32, engine="c", skip_blank_lines=True
            )
        except pd.errors.EmptyDataError:
            continue
        except pd.errors.ParserError as error:
            raise UserError(f"Channel {channel}, file {path.name}: rows have different column counts ({_first_line(error)}).") from None
        except (ValueError, TypeError):
            raise UserError(_describe_bad_cell(channel, path, delimiter)) from None
        parts.append(frame.to_numpy())
    if not parts:
        raise UserError(f"No data in {channel} channel: every file is empty.")
    widths = {part.shape[1] for part in parts}
    if len(widths) > 1:
        counts = ", ".join(f"{path.name}: {part.shape[1]}" for path, part in zip(files, parts, strict=False))
        raise UserError(f"Channel {channel}: its files have different column counts ({counts}).")
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    first_feature = 1 + csv_weights
    if data.shape[1] <= first_feature:
        raise UserError(
            f"Channel {channel}: the CSV has {data.shape[1]} column(s) but needs the label"
            f"{' and the weight' if csv_weights else ''} followed by at least one feature column."
        )
    return ChannelData(
        name=channel,
        features=data[:, first_feature:],
        labels=data[:, 0],
        weights=data[:, 1] if csv_weights else None,
        files=files,
        file_rows=[len(part) for part in parts],
    )


def _first_line(error: Exception) -> str:
    """pandas' `Error tokenizing data. C error: Expected 3 fields in line 2, saw 4` -> the useful part."""
    return str(error).strip().splitlines()[-1].split("C error: ")[-1].rstrip(".")


def _describe_bad_cell(channel: str, path: Path, delimiter: str) -> str:
    """Rescan a file pandas refused and name the first cell that is not a number."""
    with path.open(newline="", errors="replace") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
            for column, cell in enumerate(row, start=1):
                text = cell.strip()
                if not text:
                    continue
                try:
                    float(text)
                except ValueError:
                    what = "the label" if column == 1 else f"column {column}"
                    return (
                        f"Channel {channel}, file {path.name}, line {line_number}, column {column}: {text[:40]!r} "
                        f"({what}) is not a number; CSV input must be numeric with the label first and no header."
                    )
    return f"Channel {channel}, file {path.name}: could not be read as numeric CSV with the label first and no header."


def _read_libsvm_channel(channel: str, files: list[Path]) -> ChannelData:
    import scipy.sparse
    from sklearn.datasets import load_svmlight_file

    matrices, labels = [], []
    for path in files:
        try:
            matrix, label = load_svmlight_file(str(path), dtype=np.float32, zero_based=True)
        except ValueError as error:
            raise UserError(
                f"Channel {channel}, file {path.name}: not valid libsvm ('<label> <index>:<value> ...'): {error}."
            ) from None
        matrices.append(matrix)
        labels.append(label.astype(np.float32, copy=False))
    width = max(matrix.shape[1] for matrix in matrices)
    features = scipy.sparse.vstack([_widen(matrix, width) for matrix in matrices], format="csr")
    return ChannelData(
        name=channel,
        features=features,
        labels=np.concatenate(labels),
        weights=None,
        files=files,
        file_rows=[matrix.shape[0] for matrix in matrices],
    )


def _widen(matrix: Any, width: int) -> Any:
    """libsvm rows name only their non-zero features: files (and channels) may end at different indices."""
    if matrix.shape[1] != width:
        matrix = matrix.copy()
        matrix.resize((matrix.shape[0], width))
    return matrix


def align_validation(train: ChannelData, validation: ChannelData, content_type: str) -> None:
    """Both channels must describe the same features; libsvm widths are padded, CSV widths must match."""
    if train.num_features == validation.num_features:
        return
    if content_type == LIBSVM:
        width = max(train.num_features, validation.num_features)
        train.features = _widen(train.features, width)
        validation.features = _widen(validation.features, width)
        return
    raise UserError(
        f"Channel validation has {validation.num_features} feature columns but channel train has "
        f"{train.num_features}; both need the label first and the same features, without header."
    )


# Label domains XGBoost enforces mid-training with a C++ stack trace; checked up front instead.
_UNIT_LABEL_OBJECTIVES = ("binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic")
_NON_NEGATIVE_LABEL_OBJECTIVES = ("count:poisson", "reg:tweedie")


def check_labels(data: ChannelData, objective: str, num_class: int | None) -> None:
    labels = data.labels
    bad = np.flatnonzero(np.isnan(labels))
    if bad.size:
        raise UserError(f"Channel {data.name}, {data.locate(int(bad[0]))}: the label (first column) is missing.")
    if objective in _UNIT_LABEL_OBJECTIVES:
        condition, expected = (labels < 0) | (labels > 1), "in [0, 1]"
    elif objective.startswith("multi:") and num_class:
        condition = (labels < 0) | (labels >= num_class) | (labels != np.floor(labels))
        expected = f"an integer in [0, {num_class})"
    elif objective in _NON_NEGATIVE_LABEL_OBJECTIVES:
        condition, expected = labels < 0, "non-negative"
    elif objective == "reg:gamma":
        condition, expected = labels <= 0, "positive"
    elif objective == "reg:squaredlogerror":
        condition, expected = labels <= -1, "greater than -1"
    else:
        return
    bad = np.flatnonzero(condition)
    if bad.size:
        first = int(bad[0])
        raise UserError(
            f"Channel {data.name}, {data.locate(first)}: label {labels[first]:g} is invalid for objective "
            f"{objective}; labels must be {expected} ({bad.size} of {labels.size} rows are not)."
        )


def describe(data: ChannelData) -> str:
    names = ", ".join(path.name for path in itertools.islice(data.files, 5))
    more = f" and {len(data.files) - 5} more" if len(data.files) > 5 else ""
    return f"{data.labels.size} rows x {data.num_features} features from {len(data.files)} file(s) ({names}{more})"
