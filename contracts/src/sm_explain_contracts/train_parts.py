"""The training rows staged as K part files, and the manifest that lists them: written by `sm_staging`, read by
`sm_explain` (its map and reduce steps), so both follow one rule for the names, the order and the checks.

Layout under a staged root (`<destination>/<source sha256>/`), for `train_parts` K > 1:
- `train/part-00000.csv` ... `train/part-<K-1>.csv`: contiguous slices of the training rows, in row order, each at
  least one row; concatenated in name order they are byte for byte the single `train/train.csv` of K = 1. The
  training channel (an S3Prefix over `train/`) reads them as it reads the one file.
- `train_parts.json` beside `features.json`, NOT under `train/`: XGBoost's CSV reader parses every file under the
  channel's directory, so a manifest there would become training rows. It records each part's path, first global
  row, row count, bytes and sha256; `features.json` records the manifest's own sha256 under `files`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sm_explain_contracts.staging_request import MAX_TRAIN_PARTS

PARTS_MANIFEST = "train_parts.json"
MANIFEST_FORMAT = "sm-explain-train-parts/1"
_PART_PATH = re.compile(r"^train/part-(\d{5})\.csv$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A staged part holds at most this many rows (staging's whole data set is far below it); bounds every count read.
MAX_PART_ROWS = 2**40


class PartsManifestError(ValueError):
    """The parts manifest is not one staging writes (names the problem)."""


def part_path(index: int) -> str:
    """The path of part `index` under the staged root."""
    if not 0 <= index < MAX_TRAIN_PARTS:
        raise ValueError(f"part index {index} is outside 0..{MAX_TRAIN_PARTS - 1}")
    return f"train/part-{index:05d}.csv"


def part_index(path: object) -> int | None:
    """The index of a part path (`train/part-00003.csv` -> 3), or None when `path` is not one."""
    if not isinstance(path, str):
        return None
    match = _PART_PATH.match(path)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class PartEntry:
    path: str  # relative to the staged root: train/part-NNNNN.csv
    first_row: int  # global row number of its first row
    rows: int
    bytes: int
    sha256: str


def manifest_document(entries: list[PartEntry]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "channel": "train",
        "rows": sum(entry.rows for entry in entries),
        "parts": [
            {"path": e.path, "first_row": e.first_row, "rows": e.rows, "bytes": e.bytes, "sha256": e.sha256}
            for e in entries
        ],
    }


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_PART_ROWS:
        raise PartsManifestError(f"{what} must be an integer from {minimum} to {MAX_PART_ROWS}, got {value!r}")
    return value


def parse_manifest(document: object, source: str) -> list[PartEntry]:
    """The parts of a manifest, when it is exactly what staging writes: parts 0..K-1 in order (2 <= K <= the
    bound), each at least one row, each starting where the previous one ends, the total matching `rows`."""
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise PartsManifestError(f"{source} is not a parts manifest written by staging (format {MANIFEST_FORMAT!r})")
    parts = document.get("parts")
    if not isinstance(parts, list) or not 2 <= len(parts) <= MAX_TRAIN_PARTS:
        raise PartsManifestError(
            f"{source}: 'parts' must list from 2 to {MAX_TRAIN_PARTS} parts, got "
            f"{len(parts) if isinstance(parts, list) else type(parts).__name__}"
        )
    entries: list[PartEntry] = []
    next_row = 0
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise PartsManifestError(f"{source}: part {index} is not an object")
        where = f"{source}: part {index}"
        if part.get("path") != part_path(index):
            raise PartsManifestError(f"{where} has path {part.get('path')!r}, expected {part_path(index)!r}")
        first_row = _count(part.get("first_row"), f"{where} first_row", 0)
        if first_row != next_row:
            raise PartsManifestError(f"{where} starts at row {first_row}, but the parts before it end at {next_row}")
        rows = _count(part.get("rows"), f"{where} rows", 1)
        size = _count(part.get("bytes"), f"{where} bytes", 1)
        sha256 = part.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise PartsManifestError(f"{where} sha256 must be 64 lowercase hexadecimal digits, got {sha256!r}")
        entries.append(PartEntry(part_path(index), first_row, rows, size, sha256))
        next_row = first_row + rows
    if document.get("rows") != next_row:
        raise PartsManifestError(f"{source} says {document.get('rows')!r} rows, but its parts hold {next_row}")
    return entries


#: The staged paths of a channel staged as one file (the layout above, for K = 1, and the validation rows).
SINGLE_FILE_PATHS = {"train": "train/train.csv", "validation": "validation/validation.csv"}


def staged_channel_prefixes(train_uri: str, validation_uri: str) -> dict[str, str]:
    """The prefix of each staged channel (``<root>/train/``, ``<root>/validation/``), from the locations an
    explanation reads: the training CSV or the parts manifest, and the validation CSV. A Processing instance
    copies its share of a prefix to ``<input>/<channel>/``, where the staged paths find them. Raises ValueError,
    naming the location, for anything not laid out as staging lays it out (nothing else can be sharded)."""
    prefixes = {}
    for channel, uri in (("train", train_uri), ("validation", validation_uri)):
        text = str(uri or "")
        single = "/" + SINGLE_FILE_PATHS[channel]
        if text.endswith(single) and text.startswith("s3://"):
            prefixes[channel] = text[: -len(single)] + f"/{channel}/"
        elif channel == "train" and text.endswith("/" + PARTS_MANIFEST) and text.startswith("s3://"):
            prefixes[channel] = text[: -len(PARTS_MANIFEST)] + "train/"
        else:
            expected = f"s3://.../{SINGLE_FILE_PATHS[channel]}" + (
                f" or s3://.../{PARTS_MANIFEST}" if channel == "train" else "")
            raise ValueError(f"{channel}_uri {text!r} is not a staged {channel} channel ({expected}, as staging "
                             "writes them): only staged channels can be split across instances")
    return prefixes
