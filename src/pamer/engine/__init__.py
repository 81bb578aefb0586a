"""pamer.engine: batched augmentation, training of one fold, LOSO over subjects, metrics."""

from __future__ import annotations

from pamer.engine.final import train_final
from pamer.engine.loso import RunDirError, run_loso

__all__ = ["RunDirError", "run_loso", "train_final"]
