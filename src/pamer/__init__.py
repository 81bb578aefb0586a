"""pamer: facial micro-expression recognition with the PA-MSC network and honest LOSO evaluation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Recognizer", "__version__", "create_model", "list_models", "spot"]


def __getattr__(name: str) -> Any:
    # torch-backed names load on first use, so `pamer --help` and the data readers start fast
    if name in ("create_model", "list_models"):
        from pamer import models

        return getattr(models, name)
    if name == "Recognizer":
        from pamer.predict import Recognizer

        return Recognizer
    if name == "spot":  # the package pamer.spot, callable as pamer.spot(video, ...)
        import importlib

        return importlib.import_module("pamer.spot")
    raise AttributeError(f"module 'pamer' has no attribute {name!r}")
