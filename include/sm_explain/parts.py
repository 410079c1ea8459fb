"""The part files of a run's channels: where each lies, its first global row, its row count and the sha256
staging recorded, from features.json and (for training rows staged as parts) the parts manifest it records.

Every channel is a list of parts: the validation file and a single train.csv are one part each (rows known
once read); a parted training channel is the manifest's parts. Nothing named from outside becomes a path: a part
is known by its staged path (`train/part-00003.csv`, checked by `sm_explain_contracts.train_parts`), and only
those fixed paths are joined to a location.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sm_explain import storage
from sm_explain.data import LabelledRows, read_csv_channel
from sm_explain.errors import BadRequest
from sm_explain.features import FeatureSpace
from sm_explain.request import ExplainRequest
from sm_explain_contracts.train_parts import (
    PARTS_MANIFEST,
    SINGLE_FILE_PATHS,
    PartsManifestError,
    parse_manifest,
)

#: The file staging writes for a channel staged as one file, as features.json's "files" names it, and its path.
STAGED_FILES = {"train": "train.csv", "validation": "validation.csv"}
SINGLE_PATHS = SINGLE_FILE_PATHS
MAX_MANIFEST_BYTES = 1 << 20  # 1,024 parts take about 200 KB


@dataclass(frozen=True)
class Part:
    channel: str
    path: str  # under the staged root: the part's name in partials and messages
    uri: str  # where it is staged
    first_row: int  # global row number of its first row
    rows: int | None  # None for a single file: known once read
    sha256: str | None  # what staging recorded; None when features.json records no files


def channel_parts(request: ExplainRequest, space: FeatureSpace, channel: str) -> list[Part]:
    """The parts of `channel` in row order, checked against what staging recorded."""
    uri = request.train_uri if channel == "train" else request.validation_uri
    recorded = space.staged_sha256
    if recorded is None:
        return [Part(channel, SINGLE_PATHS[channel], uri, 0, None, None)]
    if channel == "train" and PARTS_MANIFEST in recorded:
        return _manifest_parts(request, recorded[PARTS_MANIFEST])
    if STAGED_FILES[channel] not in recorded:
        raise BadRequest(
            f"features_uri {request.features_uri!r} records no sha256 for {STAGED_FILES[channel]} "
            f"(it records {', '.join(sorted(recorded)) or 'none'}), so {channel}_uri cannot be checked"
        )
    return [Part(channel, SINGLE_PATHS[channel], uri, 0, None, recorded[STAGED_FILES[channel]])]


def _manifest_parts(request: ExplainRequest, expected_sha256: str) -> list[Part]:
    uri = request.train_uri
    content = storage.read_bytes(uri)[: MAX_MANIFEST_BYTES + 1]
    if len(content) > MAX_MANIFEST_BYTES:
        raise BadRequest(f"train_uri {uri!r} is over {MAX_MANIFEST_BYTES:,} bytes: not a parts manifest")
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise BadRequest(
            f"train_uri {uri!r} has sha256 {actual}, but features.json records {expected_sha256} for "
            f"{PARTS_MANIFEST}: train_uri must be the parts manifest staging wrote (the training rows are staged "
            "as parts), unchanged since"
        )
    try:
        entries = parse_manifest(json.loads(content), f"train_uri {uri!r}")
    except (ValueError, PartsManifestError) as exc:
        raise BadRequest(str(exc)) from exc
    root = uri[: uri.rstrip("/").rfind("/")]  # the staged root: the manifest lies beside features.json
    return [Part("train", e.path, storage.join(root, e.path), e.first_row, e.rows, e.sha256) for e in entries]


def total_rows(parts: list[Part]) -> int | None:
    """The channel's row count when every part's is known before reading (a manifest), else None."""
    counts = [part.rows for part in parts]
    return None if None in counts else sum(counts)  # type: ignore[arg-type]


def select_parts(parts: list[Part], paths: tuple[str, ...] | None, local_root: str | None) -> list[Part]:
    """The parts a map reads, in row order: those named, else those present under `local_root` (a Processing
    instance's share), else all. A name that is not a part of the channel is refused, naming it."""
    by_path = {part.path: part for part in parts}
    if paths is None and local_root is not None:
        directory = Path(local_root) / Path(parts[0].path).parent
        if not directory.is_dir():
            raise BadRequest(f"local_root {local_root!r} has no directory {Path(parts[0].path).parent}/ for the "
                             f"{parts[0].channel} channel")
        paths = tuple(f"{directory.name}/{name}" for name in sorted(p.name for p in directory.iterdir()))
        if not paths:
            raise BadRequest(f"local_root {local_root!r} holds no part of the {parts[0].channel} channel")
    if paths is None:
        return list(parts)
    unknown = [path for path in paths if path not in by_path]
    if unknown:
        raise BadRequest(
            f"{unknown[0]!r} is not a part of the {parts[0].channel} channel (its parts: {parts[0].path} .. "
            f"{parts[-1].path})"
        )
    wanted = set(paths)
    return [part for part in parts if part.path in wanted]


def read_part(part: Part, n_features: int, local_root: str | None = None) -> LabelledRows:
    """A part's rows, its bytes checked against the recorded sha256 and its row count against the manifest."""
    uri = str(Path(local_root) / part.path) if local_root is not None else part.uri
    single = part.path == SINGLE_PATHS[part.channel]
    what = f"{part.channel}_uri" if single else f"training part {part.path}"
    rows = read_csv_channel(uri, n_features, what, part.sha256, "features.json" if single else PARTS_MANIFEST)
    if part.rows is not None and rows.features.shape[0] != part.rows:
        raise BadRequest(f"{what} {uri!r} has {rows.features.shape[0]} rows, but the parts manifest records "
                         f"{part.rows}")
    return rows
