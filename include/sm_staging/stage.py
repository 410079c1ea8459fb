"""Stage one data set version: validate -> encode -> seeded split -> CSVs + features.json -> publish.

All checks run before the first byte is written; the files are built in a temporary directory and
only then published (features.json last, so its presence means the version is complete).

The files go to ``<destination>/<source sha256>/``: ``features.json``, ``train/train.csv`` (or, with
``train_parts`` K > 1, ``train/part-00000.csv`` ... and their manifest ``train_parts.json``,
``sm_explain_contracts.train_parts``) and ``validation/validation.csv``, each channel alone under its own prefix, so a training channel on ``train/``
(an S3Prefix, which matches every key that starts with it) reads exactly that one file. Different sources
never share an object, and once written the objects never change: the output depends only on the input bytes
and the request, so a rerun of the same source finds its files in place and writes nothing, and the same source
staged with other settings under the same version is refused rather than overwriting what a running job reads.
Each object is only ever created where none is (a conditional write), so runs staging one version at the same
moment write each object once and agree on the result.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from botocore.exceptions import ClientError
from s3transfer.manager import TransferManager

from sm_explain_contracts.train_parts import PARTS_MANIFEST, PartEntry, manifest_document, part_path
from sm_staging.encode import EncodedDataset, load_and_encode
from sm_staging.errors import StagingInputError
from sm_staging.schema import S3Location, StagingRequest, parse_request, parse_s3_uri
from sm_staging.source import error_code, fetch_source, s3_client, sha256_of

TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
FEATURES_FILE = "features.json"
#: Where each CSV lives under the staged root: a directory of its own, the training channel's prefix.
CHANNEL_PATHS = {TRAIN_FILE: f"train/{TRAIN_FILE}", VALIDATION_FILE: f"validation/{VALIDATION_FILE}"}
_CONTENT_TYPES = {TRAIN_FILE: "text/csv", VALIDATION_FILE: "text/csv", FEATURES_FILE: "application/json",
                  PARTS_MANIFEST: "application/json"}
_CONFLICT_RETRIES = 4


class Destination:
    """Where a version's files go: an S3 prefix or (for tests and local runs) a directory."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.s3: S3Location | None = (
            parse_s3_uri(uri, what="destination") if uri.startswith("s3://") else None
        )

    def child(self, name: str) -> Destination:
        """The "directory" ``name`` inside this one."""
        if self.s3 is None:
            return Destination(str(Path(self.uri).expanduser() / name))
        return Destination(f"s3://{self.s3.bucket}/{self._key(name)}/")

    def check_writable(self) -> None:
        """Fail early on a missing bucket, before downloading or encoding anything."""
        if self.s3 is None:
            existing = Path(self.uri).expanduser()
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir() or not os.access(existing, os.W_OK):
                raise StagingInputError(f"destination {self.uri} is not a writable directory")
            return
        try:
            s3_client().head_bucket(Bucket=self.s3.bucket)
        except ClientError as error:
            code = error_code(error)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                raise StagingInputError(f"destination bucket {self.s3.bucket!r} does not exist") from None
            if code in {"403", "AccessDenied", "Forbidden"}:
                raise StagingInputError(f"destination bucket {self.s3.bucket!r} is not accessible") from None
            raise

    def uri_of(self, name: str) -> str:
        if self.s3 is None:
            return str(Path(self.uri).expanduser().resolve() / name)
        return f"s3://{self.s3.bucket}/{self._key(name)}"

    def directory_uri_of(self, name: str = "") -> str:
        """The "directory" ``name`` (this one when empty) as a URI ending in '/': an S3Prefix that matches
        only what lies inside it."""
        return self.uri_of(name).rstrip("/") + "/"

    def _key(self, name: str) -> str:
        assert self.s3 is not None
        prefix = self.s3.key.strip("/")
        return f"{prefix}/{name}"

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        if self.s3 is None:
            path = Path(self.uri).expanduser() / name
            return path.read_bytes() if path.is_file() else None
        try:
            return s3_client().get_object(Bucket=self.s3.bucket, Key=self._key(name))["Body"].read()
        except ClientError as error:
            if error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def size(self, name: str) -> int | None:
        """The object's size in bytes, or None when there is none."""
        if self.s3 is None:
            path = Path(self.uri).expanduser() / name
            return path.stat().st_size if path.is_file() else None
        try:
            return int(s3_client().head_object(Bucket=self.s3.bucket, Key=self._key(name))["ContentLength"])
        except ClientError as error:
            if error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def publish(self, directory: Path, names: list[str]) -> list[str]:
        """Create ``<this>/<name>`` from ``directory/<name>`` for each relative name, in order, each only where
        nothing is there yet; returns the names found already there, which are kept as they are.

        Create-if-absent is atomic (an S3 conditional write, a hard link locally), so runs staging one version at
        the same moment write each object once: the first creates it, the others find it."""
        if self.s3 is None:
            return self._publish_to_directory(directory, names)
        client = s3_client()
        # s3transfer does not accept If-None-Match as an upload argument, so it is added to the request that
        # creates the object: PutObject for a small file, CompleteMultipartUpload for a large one.
        for operation in ("PutObject", "CompleteMultipartUpload"):
            client.meta.events.register(f"before-parameter-build.s3.{operation}", _create_only)
        kept = []
        with TransferManager(client) as transfers:
            for name in names:
                if self.size(name) is not None or not self._create(transfers, directory / name, name):
                    kept.append(name)
        return kept

    def _create(self, transfers: TransferManager, path: Path, name: str) -> bool:
        """Upload ``path`` as ``name`` unless the object exists; False when it does (another run created it)."""
        assert self.s3 is not None
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                transfers.upload(str(path), self.s3.bucket, self._key(name),
                                 extra_args={"ContentType": _CONTENT_TYPES.get(Path(name).name, "text/csv")}).result()
                return True
            except ClientError as error:
                code = error_code(error)
                if code == "PreconditionFailed":
                    return False
                # S3 answers 409 to a conditional write that races another one in flight: the retry sees it.
                if code != "ConditionalRequestConflict" or attempt == _CONFLICT_RETRIES:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _publish_to_directory(self, directory: Path, names: list[str]) -> list[str]:
        target = Path(self.uri).expanduser()
        kept = []
        for name in names:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            partial = (target / name).with_name(f".{Path(name).name}.{os.getpid()}.partial")
            shutil.copyfile(directory / name, partial)
            try:
                os.link(partial, target / name)  # fails when the name exists: never replaces a file
            except FileExistsError:
                kept.append(name)
            finally:
                partial.unlink()
        return kept


def _create_only(params: dict[str, Any], **_: Any) -> None:
    params["IfNoneMatch"] = "*"


def split_indices(rows: int, request: StagingRequest) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's ``train_test_split(X, y, test_size=0.2, random_state=7)``, on row indices.

    The shuffle depends only on the row count and the seed, so splitting indices selects exactly the
    rows the notebook gets while copying no data."""
    # Imported here: scikit-learn takes seconds to import, and a bad request fails without it.
    from sklearn.model_selection import train_test_split

    try:
        train, validation = train_test_split(
            np.arange(rows), test_size=request.validation_fraction, random_state=request.seed
        )
    except ValueError as error:
        raise StagingInputError(
            f"splitting {rows} rows with validation_fraction {request.validation_fraction} leaves an "
            f"empty set ({error})"
        ) from None
    if train.size == 0 or validation.size == 0:
        raise StagingInputError(
            f"splitting {rows} rows with validation_fraction {request.validation_fraction} leaves an empty set"
        )
    return train, validation


def _as_table(data: EncodedDataset) -> pa.Table:
    """Label first, then the features in order (NaN becomes an empty field: XGBoost's missing)."""
    table = pa.Table.from_pandas(data.features, preserve_index=False)
    return table.add_column(0, "label", pa.array(data.label))


def _write_csv(path: Path, table: pa.Table, rows: np.ndarray) -> None:
    """No header, no quoting, '\\n' line ends, Arrow's shortest round-trip number formatting
    ("39", "0.1", "1e-7"): deterministic, and much faster than pandas' ``to_csv``."""
    pa_csv.write_csv(
        table.take(pa.array(rows)),
        path,
        pa_csv.WriteOptions(include_header=False, quoting_style="none"),
    )


def _features_document(
    request: StagingRequest,
    data: EncodedDataset,
    source_sha256: str,
    rows: dict[str, int],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    names = list(data.features.columns)
    return {
        "dataset_version": request.dataset_version,
        "source": request.source,
        "source_sha256": source_sha256,
        "format": {"delimiter": ",", "header": False, "label_position": 0},
        "label": {
            "name": request.label_column,
            "objective": request.objective,
            "positive_label": request.positive_label,
            "mapping": data.label_mapping,
        },
        "feature_names": names,
        "xgboost_feature_names": [f"f{i}" for i in range(len(names))],
        "categorical": data.category_maps,
        "dropped_columns": list(request.drop_columns),
        "split": {
            "method": "sklearn.model_selection.train_test_split",
            "validation_fraction": request.validation_fraction,
            "seed": request.seed,
        },
        "rows": rows,
        "files": files,
    }


def _already_staged(target: Destination, document: dict[str, Any], sizes: dict[str, int]) -> bool:
    """True when ``target`` holds exactly this staging (every file of ``sizes`` present at its size); raise when it
    holds the same source staged otherwise, which rewriting would change under a job reading it."""
    existing_bytes = target.read(FEATURES_FILE)
    if existing_bytes is None:
        return False
    try:
        existing = json.loads(existing_bytes)
    except ValueError:
        existing = None
    if not isinstance(existing, dict):
        raise StagingInputError(
            f"{target.uri_of(FEATURES_FILE)} exists but is not a features.json written by staging; remove it or "
            "stage under another dataset_version"
        )
    ignored = {"source"}  # the same bytes may come from another URI
    differing = sorted(
        key for key in (set(existing) | set(document)) - ignored if existing.get(key) != document.get(key)
    )
    if differing:
        raise StagingInputError(
            f"{target.uri} already holds this source staged differently (differing in {', '.join(differing)}); "
            "files a training job may be reading are never overwritten: stage these settings under another "
            "dataset_version"
        )
    return all(target.size(path) == size for path, size in sizes.items())


def _check_kept(target: Destination, sizes: dict[str, int]) -> None:
    """Raise when a file found in place is not the one this staging writes (its size differs): a staging of the
    same source with other settings was interrupted or is running, and its files are never overwritten."""
    for path, size in sizes.items():
        found = target.size(path)
        if found != size:
            raise StagingInputError(
                f"{target.uri_of(path)} exists with {found} bytes, not the {size} bytes this staging writes: another "
                "staging of this source with other settings was interrupted or is running, and files a training job "
                f"may be reading are never overwritten; remove {target.directory_uri_of()} if no run uses it, or "
                "stage these settings under another dataset_version"
            )


def _write_train_parts(directory: Path, table: pa.Table, rows: np.ndarray, parts: int) -> list[str]:
    """The training rows as ``parts`` contiguous slices (sizes differing by at most one row, larger first), each
    written as the single file would write those rows, and their manifest; returns the paths written."""
    entries = []
    first_row = 0
    for index, selected in enumerate(np.array_split(rows, parts)):
        path = directory / part_path(index)
        _write_csv(path, table, selected)
        entries.append(PartEntry(part_path(index), first_row, int(selected.size), path.stat().st_size,
                                 sha256_of(path)))
        first_row += int(selected.size)
    (directory / PARTS_MANIFEST).write_text(json.dumps(manifest_document(entries), indent=1) + "\n", encoding="utf-8")
    return [entry.path for entry in entries] + [PARTS_MANIFEST]


def stage(raw_request: dict[str, Any]) -> dict[str, Any]:
    """Stage the version described by ``raw_request``; return the small result for XCom."""
    request = parse_request(raw_request)
    destination = Destination(request.destination)
    destination.check_writable()
    source = fetch_source(request.source, request.source_sha256, request.cache_dir)
    data = load_and_encode(source.path, request, request.source)
    train_rows, validation_rows = split_indices(data.rows, request)
    rows = {"train": int(train_rows.size), "validation": int(validation_rows.size)}
    target = destination.child(source.sha256)
    parts = request.train_parts
    if parts > train_rows.size:  # refused before anything is written
        raise StagingInputError(
            f"train_parts {parts} is more than the {train_rows.size} training rows: every part holds at least one row"
        )

    with tempfile.TemporaryDirectory(prefix="sm-staging-") as work:
        directory = Path(work)
        table = _as_table(data)
        (directory / "train").mkdir()
        if parts == 1:
            train_files = [CHANNEL_PATHS[TRAIN_FILE]]
            _write_csv(directory / CHANNEL_PATHS[TRAIN_FILE], table, train_rows)
        else:
            train_files = _write_train_parts(directory, table, train_rows, parts)
        (directory / "validation").mkdir()
        _write_csv(directory / CHANNEL_PATHS[VALIDATION_FILE], table, validation_rows)
        del table
        # features.json records the files a reader checks: the train CSV or the parts manifest (which records
        # each part), and the validation CSV.
        recorded = {TRAIN_FILE if parts == 1 else PARTS_MANIFEST: train_files[-1],
                    VALIDATION_FILE: CHANNEL_PATHS[VALIDATION_FILE]}
        files = {
            name: {"path": path, "sha256": sha256_of(directory / path), "bytes": (directory / path).stat().st_size}
            for name, path in recorded.items()
        }
        document = _features_document(request, data, source.sha256, rows, files)
        (directory / FEATURES_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        published = [*train_files, CHANNEL_PATHS[VALIDATION_FILE]]
        sizes = {path: (directory / path).stat().st_size for path in published}
        if not _already_staged(target, document, sizes):
            kept = target.publish(directory, [*published, FEATURES_FILE])
            # What another run created meanwhile is kept; it must be this very staging.
            _check_kept(target, {path: sizes[path] for path in kept if path in sizes})
            if FEATURES_FILE in kept:
                _already_staged(target, document, sizes)

    return {
        "dataset_version": request.dataset_version,
        "data_uri": target.directory_uri_of(),
        # With parts, the explanation reads the training rows through their manifest.
        "train_uri": target.uri_of(CHANNEL_PATHS[TRAIN_FILE] if parts == 1 else PARTS_MANIFEST),
        "train_parts": parts,
        "validation_uri": target.uri_of(CHANNEL_PATHS[VALIDATION_FILE]),
        "train_channel_uri": target.directory_uri_of(Path(CHANNEL_PATHS[TRAIN_FILE]).parent.name),
        "validation_channel_uri": target.directory_uri_of(Path(CHANNEL_PATHS[VALIDATION_FILE]).parent.name),
        "features_uri": target.uri_of(FEATURES_FILE),
        "rows": rows,
        "n_features": int(data.features.shape[1]),
        "source_sha256": source.sha256,
    }
