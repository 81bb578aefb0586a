"""Torch's thread count for a block of work: a run's `train.threads` while it trains, the caller's count after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(threads: int | None = None) -> Iterator[None]:
    """Run the block on `threads` torch intra-op threads (0 or None: on the count as it is), and give the caller's
    count back after it, however the block ends and whatever the block set meanwhile.

    torch's count is process-wide: a fold or a final training that sets `train.threads` would otherwise leave it set
    for whatever the caller runs next.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
