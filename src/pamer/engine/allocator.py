"""glibc's allocator while a network trains: memory freed by one step kept for the next, returned to the system after.

glibc serves every block over its mmap threshold (128 KiB, raised as blocks are freed, at most 32 MiB) with a fresh
mmap and gives it back with munmap when freed. A training step frees and allocates the same activations again every
step, so on the CPU each large activation's pages are faulted in and zeroed by the kernel anew each step: pamnet's
activations at 224 px are 25-100 MiB each. Inside `reuse_freed_memory` glibc takes every block from its heap
(M_MMAP_MAX = 0) and keeps what is freed (M_TRIM_THRESHOLD at its largest); when the last such block ends both take
their default values again and the free memory is returned (malloc_trim). Setting them stops glibc from raising its
mmap threshold by itself (mallopt(3)): after the first fold it stays where it stood. A whole fold trains 1.04-1.37x
faster for pamnet (224 to 28 px, float32 and bfloat16) and 1.45x for STSTNet's recipe, at about the same peak memory
(BENCHMARKS.md, `benchmarks/cpu_fold_ab.py`); no number a fold computes changes. Elsewhere than glibc (macOS,
Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GLIBC", "reuse_freed_memory"]

# mallopt's parameters and glibc's defaults for them (malloc/malloc.h and malloc/malloc.c)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
KEEP_ALL = 2**31 - 1  # mallopt takes an int


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it alone has `gnu_get_libc_version`, `mallopt` and `malloc_trim`)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


GLIBC = _glibc()  # the process's glibc (ctypes), None elsewhere
_LOCK = threading.Lock()
_ACTIVE = 0  # blocks inside reuse_freed_memory now (folds of one process may train in threads)


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Run the block with glibc keeping freed memory for reuse; its defaults come back when the last block ends."""
    global _ACTIVE
    with _LOCK:
        if _ACTIVE == 0 and GLIBC is not None:
            GLIBC.mallopt(M_MMAP_MAX, 0)
            GLIBC.mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
        _ACTIVE += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0 and GLIBC is not None:
                GLIBC.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                GLIBC.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                GLIBC.malloc_trim(0)
