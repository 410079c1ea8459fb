"""The trained booster from the job's `model.tar.gz`, whichever built-in XGBoost image wrote it.

The member `xgboost-model` is what the image's train.py saved (sm_explain_contracts.images.IMAGES): a pickled Booster
(0.90-1 .. 1.2-2), xgboost 1.x's legacy binary (1.3-1 .. 1.7-1) or UBJSON (3.0-5, 3.2-0); JSON is read too.
The runtime's xgboost (3.0.x) reads all of them: legacy binary was removed only in 3.1.

A model artifact is input from outside: whoever can write the job's output path chooses its bytes. So a
pickle is never handed to `pickle.load`. It is read by an unpickler that knows two names only, a stand-in for
`xgboost.core.Booster` that keeps the state it is given and runs nothing, and `bytearray` from bytes;
anything else a pickle names is refused before it is called. The raw model in the state then goes to xgboost's
own loader.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sm_explain import storage
from sm_explain.errors import BadRequest
from sm_explain_contracts.images import PICKLE, describe_formats, detect_model_format, versions_writing
from sm_explain_contracts.lean_xgboost import import_xgboost

xgb = import_xgboost()  # the lean import: see sm_explain_contracts.lean_xgboost

MODEL_MEMBER = "xgboost-model"


class ModelUnreadable(BadRequest):
    """The artifact holds no model this runtime can read (a bad request, unless Debugger tensors can stand in)."""

# Far above any model the built-in algorithm trains (1M rows x 50 features x 1,000 rounds of depth 10 is
# about 400 MB in UBJSON), and below what would exhaust a worker.
MAX_MODEL_BYTES = 2 * 1024**3
# What xgboost 1.0 .. 1.2 write when a Booster is pickled: the offset of the model after a JSON config.
_SERIALISATION_HEADER = b"CONFIG-offset:"


def load_booster(model_artifact_uri: str) -> xgb.Booster:
    return load_model_artifact(model_artifact_uri)[0]


def load_model_artifact(model_artifact_uri: str) -> tuple[xgb.Booster, str]:
    """The booster and the format its file was in (UBJSON, legacy binary, pickle, JSON)."""
    with tempfile.TemporaryDirectory(prefix="sm_explain_model_") as tmp:
        archive = storage.download(model_artifact_uri, Path(tmp) / "model.tar.gz")
        model_bytes = _read_member(archive, model_artifact_uri)
    booster = booster_from_bytes(model_bytes, f"{MODEL_MEMBER!r} in {model_artifact_uri!r}")
    return booster, str(detect_model_format(model_bytes))


def _read_member(archive: Path, uri: str) -> bytes:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            try:
                member = tar.getmember(MODEL_MEMBER)
            except KeyError as exc:
                raise ModelUnreadable(f"model_artifact_uri {uri!r} holds no {MODEL_MEMBER!r}") from exc
            if not member.isfile():
                raise ModelUnreadable(f"{MODEL_MEMBER!r} in {uri!r} is not a regular file")
            if member.size > MAX_MODEL_BYTES:
                raise ModelUnreadable(
                    f"{MODEL_MEMBER!r} in {uri!r} is {member.size} bytes, over the {MAX_MODEL_BYTES} this reads"
                )
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file always has data
            return extracted.read(MAX_MODEL_BYTES + 1)
    except tarfile.TarError as exc:
        raise ModelUnreadable(f"model_artifact_uri {uri!r} is not a tar.gz archive: {exc}") from exc


def _describe_unknown(data: bytes) -> str:
    if not data:
        return "it is empty"
    if data.startswith(b"\x1f\x8b"):
        return "it is gzip data (a model.tar.gz packed inside the model.tar.gz?)"
    if data.startswith(b"PK\x03\x04"):
        return "it is a zip archive"
    head = data[:16]
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return f"it is text starting {head.decode('ascii')!r}"
    return f"it starts with the bytes {head.hex(' ')}"


def booster_from_bytes(data: bytes, where: str) -> xgb.Booster:
    """A Booster from a model file's bytes, or BadRequest naming the format found and who writes which."""
    model_format = detect_model_format(data)
    if model_format is None:
        raise ModelUnreadable(
            f"{where} is not an XGBoost model file: {_describe_unknown(data)}. The built-in XGBoost images "
            f"write {describe_formats()}."
        )
    if model_format == PICKLE:
        return _booster_from_pickle(data, where)
    return _load_model(data, where, model_format)


def _load_model(data: bytes | bytearray, where: str, model_format: str) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        writers = versions_writing(model_format)
        raise ModelUnreadable(
            f"{where} is an XGBoost model in the {model_format} format"
            + (f" (what images {', '.join(writers)} write)" if writers else "")
            + f", but xgboost {xgb.__version__} cannot read it: {_first_line(exc)}"
        ) from exc
    return booster


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class _PickledBooster:
    """Stands in for xgboost.core.Booster while a pickle is read: keeps the state it is given, runs nothing."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _bytearray_from_bytes(source: bytes | bytearray | str = b"", encoding: str | None = None) -> bytearray:
    """`bytearray` as pickles of bytes call it (protocol 3+: bytes; 2: latin-1 text), and never with a size,
    which would allocate whatever a pickle asks for."""
    if isinstance(source, bytes | bytearray) and encoding is None:
        return bytearray(source)
    if isinstance(source, str) and encoding == "latin-1":
        return bytearray(source, encoding)
    raise pickle.UnpicklingError("bytearray is called with something other than bytes")


class _BoosterUnpickler(pickle.Unpickler):
    _CLASSES = {("xgboost.core", "Booster"): _PickledBooster, ("builtins", "bytearray"): _bytearray_from_bytes}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._CLASSES[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it refers to a persistent object")


def _booster_from_pickle(data: bytes, where: str) -> xgb.Booster:
    pickle_writers = ", ".join(versions_writing(PICKLE))
    refusal = (
        f"{where} is a Python pickle but not a pickled xgboost Booster as images {pickle_writers} write "
        "(only xgboost.core.Booster and its bytes are read from a pickle; nothing in it is run)"
    )
    try:
        loaded = _BoosterUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            RecursionError) as exc:
        raise ModelUnreadable(f"{refusal}: {exc}") from None
    state = loaded.state if isinstance(loaded, _PickledBooster) else None
    raw = state.get("handle") if isinstance(state, dict) else None
    if not isinstance(raw, bytes | bytearray):
        raise ModelUnreadable(f"{refusal}: it holds {type(loaded).__name__}, not a Booster with a model")
    if bytes(raw[: len(_SERIALISATION_HEADER)]) == _SERIALISATION_HEADER or raw[:1] == b"{":
        # xgboost >= 1.0 pickles its serialisation (config and model: "CONFIG-offset:" then JSON in 1.0-1.2,
        # one UBJSON document later), which only the Booster's own __setstate__ reads; it gets a state of
        # nothing but those bytes.
        booster = xgb.Booster.__new__(xgb.Booster)  # as unpickling makes it: no handle of its own to leak
        try:
            booster.__setstate__({"handle": bytearray(raw)})
        except xgb.core.XGBoostError as exc:
            raise ModelUnreadable(
                f"{where} is a pickled xgboost Booster (as images {pickle_writers} write), but xgboost "
                f"{xgb.__version__} cannot read it: {_first_line(exc)}"
            ) from exc
        return booster
    # xgboost 0.90 pickles the raw model itself.
    return _load_model(raw, where, PICKLE)


def objective_of(booster: xgb.Booster) -> str:
    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])
