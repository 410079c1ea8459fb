"""Which container images the local endpoint can stand in for.

Only SageMaker's built-in XGBoost algorithm (training) and the Debugger built-in rule image are
emulated. Their URIs are accepted in every region and partition exactly as sagemaker-core builds them
(`sagemaker.core.image_uris.retrieve("xgboost", region, version)`, `retrieve("debugger", region)`):
`<account>.dkr.ecr.<region>.<partition DNS suffix>/<repository>:<tag>`. The per-region account ids
are not checked (they are not ours to copy); the region must exist in botocore's partition data and
the DNS suffix must be that partition's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import botocore.session

from sm_explain_contracts.images import DEBUGGER_HOOK_VERSIONS, XGBOOST_VERSIONS

XGBOOST_REPOSITORY = "sagemaker-xgboost"
RULES_REPOSITORY = "sagemaker-debugger-rules"
# sagemaker-core spells the oldest versions `<version>-cpu-py3`; both spellings name the same image.
_TAG_SUFFIX = "-cpu-py3"

_ECR_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<suffix>[a-z0-9.-]+)"
    r"/(?P<repository>[a-z0-9._/-]+):(?P<tag>[A-Za-z0-9._-]+)"
)


class UnsupportedImageError(ValueError):
    """The image is not one the local endpoint can emulate; the message says which ones it can."""


@dataclass(frozen=True)
class AlgorithmImage:
    uri: str
    algorithm: str
    version: str
    region: str
    account: str
    writes_debugger_tensors: bool


@dataclass(frozen=True)
class RuleEvaluatorImage:
    uri: str
    region: str
    account: str


@functools.cache
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def _dns_suffixes() -> dict[str, str]:
    """Partition name -> ECR DNS suffix, from botocore's partition data."""
    data = _botocore_session().get_component("data_loader").load_data("partitions")
    return {partition["id"]: partition["outputs"]["dnsSuffix"] for partition in data["partitions"]}


def ecr_registry(account: str, region: str) -> str:
    """`<account>.dkr.ecr.<region>.<the region's partition DNS suffix>`."""
    try:
        partition = _botocore_session().get_partition_for_region(region)
    except Exception:  # an unknown region still gets a well-formed host
        partition = "aws"
    return f"{account}.dkr.ecr.{region}.{_dns_suffixes().get(partition, 'amazonaws.com')}"


def _ecr_location_problem(region: str, suffix: str) -> str | None:
    """Why `<region>.<suffix>` is not a real ECR registry host, or None when it is."""
    try:
        partition = _botocore_session().get_partition_for_region(region)
    except Exception:
        return f"unknown region {region!r}"
    expected = _dns_suffixes().get(partition)
    if suffix != expected:
        return f"registries in {region} end in '.{expected}', not '.{suffix}'"
    return None


def parse_algorithm_image(uri: str) -> AlgorithmImage:
    """The built-in XGBoost image `uri` names, or UnsupportedImageError saying what is supported."""
    match = _ECR_URI.fullmatch(uri.strip())
    problem: str | None
    if match is None:
        problem = "it is not an ECR image URI '<account>.dkr.ecr.<region>.<domain>/<repository>:<tag>'"
    elif match["repository"] != XGBOOST_REPOSITORY:
        problem = f"repository {match['repository']!r} is not {XGBOOST_REPOSITORY!r}"
    else:
        version = match["tag"].removesuffix(_TAG_SUFFIX)
        if version not in XGBOOST_VERSIONS:
            problem = f"XGBoost version {match['tag']!r} is unknown"
        else:
            problem = _ecr_location_problem(match["region"], match["suffix"])
        if problem is None:
            return AlgorithmImage(
                uri=uri,
                algorithm="xgboost",
                version=version,
                region=match["region"],
                account=match["account"],
                writes_debugger_tensors=version in DEBUGGER_HOOK_VERSIONS,
            )
    raise UnsupportedImageError(
        f"TrainingImage {uri!r} is not supported by the local SageMaker endpoint ({problem}). It runs "
        f"only the built-in XGBoost algorithm image '<account>.dkr.ecr.<region>.<domain>/"
        f"{XGBOOST_REPOSITORY}:<version>' of any region, as sagemaker.core.image_uris.retrieve('xgboost', "
        f"region, version) returns it, with version one of {', '.join(XGBOOST_VERSIONS)}."
    )


def parse_rule_evaluator_image(uri: str) -> RuleEvaluatorImage:
    """The Debugger built-in rule image `uri` names, or UnsupportedImageError."""
    match = _ECR_URI.fullmatch(uri.strip())
    problem: str | None
    if match is None:
        problem = "it is not an ECR image URI '<account>.dkr.ecr.<region>.<domain>/<repository>:<tag>'"
    elif match["repository"] != RULES_REPOSITORY or match["tag"] != "latest":
        problem = f"'{match['repository']}:{match['tag']}' is not '{RULES_REPOSITORY}:latest'"
    else:
        problem = _ecr_location_problem(match["region"], match["suffix"])
        if problem is None:
            return RuleEvaluatorImage(uri=uri, region=match["region"], account=match["account"])
    raise UnsupportedImageError(
        f"RuleEvaluatorImage {uri!r} is not supported by the local SageMaker endpoint ({problem}). It "
        f"evaluates only SageMaker Debugger built-in rules with the image '<account>.dkr.ecr.<region>."
        f"<domain>/{RULES_REPOSITORY}:latest' of any region, as sagemaker.core.image_uris.retrieve("
        f"'debugger', region) returns it."
    )
