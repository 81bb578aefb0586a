"""Command line interface: `pamer ...`. Nothing in the library imports this package."""

from __future__ import annotations

from pamer.cli import configs, data, demo, engine, models, predict, preprocess, spot, spot_eval  # noqa: F401  (register)
from pamer.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
