"""StageDatasetOperator: stage one data set version for training.

Every field of the request is checked here with the runtime's own rules, so a typo fails in seconds; reading,
validating, encoding and splitting the data run in the runtime environment (``python -m sm_staging``), which
has pandas and scikit-learn and gets the connection's credentials and endpoints as boto3 variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from sm_explain_contracts.request_fields import refused_as
from sm_explain_contracts.staging_request import parse_staging_request
from sm_explain_ops.links import ProcessingJobLink, StagedDataLink
from sm_explain_ops.operators.runtime_compute import (
    RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    RuntimeComputeMixin,
    pop_runtime_compute_settings,
)
from sm_explain_ops.runtime import aws_env_from_connection, run_runtime_module


class DatasetRequestError(AirflowFailException, ValueError):
    """The staging request is wrong; retrying cannot fix it, so the task fails without retries."""


class StageDatasetOperator(RuntimeComputeMixin, AwsBaseOperator[S3Hook]):
    """Stage ``source`` as data set version ``dataset_version`` under ``destination``.

    Writes ``<destination>/<source sha256>/`` ``train/train.csv`` and ``validation/validation.csv`` (label
    first, no header, encoded as the notebook's ``shap.datasets.adult()``, split with
    ``train_test_split(test_size=0.2, random_state=7)``) and ``features.json`` (with each file's sha256).
    Different sources never share objects; rerunning a source finds its files and writes nothing.
    ``train_parts`` K > 1 writes the training rows as ``train/part-00000.csv`` ... instead, with their manifest
    ``train_parts.json`` (then ``train_uri``), so an explanation on K instances gets one share each; the training
    channel reads them as the one file. Schema fields
    left as ``None`` take the Adult defaults (``sm_explain_contracts.staging_request``).

    XCom: ``{"dataset_version", "data_uri", "train_uri", "validation_uri", "train_channel_uri",
    "validation_channel_uri", "features_uri", "rows", "n_features", "source_sha256", "data_shape"}``: the
    ``*_channel_uri`` are the training channels (a prefix holding exactly that file), the others the files
    themselves; ``data_shape`` is the training spec's ``data_shape`` of these files (rows, features,
    validation_rows). Each key is also its own XCom (``multiple_outputs``), so a downstream task takes
    ``stage.output["train_channel_uri"]``.

    The staging runs as a SageMaker Processing job on the runtime image, or on the worker
    (:mod:`sm_explain_ops.operators.runtime_compute`: ``runtime_image_uri``, ``compute``, ``role_arn``,
    ``processing_uri``, ``deferrable``); ``runtime_timeout`` bounds either.
    """

    runtime_module = "sm_staging"
    operator_extra_links = (ProcessingJobLink(), StagedDataLink())
    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "source",
        "destination",
        "dataset_version",
        "source_sha256",
        "label_column",
        "positive_label",
        "train_parts",
        *RUNTIME_COMPUTE_TEMPLATE_FIELDS,
    )
    ui_color = "#d5e8d4"

    def __init__(
        self,
        *,
        source: str,
        destination: str,
        dataset_version: str,
        source_sha256: str | None = None,
        columns: list[str] | None = None,
        label_column: str | None = None,
        positive_label: str | None = None,
        drop_columns: list[str] | None = None,
        categorical_columns: list[str] | None = None,
        category_orders: dict[str, list[str]] | None = None,
        objective: str = "binary:logistic",
        validation_fraction: float = 0.2,
        seed: int = 7,
        train_parts: int | None = None,
        cache_dir: str | None = None,
        runtime_timeout: float | None = 3600.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        settings = pop_runtime_compute_settings(kwargs)
        super().__init__(**kwargs)
        self.init_runtime_compute(settings)
        self.source = source
        self.destination = destination
        self.dataset_version = dataset_version
        self.source_sha256 = source_sha256
        self.columns = columns
        self.label_column = label_column
        self.positive_label = positive_label
        self.drop_columns = drop_columns
        self.categorical_columns = categorical_columns
        self.category_orders = category_orders
        self.objective = objective
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.train_parts = train_parts
        self.cache_dir = cache_dir
        self.runtime_timeout = runtime_timeout
        self.max_runtime_seconds = runtime_timeout

    def staging_request(self) -> dict[str, Any]:
        """The runtime request: only the fields that are set, so the runtime's defaults apply."""
        request: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "dataset_version": self.dataset_version,
            "source_sha256": self.source_sha256.lower() if self.source_sha256 else None,
            "columns": self.columns,
            "label_column": self.label_column,
            "positive_label": self.positive_label,
            "drop_columns": self.drop_columns,
            "categorical_columns": self.categorical_columns,
            "category_orders": self.category_orders,
            "objective": self.objective,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "train_parts": self.train_parts,
            "cache_dir": self.cache_dir,
        }
        return {key: value for key, value in request.items() if value is not None}

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.staging_request()
        # The runtime's own parse (sm_explain_contracts.staging_request): a bad field fails here in seconds, in
        # the runtime's words; only what needs the data is left to the runtime.
        with refused_as(DatasetRequestError):
            parse_staging_request(request)
        return self.run_runtime(context, request)

    def default_processing_uri(self) -> str:
        return f"{self.destination.rstrip('/')}/processing/"

    def run_on_worker(self, request: dict[str, Any]) -> dict[str, Any]:
        return run_runtime_module(
            self.runtime_module, request, env=aws_env_from_connection(self.hook), timeout=self.runtime_timeout
        )

    def finish_runtime(self, result: dict[str, Any]) -> dict[str, Any]:
        self.log.info(
            "Staged data set version %s: %s train / %s validation rows, %s features at %s",
            result["dataset_version"],
            result["rows"]["train"],
            result["rows"]["validation"],
            result["n_features"],
            result["features_uri"],
        )
        # What the Debugger output estimate of the training request needs, as one hand-off.
        data_shape = {"rows": result["rows"]["train"], "features": result["n_features"],
                      "validation_rows": result["rows"]["validation"]}
        return {**result, "data_shape": data_shape}
