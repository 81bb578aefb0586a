"""The preprocessing cache: aligned uint8 onset/apex crops of every clip, written once by `pamer prepare`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Cache:
    """A loaded cache. `onset`/`apex` are uint8 RGB arrays N x H x W x 3 (for `representation: flow`, `flow`
    holds float32 N x H x W x 3: u, v, strain); `labels` are int64 indices into `classes`."""

    onset: np.ndarray
    apex: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    clips: list[str]
    classes: tuple[str, ...]
    config: dict = field(default_factory=dict)
    flow: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)
