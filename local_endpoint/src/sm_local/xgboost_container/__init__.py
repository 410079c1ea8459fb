"""Emulation of SageMaker's built-in XGBoost algorithm container (training side, with Debugger's hook).

Run as `python -m sm_local.xgboost_container --opt-ml DIR --framework-version 1.7-1` on a staged
`/opt/ml`-like directory (see docs/architecture.md, "Algorithm process"). Importing this package is
cheap: xgboost, pandas and smdebug load only once training starts.
"""
