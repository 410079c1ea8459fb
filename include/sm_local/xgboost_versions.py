"""Framework versions of SageMaker's built-in XGBoost image, in a module with no imports: the
endpoint (images.py) and the algorithm process (whose start-up time counts) share one table."""

from __future__ import annotations

# Every framework version of the sagemaker-xgboost repository (sagemaker-core's image_uri_config).
XGBOOST_VERSIONS = ("0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2", "1.3-1", "1.5-1", "1.7-1", "3.0-5", "3.2-0")
# The container attaches smdebug's hook in these versions only; 0.90-1 predates Debugger, and
# 3.0-5 onwards ship with the hook commented out (they write no tensors).
DEBUGGER_HOOK_VERSIONS = frozenset({"0.90-2", "1.0-1", "1.2-1", "1.2-2", "1.3-1", "1.5-1", "1.7-1"})
