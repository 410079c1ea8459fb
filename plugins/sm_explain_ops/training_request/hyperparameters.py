"""Which XGBoost hyperparameters a training request may send.

The algorithm's own rules (names, types, ranges, per image's xgboost) are the one table in
``sm_explain_contracts.hyperparameters``, shared with the local endpoint's algorithm process so both refuse in the
same words. On top of it this module sets the project's caps: a class per output column, a tree's depth and
leaves, histogram bins and rounds all multiply a job's memory and time, so a typo fails here, not days into a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sm_explain_contracts.hyperparameters import parse_hyperparameters
from sm_explain_contracts.images import DEFAULT_VERSION, IMAGES
from sm_explain_ops.training_request.fields import string_map

#: The most boosting rounds a request may ask for: far beyond any useful model (the notebook uses 51, early
#: stopping usually ends well under 10,000), small enough that a typo such as 1e12 fails here, not days into a job.
MAX_NUM_ROUND = 100_000

# The project's own caps, on top of what the algorithm accepts: far past any useful model.
PROJECT_LIMITS = {"num_round": MAX_NUM_ROUND, "num_class": 10_000, "max_depth": 100, "max_leaves": 1 << 20,
                  "max_bin": 1 << 16}


def validate_hyperparameters(
    hyperparameters: Mapping[str, Any], algorithm_version: str = DEFAULT_VERSION
) -> dict[str, str]:
    """Convert values to strings and refuse what the image's algorithm would refuse (its own table,
    sm_explain_contracts.hyperparameters, in its own words) or what exceeds the project's caps."""
    if not isinstance(hyperparameters, Mapping):
        raise ValueError(f"hyperparameters must be a mapping, got {type(hyperparameters).__name__}")
    converted = string_map(hyperparameters, "hyperparameters")
    image = IMAGES.get(algorithm_version)
    parse_hyperparameters(converted, xgboost_version=image.xgboost if image else IMAGES[DEFAULT_VERSION].xgboost)
    for name, limit in PROJECT_LIMITS.items():
        if name in converted and int(converted[name].strip()) > limit:
            raise ValueError(
                f"Hyperparameter {name}: value {converted[name].strip()} is over the limit of {limit} this project "
                "sets (far past any useful model)."
            )
    return converted
