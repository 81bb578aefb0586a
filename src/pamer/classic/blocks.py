"""The grid of blocks that LBP-TOP and Bi-WOOF histogram over."""

from __future__ import annotations

import numpy as np

__all__ = ["block_index"]


def block_index(height: int, width: int, blocks: int) -> np.ndarray:
    """The block of each pixel of a `blocks` x `blocks` grid (row-major), rows and columns split as evenly as
    possible (block sizes differ by at most one pixel).

    Shape:
        - output: (height, width) int64 in [0, blocks**2).
    """

    def along(length: int) -> np.ndarray:
        edges = np.linspace(0, length, blocks + 1).round().astype(np.int64)
        return np.searchsorted(edges, np.arange(length), side="right") - 1

    return along(height)[:, None] * blocks + along(width)[None, :]
