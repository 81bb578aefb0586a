"""The demo's settings: its default sizes, its learning rate, the reader protocol of each class set, and the LOSO
configuration they make (`demo_config`). Light to import: `pamer demo`'s options take their defaults from here."""

from __future__ import annotations

import os
from pathlib import Path

from pamer.config import Config

__all__ = [
    "DEFAULT_CLIPS_PER_CLASS",
    "DEFAULT_EPOCHS",
    "DEFAULT_SIZE",
    "DEFAULT_SUBJECTS",
    "DEFAULT_WORKERS",
    "DEMO_LR",
    "MIN_SIZE",
    "PROTOCOLS",
    "demo_config",
]

# Measured on 2 CPU cores (BENCHMARKS.md, "pamer demo"): the defaults finish in a few minutes.
DEFAULT_SUBJECTS = 5
DEFAULT_CLIPS_PER_CLASS = 5
DEFAULT_EPOCHS = 8
DEFAULT_SIZE = 112
MIN_SIZE = 32  # the smallest side of the demo's face crops (`pamer demo --size`)
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)  # processes aligning faces
DEMO_LR = 1e-3  # chosen by a validation LOSO on a set seeded apart (benchmarks/demo_lr.py), never on a test subject
PROTOCOLS = {3: "megc2019", 5: "5class"}  # how the CASME II reader names the generator's class sets


def demo_config(cache_dir: Path, *, model: str, size: int, epochs: int, seed: int) -> Config:
    """The LOSO configuration of the demo: the paper's network and optimiser (Adam) at a small input size.

    With only a few epochs the paper's learning rate 1e-4 barely starts to fit, so the demo's rate was chosen on
    a synthetic set seeded apart from the demo's (`benchmarks/demo_lr.py`; no subject of the demo's set looked at):
    the demo's LOSO on that set gave pooled macro-F1 0.590 at 1e-4, 0.668 at 3e-4, 0.673 at 1e-3 and 0.657 at
    3e-3, and the rule fixed before the run (highest macro-F1) gives 1e-3 (BENCHMARKS.md, "pamer demo"). Batches of 8
    give more steps for the same work.
    """
    return Config.from_dict(
        {
            "data": {"cache": str(cache_dir), "dataset": "synthetic"},
            "model": {"name": model},
            "train": {"epochs": epochs, "batch_size": 8, "lr": DEMO_LR, "input_size": size},
            "seed": seed,
        },
        source="pamer demo",
    )
