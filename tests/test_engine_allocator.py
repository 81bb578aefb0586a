"""glibc's allocator while a network trains: large blocks come from the heap and are kept, its defaults come back
after, and no number a fold computes changes."""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np
import pytest
import torch

import pamer.engine.fold
from _engine import make_cache, tiny_config
from pamer.engine.allocator import GLIBC, reuse_freed_memory
from pamer.engine.fold import fit, fold_plan
from pamer.engine.inputs import network_inputs

BLOCK = 64 << 20  # over glibc's largest mmap threshold (32 MiB): mmapped by default


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


# a handle of its own: setting restype here leaves pamer's GLIBC handle as it is
LIBC = ctypes.CDLL(None) if GLIBC is not None else None
needs_glibc = pytest.mark.skipif(
    LIBC is None or not hasattr(LIBC, "mallinfo2"),
    reason="glibc 2.33 or later only: elsewhere reuse_freed_memory does nothing and mallinfo2 is absent",
)
if LIBC is not None and hasattr(LIBC, "mallinfo2"):
    LIBC.mallinfo2.restype = MallInfo2
    LIBC.malloc.restype = ctypes.c_void_p
    LIBC.malloc.argtypes = [ctypes.c_size_t]
    LIBC.free.argtypes = [ctypes.c_void_p]


def mmapped_for_a_block() -> int:
    """Bytes glibc mmapped to serve one malloc of BLOCK bytes (the block is freed again)."""
    before = LIBC.mallinfo2().hblkhd
    pointer = LIBC.malloc(BLOCK)
    assert pointer
    try:
        return LIBC.mallinfo2().hblkhd - before
    finally:
        LIBC.free(pointer)


@needs_glibc
def test_inside_the_block_large_blocks_come_from_the_heap_and_the_defaults_return_after() -> None:
    assert mmapped_for_a_block() >= BLOCK
    with reuse_freed_memory():
        assert mmapped_for_a_block() == 0
        with reuse_freed_memory():  # nested (folds training in threads of one process): the outer keeps it on
            pass
        assert mmapped_for_a_block() == 0
    assert mmapped_for_a_block() >= BLOCK
    with pytest.raises(KeyError), reuse_freed_memory():
        raise KeyError("the block failed")
    assert mmapped_for_a_block() >= BLOCK


@needs_glibc
def test_a_fold_trains_with_the_setting_and_computes_what_it_computes_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = make_cache(per_subject=4, labels="every class")
    config = tiny_config()
    _, train_idx, test_idx = fold_plan(cache.subjects)[0]
    inputs = network_inputs(cache, config, torch.device("cpu"))
    seen: list[int] = []

    def run() -> np.ndarray:
        result = fit(
            config, inputs, cache.labels, len(cache.classes), train_idx, test_idx, seed=3,
            on_epoch=lambda *_: seen.append(mmapped_for_a_block()),
        )  # fmt: skip
        return result.probs

    with_setting = run()
    assert seen == [0] * config.train.epochs  # every epoch trained with large blocks from the heap
    monkeypatch.setattr(pamer.engine.fold, "reuse_freed_memory", contextlib.nullcontext)
    seen.clear()
    without = run()
    assert all(m >= BLOCK for m in seen)
    np.testing.assert_array_equal(with_setting, without)
    assert mmapped_for_a_block() >= BLOCK  # and after the fold, glibc's defaults again
