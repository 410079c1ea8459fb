"""Data set staging (runtime env): a raw Adult-format CSV -> encoded, split, versioned training data.

Entry point: ``python -m sm_staging --request REQUEST.json --result RESULT.json`` (see
docs/architecture.md, "Runtime entry points"); :func:`sm_staging.stage.stage` is the same in process.
"""

from __future__ import annotations

from sm_staging.errors import StagingInputError
from sm_staging.stage import stage

__all__ = ["StagingInputError", "stage"]
