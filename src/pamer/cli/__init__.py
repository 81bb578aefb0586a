"""Command line interface: `pamer ...`. Nothing in the library imports this package.

The command modules import the library (and rich's tables and bars) inside each command, not at their top: every
`pamer` start, `pamer --help` included, would otherwise load torch, dlib, OpenCV and pandas first (importing
`pamer.cli` takes 0.14 s; the engine, predict, spotting and the readers together 3.2 s, `python -X importtime`,
2026-12-05).
"""

from __future__ import annotations

from pamer.cli import configs, data, demo, engine, models, predict, preprocess, spot, spot_eval  # noqa: F401  (register)
from pamer.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
