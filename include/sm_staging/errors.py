"""The one exception that means "the request or the data is wrong" (CLI exit code 2)."""

from __future__ import annotations


class StagingInputError(ValueError):
    """Bad input: the message names the problem so the user can fix the request or the data."""
