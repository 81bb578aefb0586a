"""Command line interface: `pamer ...`. Nothing in the library imports this package."""

from __future__ import annotations

from pamer.cli import (  # noqa: F401  (they register commands)
    configs,
    data,
    demo,
    engine,
    models,
    predict,
    preprocess,
    spot,
)
from pamer.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
