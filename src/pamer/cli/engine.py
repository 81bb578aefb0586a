"""`pamer` commands: engine."""

from __future__ import annotations

from pamer.cli._app import app  # noqa: F401
