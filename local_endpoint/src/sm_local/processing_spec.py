"""What a CreateProcessingJob may hold on the local endpoint, and how its container maps onto this machine.

The endpoint has one container image, the runtime image: its "container" is the runtime environment's Python
(the endpoint's own interpreter, which has the runtime distribution installed). A processing container sees
`/opt/ml` (inputs and outputs under `/opt/ml/processing/`, `config/resourceconfig.json`, the termination message
`output/message`); a local process cannot write there, so each host (instance) of the job gets a directory of
its own, `<job dir>/hosts/algo-<i>/opt_ml`, that stands in for `/opt/ml`, and every `/opt/ml` path in the
container's command and environment is rewritten to it. The server refuses a request with this module's
messages (ValidationException) before anything starts; the supervisor uses the same functions to run it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sm_explain_contracts.s3_uris import S3UriError, parse_s3_uri
from sm_local.images import ecr_registry
from sm_local.store import ACCOUNT_ID

OPT_ML = "/opt/ml"
PROCESSING_PREFIX = "/opt/ml/processing"
RUNTIME_REPOSITORY = "sm-explain-runtime"
RUNTIME_IMAGE_URI_ENV = "SM_LOCAL_RUNTIME_IMAGE_URI"
# Set for the container: where its stand-ins for /opt/ml/processing and /opt/ml are.
PROCESSING_ROOT_ENV = "SM_LOCAL_PROCESSING_ROOT"
OPT_ML_ENV = "SM_LOCAL_OPT_ML"
RESERVED_ENV_PREFIX = "SM_LOCAL_"  # the endpoint's own variables: a request cannot set them
HOSTS_DIR = "hosts"
DEFAULT_MAX_RUNTIME_SECONDS = 86_400  # SageMaker's default StoppingCondition
DEFAULT_VOLUME_SIZE_GB = 30

# `/opt/ml` as a path of its own: at the start of a value or after `=`, `,`, `:`, `;`, a quote or whitespace
# (`--input=/opt/ml/processing/input`), and followed by `/` or the end of that path. `s3://b/opt/ml/x`,
# `/opt/mlflow` and `file:///opt/ml` are left alone.
_OPT_ML_PATH = re.compile(r"(?<![^\s=,:;'\"])/opt/ml(?=/|$|[\s,:;'\"])")
_PYTHON = re.compile(r"python(?:3(?:\.\d{1,2})?)?")


class ProcessingRequestError(ValueError):
    """A CreateProcessingJob the local endpoint refuses; the message names the field, the value and what is
    accepted."""


class ContainerCommandError(ValueError):
    """The container command cannot start in the runtime image; the message says why (it fails the job)."""


def default_runtime_image_uri(region: str) -> str:
    """`<account>.dkr.ecr.<region>.<domain>/sm-explain-runtime:latest`: the endpoint's account and region."""
    return f"{ecr_registry(ACCOUNT_ID, region)}/{RUNTIME_REPOSITORY}:latest"


def image_repository(uri: str) -> str:
    """The repository name of an image reference (`registry/path/name:tag@digest` -> `name`)."""
    reference = uri.strip().split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def runtime_image_problem(uri: str, configured: str) -> str | None:
    """None when `uri` names the runtime image (the configured URI, or any registry and tag of the repository
    `sm-explain-runtime`), else the FailureReason of a job that cannot pull it."""
    if uri.strip() == configured or image_repository(uri) == RUNTIME_REPOSITORY:
        return None
    return (
        f"ClientError: Failed to pull the image {uri!r}: the local SageMaker endpoint has only the runtime image "
        f"{configured!r} (any registry and tag of the repository {RUNTIME_REPOSITORY!r} too), whose container is "
        f"the runtime environment's Python. Run another URI as that image with --runtime-image-uri "
        f"({RUNTIME_IMAGE_URI_ENV})."
    )


def local_path_parts(value: Any, where: str) -> tuple[str, ...]:
    """The segments of a LocalPath below /opt/ml/processing/, or ProcessingRequestError: SageMaker requires every
    input and output path there, and none may climb out of it."""
    accepted = (f"an absolute path below {PROCESSING_PREFIX}/ (for example {PROCESSING_PREFIX}/input) without "
                "'.', '..' or empty segments")
    if not isinstance(value, str) or not value:
        raise ProcessingRequestError(f"{where} is required: give {accepted}.")
    if "\x00" in value or "\\" in value:
        raise ProcessingRequestError(f"{where} {value!r} contains a NUL or a backslash: give {accepted}.")
    text = value[:-1] if value.endswith("/") else value
    if not text.startswith(PROCESSING_PREFIX + "/"):
        raise ProcessingRequestError(f"{where} {value!r} is not below {PROCESSING_PREFIX}/: give {accepted}.")
    parts = tuple(text[len(PROCESSING_PREFIX) + 1 :].split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise ProcessingRequestError(f"{where} {value!r} has a '.', '..' or empty segment: give {accepted}.")
    return parts


def _check_s3_uri(value: Any, where: str) -> None:
    try:
        parse_s3_uri(value, where)
    except S3UriError as error:
        raise ProcessingRequestError(
            f"{error}. The local SageMaker endpoint reads and writes s3:// URIs only."
        ) from error


def _refuse_nested(paths: list[tuple[str, tuple[str, ...]]], kind: str) -> None:
    """Two inputs (or two outputs) may not share a directory, nor may one lie inside another: their files would
    mix (SageMaker refuses inputs without a destination of their own)."""
    for index, (where, parts) in enumerate(paths):
        for other_where, other in paths[:index]:
            shorter, longer = sorted((parts, other), key=len)
            if longer[: len(shorter)] == shorter:
                raise ProcessingRequestError(
                    f"{where} and {other_where} overlap ({PROCESSING_PREFIX}/{'/'.join(parts)} and "
                    f"{PROCESSING_PREFIX}/{'/'.join(other)}): every {kind} needs a directory of its own, not "
                    "inside another's."
                )


def _unsupported(where: str, value: Any, supported: str) -> ProcessingRequestError:
    return ProcessingRequestError(
        f"{where} {value!r} is not supported by the local SageMaker endpoint: it supports {supported}."
    )


def _check_locations(
    items: list[dict[str, Any]], field: str, kind: str, name_key: str, s3_key: str, alternative: tuple[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """What inputs and outputs share: a name of their own, S3 only (not `alternative`, not AppManaged), an s3:// URI,
    a LocalPath of their own below /opt/ml/processing/. Returns (where, the S3 member) of each."""
    names: set[str] = set()
    paths: list[tuple[str, tuple[str, ...]]] = []
    locations: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if item[name_key] in names:
            raise ProcessingRequestError(
                f"{where}.{name_key} {item[name_key]!r} is used more than once: every {kind} needs a name of its own."
            )
        names.add(item[name_key])
        alternative_key, described = alternative
        if item.get(alternative_key) is not None:
            raise _unsupported(f"{where}.{alternative_key}", described, f"{s3_key} only")
        if item.get("AppManaged"):
            raise _unsupported(f"{where}.AppManaged", True, f"{kind}s the endpoint transfers (AppManaged false)")
        location = item.get(s3_key)
        if location is None:
            raise ProcessingRequestError(f"{where}.{s3_key} is required: the local SageMaker endpoint moves {kind}s "
                                         "from and to S3 only.")
        _check_s3_uri(location["S3Uri"], f"{where}.{s3_key}.S3Uri")
        paths.append((f"{where}.{s3_key}.LocalPath",
                      local_path_parts(location.get("LocalPath"), f"{where}.{s3_key}.LocalPath")))
        locations.append((where, location))
    _refuse_nested(paths, kind)
    return locations


def check_request(request: dict[str, Any]) -> None:
    """Refuse (ProcessingRequestError) what the local endpoint cannot run or SageMaker would not accept; the
    request has passed botocore's model already (types, lengths, enums, patterns)."""
    cluster = request["ProcessingResources"]["ClusterConfig"]
    where = "ProcessingResources.ClusterConfig"
    if cluster.get("InstancePreferences"):
        preferred = [preference["InstanceType"] for preference in cluster["InstancePreferences"]]
        raise _unsupported(f"{where}.InstancePreferences", preferred, "InstanceType with InstanceCount")
    if cluster.get("InstanceCount") is None:
        raise ProcessingRequestError(f"{where}.InstanceCount is required: how many instances (1-100) run the job.")

    checked_inputs = _check_locations(request.get("ProcessingInputs") or [], "ProcessingInputs", "input", "InputName",
                                      "S3Input", ("DatasetDefinition", "(Athena/Redshift)"))
    for where, source in checked_inputs:
        if source.get("S3InputMode", "File") != "File":
            raise _unsupported(f"{where}.S3Input.S3InputMode", source["S3InputMode"], "'File'")
        if source.get("S3CompressionType", "None") != "None":
            raise _unsupported(f"{where}.S3Input.S3CompressionType", source["S3CompressionType"], "'None'")
    _check_locations((request.get("ProcessingOutputConfig") or {}).get("Outputs") or [],
                     "ProcessingOutputConfig.Outputs", "output", "OutputName", "S3Output",
                     ("FeatureStoreOutput", "(a feature group)"))

    app = request["AppSpecification"]
    for field in ("ContainerEntrypoint", "ContainerArguments"):
        for index, value in enumerate(app.get(field) or []):
            if "\x00" in value:
                raise ProcessingRequestError(
                    f"AppSpecification.{field}[{index}] contains a NUL character, which no command line can hold."
                )
    for key, value in (request.get("Environment") or {}).items():
        if key.startswith(RESERVED_ENV_PREFIX):
            raise ProcessingRequestError(
                f"Environment key {key!r} is reserved by the local SageMaker endpoint (it sets the "
                f"{RESERVED_ENV_PREFIX}* variables of the container itself): choose another name."
            )
        if "\x00" in value:
            raise ProcessingRequestError(f"Environment[{key!r}] contains a NUL character, which no variable can hold.")


def with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    """The request as DescribeProcessingJob shows it: SageMaker fills in the input defaults it applied."""
    record = dict(request)
    inputs = []
    for item in request.get("ProcessingInputs") or []:
        source = {"S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None",
                  **item["S3Input"]}
        inputs.append({**item, "S3Input": source, "AppManaged": item.get("AppManaged", False)})
    if "ProcessingInputs" in request:
        record["ProcessingInputs"] = inputs
    return record


@dataclass(frozen=True)
class HostLayout:
    """One host (instance) of a processing job on this machine: `<job dir>/hosts/algo-<index>/`."""

    index: int  # 1-based, as SageMaker's host names
    root: Path

    @property
    def name(self) -> str:
        return f"algo-{self.index}"

    @property
    def opt_ml(self) -> Path:
        """Stands in for /opt/ml."""
        return self.root / "opt_ml"

    @property
    def processing(self) -> Path:
        """Stands in for /opt/ml/processing."""
        return self.opt_ml / "processing"

    @property
    def config_dir(self) -> Path:
        return self.opt_ml / "config"

    @property
    def message_file(self) -> Path:
        """The container's termination message, /opt/ml/output/message: DescribeProcessingJob's ExitMessage."""
        return self.opt_ml / "output" / "message"

    def local_dir(self, local_path: str) -> Path:
        """The directory standing in for an input's or output's LocalPath (checked by `check_request`)."""
        return self.processing.joinpath(*local_path_parts(local_path, "LocalPath"))

    def rewrite(self, value: str) -> str:
        """`value` with every /opt/ml path pointing at this host's stand-in."""
        return _OPT_ML_PATH.sub(lambda _match: str(self.opt_ml), value)


def host_layouts(job_dir: Path, count: int) -> list[HostLayout]:
    return [HostLayout(index, job_dir / HOSTS_DIR / f"algo-{index}") for index in range(1, count + 1)]


def container_command(
    app: dict[str, Any], layout: HostLayout, runtime_python: str
) -> list[str]:
    """The argv of the container: ContainerEntrypoint + ContainerArguments, `python`/`python3` (also as an absolute
    path, `/usr/local/bin/python3`) as the runtime environment's interpreter, another program only when the runtime
    environment installs it (a console script beside the interpreter), /opt/ml paths rewritten. Never a shell."""
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint or not entrypoint[0]:
        raise ContainerCommandError(
            "ClientError: Cannot start the container: the runtime image has no default entrypoint, so "
            "AppSpecification.ContainerEntrypoint must name the program, for example ['python3', '-m', 'sm_explain']."
        )
    executable = entrypoint[0]
    bin_dir = Path(runtime_python).parent  # a venv's python is a link: never resolved, or the venv is lost
    program: str | None = None
    if _PYTHON.fullmatch(PurePosixPath(executable).name) and (
        "/" not in executable or executable.startswith("/")
    ):
        program = runtime_python
    elif "/" not in executable and (bin_dir / executable).is_file() and os.access(bin_dir / executable, os.X_OK):
        program = str(bin_dir / executable)
    if program is None:
        raise ContainerCommandError(
            f"ClientError: Cannot start the container: AppSpecification.ContainerEntrypoint[0] {executable!r} is not "
            f"a program of the runtime image, which runs 'python' / 'python3' (its Python) and the commands its "
            f"environment installs ({bin_dir}); programs are never run through a shell."
        )
    return [program, *(layout.rewrite(part) for part in entrypoint[1:]),
            *(layout.rewrite(part) for part in app.get("ContainerArguments") or [])]


def shard(keys: list[str], host_index: int, host_count: int, distribution: str) -> list[str]:
    """The keys one host gets: all of them (FullyReplicated), or for ShardedByS3Key every `host_count`-th of the
    sorted keys starting at the host's own (round robin): shares differ by at most one object, the split depends
    only on the key names, and neighbouring keys (often one date or part range) spread over every host."""
    ordered = sorted(keys)
    if distribution != "ShardedByS3Key":
        return ordered
    return ordered[host_index - 1 :: host_count]


def inputs(request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(InputName, S3Input) of every input."""
    for item in request.get("ProcessingInputs") or []:
        yield item["InputName"], item["S3Input"]


def outputs(request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(OutputName, S3Output) of every output."""
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        yield item["OutputName"], item["S3Output"]
