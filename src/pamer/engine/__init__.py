"""pamer.engine: batched augmentation, training of one fold, LOSO over subjects, metrics.

`run_loso` and `train_final` load on first use (PEP 562), not when the package is imported: `pamer.report` reads
run directories through `pamer.engine.rundir`, and a finished LOSO writes its report through `pamer.report`, so
importing `pamer.engine.loso` here would make `import pamer.report.tables` (and `pamer report RUN`) circular.
"""

from __future__ import annotations

import importlib
from typing import Any

from pamer.engine.rundir import RunDirError

__all__ = ["RunDirError", "run_loso", "train_final"]

_LAZY = {"run_loso": "pamer.engine.loso", "train_final": "pamer.engine.final"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pamer.engine' has no attribute {name!r}")
