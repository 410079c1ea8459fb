"""From a checked training spec to the CreateTrainingJob request that is sent.

What depends on the region is decided here, when a request is built, never at DAG parse time: the built-in
XGBoost image and each rule's evaluator image come from sagemaker-core's image tables (a heavy import, about
5 s the first time). The finished request is checked against botocore's model before it is returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sm_explain_ops.job_naming import validate_training_job_name
from sm_explain_ops.training_request.botocore_validation import validate_request
from sm_explain_ops.training_request.specs import RuleSpec, TrainingSpec


def algorithm_image_uri(region: str, version: str) -> str:
    """The built-in XGBoost image for the region, from sagemaker-core's image URI config."""
    from sagemaker.core import image_uris  # heavy import: only when a request is built

    try:
        return image_uris.retrieve("xgboost", region, version)
    except ValueError as error:
        raise ValueError(
            f"no XGBoost image for algorithm_version={version!r} in region {region!r}: {error}"
        ) from None


def rule_configuration(rule: RuleSpec, region: str) -> dict[str, Any]:
    """A ``DebugRuleConfigurations`` entry for a built-in rule, with the region's evaluator image."""
    from sagemaker.core.debugger import Rule, get_rule_container_image_uri, rule_configs

    factory_name = re.sub(r"(?<!^)(?=[A-Z])", "_", rule.name).lower()
    factory = getattr(rule_configs.debugger_rules.builtin_rules, factory_name, None)
    if not callable(factory):
        raise ValueError(f"unknown built-in Debugger rule {rule.name!r}")
    built_in = Rule.sagemaker(
        factory(), name=rule.rule_configuration_name, rule_parameters=dict(rule.parameters)
    )
    # Rule.sagemaker also proposes collections_to_save (e.g. losses every 500 steps) that the SDK's
    # estimator would merge into the hook config; we do not: the spec's collections are explicit and
    # were checked against what each rule reads.
    config = built_in.to_debugger_rule_config_dict()
    config["RuleEvaluatorImage"] = get_rule_container_image_uri(rule.name, region)
    if rule.instance_type:
        config["InstanceType"] = rule.instance_type
    if rule.volume_size_in_gb is not None:
        config["VolumeSizeInGB"] = rule.volume_size_in_gb
    return config


def _channel(name: str, uri: str, content_type: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": content_type,
        "CompressionType": "None",
        "InputMode": "File",
    }


def build_training_request(
    spec: TrainingSpec | Mapping[str, Any], job_name: str, *, region: str | None = None
) -> dict[str, Any]:
    """Return a ``CreateTrainingJob`` request, validated against botocore's SageMaker model.

    ``region`` (e.g. the connection's) is used when the spec has none; image URIs depend on it.
    """
    spec = TrainingSpec.from_dict(spec)
    validate_training_job_name(job_name)
    region = spec.region or region
    if not region:
        raise ValueError("region is required (set it in the spec or on the connection) to pick image URIs")

    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": algorithm_image_uri(region, spec.algorithm_version),
            "TrainingInputMode": "File",
        },
        "RoleArn": spec.role_arn,
        "HyperParameters": dict(spec.hyperparameters),
        "InputDataConfig": [_channel("train", spec.train_uri, spec.content_type)]
        + ([_channel("validation", spec.validation_uri, spec.content_type)] if spec.validation_uri else []),
        "OutputDataConfig": {"S3OutputPath": spec.output_s3_uri},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "EnableNetworkIsolation": spec.enable_network_isolation,
    }
    if spec.output_kms_key_id:
        request["OutputDataConfig"]["KmsKeyId"] = spec.output_kms_key_id
    if spec.volume_kms_key_id:
        request["ResourceConfig"]["VolumeKmsKeyId"] = spec.volume_kms_key_id
    if spec.vpc is not None:
        request["VpcConfig"] = {
            "SecurityGroupIds": list(spec.vpc.security_group_ids),
            "Subnets": list(spec.vpc.subnets),
        }
    if spec.retry_attempts:
        request["RetryStrategy"] = {"MaximumRetryAttempts": spec.retry_attempts}
    if spec.tags:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in spec.tags.items()]
    if spec.debugger is not None:
        debugger = spec.debugger
        hook_config: dict[str, Any] = {
            "S3OutputPath": (debugger.s3_output_path or spec.output_s3_uri).rstrip("/"),
            "CollectionConfigurations": [
                {"CollectionName": c.name, "CollectionParameters": c.collection_parameters(spec.num_round)}
                for c in debugger.collections
            ],
        }
        if debugger.hook_parameters:
            hook_config["HookParameters"] = dict(debugger.hook_parameters)
        request["DebugHookConfig"] = hook_config
        if debugger.rules:
            request["DebugRuleConfigurations"] = [rule_configuration(rule, region) for rule in debugger.rules]
    validate_request(request)
    return request
