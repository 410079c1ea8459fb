"""What the explanations do with a model file that is not one the images write: a clear refusal, and nothing of
it runs. A model artifact is outside input: whoever can write the job's output path chooses its bytes."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from sm_explain.errors import BadRequest
from sm_explain.model import ModelUnreadable, booster_from_bytes, load_booster


def _small_booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    return xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=x[:, 0] > 0), 3)


class _RunsACommand:
    """A pickle that, unpickled freely, runs `touch <path>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def _pickle_naming(module: str, name: str, args: tuple = ()) -> bytes:
    """A protocol-4 pickle that calls `module.name(*args)`, hand-assembled so no such class need exist here."""
    body = io.BytesIO()
    pickle.Pickler(body, protocol=4).dump(args)
    arguments = body.getvalue()[2:-1]  # the pickled tuple, without PROTO and STOP
    return (b"\x80\x04" + b"c" + module.encode() + b"\n" + name.encode() + b"\n" + arguments + b"R.")


@pytest.mark.reliability
def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path: Path, reliability) -> None:
    marker = tmp_path / "ran"
    evil = pickle.dumps(_RunsACommand(marker), protocol=4)
    with pytest.raises(ModelUnreadable) as raised:
        booster_from_bytes(evil, "'xgboost-model' in 's3://b/job/output/model.tar.gz'")
    message = str(raised.value)
    assert "is a Python pickle but not a pickled xgboost Booster as images 0.90-1, 0.90-2, 1.0-1, 1.2-1, 1.2-2" in message
    assert f"it names {os.system.__module__}.system" in message
    assert not marker.exists()
    reliability.refused("explanations", "model.tar.gz whose xgboost-model is a pickle calling os.system",
                        "refused naming the class; nothing in the pickle runs", message)


def test_a_booster_pickle_with_another_class_inside_is_refused(tmp_path: Path) -> None:
    """The allowed class outside, anything else within: refused at the inner name, before it is called."""
    marker = tmp_path / "ran"

    class Carrier:
        def __reduce__(self) -> tuple:
            return (xgb.core.Booster, (), {"handle": _RunsACommand(marker)})

    data = pickle.dumps(Carrier(), protocol=4)
    assert b"xgboost.core" in data and b"Booster" in data
    with pytest.raises(ModelUnreadable, match=r"it names (posix|os)\.system"):
        booster_from_bytes(data, "model")
    assert not marker.exists()


def test_the_sklearn_wrapper_is_refused_by_name() -> None:
    data = _pickle_naming("xgboost.sklearn", "XGBClassifier")
    with pytest.raises(ModelUnreadable, match=r"it names xgboost\.sklearn\.XGBClassifier"):
        booster_from_bytes(data, "model")


@pytest.mark.reliability
def test_bytearray_is_never_called_with_a_size(reliability) -> None:
    """`bytearray(10**12)` would allocate a terabyte; only bytes are accepted."""
    data = _pickle_naming("builtins", "bytearray", (10**12,))
    pickletools.dis(data, out=io.StringIO())  # a well-formed pickle
    with pytest.raises(ModelUnreadable, match="bytearray is called with something other than bytes") as raised:
        booster_from_bytes(data, "model")
    reliability.refused("explanations", "pickle asking for bytearray(10**12)", "refused before any allocation",
                        str(raised.value))


def test_a_real_booster_pickle_still_loads() -> None:
    booster = _small_booster()
    loaded = booster_from_bytes(pickle.dumps(booster, protocol=4), "model")
    rows = xgb.DMatrix(np.ones((2, 3)))
    np.testing.assert_array_equal(loaded.predict(rows), booster.predict(rows))


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"", "it is empty"),
        (b"\x1f\x8b\x08\x00rest", "it is gzip data"),
        (b"PK\x03\x04rest", "it is a zip archive"),
        (b"tree,feature,split\n", "it is text starting 'tree,feature,spl'"),
        (b"\x00\x01\x02\xff" * 8, "it starts with the bytes 00 01 02 ff"),
    ],
)
def test_an_unknown_format_is_named_with_what_each_image_writes(data: bytes, found: str) -> None:
    with pytest.raises(ModelUnreadable) as raised:
        booster_from_bytes(data, "'xgboost-model' in 'model.tar.gz'")
    message = str(raised.value)
    assert message.startswith("'xgboost-model' in 'model.tar.gz' is not an XGBoost model file: " + found)
    assert ("pickle (0.90-1, 0.90-2, 1.0-1, 1.2-1, 1.2-2), legacy binary (1.3-1, 1.5-1, 1.7-1), "
            "UBJSON (3.0-5, 3.2-0)") in message


def test_a_damaged_model_of_a_known_format_names_the_format_and_its_images() -> None:
    raw = _small_booster().save_raw(raw_format="ubj")
    with pytest.raises(ModelUnreadable, match=r"is an XGBoost model in the UBJSON format \(what images 3.0-5, "
                                              r"3.2-0 write\), but xgboost 3.0.5 cannot read it"):
        booster_from_bytes(bytes(raw[: len(raw) // 2]), "model")


def test_json_models_load() -> None:
    booster = _small_booster()
    loaded = booster_from_bytes(bytes(booster.save_raw(raw_format="json")), "model")
    assert loaded.num_boosted_rounds() == 3


def _archive(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> str:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return str(path)


def test_a_link_named_like_the_model_is_not_followed(tmp_path: Path) -> None:
    link = tarfile.TarInfo("xgboost-model")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(BadRequest, match="'xgboost-model' in .* is not a regular file"):
        load_booster(_archive(tmp_path, link))


def test_a_model_member_over_the_limit_is_refused_before_it_is_read(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The size in the tar header is checked first; the member's bytes are never read."""
    monkeypatch.setattr("sm_explain.model.MAX_MODEL_BYTES", 10)
    member = tarfile.TarInfo("xgboost-model")
    member.size = 16
    with pytest.raises(BadRequest, match="'xgboost-model' in .* is 16 bytes, over the 10 this reads"):
        load_booster(_archive(tmp_path, member, b"binf" + b"\x00" * 12))
