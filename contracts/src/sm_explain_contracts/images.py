"""SageMaker's built-in XGBoost images: what each version ships and how it saves the model.

The one table of image versions. The local endpoint reads it to accept image URIs, to build each image's
environment and to save the model as that image does; the explanations read it to tell which images write a
model file they were given. It imports nothing beyond the standard library, because the algorithm process
imports it at start-up, in every image's environment.

Sources: aws/sagemaker-xgboost-container, one branch or tag per version: `docker/<v>/base/Dockerfile.cpu`
(Python, xgboost), `requirements.txt` and `docker/<v>/final/Dockerfile.cpu` (smdebug, numpy, pandas, scipy,
scikit-learn), `src/sagemaker_xgboost_container/algorithm_mode/train.py` (how the model is written).

The local environments run on this machine's Python 3.11. Where an image pins a release that has no
Python 3.11 build, the environment takes the oldest release that has one; `ImageVersion.substitutions` says
where and why. xgboost itself is always the image's exact version.
"""

from __future__ import annotations

from dataclasses import dataclass

# Model file formats, as xgboost writes `<model_dir>/xgboost-model`.
PICKLE = "pickle"  # pickle.dump(booster): the Booster's state, holding the raw model in a bytearray
LEGACY_BINARY = "legacy binary"  # save_model() of xgboost 1.x to a name without extension (starts with b"binf")
UBJ = "UBJSON"  # save_model() of xgboost >= 2.1 to a name without extension
JSON = "JSON"  # save_model("*.json"); no built-in image writes it, xgboost reads it everywhere

# The oldest releases with Python 3.11 builds, used where an image's own pin has none.
_NUMPY_PY311 = "numpy==1.23.5"
_SCIPY_PY311 = "scipy==1.9.3"
_PANDAS_PY311 = "pandas==1.5.3"  # also the last 1.x: xgboost 1.x imports pandas names that 2.0 removed
_SKLEARN_PY311 = "scikit-learn==1.1.3"
# smdebug on Python 3.11: protobuf 3.20 for its generated modules, setuptools < 81 for pkg_resources,
# requests and psutil, which it imports without declaring them.
_SMDEBUG_SUPPORT = ("protobuf==3.20.3", "setuptools<81", "requests==2.32.3", "psutil==5.9.8", "boto3==1.35.99")


@dataclass(frozen=True)
class ImageVersion:
    version: str
    xgboost: str
    python: str  # the image's own Python
    model_format: str
    debugger_hook: bool  # the container attaches smdebug's hook (callback.py::add_debugging)
    requirements: tuple[str, ...]  # what the local environment installs, pinned
    substitutions: tuple[str, ...] = ()
    pickle_protocol: int | None = None  # PICKLE only: the protocol the image's pickle.dump used

    @property
    def smdebug(self) -> str | None:
        """The smdebug release the local environment runs, or None when the image runs no hook."""
        for requirement in self.requirements:
            if requirement.startswith("smdebug=="):
                return requirement.removeprefix("smdebug==")
        return None


def _image(version: str, xgboost: str, python: str, model_format: str, *, debugger_hook: bool,
           requirements: tuple[str, ...], substitutions: tuple[str, ...] = (),
           pickle_protocol: int | None = None) -> ImageVersion:
    package = "xgboost-cpu" if int(xgboost.split(".")[0]) >= 2 else "xgboost"
    pins = (f"{package}=={xgboost}", *requirements)
    if any(pin.startswith("smdebug==") for pin in requirements):
        pins += _SMDEBUG_SUPPORT
    if package == "xgboost-cpu":
        substitutions = ("xgboost-cpu: the same release without the GPU libraries (469 MB of NCCL)", *substitutions)
    return ImageVersion(version, xgboost, python, model_format, debugger_hook, pins, substitutions, pickle_protocol)


_OLD_LIBRARIES = (_NUMPY_PY311, _SCIPY_PY311, _PANDAS_PY311, _SKLEARN_PY311)
_NO_PY311 = "numpy, scipy, pandas and scikit-learn: the image's pins have no Python 3.11 build"

IMAGES: dict[str, ImageVersion] = {
    image.version: image
    for image in (
        # Python 3.6/3.7 pickled with protocol 3, their default (train.py: pkl.dump(bst, open(...))).
        _image("0.90-1", "0.90", "3.7", PICKLE, debugger_hook=False, pickle_protocol=3,
               requirements=_OLD_LIBRARIES, substitutions=(_NO_PY311,)),
        _image("0.90-2", "0.90", "3.6", PICKLE, debugger_hook=True, pickle_protocol=3,
               requirements=(*_OLD_LIBRARIES, "smdebug==1.0.10"),
               substitutions=(_NO_PY311, "smdebug 1.0.10 for 0.4.13, whose pinned aioboto3 and aiobotocore "
                              "contradict each other (it also runs old-style xgboost callbacks)")),
        _image("1.0-1", "1.0.0", "3.7", PICKLE, debugger_hook=True, pickle_protocol=3,
               requirements=(*_OLD_LIBRARIES, "smdebug==1.0.10"), substitutions=(_NO_PY311,)),
        # From 1.2-1 on: pkl.dump(bst, f, protocol=4).
        _image("1.2-1", "1.2.0", "3.7", PICKLE, debugger_hook=True, pickle_protocol=4,
               requirements=(*_OLD_LIBRARIES, "smdebug==1.0.7"), substitutions=(_NO_PY311,)),
        _image("1.2-2", "1.2.0", "3.7", PICKLE, debugger_hook=True, pickle_protocol=4,
               requirements=(*_OLD_LIBRARIES, "smdebug==1.0.10"), substitutions=(_NO_PY311,)),
        # From 1.3-1 on: bst.save_model(model_location); smdebug installed from git at 1.0.29, which PyPI
        # lacks: 1.0.34 is the next release, with the same xgboost hook and file format.
        _image("1.3-1", "1.3.3", "3.7", LEGACY_BINARY, debugger_hook=True,
               requirements=(*_OLD_LIBRARIES, "smdebug==1.0.34"),
               substitutions=(_NO_PY311, "smdebug 1.0.34 for 1.0.29 (git only): the same xgboost hook")),
        _image("1.5-1", "1.5.2", "3.8", LEGACY_BINARY, debugger_hook=True,
               requirements=("numpy==1.24.4", _SCIPY_PY311, "pandas==1.5.3", _SKLEARN_PY311, "smdebug==1.0.34"),
               substitutions=("scipy 1.8.0 and scikit-learn 0.24.1 have no Python 3.11 build",
                              "smdebug 1.0.34 for 1.0.29 (git only): the same xgboost hook")),
        _image("1.7-1", "1.7.4", "3.9", LEGACY_BINARY, debugger_hook=True,
               requirements=("numpy==1.24.1", _SCIPY_PY311, _PANDAS_PY311, _SKLEARN_PY311, "smdebug==1.0.34"),
               substitutions=("scipy 1.8.0, pandas 1.2.4 and scikit-learn 0.24.1 have no Python 3.11 build",
                              "smdebug 1.0.34 for 1.0.29 (git only): the same xgboost hook")),
        # 3.0-5 onwards ship with add_debugging commented out: no tensors.
        _image("3.0-5", "3.0.5", "3.10", UBJ, debugger_hook=False,
               requirements=("numpy==2.1.0", "scipy==1.15.0", "pandas==2.2.3", "scikit-learn==1.5.2")),
        _image("3.2-0", "3.2.0", "3.10", UBJ, debugger_hook=False,
               requirements=("numpy==2.1.0", "scipy==1.15.0", "pandas==2.2.3", "scikit-learn==1.5.2"),
               substitutions=("numpy, scipy, pandas and scikit-learn as in 3.0-5 (the 3.2-0 branch is not public)",)),
    )
}

# Every framework version of the sagemaker-xgboost repository (sagemaker-core's image_uri_config).
XGBOOST_VERSIONS = tuple(IMAGES)
DEBUGGER_HOOK_VERSIONS = frozenset(version for version, image in IMAGES.items() if image.debugger_hook)
DEFAULT_VERSION = "1.7-1"


def versions_writing(model_format: str) -> list[str]:
    """The image versions whose model file has `model_format`."""
    return [version for version, image in IMAGES.items() if image.model_format == model_format]


def detect_model_format(data: bytes) -> str | None:
    """The model file format `data` starts with, or None when it is none that xgboost or an image writes."""
    if data.startswith(b"binf"):
        return LEGACY_BINARY
    if data[:1] == b"{":
        second = data[1:2]
        if second in (b'"', b" ", b"\n", b"\r", b"\t"):
            return JSON
        if second in (b"L", b"l", b"I", b"i", b"U", b"$", b"#"):  # UBJSON length markers of the first key
            return UBJ
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # PROTO opcode
        return PICKLE
    return None


def describe_formats() -> str:
    """`UBJSON (3.0-5, 3.2-0), legacy binary (1.3-1, ...), pickle (0.90-1, ...)` for error messages."""
    formats = dict.fromkeys(image.model_format for image in IMAGES.values())
    return ", ".join(f"{name} ({', '.join(versions_writing(name))})" for name in formats)
