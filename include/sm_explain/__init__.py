"""Explanations of a trained XGBoost job (SHAP from the model or from SageMaker Debugger tensors) and the
HTML report. Runtime environment only: `python -m sm_explain` and `python -m sm_explain.report`."""

# Every module here imports xgboost; importing it first without its scikit-learn integration saves ~1 s before the
# SHAP pass can start (shap imports scikit-learn later, while the pass runs). See lean_xgboost.
from sm_explain_contracts.lean_xgboost import import_xgboost

import_xgboost()
