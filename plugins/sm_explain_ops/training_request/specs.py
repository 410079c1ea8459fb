"""What a training spec may hold: the typed, checked form of the plain values a DAG Param carries.

:meth:`TrainingSpec.from_dict` is pure Python (milliseconds, so DAG parsing stays cheap) and refuses, naming
the field, every value and every combination that would fail or waste a job: types, S3 URIs, image versions,
XGBoost hyperparameters, and Debugger settings that would silently produce nothing (a collection never saved,
a rule reading a collection that is not saved, an image without the Debugger hook) or write far too much
(``debug_output_size``). Building the request itself (region, images) is ``build``'s job.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The image table: which versions run the Debugger hook (3.0-5 and newer have it commented out, so a
# DebugHookConfig there writes no tensors and rules see nothing) and the default version.
from sm_explain_contracts.images import DEBUGGER_HOOK_VERSIONS, DEFAULT_VERSION, IMAGES
from sm_explain_ops.training_request.debug_output_size import (
    DEFAULT_MAX_DEBUG_OUTPUT_BYTES,
    ROW_SCALED_COLLECTIONS,
    SavedSteps,
    estimate_debug_output_bytes,
    human_bytes,
    saved_steps,
)
from sm_explain_ops.training_request.fields import optional_int, positive_int, string_map, validate_s3_uri
from sm_explain_ops.training_request.hyperparameters import validate_hyperparameters

DEFAULT_ALGORITHM_VERSION = DEFAULT_VERSION
DEFAULT_SAVE_INTERVAL = 5
#: RetryStrategy.MaximumRetryAttempts: how often SageMaker itself restarts a job that failed with
#: InternalServerError (botocore's model allows 1-30; 0 here sends no RetryStrategy).
DEFAULT_RETRY_ATTEMPTS = 2
MAX_RETRY_ATTEMPTS = 30
#: The ``debugger`` setting that sends no DebugHookConfig and no rules: for accounts without Debugger (closed
#: to new AWS customers since 2026-07-30), best with image 3.0-5 or 3.2-0; explanations come from the model.
DEBUGGER_OFF = "off"


#: Collections the XGBoost hook knows (smdebug's DEFAULT_XGBOOST_COLLECTIONS).
XGBOOST_COLLECTIONS = frozenset(
    {
        "hyperparameters",
        "metrics",
        "losses",
        "predictions",
        "labels",
        "feature_importance",
        "average_shap",
        "full_shap",
        "trees",
    }
)

_ALGORITHM_VERSION = re.compile(r"^\d+\.\d+-\d+$")
_RULE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _from_mapping(cls: type, data: object, where: str) -> Any:
    """Build a spec dataclass from a plain mapping (DAG Params), refusing unknown or missing keys."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} in {where}; known fields: {', '.join(known)}"
        )
    missing = [
        name
        for name, f in known.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"missing required field(s) {', '.join(missing)} in {where}")
    return cls(**data)


def _spec_to_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _spec_to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _spec_to_dict(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_spec_to_dict(item) for item in value]
    return value


@dataclass(frozen=True)
class DataShape:
    """Size of the training data, for the Debugger output estimate."""

    rows: int
    features: int
    validation_rows: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", positive_int(self.rows, "data_shape.rows"))
        object.__setattr__(self, "features", positive_int(self.features, "data_shape.features"))
        object.__setattr__(
            self, "validation_rows", optional_int(self.validation_rows, "data_shape.validation_rows")
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | DataShape) -> DataShape:
        return _from_mapping(cls, data, "data_shape")


@dataclass(frozen=True)
class CollectionSpec:
    """One Debugger collection and when it is saved (smdebug SaveConfig semantics).

    A step is saved when it is in ``save_steps`` OR (start_step <= step < end_step and
    step % save_interval == 0): ``save_steps`` adds to the interval, it does not replace it.
    ``final_step_only`` saves just the last boosting round (resolved from ``num_round``).
    """

    name: str
    save_interval: int | None = None
    save_steps: tuple[int, ...] = ()
    start_step: int | None = None
    end_step: int | None = None
    final_step_only: bool = False

    def __post_init__(self) -> None:
        if self.name not in XGBOOST_COLLECTIONS:
            raise ValueError(
                f"unknown Debugger collection {self.name!r} for XGBoost; known: {', '.join(sorted(XGBOOST_COLLECTIONS))}"
            )
        where = f"collection {self.name}"
        object.__setattr__(
            self, "save_interval", optional_int(self.save_interval, f"{where}.save_interval", 1)
        )
        object.__setattr__(self, "start_step", optional_int(self.start_step, f"{where}.start_step"))
        object.__setattr__(self, "end_step", optional_int(self.end_step, f"{where}.end_step"))
        steps = self.save_steps
        if isinstance(steps, str):
            steps = [part for part in steps.split(",") if part.strip()]
        object.__setattr__(
            self, "save_steps", tuple(positive_int(step, f"{where}.save_steps", 0) for step in steps or ())
        )
        if self.final_step_only and (
            self.save_interval or self.save_steps or self.start_step or self.end_step
        ):
            raise ValueError(f"{where}: final_step_only cannot be combined with other save settings")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | CollectionSpec) -> CollectionSpec:
        return _from_mapping(cls, data, "debugger collection")

    def collection_parameters(self, num_round: int) -> dict[str, str]:
        """The ``CollectionParameters`` string map for this collection."""
        if self.final_step_only:
            last = num_round - 1
            return {"start_step": str(last), "end_step": str(num_round), "save_interval": "1"}
        parameters: dict[str, str] = {}
        if self.save_interval is not None:
            parameters["save_interval"] = str(self.save_interval)
        if self.save_steps:
            parameters["save_steps"] = ",".join(str(step) for step in self.save_steps)
        if self.start_step is not None:
            parameters["start_step"] = str(self.start_step)
        if self.end_step is not None:
            parameters["end_step"] = str(self.end_step)
        return parameters


@dataclass(frozen=True)
class RuleSpec:
    """A built-in Debugger rule (``rule_configs`` name in CamelCase) and its parameters."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    configuration_name: str | None = None
    instance_type: str | None = None
    volume_size_in_gb: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _RULE_NAME.match(self.name):
            raise ValueError(
                f"rule name {self.name!r} must be a built-in rule name such as 'LossNotDecreasing'"
            )
        if self.configuration_name is not None:
            self._check_configuration_name(self.configuration_name)
        parameters = string_map(self.parameters, f"rule {self.name} parameters")
        if "rule_to_invoke" in parameters:
            raise ValueError(f"rule {self.name}: rule_to_invoke is set by the built-in rule, do not pass it")
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(
            self,
            "volume_size_in_gb",
            optional_int(self.volume_size_in_gb, f"rule {self.name} volume_size_in_gb"),
        )

    def _check_configuration_name(self, value: object) -> None:
        """SageMaker's RuleConfigurationName is any 1-256 characters; control characters and path separators
        are refused too: the name ends up in status lines, logs and (on a local endpoint) directory names."""
        shown = repr(value[:80]) + ("..." if len(value) > 80 else "") if isinstance(value, str) else repr(value)
        where = f"rule {self.name} configuration_name {shown}"
        if not isinstance(value, str) or not 1 <= len(value) <= 256:
            size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
            raise ValueError(f"{where} must be a string of 1 to 256 characters (SageMaker's limit), got {size}")
        bad = sorted({char for char in value if char in "/\\" or ord(char) < 32 or 127 <= ord(char) < 160})
        if bad:
            raise ValueError(
                f"{where} must not contain control characters or path separators ('/', '\\'); "
                f"it contains {', '.join(repr(char) for char in bad)}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | RuleSpec) -> RuleSpec:
        return _from_mapping(cls, data, "debugger rule")

    @property
    def rule_configuration_name(self) -> str:
        return self.configuration_name or self.name

    def collections_read(self) -> tuple[str, ...] | None:
        """Collections the rule evaluates, or None when it selects tensors another way."""
        if self.parameters.get("collection_names"):
            return tuple(
                name.strip() for name in self.parameters["collection_names"].split(",") if name.strip()
            )
        if self.parameters.get("tensor_regex"):
            return None  # tensors picked by name: any saved collection may hold them
        if self.name == "LossNotDecreasing":
            if self.parameters.get("use_losses_collection", "true").lower() in ("true", "1"):
                return ("losses",)
        return None


def _default_collections() -> tuple[CollectionSpec, ...]:
    return (
        CollectionSpec("metrics", save_interval=DEFAULT_SAVE_INTERVAL),
        CollectionSpec("feature_importance", save_interval=DEFAULT_SAVE_INTERVAL),
    )


def _default_rules() -> tuple[RuleSpec, ...]:
    return (
        RuleSpec(
            "LossNotDecreasing",
            {"collection_names": "metrics", "num_steps": str(2 * DEFAULT_SAVE_INTERVAL)},
        ),
    )


@dataclass(frozen=True)
class DebuggerSpec:
    """Debugger hook collections and rules. The defaults are cheap: metrics and feature
    importance every 5 rounds, no SHAP (SHAP per saved step recomputes over the whole training
    set; see :func:`estimate_debug_output_bytes`)."""

    collections: tuple[CollectionSpec, ...] = field(default_factory=_default_collections)
    rules: tuple[RuleSpec, ...] = field(default_factory=_default_rules)
    hook_parameters: Mapping[str, Any] = field(default_factory=dict)
    s3_output_path: str | None = None
    max_output_bytes: int = DEFAULT_MAX_DEBUG_OUTPUT_BYTES

    def __post_init__(self) -> None:
        collections = tuple(
            CollectionSpec.from_dict(item) for item in _sequence(self.collections, "collections")
        )
        names = [c.name for c in collections]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Debugger collection(s) configured twice: {', '.join(duplicates)}")
        rules = tuple(RuleSpec.from_dict(item) for item in _sequence(self.rules, "rules"))
        rule_names = [r.rule_configuration_name for r in rules]
        if len(set(rule_names)) != len(rule_names):
            raise ValueError(f"Debugger rules need distinct configuration names, got {rule_names}")
        if len(rules) > 20:
            raise ValueError(f"SageMaker allows at most 20 Debugger rules, got {len(rules)}")
        hook_parameters = string_map(self.hook_parameters, "debugger.hook_parameters")
        object.__setattr__(self, "collections", collections)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "hook_parameters", hook_parameters)
        if self.s3_output_path is not None:
            validate_s3_uri(self.s3_output_path, "debugger.s3_output_path")
        object.__setattr__(
            self, "max_output_bytes", positive_int(self.max_output_bytes, "debugger.max_output_bytes")
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | DebuggerSpec | str) -> DebuggerSpec:
        """A mapping of fields, or a preset name: ``"default"`` or ``"notebook"`` (``"off"``, no Debugger at all,
        is a TrainingSpec's ``debugger`` of None)."""
        if isinstance(data, str):
            presets = {"default": cls, "notebook": cls.notebook}
            if data not in presets:
                raise ValueError(
                    f"unknown debugger preset {data!r}; use one of {', '.join([*presets, DEBUGGER_OFF])} or a "
                    "mapping"
                )
            return presets[data]()
        if isinstance(data, Mapping) and "preset" in data:
            base = cls.from_dict(str(data["preset"]))
            overrides = {key: value for key, value in data.items() if key != "preset"}
            return dataclasses.replace(base, **overrides) if overrides else base
        return _from_mapping(cls, data, "debugger")

    @classmethod
    def notebook(cls, save_interval: int = DEFAULT_SAVE_INTERVAL) -> DebuggerSpec:
        """The AWS explainability notebook's configuration: metrics, feature importance, full and
        average SHAP every ``save_interval`` rounds, LossNotDecreasing on metrics."""
        return cls(
            collections=tuple(
                CollectionSpec(name, save_interval=save_interval)
                for name in ("metrics", "feature_importance", "full_shap", "average_shap")
            ),
            rules=(
                RuleSpec(
                    "LossNotDecreasing", {"collection_names": "metrics", "num_steps": str(2 * save_interval)}
                ),
            ),
        )

    def collection(self, name: str) -> CollectionSpec | None:
        return next((c for c in self.collections if c.name == name), None)


def _sequence(value: object, where: str) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"debugger.{where} must be a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class VpcSpec:
    security_group_ids: tuple[str, ...]
    subnets: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("security_group_ids", "subnets"):
            values = getattr(self, name)
            if isinstance(values, str) or not values:
                raise ValueError(f"vpc.{name} must be a non-empty list of ids")
            object.__setattr__(self, name, tuple(str(v) for v in values))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | VpcSpec) -> VpcSpec:
        return _from_mapping(cls, data, "vpc")


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a debugged XGBoost training job needs, as plain values (DAG Param friendly)."""

    train_uri: str
    output_s3_uri: str
    role_arn: str
    hyperparameters: Mapping[str, Any]
    validation_uri: str | None = None
    region: str | None = None
    algorithm_version: str = DEFAULT_ALGORITHM_VERSION
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 10
    max_runtime_seconds: int = 3600
    content_type: str = "text/csv"
    debugger: DebuggerSpec | None = field(default_factory=DebuggerSpec)
    data_shape: DataShape | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    vpc: VpcSpec | None = None
    volume_kms_key_id: str | None = None
    output_kms_key_id: str | None = None
    enable_network_isolation: bool = False
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        validate_s3_uri(self.train_uri, "train_uri")
        if self.validation_uri is not None:
            validate_s3_uri(self.validation_uri, "validation_uri")
        validate_s3_uri(self.output_s3_uri, "output_s3_uri")
        set_("output_s3_uri", self.output_s3_uri.rstrip("/"))
        if not isinstance(self.role_arn, str) or not self.role_arn.startswith("arn:"):
            raise ValueError(f"role_arn must be an IAM role ARN, got {self.role_arn!r}")
        if not isinstance(self.algorithm_version, str) or not _ALGORITHM_VERSION.match(
            self.algorithm_version
        ):
            raise ValueError(f"algorithm_version {self.algorithm_version!r} must look like '1.7-1'")
        if self.algorithm_version not in IMAGES:
            raise ValueError(
                f"algorithm_version {self.algorithm_version!r} is not a built-in XGBoost image version; "
                f"versions: {', '.join(IMAGES)}"
            )
        set_("hyperparameters", validate_hyperparameters(self.hyperparameters, self.algorithm_version))
        set_("instance_count", positive_int(self.instance_count, "instance_count"))
        set_("volume_size_gb", positive_int(self.volume_size_gb, "volume_size_gb"))
        set_("max_runtime_seconds", positive_int(self.max_runtime_seconds, "max_runtime_seconds"))
        set_("retry_attempts", positive_int(self.retry_attempts, "retry_attempts", minimum=0))
        if self.retry_attempts > MAX_RETRY_ATTEMPTS:
            raise ValueError(
                f"retry_attempts must be between 0 and {MAX_RETRY_ATTEMPTS} (SageMaker's MaximumRetryAttempts is "
                f"at most {MAX_RETRY_ATTEMPTS}), got {self.retry_attempts}"
            )
        if self.content_type not in (
            "text/csv",
            "text/libsvm",
            "application/x-recordio-protobuf",
            "application/x-parquet",
        ):
            raise ValueError(
                f"content_type {self.content_type!r} is not an input type the XGBoost algorithm reads"
            )
        if not isinstance(self.enable_network_isolation, bool):
            raise ValueError(
                f"enable_network_isolation must be true or false, got {self.enable_network_isolation!r}"
            )
        if self.debugger == DEBUGGER_OFF:
            set_("debugger", None)  # no DebugHookConfig, no rules: accounts without Debugger
        if self.debugger is not None:
            set_("debugger", DebuggerSpec.from_dict(self.debugger))
        if self.data_shape is not None:
            set_("data_shape", DataShape.from_dict(self.data_shape))
        if self.vpc is not None:
            set_("vpc", VpcSpec.from_dict(self.vpc))
        set_("tags", string_map(self.tags, "tags"))
        self._check_debugger()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | TrainingSpec) -> TrainingSpec:
        """Build and check a spec from plain values, e.g. a DAG Param; raise ValueError naming the problem."""
        return _from_mapping(cls, data, "training spec")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values that :meth:`from_dict` accepts again."""
        return _spec_to_dict(self)

    @property
    def num_round(self) -> int:
        return int(self.hyperparameters["num_round"])

    def saved_steps(self) -> dict[str, SavedSteps]:
        """Steps (boosting rounds) at which each configured collection is written."""
        if self.debugger is None:
            return {}
        hook = self.debugger.hook_parameters
        return {
            c.name: saved_steps({**hook, **c.collection_parameters(self.num_round)}, self.num_round)
            for c in self.debugger.collections
        }

    def estimated_debug_output_bytes(self) -> int | None:
        """Debugger output estimate, or None when the data shape is unknown (only allowed when no
        saved collection grows with the number of rows)."""
        if self.debugger is None:
            return 0
        if self.data_shape is None:
            return None
        return estimate_debug_output_bytes(
            {name: steps.count for name, steps in self.saved_steps().items()},
            rows=self.data_shape.rows,
            features=self.data_shape.features,
            validation_rows=self.data_shape.validation_rows,
            metric_tensors=2 * max(1, len(self.hyperparameters.get("eval_metric", "").split(","))),
            num_round=self.num_round,
            max_depth=int(self.hyperparameters.get("max_depth", "6")),
        )

    def _check_debugger(self) -> None:
        """Refuse Debugger settings that would silently produce nothing or far too much."""
        debugger = self.debugger
        if debugger is None:
            return
        if self.algorithm_version not in DEBUGGER_HOOK_VERSIONS and (debugger.collections or debugger.rules):
            raise ValueError(
                f"XGBoost image {self.algorithm_version} does not run the Debugger hook (only "
                f"{', '.join(sorted(DEBUGGER_HOOK_VERSIONS))} do): its collections and rules would produce "
                f"nothing. Use algorithm_version 1.7-1, or debugger {DEBUGGER_OFF!r} (no Debugger: explanations "
                "come from the model)."
            )
        steps = self.saved_steps()
        for collection, saved in steps.items():
            if not saved:
                raise ValueError(
                    f"Debugger collection {collection!r} is never saved within num_round={self.num_round} rounds "
                    f"(parameters {debugger.collection(collection).collection_parameters(self.num_round)})"
                )
        for rule in debugger.rules:
            self._check_rule_reads_saved_data(rule, steps)
        row_scaled = sorted(ROW_SCALED_COLLECTIONS & set(steps))
        if self.data_shape is None:
            if row_scaled:
                raise ValueError(
                    f"data_shape (rows, features) is required when saving {', '.join(row_scaled)}: their "
                    "output grows with the data and must be checked against debugger.max_output_bytes"
                )
            return
        estimate = self.estimated_debug_output_bytes() or 0
        if estimate > debugger.max_output_bytes:
            per_collection = ", ".join(f"{name} {saved.count} steps" for name, saved in steps.items() if saved)
            raise ValueError(
                f"estimated Debugger output is {human_bytes(estimate)} ({estimate} bytes) for "
                f"{self.data_shape.rows} rows x {self.data_shape.features} features ({per_collection}), over the "
                f"limit debugger.max_output_bytes={human_bytes(debugger.max_output_bytes)}. full_shap writes "
                "rows x (features+1)^2 x 4 bytes per saved step: save it at the final step only "
                "(final_step_only) or less often, or raise the limit."
            )

    def _check_rule_reads_saved_data(self, rule: RuleSpec, steps: Mapping[str, SavedSteps]) -> None:
        read = rule.collections_read()
        if read is None:
            return
        for collection in read:
            if collection not in steps:
                why = (
                    "use_losses_collection defaults to true and no collection_names is given"
                    if collection == "losses" and "collection_names" not in rule.parameters
                    else "from its collection_names parameter"
                )
                raise ValueError(
                    f"rule {rule.rule_configuration_name} reads collection {collection!r} ({why}) but the "
                    f"Debugger configuration does not save it (saved: {', '.join(steps) or 'nothing'}); "
                    f"add a {collection!r} collection or set the rule's collection_names"
                )
            if rule.name == "LossNotDecreasing":
                num_steps = positive_int(
                    rule.parameters.get("num_steps", "10"), f"rule {rule.name} num_steps"
                )
                saved = steps[collection]
                if not saved or saved.last - saved.first < num_steps:
                    raise ValueError(
                        f"rule {rule.rule_configuration_name} compares losses num_steps={num_steps} steps apart "
                        f"but collection {collection!r} is saved only at {saved.describe()}: it would never "
                        "evaluate anything; save the collection more often or lower num_steps"
                    )
