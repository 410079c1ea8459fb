"""The training request (sm_explain_ops.training_request): what reaches CreateTrainingJob, and what is
refused before."""

from __future__ import annotations

from typing import Any

import pytest

from sm_explain_ops.pipeline import NOTEBOOK_HYPERPARAMETERS
from sm_explain_ops.training_request import (
    DEFAULT_ALGORITHM_VERSION,
    DEFAULT_MAX_DEBUG_OUTPUT_BYTES,
    MAX_NUM_ROUND,
    DebuggerSpec,
    SavedSteps,
    TrainingSpec,
    build_training_request,
    estimate_debug_output_bytes,
    saved_steps,
    validate_request,
)

# The notebook's XGBoost settings (what the pipeline sends) on Adult (80 % of 32,561 rows, 12 features).
ADULT_SHAPE = {"rows": 26048, "features": 12}


def spec_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "train_uri": "s3://ml-bucket/adult/v1/data/train.csv",
        "validation_uri": "s3://ml-bucket/adult/v1/data/validation.csv",
        "output_s3_uri": "s3://ml-bucket/adult/v1/training",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "hyperparameters": dict(NOTEBOOK_HYPERPARAMETERS),
        "region": "us-east-1",
    }
    base.update(overrides)
    return base


# Public AWS account ids of the XGBoost and Debugger rule images per region.
REGION_IMAGES = {
    "us-east-1": ("683313688378", "503895931360"),
    "eu-west-1": ("141502667606", "929884845733"),
    "ap-southeast-2": ("783357654285", "184798709955"),
}


@pytest.mark.parametrize("region", sorted(REGION_IMAGES))
def test_notebook_configuration_builds_a_valid_request_with_the_regions_images(region: str) -> None:
    spec = TrainingSpec.from_dict(spec_dict(region=region, debugger="notebook", data_shape=ADULT_SHAPE))
    request = build_training_request(spec, "adult-v1-job")

    algorithm_account, rules_account = REGION_IMAGES[region]
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        f"{algorithm_account}.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:1.7-1"
    )
    [rule] = request["DebugRuleConfigurations"]
    assert (
        rule["RuleEvaluatorImage"]
        == f"{rules_account}.dkr.ecr.{region}.amazonaws.com/sagemaker-debugger-rules:latest"
    )
    assert rule["RuleConfigurationName"] == "LossNotDecreasing"
    assert rule["RuleParameters"] == {
        "rule_to_invoke": "LossNotDecreasing",
        "collection_names": "metrics",
        "num_steps": "10",
    }
    hook = request["DebugHookConfig"]
    assert (
        hook["S3OutputPath"]
        == request["OutputDataConfig"]["S3OutputPath"]
        == "s3://ml-bucket/adult/v1/training"
    )
    assert {c["CollectionName"]: c["CollectionParameters"] for c in hook["CollectionConfigurations"]} == {
        "metrics": {"save_interval": "5"},
        "feature_importance": {"save_interval": "5"},
        "full_shap": {"save_interval": "5"},
        "average_shap": {"save_interval": "5"},
    }
    assert request["HyperParameters"] == {
        "max_depth": "5",
        "eta": "0.2",
        "gamma": "4",
        "min_child_weight": "6",
        "subsample": "0.7",
        "objective": "binary:logistic",
        "num_round": "51",
    }
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["train"]["ContentType"] == channels["validation"]["ContentType"] == "text/csv"
    assert (
        channels["validation"]["DataSource"]["S3DataSource"]["S3Uri"]
        == "s3://ml-bucket/adult/v1/data/validation.csv"
    )
    validate_request(request)  # the builder validated it already; nothing may have been mutated since


def test_defaults_are_cheap_metrics_and_feature_importance_every_five_rounds() -> None:
    spec = TrainingSpec.from_dict(spec_dict())  # no data shape needed: nothing here grows with rows
    assert spec.saved_steps() == {
        "metrics": SavedSteps(11, 0, 50),
        "feature_importance": SavedSteps(11, 0, 50),
    }
    assert [rule.name for rule in spec.debugger.rules] == ["LossNotDecreasing"]
    request = build_training_request(spec, "adult-v1-job")
    names = [c["CollectionName"] for c in request["DebugHookConfig"]["CollectionConfigurations"]]
    assert names == ["metrics", "feature_importance"]


def test_notebook_configuration_is_one_option_away_and_equals_the_class_preset() -> None:
    from_string = TrainingSpec.from_dict(spec_dict(debugger="notebook", data_shape=ADULT_SHAPE))
    assert from_string.debugger == DebuggerSpec.notebook()
    assert [c.name for c in DebuggerSpec.notebook().collections] == [
        "metrics",
        "feature_importance",
        "full_shap",
        "average_shap",
    ]


def test_adult_notebook_estimate_is_full_shap_dominated_and_under_the_default_limit() -> None:
    spec = TrainingSpec.from_dict(spec_dict(debugger="notebook", data_shape=ADULT_SHAPE))
    estimate = spec.estimated_debug_output_bytes()
    full_shap_only = 11 * 26048 * 13 * 13 * 4  # 11 saved steps of rows x (F+1)^2 x 4 bytes
    assert full_shap_only < estimate < full_shap_only * 1.01
    assert estimate < DEFAULT_MAX_DEBUG_OUTPUT_BYTES


def test_output_over_the_limit_is_refused_with_the_estimate_in_the_message() -> None:
    shape = {"rows": 160_000, "features": 50}
    expected = TrainingSpec.from_dict(
        spec_dict(
            debugger={"preset": "notebook", "max_output_bytes": 10**12},
            data_shape=shape,
        )
    ).estimated_debug_output_bytes()
    assert expected > 16 * 10**9  # the measured 17 GB

    with pytest.raises(
        ValueError, match=f"estimated Debugger output is 17.1 GiB \\({expected} bytes\\)"
    ) as refused:
        TrainingSpec.from_dict(spec_dict(debugger="notebook", data_shape=shape))
    assert "160000 rows x 50 features" in str(refused.value)
    assert "max_output_bytes" in str(refused.value)


def test_shap_at_the_final_round_only_fits_large_data() -> None:
    debugger = {
        "collections": [
            {"name": "metrics", "save_interval": 5},
            {"name": "average_shap", "final_step_only": True},
        ],
    }
    spec = TrainingSpec.from_dict(spec_dict(debugger=debugger, data_shape={"rows": 160_000, "features": 50}))
    assert spec.saved_steps()["average_shap"] == SavedSteps(1, 50, 50)
    request = build_training_request(spec, "adult-v1-job")
    parameters = {
        c["CollectionName"]: c["CollectionParameters"]
        for c in request["DebugHookConfig"]["CollectionConfigurations"]
    }
    assert saved_steps(parameters["average_shap"], 51) == SavedSteps(1, 50, 50)


def test_save_steps_add_to_the_interval_as_in_smdebug() -> None:
    # smdebug saves step s when s is in save_steps OR s is on the interval (hook default 10).
    assert saved_steps({"save_steps": "3"}, 21) == SavedSteps(4, 0, 20)  # steps 0, 3, 10, 20
    assert saved_steps({"save_interval": "5", "start_step": "10", "end_step": "20"}, 51) == SavedSteps(2, 10, 15)


def _listed_steps(parameters: dict[str, str], num_round: int) -> list[int]:
    """smdebug's SaveConfigMode.should_save_step, step by step: the reference for the arithmetic."""
    interval = int(parameters.get("save_interval", 10))
    start = int(parameters.get("start_step", 0))
    end = int(parameters["end_step"]) if "end_step" in parameters else None
    explicit = {int(step) for step in parameters.get("save_steps", "").split(",") if step.strip()}
    return [step for step in range(num_round)
            if step in explicit or (start <= step and (end is None or step < end) and step % interval == 0)]


@pytest.mark.parametrize("num_round", [1, 2, 7, 10, 51])
def test_saved_steps_arithmetic_equals_smdebugs_step_by_step_rule(num_round: int) -> None:
    for interval in (1, 2, 3, 5, 10, 60):
        for start in (None, 0, 1, 4, 50, 70):
            for end in (None, 0, 1, 5, 30, 51, 80):
                for explicit in ("", "0", "3,49", "50,100", "2,2,4"):
                    parameters = {"save_interval": str(interval)}
                    if start is not None:
                        parameters["start_step"] = str(start)
                    if end is not None:
                        parameters["end_step"] = str(end)
                    if explicit:
                        parameters["save_steps"] = explicit
                    listed = _listed_steps(parameters, num_round)
                    expected = SavedSteps(len(listed), listed[0], listed[-1]) if listed else SavedSteps(0)
                    assert saved_steps(parameters, num_round) == expected, (parameters, num_round)


def test_a_huge_round_count_is_counted_without_listing_its_steps() -> None:
    """Every step of 10^15 rounds: a list would need petabytes; the count is arithmetic."""
    assert saved_steps({"save_interval": "1"}, 10**15) == SavedSteps(10**15, 0, 10**15 - 1)
    spec = TrainingSpec.from_dict(spec_dict(
        hyperparameters={**NOTEBOOK_HYPERPARAMETERS, "num_round": MAX_NUM_ROUND}, data_shape=ADULT_SHAPE,
        debugger={"collections": [{"name": "metrics", "save_interval": 1}, {"name": "trees", "save_interval": 1}],
                  "rules": [], "max_output_bytes": 10**18}))
    assert spec.saved_steps()["metrics"] == SavedSteps(MAX_NUM_ROUND, 0, MAX_NUM_ROUND - 1)
    assert spec.estimated_debug_output_bytes() > 0


@pytest.mark.reliability
def test_a_zero_save_interval_in_the_hook_parameters_is_refused_by_name(reliability) -> None:
    with pytest.raises(ValueError) as raised:
        TrainingSpec.from_dict(spec_dict(debugger={"collections": [{"name": "metrics"}], "rules": [],
                                                   "hook_parameters": {"save_interval": 0}}))
    assert "Debugger save_interval must be >= 1, got 0" in str(raised.value)
    reliability.refused("training request", "debugger.hook_parameters save_interval=0",
                        "refused naming save_interval (no division by zero)", str(raised.value))


def test_estimate_formula_per_collection() -> None:
    rows, features = 1000, 9
    full = estimate_debug_output_bytes({"full_shap": 1}, rows=rows, features=features)
    assert full == 10 * (rows * 10 * 4 + 256)
    average = estimate_debug_output_bytes({"average_shap": 3}, rows=rows, features=features)
    assert average == 3 * 10 * (4 + 256)
    with pytest.raises(ValueError, match="unknown collection 'gradients'"):
        estimate_debug_output_bytes({"gradients": 1}, rows=rows, features=features)


def test_full_shap_without_a_data_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"data_shape \(rows, features\) is required when saving full_shap"):
        TrainingSpec.from_dict(spec_dict(debugger="notebook"))


def test_debugger_with_an_xgboost_3_image_is_refused() -> None:
    with pytest.raises(ValueError, match="XGBoost image 3.0-5 does not run the Debugger hook"):
        TrainingSpec.from_dict(spec_dict(algorithm_version="3.0-5"))


@pytest.mark.parametrize("off", [None, "off"])
def test_xgboost_3_without_debugger_builds(off: str | None) -> None:
    spec = TrainingSpec.from_dict(spec_dict(algorithm_version="3.0-5", debugger=off))
    assert spec.debugger is None
    request = build_training_request(spec, "adult-v1-job")
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:3.0-5")
    assert "DebugHookConfig" not in request and "DebugRuleConfigurations" not in request


def test_debugger_off_sends_no_hook_or_rules_with_any_image() -> None:
    request = build_training_request(TrainingSpec.from_dict(spec_dict(debugger="off")), "adult-v1-job")
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-xgboost:1.7-1")
    assert "DebugHookConfig" not in request and "DebugRuleConfigurations" not in request
    with pytest.raises(ValueError, match="unknown debugger preset 'of'; use one of default, notebook, off"):
        TrainingSpec.from_dict(spec_dict(debugger="of"))


def test_the_debugger_image_versions_come_from_the_one_image_table() -> None:
    """The request builder refuses Debugger settings on exactly the images the local endpoint runs without the
    hook: both read sm_explain_contracts.images."""
    from sm_explain_contracts import images

    assert DEFAULT_ALGORITHM_VERSION == images.DEFAULT_VERSION
    for version, image in images.IMAGES.items():
        spec = dict(spec_dict(algorithm_version=version, debugger="default"))
        if image.debugger_hook:
            TrainingSpec.from_dict(spec)
        else:
            with pytest.raises(ValueError, match=f"XGBoost image {version} does not run the Debugger hook"):
                TrainingSpec.from_dict(spec)


def test_loss_not_decreasing_on_the_unsaved_losses_collection_is_refused() -> None:
    debugger = {"rules": [{"name": "LossNotDecreasing"}]}  # reads `losses` by default; only metrics saved
    with pytest.raises(
        ValueError, match="reads collection 'losses' \\(use_losses_collection defaults to true"
    ):
        TrainingSpec.from_dict(spec_dict(debugger=debugger))


def test_loss_rule_selecting_tensors_by_regex_is_not_second_guessed() -> None:
    debugger = {"rules": [{"name": "LossNotDecreasing", "parameters": {"tensor_regex": "validation-.*"}}]}
    spec = TrainingSpec.from_dict(spec_dict(debugger=debugger))
    assert spec.debugger.rules[0].collections_read() is None


def test_rule_on_a_named_collection_that_is_not_saved_is_refused() -> None:
    debugger = {
        "rules": [{"name": "LossNotDecreasing", "parameters": {"collection_names": "losses,metrics"}}]
    }
    with pytest.raises(ValueError, match="rule LossNotDecreasing reads collection 'losses'"):
        TrainingSpec.from_dict(spec_dict(debugger=debugger))


def test_loss_rule_that_could_never_compare_two_steps_is_refused() -> None:
    debugger = {
        "collections": [{"name": "metrics", "final_step_only": True}],
        "rules": [{"name": "LossNotDecreasing", "parameters": {"collection_names": "metrics"}}],
    }
    with pytest.raises(ValueError, match=r"saved only at step 50: it would never evaluate"):
        TrainingSpec.from_dict(spec_dict(debugger=debugger))


def test_losses_collection_satisfies_the_default_loss_rule() -> None:
    debugger = {
        "collections": [{"name": "losses", "save_interval": 5}],
        "rules": [
            {"name": "LossNotDecreasing", "parameters": {"num_steps": 10, "use_losses_collection": True}}
        ],
    }
    request = build_training_request(TrainingSpec.from_dict(spec_dict(debugger=debugger)), "adult-v1-job")
    assert request["DebugRuleConfigurations"][0]["RuleParameters"]["use_losses_collection"] == "true"


def test_unknown_rule_is_refused_when_the_request_is_built() -> None:
    spec = TrainingSpec.from_dict(spec_dict(debugger={"rules": [{"name": "LossNotIncreasing"}]}))
    with pytest.raises(ValueError, match="unknown built-in Debugger rule 'LossNotIncreasing'"):
        build_training_request(spec, "adult-v1-job")


def _rule_named(configuration_name: object) -> TrainingSpec:
    rule = {"name": "LossNotDecreasing", "parameters": {"collection_names": "metrics", "num_steps": "10"},
            "configuration_name": configuration_name}
    return TrainingSpec.from_dict(spec_dict(debugger={"rules": [rule]}))


def test_any_rule_configuration_name_sagemaker_accepts_reaches_the_request() -> None:
    for name in ("loss: validation (v2) ~ 90% — ünïcode", "x" * 256):
        request = build_training_request(_rule_named(name), "adult-v1-job")
        assert request["DebugRuleConfigurations"][0]["RuleConfigurationName"] == name


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must be a string of 1 to 256 characters (SageMaker's limit), got 0 characters"),
        ("x" * 257, "got 257 characters"),
        (5, "got int"),
        ("../../../../elsewhere", "must not contain control characters or path separators"),
        ("a\\b", "it contains " + repr("\\")),
        ("loss\nInjected: line", "it contains " + repr("\n")),
        ("del\x7f", "it contains " + repr("\x7f")),
    ],
)
def test_a_rule_configuration_name_out_of_limits_or_with_separators_is_refused(
    name: object, message: str, reliability
) -> None:
    with pytest.raises(ValueError) as raised:
        _rule_named(name)
    assert "rule LossNotDecreasing configuration_name" in str(raised.value)
    assert message in str(raised.value), str(raised.value)
    reliability.refused("training request", f"rule configuration_name {name!r:.40}",
                        "ValueError naming the rule, the limit and the characters", str(raised.value))


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        (
            {"num_round": 10, "max_detph": 3},
            "Extraneous hyperparameter found: max_detph is not a hyperparameter of the XGBoost algorithm; did you "
            "mean max_depth?",
        ),
        ({"num_round": 10, "eta": 1.5}, r"Hyperparameter eta: value 1.5 is out of range; expected a number in \[0, 1\]"),
        ({"num_round": 0}, r"Hyperparameter num_round: value 0 is out of range; expected an integer in \[1, \+inf\)"),
        ({"num_round": "ten"}, r"Hyperparameter num_round: value 'ten' is not a valid integer"),
        (
            {"num_round": 10, "objective": "binary:logit"},
            "Hyperparameter objective: value 'binary:logit' is not one of",
        ),
        ({"max_depth": 3}, "Missing required hyperparameter: num_round"),
        ({"num_round": 10, "objective": "multi:softmax"}, "Hyperparameter num_class is required for objective"),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(hyperparameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingSpec.from_dict(spec_dict(hyperparameters=hyperparameters))


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("eta", "nan", "value nan is out of range; expected a number in [0, 1]"),
        ("gamma", "inf", "value inf is out of range; expected a number in [0, +inf)"),
        ("min_child_weight", "-inf", "value -inf is out of range"),
        ("base_score", "nan", "value nan is out of range"),
        ("subsample", float("nan"), "value nan is out of range; expected a number in (0, 1]"),
        ("num_round", MAX_NUM_ROUND + 1, f"is over the limit of {MAX_NUM_ROUND} this project sets"),
        ("num_round", 10**12, f"is over the limit of {MAX_NUM_ROUND} this project sets"),
        ("num_round", "1e12", "value '1e12' is not a valid integer"),
        ("num_round", 51.0, "value '51.0' is not a valid integer"),  # the algorithm parses it with int()
        ("max_depth", "inf", "value 'inf' is not a valid integer"),
        ("max_depth", 101, "is over the limit of 100 this project sets"),
        ("max_leaves", 2**21, "is over the limit of 1048576 this project sets"),
        ("max_bin", 2**17, "is over the limit of 65536 this project sets"),
    ],
)
def test_non_finite_and_unbounded_hyperparameters_are_refused_by_name(
    name: str, value: object, expected: str, reliability
) -> None:
    hyperparameters = {**NOTEBOOK_HYPERPARAMETERS, name: value}
    with pytest.raises(ValueError) as raised:
        TrainingSpec.from_dict(spec_dict(hyperparameters=hyperparameters, debugger="notebook", data_shape=ADULT_SHAPE))
    assert str(raised.value).startswith(f"Hyperparameter {name}:") and expected in str(raised.value)
    reliability.refused("training request", f"hyperparameter {name}={value!r}",
                        "refused naming the hyperparameter and its accepted range", str(raised.value))


def test_num_round_at_its_maximum_is_accepted() -> None:
    spec = TrainingSpec.from_dict(spec_dict(hyperparameters={**NOTEBOOK_HYPERPARAMETERS, "num_round": MAX_NUM_ROUND}))
    assert spec.num_round == MAX_NUM_ROUND == 100_000


@pytest.mark.parametrize(
    ("field", "uri", "message"),
    [
        ("train_uri", "https://ml-bucket/adult/train.csv", "train_uri .* is not an s3:// URI"),
        ("validation_uri", "ml-bucket/adult/validation.csv", "validation_uri .* is not an s3:// URI"),
        ("output_s3_uri", "s3://ML_Bucket/out", "output_s3_uri .* invalid bucket name 'ML_Bucket'"),
        ("train_uri", "s3://ml-bucket/a b.csv", "train_uri .* contains whitespace"),
    ],
)
def test_bad_s3_uris_are_refused_by_field(field: str, uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingSpec.from_dict(spec_dict(**{field: uri}))


def test_botocore_model_catches_what_the_spec_does_not_and_names_the_field() -> None:
    spec = TrainingSpec.from_dict(spec_dict(role_arn="arn:aws:iam::123:role/too-short-account"))
    with pytest.raises(ValueError, match="Value 'arn:aws:iam::123:role/too-short-account' at 'RoleArn' failed to "
                                         "satisfy constraint: Member must satisfy regular expression pattern"):
        build_training_request(spec, "adult-v1-job")
    spec = TrainingSpec.from_dict(spec_dict(tags={"owner": "x" * 257}))
    with pytest.raises(ValueError, match=r"at 'Tags\[0\].Value' failed to satisfy constraint: Member must have "
                                         "length less than or equal to 256"):
        build_training_request(spec, "adult-v1-job")


def test_over_long_job_name_is_refused() -> None:
    with pytest.raises(ValueError, match="job_name .* is 64 characters"):
        build_training_request(TrainingSpec.from_dict(spec_dict()), "j" * 64)


def test_optional_settings_reach_the_request() -> None:
    spec = TrainingSpec.from_dict(
        spec_dict(
            tags={"team": "risk", "cost-center": 42},
            vpc={"security_group_ids": ["sg-0123"], "subnets": ["subnet-1", "subnet-2"]},
            volume_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/vol",
            output_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/out",
            enable_network_isolation=True,
            max_runtime_seconds=1800,
            instance_type="ml.m5.4xlarge",
            instance_count=2,
            volume_size_gb=30,
            debugger={"s3_output_path": "s3://debug-bucket/tensors", "hook_parameters": {"save_interval": 5}},
        )
    )
    request = build_training_request(spec, "adult-v1-job")
    assert request["Tags"] == [{"Key": "team", "Value": "risk"}, {"Key": "cost-center", "Value": "42"}]
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-1", "subnet-2"]}
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.4xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/vol",
    }
    assert request["OutputDataConfig"]["KmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/out"
    assert request["EnableNetworkIsolation"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    assert request["DebugHookConfig"]["S3OutputPath"] == "s3://debug-bucket/tensors"
    assert request["DebugHookConfig"]["HookParameters"] == {"save_interval": "5"}


def test_spec_round_trips_through_plain_values_and_refuses_unknown_fields() -> None:
    spec = TrainingSpec.from_dict(spec_dict(debugger="notebook", data_shape=ADULT_SHAPE))
    assert TrainingSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown field\\(s\\) train_url in training spec"):
        TrainingSpec.from_dict({**spec_dict(), "train_url": "s3://x/y"})
    missing = spec_dict()
    del missing["role_arn"]
    with pytest.raises(ValueError, match="missing required field\\(s\\) role_arn"):
        TrainingSpec.from_dict(missing)
    with pytest.raises(ValueError, match="unknown Debugger collection 'gradients'"):
        TrainingSpec.from_dict(spec_dict(debugger={"collections": [{"name": "gradients"}]}))


def test_region_must_be_known_to_pick_images() -> None:
    with pytest.raises(ValueError, match="region is required"):
        build_training_request(TrainingSpec.from_dict(spec_dict(region=None)), "adult-v1-job")
