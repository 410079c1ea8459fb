"""What `airflow providers list` and the UI learn about this package (the `apache_airflow_provider` entry point).

It registers no connection type of its own: every hook, operator and trigger here uses the Amazon provider's
`aws` connection (`aws_conn_id`), whose extra may set per-service endpoints (`endpoint_url` or
`service_config.<service>.endpoint_url`, the way the local stack is reached). Registering `aws` a second time
would shadow the Amazon provider's form in the UI.
"""

from __future__ import annotations

from typing import Any

from sm_explain_ops import __version__

PACKAGE_NAME = "sm-explain-ops"


def get_provider_info() -> dict[str, Any]:
    integration = "Amazon SageMaker explainable XGBoost"
    return {
        "package-name": PACKAGE_NAME,
        "name": "SageMaker explainable XGBoost (sm-explain-ops)",
        "description": "Train the built-in XGBoost algorithm on Amazon SageMaker with Debugger, wait on the job "
        "and every rule, and explain the model: metric curves, feature importance, SHAP, outliers and a report.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://docs.aws.amazon.com/sagemaker/latest/dg/train-debugger.html",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": [
                    "sm_explain_ops.operators.stage_dataset",
                    "sm_explain_ops.operators.start_training",
                    "sm_explain_ops.operators.explain",
                    "sm_explain_ops.operators.compare_versions",
                ],
            }
        ],
        "sensors": [
            {"integration-name": integration, "python-modules": ["sm_explain_ops.sensors.training_rules"]}
        ],
        "hooks": [{"integration-name": integration, "python-modules": ["sm_explain_ops.hooks.training_jobs",
                                                                        "sm_explain_ops.hooks.processing_jobs"]}],
        "triggers": [
            {"integration-name": integration, "python-modules": ["sm_explain_ops.triggers.training_rules",
                                                     "sm_explain_ops.triggers.processing_jobs"]}
        ],
        "extra-links": [
            "sm_explain_ops.links.TrainingJobLink",
            "sm_explain_ops.links.TrainingJobLogsLink",
            "sm_explain_ops.links.WaitedTrainingJobLink",
            "sm_explain_ops.links.WaitedTrainingJobLogsLink",
            "sm_explain_ops.links.ProcessingJobLink",
            "sm_explain_ops.links.StagedDataLink",
            "sm_explain_ops.links.ExplanationReportLink",
        ],
        "notifications": ["sm_explain_ops.notifiers.rule_alert.SnsRuleAlertNotifier"],
    }
