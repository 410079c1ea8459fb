"""Explanations of a trained XGBoost job (SHAP from the model or from SageMaker Debugger tensors) and the
HTML report. Runtime environment only: `python -m sm_explain` and `python -m sm_explain.report`."""
