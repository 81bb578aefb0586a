"""pamer.engine: batched augmentation, training of one fold, LOSO over subjects, metrics."""

from __future__ import annotations

from pamer.engine.loso import RunDirError, run_loso
from pamer.engine.train import train_final

__all__ = ["RunDirError", "run_loso", "train_final"]
