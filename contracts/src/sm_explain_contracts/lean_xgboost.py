"""`import xgboost` without its optional scikit-learn integration, for the runtime's processes that start often.

`xgboost.compat` imports scikit-learn (and with it scipy.stats) only for the sklearn-style estimators, which
neither the local built-in algorithm nor the explanations use: most of every such process's start-up. scikit-learn
stays importable afterwards for whoever needs it (the algorithm's
metrics, shap).
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_xgboost() -> ModuleType:
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes xgboost's `import sklearn` fail fast
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost
