"""Explanations of a trained XGBoost job (SHAP from the model or from SageMaker Debugger tensors) and the
HTML report. Runtime environment only: `python -m sm_explain` and `python -m sm_explain.report`.

The modules that use xgboost import it through `sm_explain_contracts.lean_xgboost` (without its scikit-learn
integration, ~1 s less before the SHAP pass); the package itself imports nothing heavy, so the report, which needs
no xgboost, starts without it."""
