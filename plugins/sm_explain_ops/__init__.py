"""Airflow-side operators, sensors, triggers and notifiers for explainable XGBoost on SageMaker.

Imports only Airflow, boto3 and sagemaker-core: smdebug, shap and xgboost live in the runtime distribution
(sm-explain-runtime, its own environment) and are reached through :mod:`sm_explain_ops.runtime`.
"""

__version__ = "0.1.0"
