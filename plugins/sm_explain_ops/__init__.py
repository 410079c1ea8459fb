"""Airflow-side operators, sensors, triggers and notifiers for explainable XGBoost on SageMaker.

Imports only Airflow, boto3 and sagemaker-core: smdebug, shap and xgboost live in the runtime
environment (include/) and are reached through :mod:`sm_explain_ops.runtime`.
"""
