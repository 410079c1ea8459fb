"""Exceptions that mean "bad input": the CLI turns them into exit code 2 with a message that names the problem,
so the Airflow side can fail without retrying."""

from __future__ import annotations


class BadRequest(ValueError):
    """The request or one of the things it points at is wrong; found before any expensive work."""


class NoDebuggerData(BadRequest):
    """The Debugger output location holds no trial (or not the tensors the request needs)."""
